//! The user and its validated fields. Constructors named `parse` check and normalise raw input
//! and say, per field, what is wrong.

use std::fmt;

use uuid::Uuid;

use crate::command::CreateUser;
use crate::time::Timestamp;

/// What is wrong with one field of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    /// Machine-readable: `required`, `invalid`, `too_long`, `out_of_range`.
    pub code: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &str, code: &str, message: impl Into<String>) -> Self {
        Self { field: field.to_owned(), code: code.to_owned(), message: message.into() }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// An email address: trimmed, syntactically valid, at most 254 characters. Kept as written;
/// uniqueness compares [`Email::key`], its lower-cased form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    pub const MAX_LEN: usize = 254;

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        Self::check(raw).map(|email| Self(email.to_owned()))
    }

    /// [`Email::parse`], keeping `raw`'s buffer when there is nothing to trim (an address read
    /// from a record was stored trimmed).
    pub fn parse_owned(raw: String) -> Result<Self, FieldError> {
        let trimmed = Self::check(&raw)?.len();
        Ok(Self(if trimmed == raw.len() { raw } else { raw.trim().to_owned() }))
    }

    /// The trimmed address, if valid.
    fn check(raw: &str) -> Result<&str, FieldError> {
        let email = raw.trim();
        let invalid = |why: &str| FieldError::new("email", "invalid", format!("not a valid email address: {why}"));
        if email.is_empty() {
            return Err(FieldError::new("email", "required", "email is required"));
        }
        if email.chars().count() > Self::MAX_LEN {
            return Err(FieldError::new("email", "too_long", format!("at most {} characters", Self::MAX_LEN)));
        }
        let Some((local, domain)) = email.rsplit_once('@') else {
            return Err(invalid("missing '@'"));
        };
        if local.is_empty() || local.len() > 64 {
            return Err(invalid("the part before '@' must have 1 to 64 characters"));
        }
        let local_ok = local.chars().all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c));
        if !local_ok || local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            return Err(invalid("unexpected character in the part before '@'"));
        }
        let labels: Vec<&str> = domain.split('.').collect();
        let label_ok = |l: &&str| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if labels.len() < 2 || !labels.iter().all(label_ok) {
            return Err(invalid("the domain must look like example.com"));
        }
        if !labels.last().is_some_and(|tld| tld.len() >= 2 && tld.chars().all(|c| c.is_ascii_alphabetic())) {
            return Err(invalid("the domain must end with a top-level domain such as .com"));
        }
        Ok(email)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }

    /// An address that was valid when it was stored (the view's compact copy): not checked again.
    pub(crate) fn stored(email: &str) -> Self {
        Self(email.to_owned())
    }

    /// The uniqueness key: two addresses differing only in case are the same user.
    pub fn key(&self) -> String {
        self.0.to_lowercase()
    }

    /// The part after '@', lower-cased.
    pub fn domain(&self) -> String {
        self.0.rsplit_once('@').map(|(_, d)| d.to_lowercase()).unwrap_or_default()
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A display name: trimmed, 1 to 200 characters, no control characters other than line breaks
/// and tabs (which survive a CSV round trip, quoted).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Name(String);

impl Name {
    pub const MAX_LEN: usize = 200;

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        Self::check(raw).map(|name| Self(name.to_owned()))
    }

    /// [`Name::parse`], keeping `raw`'s buffer when there is nothing to trim.
    pub fn parse_owned(raw: String) -> Result<Self, FieldError> {
        let trimmed = Self::check(&raw)?.len();
        Ok(Self(if trimmed == raw.len() { raw } else { raw.trim().to_owned() }))
    }

    /// The trimmed name, if valid.
    fn check(raw: &str) -> Result<&str, FieldError> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(FieldError::new("name", "required", "name is required"));
        }
        if name.chars().count() > Self::MAX_LEN {
            return Err(FieldError::new("name", "too_long", format!("at most {} characters", Self::MAX_LEN)));
        }
        if name.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
            return Err(FieldError::new("name", "invalid", "control characters are not allowed"));
        }
        Ok(name)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }

    /// A name that was valid when it was stored (the view's compact copy): not checked again.
    pub(crate) fn stored(name: &str) -> Self {
        Self(name.to_owned())
    }
}

/// An age in years, 0 to 150.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Age(u8);

impl Age {
    pub const MAX: i64 = 150;

