//! The domain's messages as the contract's records (`contract`, generated from `schemas/`):
//! `TryFrom<Domain> for Record` to send (by value: nothing is copied on the hot paths; clone
//! what you keep), `TryFrom<Record> for Domain` to receive.
//!
//! From the wire, every value is held to today's rules, as if it had just been typed in: a
//! user in an event must still have a valid email and name, a count or a version must not be
//! negative, a partition must come with its offset. A value that breaks a rule or does not fit
//! its type is refused ([`MappingError`]), never clamped or defaulted. To the wire, a count too
//! large for Avro's `long` is refused the same way.
//!
//! One module per topic family: `events`, `commands`, `replies`, and `jobs` (imports and
//! exports); users, shared by events and replies, are here.

mod commands;
mod events;
mod jobs;
mod replies;

use contract::MappingError;

use crate::time::Timestamp;
use crate::user::{Age, Email, FieldError, Locale, Name, User};

type Result<T> = std::result::Result<T, MappingError>;

fn long(field: &'static str, n: u64) -> Result<i64> {
    i64::try_from(n).map_err(|_| MappingError::new(field, format!("{n} does not fit a long")))
}

fn unsigned(field: &'static str, n: i64) -> Result<u64> {
    u64::try_from(n).map_err(|_| MappingError::new(field, format!("{n} is negative")))
}

fn rule<T>(field: &'static str, checked: std::result::Result<T, FieldError>) -> Result<T> {
    checked.map_err(|e| MappingError::new(field, e.message))
}

fn age(field: &'static str, n: i64) -> Result<u8> {
    u8::try_from(n).map_err(|_| MappingError::new(field, format!("{n} is not an age")))
}

impl TryFrom<User> for contract::User {
    type Error = MappingError;

    fn try_from(user: User) -> Result<Self> {
        Ok(Self {
            id: user.id,
            email: user.email.into_string(),
            name: user.name.into_string(),
            age: user.age.map(|a| i32::from(a.get())),
            created_at: user.created_at.millis(),
            updated_at: user.updated_at.millis(),
            version: long("version", user.version)?,
            locale: user.locale.map(|l| l.as_str().to_owned()),
        })
    }
}

impl TryFrom<contract::User> for User {
    type Error = MappingError;

    fn try_from(user: contract::User) -> Result<Self> {
        Ok(Self {
            id: user.id,
            email: rule("email", Email::parse_owned(user.email))?,
            name: rule("name", Name::parse_owned(user.name))?,
            age: user.age.map(|a| rule("age", Age::parse(i64::from(a)))).transpose()?,
            created_at: Timestamp::from_millis(user.created_at),
            updated_at: Timestamp::from_millis(user.updated_at),
            version: unsigned("version", user.version)?,
            locale: user.locale.map(|l| rule("locale", Locale::parse(&l))).transpose()?,
        })
    }
}
