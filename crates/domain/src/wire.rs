//! The hot paths' Avro binary codec: commands, events and replies written and read directly,
//! byte for byte as apache-avro would for the schemas in `schemas/` (tests compare both ways),
//! about twenty times faster than building and walking a generic `Value` tree. Used only for
//! records whose schema id is exactly ours; anything else goes through the generic path.

use uuid::Uuid;

use crate::command::{BatchItem, Command, CommandEnvelope, CreateUser, DeleteUser, UpdateUser};
use crate::event::{Event, EventEnvelope};
use crate::reply::{Accepted, EventPosition, ItemOutcome, Outcome, Rejection, RejectionReason, Reply};
use crate::time::Timestamp;
use crate::user::{Age, Email, FieldError, Name, User};

/// A type with a direct binary form of its schema.
pub trait Wire: Sized {
    fn write(&self, out: &mut Vec<u8>);
    fn read(bytes: &[u8]) -> Result<Self, String>;
}

// ---- primitives -------------------------------------------------------------------------------

fn long(out: &mut Vec<u8>, n: i64) {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn unsigned(out: &mut Vec<u8>, n: u64) {
    long(out, i64::try_from(n).unwrap_or(i64::MAX));
}

fn string(out: &mut Vec<u8>, s: &str) {
    long(out, s.len() as i64);
    out.extend_from_slice(s.as_bytes());
}

fn uuid(out: &mut Vec<u8>, id: Uuid) {
    long(out, 36);
    out.extend_from_slice(id.hyphenated().encode_lower(&mut Uuid::encode_buffer()).as_bytes());
}

/// A `["null", T]` union.
fn optional<T>(out: &mut Vec<u8>, value: Option<T>, write: impl FnOnce(&mut Vec<u8>, T)) {
    match value {
        None => long(out, 0),
        Some(value) => {
            long(out, 1);
            write(out, value);
        }
    }
}

/// An array in one block (what apache-avro writes): count, items, then 0.
fn array<T>(out: &mut Vec<u8>, items: &[T], write: impl Fn(&mut Vec<u8>, &T)) {
    if !items.is_empty() {
        long(out, items.len() as i64);
        for item in items {
            write(out, item);
        }
    }
    long(out, 0);
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn long(&mut self) -> Result<i64, String> {
        let (mut z, mut shift) = (0u64, 0);
        loop {
            let (&byte, rest) = self.bytes.split_first().ok_or("truncated number")?;
            self.bytes = rest;
            if shift > 63 {
                return Err("number too long".into());
            }
            z |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok((z >> 1) as i64 ^ -((z & 1) as i64));
            }
            shift += 7;
        }
    }

    fn unsigned(&mut self) -> Result<u64, String> {
        u64::try_from(self.long()?).map_err(|_| "negative count or version".to_owned())
    }

    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let len = usize::try_from(self.long()?).map_err(|_| "negative length")?;
        if len > self.bytes.len() {
            return Err("truncated string".into());
        }
        let (head, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        Ok(head)
    }

    fn str(&mut self) -> Result<&'a str, String> {
        std::str::from_utf8(self.bytes()?).map_err(|e| e.to_string())
    }

    fn string(&mut self) -> Result<String, String> {
        self.str().map(str::to_owned)
    }

    fn uuid(&mut self) -> Result<Uuid, String> {
        Uuid::try_parse_ascii(self.bytes()?).map_err(|e| e.to_string())
    }

    fn boolean(&mut self) -> Result<bool, String> {
        let (&byte, rest) = self.bytes.split_first().ok_or("truncated boolean")?;
        self.bytes = rest;
        Ok(byte != 0)
    }

    fn branch(&mut self, branches: i64) -> Result<i64, String> {
        let index = self.long()?;
        if (0..branches).contains(&index) { Ok(index) } else { Err(format!("unknown union branch {index}")) }
    }

    fn optional<T>(&mut self, read: impl FnOnce(&mut Self) -> Result<T, String>) -> Result<Option<T>, String> {
        match self.branch(2)? {
            0 => Ok(None),
            _ => read(self).map(Some),
        }
    }

    /// Reads an array written in any number of blocks (negative counts carry a byte size).
    fn array<T>(&mut self, mut read: impl FnMut(&mut Self) -> Result<T, String>) -> Result<Vec<T>, String> {
        let mut items = Vec::new();
        loop {
            let count = self.long()?;
            if count == 0 {
                return Ok(items);
            }
            if count < 0 {
                self.long()?;
            }
            for _ in 0..count.unsigned_abs() {
                items.push(read(self)?);
            }
        }
    }

    fn timestamp(&mut self) -> Result<Timestamp, String> {
        self.long().map(Timestamp::from_millis)
    }

    fn end(self) -> Result<(), String> {
        if self.bytes.is_empty() { Ok(()) } else { Err(format!("{} unexpected bytes at the end", self.bytes.len())) }
    }
}

