//! The rules, as a pure function: a command and the current users in, a decision out.
//! user-service applies the decision; nothing here touches a clock, a map or a socket.

use uuid::Uuid;

use crate::command::{BatchItem, Command, CreateUser, DeleteUser, UpdateUser};
use crate::event::Event;
use crate::reply::{Rejection, RejectionReason};
use crate::time::Timestamp;
use crate::user::{Age, Email, FieldError, Locale, Name, NewUser, User};

/// Read access to the current users, as the decision needs it.
pub trait Users {
    fn get(&self, id: Uuid) -> Option<User>;
    /// The id of the user holding this email key ([`Email::key`]), if any.
    fn owner_of(&self, email_key: &str) -> Option<Uuid>;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Publish and apply this event.
    Apply(Event),
    /// Accepted, but nothing changes (an update to the same values).
    Unchanged(User),
    Reject(Rejection),
}

/// Decides `command` against `users`; `now` and `new_id` are used by creations. A batch is
/// decided item by item with [`decide_item`]; as a whole it is refused here.
pub fn decide(command: &Command, users: &impl Users, now: Timestamp, new_id: Uuid) -> Decision {
    let decision = match command {
        Command::Create(create) => create_user(create, users, now, new_id),
        Command::Update(update) => update_user(update, users, now),
        Command::Delete(delete) => delete_user(delete, users),
        Command::Batch(_) => Err(Rejection::new(RejectionReason::Invalid, "a batch is decided item by item")),
    };
    decision.unwrap_or_else(Decision::Reject)
}

/// Decides one row of a batch: a creation, or with `upsert` an update of the user already
/// holding the email (name and age replaced, the email's spelling taken from the row, the
/// locale replaced if the row gives one).
pub fn decide_item(item: &BatchItem, users: &impl Users, now: Timestamp, new_id: Uuid) -> Decision {
    let decision = if item.upsert {
        upsert_user(&item.user, users, now, new_id)
    } else {
        create_user(&item.user, users, now, new_id)
    };
    decision.unwrap_or_else(Decision::Reject)
}

fn upsert_user(row: &CreateUser, users: &impl Users, now: Timestamp, new_id: Uuid) -> Result<Decision, Rejection> {
    let new = NewUser::parse(row).map_err(Rejection::invalid)?;
    let Some(current) = users.owner_of(&new.email.key()).and_then(|id| users.get(id)) else {
        return create_user(row, users, now, new_id);
    };
    let locale = new.locale.or(current.locale);
    let next = User { email: new.email, name: new.name, age: new.age, locale, ..current.clone() };
    if next == current {
        return Ok(Decision::Unchanged(current));
    }
    Ok(Decision::Apply(Event::Updated(User {
        version: current.version + 1,
        updated_at: now.max(current.updated_at),
        ..next
    })))
}

fn create_user(create: &CreateUser, users: &impl Users, now: Timestamp, id: Uuid) -> Result<Decision, Rejection> {
    let new = NewUser::parse(create).map_err(Rejection::invalid)?;
    ensure_free(&new.email, users, None)?;
    let NewUser { email, name, age, locale } = new;
    Ok(Decision::Apply(Event::Created(User {
        id,
        email,
        name,
        age,
        created_at: now,
        updated_at: now,
        version: 1,
        locale,
    })))
}

fn update_user(update: &UpdateUser, users: &impl Users, now: Timestamp) -> Result<Decision, Rejection> {
    let current = existing(update.user_id, update.expected_version, users)?;
    let email = update.email.as_deref().map(Email::parse).transpose();
    let name = update.name.as_deref().map(Name::parse).transpose();
    let age = update.age.map(|age| age.map(Age::parse).transpose()).transpose();
    let locale = update.locale.as_ref().map(|l| l.as_deref().map(Locale::parse).transpose()).transpose();
    let (email, name, age, locale) = match (email, name, age, locale) {
        (Ok(email), Ok(name), Ok(age), Ok(locale)) => (email, name, age, locale),
        (email, name, age, locale) => {
            let errors: Vec<FieldError> =
                [email.err(), name.err(), age.err(), locale.err()].into_iter().flatten().collect();
            return Err(Rejection::invalid(errors));
        }
    };
    if let Some(email) = &email {
        ensure_free(email, users, Some(current.id))?;
    }
    let mut next = current.clone();
    next.email = email.unwrap_or(next.email);
    next.name = name.unwrap_or(next.name);
    next.age = age.unwrap_or(next.age);
    next.locale = locale.unwrap_or(next.locale);
    if next == current {
        return Ok(Decision::Unchanged(current));
    }
    next.version = current.version + 1;
    next.updated_at = now.max(current.updated_at);
    Ok(Decision::Apply(Event::Updated(next)))
}

fn delete_user(delete: &DeleteUser, users: &impl Users) -> Result<Decision, Rejection> {
    let current = existing(delete.user_id, delete.expected_version, users)?;
    Ok(Decision::Apply(Event::Deleted { user_id: current.id, email: current.email, version: current.version + 1 }))
}