    pub fn parse(raw: i64) -> Result<Self, FieldError> {
        match u8::try_from(raw) {
            Ok(age) if i64::from(age) <= Self::MAX => Ok(Self(age)),
            _ => Err(FieldError::new("age", "out_of_range", format!("must be between 0 and {}", Self::MAX))),
        }
    }

    pub fn get(self) -> u8 {
        self.0
    }
}

/// The language a user prefers: a BCP 47 tag of a language (2 or 3 letters), then optionally
/// a script (4 letters) and a region (2 letters or 3 digits), as browsers send them: `en`,
/// `pt-BR`, `zh-Hant-TW`, `es-419`. `_` is taken for `-`; the case is normalised
/// (`EN_gb` becomes `en-GB`). At most 12 ASCII characters, kept inline: every user carries one,
/// and a million users should not mean a million small allocations.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Locale {
    tag: [u8; Locale::MAX_LEN],
    len: u8,
}

impl Locale {
    /// `zzz-Zzzz-999`.
    pub const MAX_LEN: usize = 12;

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let invalid = || FieldError::new("locale", "invalid", "must be a language tag such as en or pt-BR");
        let mut parts = raw.trim().split(['-', '_']);
        let language =
            parts.next().filter(|l| (2..=3).contains(&l.len()) && l.bytes().all(|c| c.is_ascii_alphabetic()));
        let mut tag = language.ok_or_else(invalid)?.to_ascii_lowercase();
        let mut rest: Vec<&str> = parts.collect();
        if let Some(script) = rest.first().filter(|s| s.len() == 4 && s.bytes().all(|c| c.is_ascii_alphabetic())) {
            tag.push('-');
            tag.push_str(&script[..1].to_ascii_uppercase());
            tag.push_str(&script[1..].to_ascii_lowercase());
            rest.remove(0);
        }
        match rest.as_slice() {
            [] => {}
            [region] if region.len() == 2 && region.bytes().all(|c| c.is_ascii_alphabetic()) => {
                tag.push('-');
                tag.push_str(&region.to_ascii_uppercase());
            }
            [region] if region.len() == 3 && region.bytes().all(|c| c.is_ascii_digit()) => {
                tag.push('-');
                tag.push_str(region);
            }
            _ => return Err(invalid()),
        }
        let mut inline = [0; Self::MAX_LEN];
        inline[..tag.len()].copy_from_slice(tag.as_bytes());
        Ok(Self { tag: inline, len: tag.len() as u8 })
    }

    /// A tag that was valid when it was stored (the view's compact copy): not checked again;
    /// `None` if it could not have come from [`Locale::parse`] (longer than a tag can be).
    pub(crate) fn stored(tag: &str) -> Option<Self> {
        let mut inline = [0; Self::MAX_LEN];
        inline.get_mut(..tag.len())?.copy_from_slice(tag.as_bytes());
        Some(Self { tag: inline, len: u8::try_from(tag.len()).ok()? })
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII is ever stored.
        std::str::from_utf8(&self.tag[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl fmt::Debug for Locale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Locale({:?})", self.as_str())
    }
}

/// A user as user-service decided it. `version` starts at 1 and grows by one with every change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: Uuid,
    pub email: Email,
    pub name: Name,
    pub age: Option<Age>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub version: u64,
    /// None for users created before locales existed, or who never gave one.
    pub locale: Option<Locale>,
}

/// The fields of a new user, validated together so every bad field is reported at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    pub email: Email,
    pub name: Name,
    pub age: Option<Age>,
    pub locale: Option<Locale>,
}