// ---- shared records ---------------------------------------------------------------------------

fn write_user(out: &mut Vec<u8>, user: &User) {
    uuid(out, user.id);
    string(out, user.email.as_str());
    string(out, user.name.as_str());
    optional(out, user.age, |out, age| long(out, i64::from(age.get())));
    long(out, user.created_at.millis());
    long(out, user.updated_at.millis());
    unsigned(out, user.version);
}

fn read_user(r: &mut Reader<'_>) -> Result<User, String> {
    Ok(User {
        id: r.uuid()?,
        email: Email::parse(r.str()?).map_err(|e| e.to_string())?,
        name: Name::parse(r.str()?).map_err(|e| e.to_string())?,
        age: r.optional(|r| r.long().and_then(|n| Age::parse(n).map_err(|e| e.to_string())))?,
        created_at: r.timestamp()?,
        updated_at: r.timestamp()?,
        version: r.unsigned()?,
    })
}

fn write_rejection(out: &mut Vec<u8>, rejection: &Rejection) {
    let reason = RejectionReason::ALL.iter().position(|r| *r == rejection.reason).unwrap_or(3);
    long(out, reason as i64);
    string(out, &rejection.message);
    array(out, &rejection.field_errors, |out, e| {
        string(out, &e.field);
        string(out, &e.code);
        string(out, &e.message);
    });
}

fn read_rejection(r: &mut Reader<'_>) -> Result<Rejection, String> {
    let reason = usize::try_from(r.long()?).ok().and_then(|i| RejectionReason::ALL.get(i).copied());
    Ok(Rejection {
        reason: reason.unwrap_or(RejectionReason::Invalid),
        message: r.string()?,
        field_errors: r.array(|r| Ok(FieldError { field: r.string()?, code: r.string()?, message: r.string()? }))?,
    })
}

// ---- envelopes ------------------------------------------------------------------------------------

impl Wire for CommandEnvelope {
    fn write(&self, out: &mut Vec<u8>) {
        uuid(out, self.command_id);
        uuid(out, self.correlation_id);
        string(out, &self.requester);
        long(out, self.issued_at.millis());
        match &self.command {
            Command::Create(c) => {
                long(out, 0);
                string(out, &c.email);
                string(out, &c.name);
                optional(out, c.age, long);
            }
            Command::Update(u) => {
                long(out, 1);
                uuid(out, u.user_id);
                optional(out, u.email.as_deref(), string);
                optional(out, u.name.as_deref(), string);
                optional(out, u.age, |out, age| optional(out, age, long));
                optional(out, u.expected_version, unsigned);
            }
            Command::Delete(d) => {
                long(out, 2);
                uuid(out, d.user_id);
                optional(out, d.expected_version, unsigned);
            }
            Command::Batch(items) => {
                long(out, 3);
                array(out, items, |out, item| {
                    uuid(out, item.command_id);
                    unsigned(out, item.line);
                    out.push(u8::from(item.upsert));
                    string(out, &item.user.email);
                    string(out, &item.user.name);
                    optional(out, item.user.age, long);
                });
            }
        }
    }

    fn read(bytes: &[u8]) -> Result<Self, String> {
        let mut r = Reader { bytes };
        let (command_id, correlation_id, requester, issued_at) = (r.uuid()?, r.uuid()?, r.string()?, r.timestamp()?);
        let command = match r.branch(4)? {
            0 => Command::Create(CreateUser { email: r.string()?, name: r.string()?, age: r.optional(Reader::long)? }),
            1 => Command::Update(UpdateUser {
                user_id: r.uuid()?,
                email: r.optional(Reader::string)?,
                name: r.optional(Reader::string)?,
                age: r.optional(|r| r.optional(Reader::long))?,
                expected_version: r.optional(Reader::unsigned)?,
            }),
            2 => Command::Delete(DeleteUser { user_id: r.uuid()?, expected_version: r.optional(Reader::unsigned)? }),
            _ => Command::Batch(r.array(|r| {
                Ok(BatchItem {
                    command_id: r.uuid()?,
                    line: r.unsigned()?,
                    upsert: r.boolean()?,
                    user: CreateUser { email: r.string()?, name: r.string()?, age: r.optional(Reader::long)? },
                })
            })?),
        };
        r.end()?;
        Ok(Self { command_id, correlation_id, requester, issued_at, command })
    }
}