fn existing(id: Uuid, expected_version: Option<u64>, users: &impl Users) -> Result<User, Rejection> {
    let user =
        users.get(id).ok_or_else(|| Rejection::new(RejectionReason::NotFound, format!("user {id} not found")))?;
    match expected_version {
        Some(expected) if expected != user.version => Err(Rejection::new(
            RejectionReason::VersionConflict,
            format!("user {id} is at version {}, not {expected}", user.version),
        )),
        _ => Ok(user),
    }
}

fn ensure_free(email: &Email, users: &impl Users, except: Option<Uuid>) -> Result<(), Rejection> {
    match users.owner_of(&email.key()) {
        Some(owner) if Some(owner) != except => {
            let mut rejection = Rejection::new(RejectionReason::EmailTaken, format!("{email} is already taken"));
            rejection.field_errors.push(FieldError::new("email", "taken", "this email is already in use"));
            Err(rejection)
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[derive(Default)]
    struct Fixture(HashMap<Uuid, User>);

    impl Users for Fixture {
        fn get(&self, id: Uuid) -> Option<User> {
            self.0.get(&id).cloned()
        }
        fn owner_of(&self, key: &str) -> Option<Uuid> {
            self.0.values().find(|u| u.email.key() == key).map(|u| u.id)
        }
    }

    fn create(email: &str) -> Command {
        Command::Create(CreateUser { email: email.into(), name: "Ada".into(), age: Some(36), locale: None })
    }

    fn created(decision: Decision) -> User {
        match decision {
            Decision::Apply(Event::Created(user)) => user,
            other => panic!("expected a creation, got {other:?}"),
        }
    }

    fn rejected(decision: Decision) -> RejectionReason {
        match decision {
            Decision::Reject(r) => r.reason,
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    fn with(users: &[&User]) -> Fixture {
        Fixture(users.iter().map(|u| (u.id, (*u).clone())).collect())
    }

    const T0: Timestamp = Timestamp::from_millis(1_000);
    const T1: Timestamp = Timestamp::from_millis(2_000);

    #[test]
    fn a_valid_creation_yields_version_1_with_trimmed_fields() {
        let id = Uuid::now_v7();
        let user = created(decide(&create("  ada@example.com "), &Fixture::default(), T0, id));
        assert_eq!((user.id, user.email.as_str(), user.version), (id, "ada@example.com", 1));
        assert_eq!((user.created_at, user.updated_at), (T0, T0));
    }

    #[test]
    fn an_email_taken_in_another_case_is_refused() {
        let ada = created(decide(&create("ada@example.com"), &Fixture::default(), T0, Uuid::now_v7()));
        assert_eq!(
            rejected(decide(&create("ADA@Example.com"), &with(&[&ada]), T0, Uuid::now_v7())),
            RejectionReason::EmailTaken
        );
    }

    #[test]
    fn invalid_fields_are_refused_together() {
        let command = Command::Create(CreateUser { email: "x".into(), name: " ".into(), age: Some(-1), locale: None });
        let Decision::Reject(rejection) = decide(&command, &Fixture::default(), T0, Uuid::now_v7()) else { panic!() };
        assert_eq!(rejection.reason, RejectionReason::Invalid);
        assert_eq!(rejection.field_errors.len(), 3);
    }

    #[test]
    fn an_update_bumps_the_version_and_checks_the_expected_one() {
        let ada = created(decide(&create("ada@example.com"), &Fixture::default(), T0, Uuid::now_v7()));
        let users = with(&[&ada]);
        let rename = |expected| {
            Command::Update(UpdateUser {
                user_id: ada.id,
                name: Some("Countess".into()),
                expected_version: expected,
                ..UpdateUser::default()
            })
        };
        let Decision::Apply(Event::Updated(next)) = decide(&rename(Some(1)), &users, T1, Uuid::nil()) else { panic!() };
        assert_eq!((next.name.as_str(), next.version, next.updated_at, next.created_at), ("Countess", 2, T1, T0));
        assert_eq!(rejected(decide(&rename(Some(7)), &users, T1, Uuid::nil())), RejectionReason::VersionConflict);
    }

    #[test]
    fn an_update_to_the_same_values_changes_nothing() {
        let ada = created(decide(&create("ada@example.com"), &Fixture::default(), T0, Uuid::now_v7()));
        let same = Command::Update(UpdateUser { user_id: ada.id, age: Some(Some(36)), ..UpdateUser::default() });
        assert_eq!(decide(&same, &with(&[&ada]), T1, Uuid::nil()), Decision::Unchanged(ada));
    }

    #[test]
    fn an_update_can_clear_the_age_and_keep_its_own_email_in_another_case() {
        let ada = created(decide(&create("ada@example.com"), &Fixture::default(), T0, Uuid::now_v7()));
        let update = Command::Update(UpdateUser {
            user_id: ada.id,
            email: Some("ADA@example.com".into()),
            age: Some(None),
            ..UpdateUser::default()
        });
        let Decision::Apply(Event::Updated(next)) = decide(&update, &with(&[&ada]), T1, Uuid::nil()) else { panic!() };
        assert_eq!((next.email.as_str(), next.age), ("ADA@example.com", None));
    }

    #[test]
    fn moving_to_another_users_email_is_refused() {
        let ada = created(decide(&create("ada@example.com"), &Fixture::default(), T0, Uuid::now_v7()));
        let bob = created(decide(&create("bob@example.com"), &Fixture::default(), T0, Uuid::now_v7()));
        let steal = Command::Update(UpdateUser {
            user_id: bob.id,
            email: Some("Ada@Example.com".into()),
            ..UpdateUser::default()
        });
        assert_eq!(rejected(decide(&steal, &with(&[&ada, &bob]), T1, Uuid::nil())), RejectionReason::EmailTaken);
    }

    #[test]
    fn unknown_users_cannot_be_updated_or_deleted() {
        let ghost = Uuid::now_v7();
        let delete = Command::Delete(DeleteUser { user_id: ghost, expected_version: None });
        assert_eq!(rejected(decide(&delete, &Fixture::default(), T0, Uuid::nil())), RejectionReason::NotFound);
        let update = Command::Update(UpdateUser { user_id: ghost, ..UpdateUser::default() });
        assert_eq!(rejected(decide(&update, &Fixture::default(), T0, Uuid::nil())), RejectionReason::NotFound);
    }

    #[test]
    fn an_upsert_updates_the_holder_of_the_email_or_creates_a_user() {
        let ada = created(decide(&create("ada@example.com"), &Fixture::default(), T0, Uuid::now_v7()));
        let row = |email: &str| BatchItem {
            command_id: Uuid::now_v7(),
            line: 2,
            upsert: true,
            user: CreateUser { email: email.into(), name: "Ada K.".into(), age: None, locale: None },
        };
        let Decision::Apply(Event::Updated(next)) =
            decide_item(&row("ADA@example.com"), &with(&[&ada]), T1, Uuid::nil())
        else {
            panic!()
        };
        assert_eq!((next.id, next.name.as_str(), next.age, next.version), (ada.id, "Ada K.", None, 2));
        let fresh = Uuid::now_v7();
        assert_eq!(created(decide_item(&row("new@example.com"), &with(&[&ada]), T1, fresh)).id, fresh);
        let plain = BatchItem { upsert: false, ..row("ada@example.com") };
        assert_eq!(rejected(decide_item(&plain, &with(&[&ada]), T1, fresh)), RejectionReason::EmailTaken);
    }

    #[test]
    fn a_locale_is_normalised_on_creation_set_and_cleared_by_updates_and_kept_by_upserts_without_one() {
        let with_locale = |locale: &str| {
            Command::Create(CreateUser {
                email: "ada@example.com".into(),
                name: "Ada".into(),
                age: None,
                locale: Some(locale.into()),
            })
        };
        let ada = created(decide(&with_locale("en_gb"), &Fixture::default(), T0, Uuid::now_v7()));
        assert_eq!(ada.locale.as_ref().map(Locale::as_str), Some("en-GB"));
        let bad = decide(&with_locale("english"), &Fixture::default(), T0, Uuid::now_v7());
        let Decision::Reject(rejection) = bad else { panic!("{bad:?}") };
        assert_eq!(rejection.field_errors[0].field, "locale");

        let users = with(&[&ada]);
        let change = |locale: Option<&str>| {
            Command::Update(UpdateUser {
                user_id: ada.id,
                locale: Some(locale.map(Into::into)),
                ..UpdateUser::default()
            })
        };
        let Decision::Apply(Event::Updated(french)) = decide(&change(Some("fr")), &users, T1, Uuid::nil()) else {
            panic!()
        };
        assert_eq!((french.locale.as_ref().map(Locale::as_str), french.version), (Some("fr"), 2));
        let Decision::Apply(Event::Updated(cleared)) = decide(&change(None), &users, T1, Uuid::nil()) else { panic!() };
        assert_eq!(cleared.locale, None);
        assert_eq!(decide(&change(Some("EN-gb")), &users, T1, Uuid::nil()), Decision::Unchanged(ada.clone()));

        let row = |locale: Option<&str>| BatchItem {
            command_id: Uuid::now_v7(),
            line: 2,
            upsert: true,
            user: CreateUser {
                email: "ada@example.com".into(),
                name: "Ada".into(),
                age: None,
                locale: locale.map(Into::into),
            },
        };
        assert_eq!(decide_item(&row(None), &users, T1, Uuid::nil()), Decision::Unchanged(ada.clone()));
        let Decision::Apply(Event::Updated(upserted)) = decide_item(&row(Some("de")), &users, T1, Uuid::nil()) else {
            panic!()
        };
        assert_eq!(upserted.locale.as_ref().map(Locale::as_str), Some("de"));
    }

    #[test]
    fn a_deletion_carries_the_next_version() {
        let ada = created(decide(&create("ada@example.com"), &Fixture::default(), T0, Uuid::now_v7()));
        let delete = Command::Delete(DeleteUser { user_id: ada.id, expected_version: Some(1) });
        let Decision::Apply(Event::Deleted { version, .. }) = decide(&delete, &with(&[&ada]), T1, Uuid::nil()) else {
            panic!()
        };
        assert_eq!(version, 2);
    }
}