impl NewUser {
    /// Checks the raw fields of a creation (`user-service` decides with the same rules the
    /// gateway checks them with).
    pub fn parse(raw: &CreateUser) -> Result<Self, Vec<FieldError>> {
        let email = Email::parse(&raw.email);
        let name = Name::parse(&raw.name);
        let age = raw.age.map(Age::parse).transpose();
        let locale = raw.locale.as_deref().map(Locale::parse).transpose();
        match (email, name, age, locale) {
            (Ok(email), Ok(name), Ok(age), Ok(locale)) => Ok(Self { email, name, age, locale }),
            (email, name, age, locale) => {
                Err([email.err(), name.err(), age.err(), locale.err()].into_iter().flatten().collect())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn an_email_is_trimmed_kept_as_written_and_keyed_in_lower_case() {
        let email = Email::parse("  Ada.Lovelace@Example.COM ").unwrap();
        assert_eq!(email.as_str(), "Ada.Lovelace@Example.COM");
        assert_eq!(email.key(), "ada.lovelace@example.com");
        assert_eq!(email.domain(), "example.com");
    }

    #[test]
    fn malformed_emails_are_refused_with_a_reason() {
        for bad in [
            "",
            "   ",
            "plain",
            "@example.com",
            "a@",
            "a@b",
            "a@example.c0m",
            "a b@example.com",
            "a@-x.com",
            "a..b@x.com",
        ] {
            let err = Email::parse(bad).unwrap_err();
            assert_eq!(err.field, "email", "{bad}");
            assert!(["required", "invalid"].contains(&err.code.as_str()), "{bad}: {err:?}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(Email::parse(&long).is_err());
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(Name::parse("  Grace Hopper ").unwrap().as_str(), "Grace Hopper");
        assert_eq!(Name::parse(" ").unwrap_err().code, "required");
        assert!(Name::parse(&"é".repeat(200)).is_ok(), "200 characters, not bytes");
        assert_eq!(Name::parse(&"x".repeat(201)).unwrap_err().code, "too_long");
        assert_eq!(Name::parse("a\u{0}b").unwrap_err().code, "invalid");
    }

    #[test]
    fn ages_outside_0_to_150_are_refused() {
        assert_eq!(Age::parse(0).unwrap().get(), 0);
        assert_eq!(Age::parse(150).unwrap().get(), 150);
        for bad in [-1, 151, 256, i64::MAX, i64::MIN] {
            assert_eq!(Age::parse(bad).unwrap_err().code, "out_of_range", "{bad}");
        }
    }

    #[test]
    fn every_bad_field_of_a_new_user_is_reported_at_once() {
        let raw = CreateUser { email: "nope".into(), name: String::new(), age: Some(200), locale: Some("x".into()) };
        let errors = NewUser::parse(&raw).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["email", "name", "age", "locale"]);
    }

    #[test]
    fn locales_are_language_tags_normalised_as_bcp_47_writes_them() {
        for (raw, normal) in
            [("en", "en"), ("EN_gb", "en-GB"), (" pt-br ", "pt-BR"), ("zh-hant-tw", "zh-Hant-TW"), ("es-419", "es-419")]
        {
            assert_eq!(Locale::parse(raw).unwrap().as_str(), normal, "{raw}");
        }
        for bad in ["", "e", "english", "en-", "en-GB-x", "en-1", "12", "en-Latn-GB-extra", "é"] {
            assert_eq!(Locale::parse(bad).unwrap_err().code, "invalid", "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn email_parse_never_panics_and_accepted_ones_are_trimmed(raw in "\\PC{0,300}") {
            if let Ok(email) = Email::parse(&raw) {
                prop_assert_eq!(email.as_str(), raw.trim());
                prop_assert!(email.as_str().chars().count() <= Email::MAX_LEN);
            }
        }

        #[test]
        fn parsing_an_owned_string_is_parsing_its_text(raw in "\\PC{0,40}") {
            prop_assert_eq!(Email::parse_owned(raw.clone()), Email::parse(&raw));
            prop_assert_eq!(Name::parse_owned(raw.clone()), Name::parse(&raw));
        }

        #[test]
        fn generated_valid_emails_are_accepted(local in "[a-z0-9]{1,20}", domain in "[a-z]{1,20}", tld in "[a-z]{2,6}") {
            let raw = format!("{local}@{domain}.{tld}");
            prop_assert!(Email::parse(&raw).is_ok(), "{}", raw);
        }

        #[test]
        fn locale_parse_never_panics_and_accepted_ones_parse_to_themselves(raw in "\\PC{0,20}") {
            if let Ok(locale) = Locale::parse(&raw) {
                prop_assert_eq!(Locale::parse(locale.as_str()).unwrap(), locale);
                prop_assert!(locale.as_str().len() <= Locale::MAX_LEN);
            }
        }

        #[test]
        fn name_parse_never_panics_and_respects_the_bounds(raw in "\\PC{0,300}") {
            if let Ok(name) = Name::parse(&raw) {
                let n = name.as_str().chars().count();
                prop_assert!((1..=Name::MAX_LEN).contains(&n));
            }
        }
    }
}