impl Wire for EventEnvelope {
    fn write(&self, out: &mut Vec<u8>) {
        uuid(out, self.event_id);
        uuid(out, self.command_id);
        uuid(out, self.correlation_id);
        long(out, self.occurred_at.millis());
        match &self.event {
            Event::Created(user) => {
                long(out, 0);
                write_user(out, user);
            }
            Event::Updated(user) => {
                long(out, 1);
                write_user(out, user);
            }
            Event::Deleted { user_id, email, version } => {
                long(out, 2);
                uuid(out, *user_id);
                string(out, email.as_str());
                unsigned(out, *version);
            }
        }
    }

    fn read(bytes: &[u8]) -> Result<Self, String> {
        let mut r = Reader { bytes };
        let (event_id, command_id, correlation_id, occurred_at) = (r.uuid()?, r.uuid()?, r.uuid()?, r.timestamp()?);
        let event = match r.branch(3)? {
            0 => Event::Created(read_user(&mut r)?),
            1 => Event::Updated(read_user(&mut r)?),
            _ => Event::Deleted {
                user_id: r.uuid()?,
                email: Email::parse(r.str()?).map_err(|e| e.to_string())?,
                version: r.unsigned()?,
            },
        };
        r.end()?;
        Ok(Self { event_id, command_id, correlation_id, occurred_at, event })
    }
}

impl Wire for Reply {
    fn write(&self, out: &mut Vec<u8>) {
        uuid(out, self.command_id);
        uuid(out, self.correlation_id);
        string(out, &self.requester);
        match &self.outcome {
            Outcome::Accepted(a) => {
                long(out, 0);
                uuid(out, a.user_id);
                optional(out, a.user.as_ref(), write_user);
                optional(out, a.event.map(|p| i64::from(p.partition)), long);
                optional(out, a.event.map(|p| p.offset), long);
            }
            Outcome::Rejected(rejection) => {
                long(out, 1);
                write_rejection(out, rejection);
            }
            Outcome::Batch(items) => {
                long(out, 2);
                array(out, items, |out, item| {
                    uuid(out, item.command_id);
                    unsigned(out, item.line);
                    optional(out, item.result.as_ref().ok().copied(), uuid);
                    optional(out, item.result.as_ref().err(), write_rejection);
                });
            }
        }
    }

    fn read(bytes: &[u8]) -> Result<Self, String> {
        let mut r = Reader { bytes };
        let (command_id, correlation_id, requester) = (r.uuid()?, r.uuid()?, r.string()?);
        let outcome = match r.branch(3)? {
            0 => {
                let user_id = r.uuid()?;
                let user = r.optional(read_user)?;
                let partition = r.optional(Reader::long)?;
                let offset = r.optional(Reader::long)?;
                let event = match (partition, offset) {
                    (Some(p), Some(o)) => Some(EventPosition { partition: i32::try_from(p).unwrap_or(-1), offset: o }),
                    _ => None,
                };
                Outcome::Accepted(Accepted { user_id, user, event })
            }
            1 => Outcome::Rejected(read_rejection(&mut r)?),
            _ => Outcome::Batch(r.array(|r| {
                let (command_id, line) = (r.uuid()?, r.unsigned()?);
                let user_id = r.optional(Reader::uuid)?;
                let result = match (user_id, r.optional(read_rejection)?) {
                    (_, Some(rejection)) => Err(rejection),
                    (Some(id), None) => Ok(id),
                    (None, None) => return Err("item outcome without a user or a rejection".into()),
                };
                Ok(ItemOutcome { command_id, line, result })
            })?),
        };
        r.end()?;
        Ok(Self { command_id, correlation_id, requester, outcome })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longs_use_zigzag_varints() {
        for (n, bytes) in [(0, vec![0]), (-1, vec![1]), (1, vec![2]), (-64, vec![127]), (64, vec![128, 1])] {
            let mut out = Vec::new();
            long(&mut out, n);
            assert_eq!(out, bytes, "{n}");
            assert_eq!(Reader { bytes: &out }.long(), Ok(n));
        }
        for n in [i64::MIN, i64::MAX, 1 << 40, -(1 << 40)] {
            let mut out = Vec::new();
            long(&mut out, n);
            assert_eq!(Reader { bytes: &out }.long(), Ok(n));
        }
    }

    #[test]
    fn truncated_or_garbage_input_is_an_error_not_a_panic() {
        for bytes in [&b""[..], &[0x80][..], &[0xff; 12][..], &[72, b'x'][..]] {
            assert!(EventEnvelope::read(bytes).is_err());
            assert!(CommandEnvelope::read(bytes).is_err());
            assert!(Reply::read(bytes).is_err());
        }
    }
}
