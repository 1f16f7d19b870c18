//! The projection invariant, tried against random histories: a view's users and email index
//! depend only on how far each partition has been applied, never on how partitions were
//! interleaved, nor on partitions being re-read from an earlier position.
//!
//! A history is made the way user-service makes it: random commands (creates over a small
//! pool of emails, so addresses are freed and taken again; email changes; renames; deletes),
//! decided one at a time against the current users, each accepted event landing on the
//! partition of its user.

use domain::command::{Command, CreateUser, DeleteUser, UpdateUser};
use domain::decide::{Decision, decide};
use domain::event::Event;
use domain::time::Timestamp;
use domain::view::UserView;
use proptest::prelude::*;
use uuid::Uuid;

const EMAILS: usize = 4;

#[derive(Debug, Clone)]
enum Op {
    Create { email: usize },
    ChangeEmail { user: usize, email: usize },
    Rename { user: usize },
    Delete { user: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..EMAILS).prop_map(|email| Op::Create { email }),
        2 => (any::<usize>(), 0..EMAILS).prop_map(|(user, email)| Op::ChangeEmail { user, email }),
        1 => any::<usize>().prop_map(|user| Op::Rename { user }),
        2 => any::<usize>().prop_map(|user| Op::Delete { user }),
    ]
}

fn email(index: usize, spelling: usize) -> String {
    // The same address in another case is the same key.
    if spelling.is_multiple_of(2) { format!("user{index}@example.com") } else { format!("USER{index}@Example.com") }
}

/// The events a single writer decides for `ops`, in its total order, each with its partition.
fn history(ops: &[Op], partitions: u64) -> Vec<(usize, Event)> {
    let truth = UserView::new();
    let mut ids: Vec<Uuid> = Vec::new();
    let mut events = Vec::new();
    for (step, op) in ops.iter().enumerate() {
        let now = Timestamp::from_millis(1_000 + step as i64);
        let pick = |user: usize| (!ids.is_empty()).then(|| ids[user % ids.len()]);
        let command = match op {
            Op::Create { email: e } => Command::Create(CreateUser {
                email: email(*e, step),
                name: format!("n{step}"),
                age: None,
                locale: None,
            }),
            Op::ChangeEmail { user, email: e } => match pick(*user) {
                Some(user_id) => {
                    Command::Update(UpdateUser { user_id, email: Some(email(*e, step)), ..UpdateUser::default() })
                }
                None => continue,
            },
            Op::Rename { user } => match pick(*user) {
                Some(user_id) => {
                    Command::Update(UpdateUser { user_id, name: Some(format!("r{step}")), ..UpdateUser::default() })
                }
                None => continue,
            },
            Op::Delete { user } => match pick(*user) {
                Some(user_id) => Command::Delete(DeleteUser { user_id, expected_version: None }),
                None => continue,
            },
        };
        let new_id = Uuid::from_u128(step as u128 + 1);
        if let Decision::Apply(event) = decide(&command, &truth, now, new_id) {
            truth.apply(&event);
            if matches!(event, Event::Created(_)) {
                ids.push(new_id);
            }
            let partition = (event.user_id().as_u128() % u128::from(partitions)) as usize;
            events.push((partition, event));
        }
    }
    events
}

/// `events` split by partition, each in its own order.
fn by_partition(events: &[(usize, Event)], partitions: usize) -> Vec<Vec<Event>> {
    let mut split = vec![Vec::new(); partitions];
    for (partition, event) in events {
        split[*partition].push(event.clone());
    }
    split
}

/// The view after applying, in the single writer's order, the events within `applied` (how
/// many of each partition's events).
fn reference(events: &[(usize, Event)], applied: &[usize]) -> UserView {
    let view = UserView::new();
    let mut seen = vec![0; applied.len()];
    for (partition, event) in events {
        if seen[*partition] < applied[*partition] {
            view.apply(event);
        }
        seen[*partition] += 1;
    }
    view
}

fn assert_same(view: &UserView, expected: &UserView, when: &str) {
    assert_eq!(view.snapshot(), expected.snapshot(), "users {when}");
    assert_eq!(view.claims(), expected.claims(), "email index {when}");
    assert_eq!(view.digest(), expected.digest(), "digest {when}");
    // The index is derived from the users: one claim per live user, on its current email's key.
    let mut derived: Vec<(String, uuid::Uuid)> = view.snapshot().iter().map(|u| (u.email.key(), u.id)).collect();
    derived.sort_unstable();
    assert_eq!(view.claims(), derived, "email index against the users {when}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// Any interleaving that keeps each partition's order, with partitions sometimes re-read
    /// from an earlier position (a restart from an older checkpoint), yields at every step where
    /// no re-read is behind the view of the events applied so far in the writer's order, and
    /// at the end the writer's.
    #[test]
    fn the_view_depends_only_on_how_far_each_partition_is_applied(
        ops in prop::collection::vec(op(), 1..60),
        partitions in 1u64..5,
        choices in prop::collection::vec((any::<usize>(), 0u8..20), 0..400),
    ) {
        let events = history(&ops, partitions);
        let queues = by_partition(&events, partitions as usize);
        let view = UserView::new();
        let mut next = vec![0usize; queues.len()];
        // The furthest each partition has been applied: a re-read is behind it until it catches up.
        let mut high = next.clone();
        let mut choices = choices.into_iter();
        loop {
            let open: Vec<usize> = (0..queues.len()).filter(|p| next[*p] < queues[*p].len()).collect();
            if open.is_empty() {
                break;
            }
            let (choice, rewind) = choices.next().unwrap_or((0, 1));
            let partition = open[choice % open.len()];
            if rewind == 0 {
                // Read this partition again from an earlier position.
                next[partition] = choice % (next[partition] + 1);
                continue;
            }
            view.apply(&queues[partition][next[partition]]);
            next[partition] += 1;
            high[partition] = high[partition].max(next[partition]);
            if choice.is_multiple_of(7) && next == high {
                assert_same(&view, &reference(&events, &next), &format!("after {next:?}"));
            }
        }
        let truth = reference(&events, &next);
        assert_same(&view, &truth, "at the end");
        // At the writer's point every email has exactly one owner, the user holding it.
        for user in truth.snapshot() {
            prop_assert_eq!(view.owner_of(&user.email.key()), Some(user.id));
        }
        prop_assert_eq!(view.claims().len(), truth.len());
    }
}

/// The case the bug report describes, spelt out: the email's first holder is deleted and a
/// second user takes it; whichever partition is read first, the second user holds it.
#[test]
fn an_email_freed_and_taken_again_belongs_to_its_new_owner_in_either_order() {
    let ops = [Op::Create { email: 0 }, Op::Delete { user: 0 }, Op::Create { email: 0 }];
    let events = history(&ops, 2);
    assert_eq!(events.len(), 3);
    let queues = by_partition(&events, 2);
    for first in [0, 1] {
        let view = UserView::new();
        for partition in [first, 1 - first] {
            for event in &queues[partition] {
                view.apply(event);
            }
        }
        let owner = view.owner_of("user0@example.com");
        assert_eq!(owner, Some(Uuid::from_u128(3)), "partition {first} read first");
    }
}
