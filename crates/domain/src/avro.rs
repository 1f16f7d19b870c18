//! The mapping between the domain types and the Avro contract in `schemas/*.avsc`.
//!
//! Encoding builds a [`Value`] that matches the schema file field for field. Decoding reads the
//! value (decoded with the writer's schema) by field name: fields a newer writer added are
//! ignored, optional fields an older writer lacked read as absent. Union branches are read by
//! position, so the contract only ever appends branches (apache-avro's `Value::resolve` cannot
//! be used here: it picks the first structurally matching record of a union, and
//! `UserCreated`/`UserUpdated` have the same shape).

use std::sync::LazyLock;

use apache_avro::Schema;
use apache_avro::types::Value;
use uuid::Uuid;

use crate::command::{BatchItem, Command, CommandEnvelope, CreateUser, DeleteUser, UpdateUser};
use crate::event::{Event, EventEnvelope};
use crate::export::{Column, ExportFilter, ExportRequest, ExportState, ExportStatus};
use crate::import::{ImportMode, ImportRequest, ImportState, ImportStatus};
use crate::reply::{Accepted, EventPosition, ItemOutcome, Outcome, Rejection, RejectionReason, Reply};
use crate::time::Timestamp;
use crate::user::{Age, Email, FieldError, Name, User};

/// The schema files, compiled in.
pub mod schemas {
    pub const USER_COMMAND: &str = include_str!("../../../schemas/user_command.avsc");
    pub const USER_EVENT: &str = include_str!("../../../schemas/user_event.avsc");
    pub const USER_REPLY: &str = include_str!("../../../schemas/user_reply.avsc");
    pub const IMPORT_REQUEST: &str = include_str!("../../../schemas/import_request.avsc");
    pub const IMPORT_STATUS: &str = include_str!("../../../schemas/import_status.avsc");
    pub const EXPORT_REQUEST: &str = include_str!("../../../schemas/export_request.avsc");
    pub const EXPORT_STATUS: &str = include_str!("../../../schemas/export_status.avsc");
}

fn parsed(text: &str) -> Schema {
    Schema::parse_str(text).expect("the schema files under schemas/ are valid Avro (tested)")
}

pub static COMMAND_SCHEMA: LazyLock<Schema> = LazyLock::new(|| parsed(schemas::USER_COMMAND));
pub static EVENT_SCHEMA: LazyLock<Schema> = LazyLock::new(|| parsed(schemas::USER_EVENT));
pub static REPLY_SCHEMA: LazyLock<Schema> = LazyLock::new(|| parsed(schemas::USER_REPLY));
pub static IMPORT_REQUEST_SCHEMA: LazyLock<Schema> = LazyLock::new(|| parsed(schemas::IMPORT_REQUEST));
pub static IMPORT_STATUS_SCHEMA: LazyLock<Schema> = LazyLock::new(|| parsed(schemas::IMPORT_STATUS));
pub static EXPORT_REQUEST_SCHEMA: LazyLock<Schema> = LazyLock::new(|| parsed(schemas::EXPORT_REQUEST));
pub static EXPORT_STATUS_SCHEMA: LazyLock<Schema> = LazyLock::new(|| parsed(schemas::EXPORT_STATUS));

/// A record that does not fit the contract: it can never be processed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("record does not match the {schema} contract: {detail}")]
pub struct AvroError {
    schema: &'static str,
    detail: String,
}

/// A type with a place in the Avro contract.
pub trait AvroRecord: Sized {
    const SCHEMA_NAME: &'static str;
    fn schema() -> &'static Schema;
    fn to_avro(&self) -> Value;
    fn from_fields(fields: &mut Fields) -> Result<Self, String>;

    /// [`AvroRecord::from_avro`] with the error as text.
    fn parse_value(value: Value) -> Result<Self, String> {
        Self::from_avro(value).map_err(|e| e.to_string())
    }

    /// Maps a decoded value (any compatible writer schema) to the domain type.
    fn from_avro(value: Value) -> Result<Self, AvroError> {
        Fields::of(value)
            .and_then(|mut fields| Self::from_fields(&mut fields))
            .map_err(|detail| AvroError { schema: Self::SCHEMA_NAME, detail })
    }
}

// ---- encoding helpers ---------------------------------------------------------------------------

fn record(fields: Vec<(&str, Value)>) -> Value {
    Value::Record(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

fn nullable(value: Option<Value>) -> Value {
    match value {
        None => Value::Union(0, Box::new(Value::Null)),
        Some(value) => Value::Union(1, Box::new(value)),
    }
}

fn long(n: u64) -> Value {
    Value::Long(i64::try_from(n).unwrap_or(i64::MAX))
}

fn ts(t: Timestamp) -> Value {
    Value::TimestampMillis(t.millis())
}

fn user_value(user: &User) -> Value {
    record(vec![
        ("id", Value::Uuid(user.id)),
        ("email", Value::String(user.email.as_str().to_owned())),
        ("name", Value::String(user.name.as_str().to_owned())),
        ("age", nullable(user.age.map(|a| Value::Int(i32::from(a.get()))))),
        ("created_at", ts(user.created_at)),
        ("updated_at", ts(user.updated_at)),
        ("version", long(user.version)),
    ])
}

// ---- decoding helpers ---------------------------------------------------------------------------

/// The fields of a decoded record, taken by name.
#[derive(Debug)]
pub struct Fields(Vec<(String, Value)>);

impl Fields {
    fn of(value: Value) -> Result<Self, String> {
        match value {
            Value::Record(fields) => Ok(Self(fields)),
            other => Err(format!("expected a record, found {other:?}")),
        }
    }

    fn take(&mut self, name: &str) -> Result<Value, String> {
        let index = self.0.iter().position(|(n, _)| n == name).ok_or_else(|| format!("missing field {name}"))?;
        Ok(unwrap_union(self.0.swap_remove(index).1))
    }

    fn record(&mut self, name: &str) -> Result<Fields, String> {
        Self::of(self.take(name)?)
    }

    /// An optional field: null, or missing because the writer's schema predates it.
    fn optional(&mut self, name: &str) -> Result<Option<Value>, String> {
        if !self.0.iter().any(|(n, _)| n == name) {
            return Ok(None);
        }
        Ok(match self.take(name)? {
            Value::Null => None,
            value => Some(value),
        })
    }

    fn string(&mut self, name: &str) -> Result<String, String> {
        as_string(self.take(name)?, name)
    }

    fn uuid(&mut self, name: &str) -> Result<Uuid, String> {
        match self.take(name)? {
            Value::Uuid(id) => Ok(id),
            Value::String(text) => Uuid::parse_str(&text).map_err(|e| format!("{name}: {e}")),
            other => Err(format!("{name}: expected a uuid, found {other:?}")),
        }
    }

    fn long(&mut self, name: &str) -> Result<i64, String> {
        as_long(self.take(name)?, name)
    }

    fn version(&mut self, name: &str) -> Result<u64, String> {
        u64::try_from(self.long(name)?).map_err(|_| format!("{name} must not be negative"))
    }

    fn optional_version(&mut self, name: &str) -> Result<Option<u64>, String> {
        self.optional(name)?
            .map(|v| {
                as_long(v, name).and_then(|n| u64::try_from(n).map_err(|_| format!("{name} must not be negative")))
            })
            .transpose()
    }

    fn timestamp(&mut self, name: &str) -> Result<Timestamp, String> {
        match self.take(name)? {
            Value::TimestampMillis(ms) | Value::Long(ms) => Ok(Timestamp::from_millis(ms)),
            other => Err(format!("{name}: expected timestamp-millis, found {other:?}")),
        }
    }

    fn optional_string(&mut self, name: &str) -> Result<Option<String>, String> {
        self.optional(name)?.map(|v| as_string(v, name)).transpose()
    }

    fn optional_timestamp(&mut self, name: &str) -> Result<Option<Timestamp>, String> {
        match self.optional(name)? {
            None => Ok(None),
            Some(Value::TimestampMillis(ms) | Value::Long(ms)) => Ok(Some(Timestamp::from_millis(ms))),
            Some(other) => Err(format!("{name}: expected timestamp-millis, found {other:?}")),
        }
    }

    /// The branch of a union of records: its position in the schema and its fields.
    fn branch(&mut self, name: &str) -> Result<(u32, Fields), String> {
        let index = self.0.iter().position(|(n, _)| n == name).ok_or_else(|| format!("missing field {name}"))?;
        match self.0.swap_remove(index).1 {
            Value::Union(i, inner) => Ok((i, Self::of(*inner)?)),
            other => Err(format!("{name}: expected a union, found {other:?}")),
        }
    }
}

fn unwrap_union(value: Value) -> Value {
    match value {
        Value::Union(_, inner) => *inner,
        other => other,
    }
}

fn as_string(value: Value, name: &str) -> Result<String, String> {
    match value {
        Value::String(s) => Ok(s),
        other => Err(format!("{name}: expected a string, found {other:?}")),
    }
}

fn as_long(value: Value, name: &str) -> Result<i64, String> {
    match value {
        Value::Long(n) => Ok(n),
        Value::Int(n) => Ok(i64::from(n)),
        other => Err(format!("{name}: expected a number, found {other:?}")),
    }
}

/// A stored user must satisfy today's rules too: anything else is a corrupt record.
fn user_from(mut f: Fields) -> Result<User, String> {
    let email = Email::parse(&f.string("email")?).map_err(|e| e.to_string())?;
    let name = Name::parse(&f.string("name")?).map_err(|e| e.to_string())?;
    let age = f.optional("age")?.map(|v| as_long(v, "age").and_then(|n| Age::parse(n).map_err(|e| e.to_string())));
    Ok(User {
        id: f.uuid("id")?,
        email,
        name,
        age: age.transpose()?,
        created_at: f.timestamp("created_at")?,
        updated_at: f.timestamp("updated_at")?,
        version: f.version("version")?,
    })
}

// ---- commands -------------------------------------------------------------------------------------

impl AvroRecord for CommandEnvelope {
    const SCHEMA_NAME: &'static str = "UserCommand";

    fn schema() -> &'static Schema {
        &COMMAND_SCHEMA
    }

    fn to_avro(&self) -> Value {
        let (branch, body) = match &self.command {
            Command::Create(c) => (
                0,
                record(vec![
                    ("email", Value::String(c.email.clone())),
                    ("name", Value::String(c.name.clone())),
                    ("age", nullable(c.age.map(Value::Long))),
                ]),
            ),
            Command::Update(u) => (
                1,
                record(vec![
                    ("user_id", Value::Uuid(u.user_id)),
                    ("email", nullable(u.email.clone().map(Value::String))),
                    ("name", nullable(u.name.clone().map(Value::String))),
                    ("age", nullable(u.age.map(|age| record(vec![("value", nullable(age.map(Value::Long)))])))),
                    ("expected_version", nullable(u.expected_version.map(long))),
                ]),
            ),
            Command::Delete(d) => (
                2,
                record(vec![
                    ("user_id", Value::Uuid(d.user_id)),
                    ("expected_version", nullable(d.expected_version.map(long))),
                ]),
            ),
            Command::Batch(items) => {
                let items = items
                    .iter()
                    .map(|item| {
                        record(vec![
                            ("command_id", Value::Uuid(item.command_id)),
                            ("line", long(item.line)),
                            ("upsert", Value::Boolean(item.upsert)),
                            ("email", Value::String(item.user.email.clone())),
                            ("name", Value::String(item.user.name.clone())),
                            ("age", nullable(item.user.age.map(Value::Long))),
                        ])
                    })
                    .collect();
                (3, record(vec![("items", Value::Array(items))]))
            }
        };
        record(vec![
            ("command_id", Value::Uuid(self.command_id)),
            ("correlation_id", Value::Uuid(self.correlation_id)),
            ("requester", Value::String(self.requester.clone())),
            ("issued_at", ts(self.issued_at)),
            ("command", Value::Union(branch, Box::new(body))),
        ])
    }

    fn from_fields(f: &mut Fields) -> Result<Self, String> {
        // Branches in schema order: CreateUser, UpdateUser, DeleteUser, UserBatch.
        let (branch, mut body) = f.branch("command")?;
        let command = match branch {
            0 => Command::Create(CreateUser {
                email: body.string("email")?,
                name: body.string("name")?,
                age: body.optional("age")?.map(|v| as_long(v, "age")).transpose()?,
            }),
            1 => Command::Update(UpdateUser {
                user_id: body.uuid("user_id")?,
                email: body.optional("email")?.map(|v| as_string(v, "email")).transpose()?,
                name: body.optional("name")?.map(|v| as_string(v, "name")).transpose()?,
                age: body
                    .optional("age")?
                    .map(|change| Fields::of(change)?.optional("value")?.map(|v| as_long(v, "age")).transpose())
                    .transpose()?,
                expected_version: body.optional_version("expected_version")?,
            }),
            2 => Command::Delete(DeleteUser {
                user_id: body.uuid("user_id")?,
                expected_version: body.optional_version("expected_version")?,
            }),
            3 => Command::Batch(
                as_array(body.take("items")?, "items")?
                    .into_iter()
                    .map(|item| {
                        let mut item = Fields::of(item)?;
                        Ok(BatchItem {
                            command_id: item.uuid("command_id")?,
                            line: item.version("line")?,
                            upsert: matches!(item.optional("upsert")?, Some(Value::Boolean(true))),
                            user: CreateUser {
                                email: item.string("email")?,
                                name: item.string("name")?,
                                age: item.optional("age")?.map(|v| as_long(v, "age")).transpose()?,
                            },
                        })
                    })
                    .collect::<Result<Vec<_>, String>>()?,
            ),
            other => return Err(format!("command: unknown branch {other}")),
        };
        Ok(Self {
            command_id: f.uuid("command_id")?,
            correlation_id: f.uuid("correlation_id")?,
            requester: f.string("requester")?,
            issued_at: f.timestamp("issued_at")?,
            command,
        })
    }
}

// ---- events ---------------------------------------------------------------------------------------

impl AvroRecord for EventEnvelope {
    const SCHEMA_NAME: &'static str = "UserEvent";

    fn schema() -> &'static Schema {
        &EVENT_SCHEMA
    }

    fn to_avro(&self) -> Value {
        let (branch, body) = match &self.event {
            Event::Created(user) => (0, record(vec![("user", user_value(user))])),
            Event::Updated(user) => (1, record(vec![("user", user_value(user))])),
            Event::Deleted { user_id, email, version } => (
                2,
                record(vec![
                    ("user_id", Value::Uuid(*user_id)),
                    ("email", Value::String(email.as_str().to_owned())),
                    ("version", long(*version)),
                ]),
            ),
        };
        record(vec![
            ("event_id", Value::Uuid(self.event_id)),
            ("command_id", Value::Uuid(self.command_id)),
            ("correlation_id", Value::Uuid(self.correlation_id)),
            ("occurred_at", ts(self.occurred_at)),
            ("event", Value::Union(branch, Box::new(body))),
        ])
    }

    fn from_fields(f: &mut Fields) -> Result<Self, String> {
        // Branches in schema order: UserCreated, UserUpdated, UserDeleted.
        let (branch, mut body) = f.branch("event")?;
        let event = match branch {
            0 => Event::Created(user_from(body.record("user")?)?),
            1 => Event::Updated(user_from(body.record("user")?)?),
            2 => Event::Deleted {
                user_id: body.uuid("user_id")?,
                email: Email::parse(&body.string("email")?).map_err(|e| e.to_string())?,
                version: body.version("version")?,
            },
            other => return Err(format!("event: unknown branch {other}")),
        };
        Ok(Self {
            event_id: f.uuid("event_id")?,
            command_id: f.uuid("command_id")?,
            correlation_id: f.uuid("correlation_id")?,
            occurred_at: f.timestamp("occurred_at")?,
            event,
        })
    }
}

// ---- replies --------------------------------------------------------------------------------------

const REASON_SYMBOLS: [&str; 4] = ["EMAIL_TAKEN", "NOT_FOUND", "VERSION_CONFLICT", "INVALID"];

impl AvroRecord for Reply {
    const SCHEMA_NAME: &'static str = "UserCommandReply";

    fn schema() -> &'static Schema {
        &REPLY_SCHEMA
    }

    fn to_avro(&self) -> Value {
        let (branch, body) = match &self.outcome {
            Outcome::Accepted(a) => (
                0,
                record(vec![
                    ("user_id", Value::Uuid(a.user_id)),
                    ("user", nullable(a.user.as_ref().map(user_value))),
                    ("event_partition", nullable(a.event.map(|p| Value::Int(p.partition)))),
                    ("event_offset", nullable(a.event.map(|p| Value::Long(p.offset)))),
                ]),
            ),
            Outcome::Rejected(r) => (1, rejection_value(r)),
            Outcome::Batch(items) => {
                let items = items
                    .iter()
                    .map(|item| {
                        record(vec![
                            ("command_id", Value::Uuid(item.command_id)),
                            ("line", long(item.line)),
                            ("user_id", nullable(item.result.as_ref().ok().map(|id| Value::Uuid(*id)))),
                            ("rejection", nullable(item.result.as_ref().err().map(rejection_value))),
                        ])
                    })
                    .collect();
                (2, record(vec![("items", Value::Array(items))]))
            }
        };
        record(vec![
            ("command_id", Value::Uuid(self.command_id)),
            ("correlation_id", Value::Uuid(self.correlation_id)),
            ("requester", Value::String(self.requester.clone())),
            ("outcome", Value::Union(branch, Box::new(body))),
        ])
    }

    fn from_fields(f: &mut Fields) -> Result<Self, String> {
        // Branches in schema order: Accepted, Rejected, BatchOutcome.
        let (branch, mut body) = f.branch("outcome")?;
        let outcome = match branch {
            0 => {
                let partition = body.optional("event_partition")?.map(|v| as_long(v, "event_partition")).transpose()?;
                let offset = body.optional("event_offset")?.map(|v| as_long(v, "event_offset")).transpose()?;
                Outcome::Accepted(Accepted {
                    user_id: body.uuid("user_id")?,
                    user: body.optional("user")?.map(Fields::of).transpose()?.map(user_from).transpose()?,
                    event: match (partition, offset) {
                        (Some(p), Some(o)) => {
                            Some(EventPosition { partition: i32::try_from(p).unwrap_or(-1), offset: o })
                        }
                        _ => None,
                    },
                })
            }
            1 => Outcome::Rejected(rejection_from(&mut body)?),
            2 => {
                let items = as_array(body.take("items")?, "items")?
                    .into_iter()
                    .map(|item| {
                        let mut item = Fields::of(item)?;
                        let rejection = item.optional("rejection")?.map(Fields::of).transpose()?;
                        let result = match (item.optional("user_id")?, rejection) {
                            (_, Some(mut rejection)) => Err(rejection_from(&mut rejection)?),
                            (Some(Value::Uuid(id)), None) => Ok(id),
                            (other, None) => {
                                return Err(format!("item outcome without a user or a rejection: {other:?}"));
                            }
                        };
                        Ok(ItemOutcome { command_id: item.uuid("command_id")?, line: item.version("line")?, result })
                    })
                    .collect::<Result<Vec<_>, String>>()?;
                Outcome::Batch(items)
            }
            other => return Err(format!("outcome: unknown branch {other}")),
        };
        Ok(Self {
            command_id: f.uuid("command_id")?,
            correlation_id: f.uuid("correlation_id")?,
            requester: f.string("requester")?,
            outcome,
        })
    }
}

fn rejection_value(r: &Rejection) -> Value {
    let index = RejectionReason::ALL.iter().position(|x| *x == r.reason).unwrap_or(3);
    let errors = r
        .field_errors
        .iter()
        .map(|e| {
            record(vec![
                ("field", Value::String(e.field.clone())),
                ("code", Value::String(e.code.clone())),
                ("message", Value::String(e.message.clone())),
            ])
        })
        .collect();
    record(vec![
        ("reason", Value::Enum(index as u32, REASON_SYMBOLS[index].to_owned())),
        ("message", Value::String(r.message.clone())),
        ("field_errors", Value::Array(errors)),
    ])
}

fn rejection_from(body: &mut Fields) -> Result<Rejection, String> {
    let reason = match body.take("reason")? {
        Value::Enum(_, symbol) => REASON_SYMBOLS
            .iter()
            .position(|s| *s == symbol)
            .map_or(RejectionReason::Invalid, |i| RejectionReason::ALL[i]),
        other => return Err(format!("reason: expected an enum, found {other:?}")),
    };
    let field_errors = match body.optional("field_errors")? {
        None => Vec::new(),
        Some(items) => as_array(items, "field_errors")?
            .into_iter()
            .map(|item| {
                let mut e = Fields::of(item)?;
                Ok(FieldError { field: e.string("field")?, code: e.string("code")?, message: e.string("message")? })
            })
            .collect::<Result<Vec<_>, String>>()?,
    };
    Ok(Rejection { reason, message: body.string("message")?, field_errors })
}

fn as_array(value: Value, name: &str) -> Result<Vec<Value>, String> {
    match value {
        Value::Array(items) => Ok(items),
        other => Err(format!("{name}: expected an array, found {other:?}")),
    }
}

// ---- imports --------------------------------------------------------------------------------------

const MODE_SYMBOLS: [&str; 2] = ["CREATE", "UPSERT"];
const STATE_SYMBOLS: [&str; 4] = ["QUEUED", "RUNNING", "COMPLETED", "FAILED"];
const STATES: [ImportState; 4] =
    [ImportState::Queued, ImportState::Running, ImportState::Completed, ImportState::Failed];

fn mode_value(mode: ImportMode) -> Value {
    match mode {
        ImportMode::Create => Value::Enum(0, MODE_SYMBOLS[0].into()),
        ImportMode::Upsert => Value::Enum(1, MODE_SYMBOLS[1].into()),
    }
}

fn mode_from(value: Value) -> Result<ImportMode, String> {
    match value {
        Value::Enum(_, symbol) if symbol == "UPSERT" => Ok(ImportMode::Upsert),
        Value::Enum(..) => Ok(ImportMode::Create),
        other => Err(format!("mode: expected an enum, found {other:?}")),
    }
}

fn optional_string(value: Option<String>) -> Value {
    nullable(value.map(Value::String))
}

impl AvroRecord for ImportRequest {
    const SCHEMA_NAME: &'static str = "ImportRequested";

    fn schema() -> &'static Schema {
        &IMPORT_REQUEST_SCHEMA
    }

    fn to_avro(&self) -> Value {
        record(vec![
            ("import_id", Value::Uuid(self.import_id)),
            ("blob", Value::String(self.blob.clone())),
            ("file_name", optional_string(self.file_name.clone())),
            ("size_bytes", long(self.size_bytes)),
            ("mode", mode_value(self.mode)),
            ("requested_at", ts(self.requested_at)),
        ])
    }

    fn from_fields(f: &mut Fields) -> Result<Self, String> {
        Ok(Self {
            import_id: f.uuid("import_id")?,
            blob: f.string("blob")?,
            file_name: f.optional_string("file_name")?,
            size_bytes: f.version("size_bytes")?,
            mode: mode_from(f.take("mode")?)?,
            requested_at: f.timestamp("requested_at")?,
        })
    }
}

impl AvroRecord for ImportStatus {
    const SCHEMA_NAME: &'static str = "ImportStatus";

    fn schema() -> &'static Schema {
        &IMPORT_STATUS_SCHEMA
    }

    fn to_avro(&self) -> Value {
        let state = STATES.iter().position(|s| *s == self.state).unwrap_or(0);
        record(vec![
            ("import_id", Value::Uuid(self.import_id)),
            ("state", Value::Enum(state as u32, STATE_SYMBOLS[state].into())),
            ("mode", mode_value(self.mode)),
            ("file_name", optional_string(self.file_name.clone())),
            ("size_bytes", long(self.size_bytes)),
            ("rows_read", long(self.rows_read)),
            ("accepted", long(self.accepted)),
            ("rejected", long(self.rejected)),
            ("requested_at", ts(self.requested_at)),
            ("started_at", nullable(self.started_at.map(ts))),
            ("finished_at", nullable(self.finished_at.map(ts))),
            ("error", optional_string(self.error.clone())),
            ("warnings", Value::Array(self.warnings.iter().cloned().map(Value::String).collect())),
            ("errors_blob", optional_string(self.errors_blob.clone())),
        ])
    }

    fn from_fields(f: &mut Fields) -> Result<Self, String> {
        let state = match f.take("state")? {
            Value::Enum(_, symbol) => {
                STATE_SYMBOLS.iter().position(|s| *s == symbol).map_or(ImportState::Queued, |i| STATES[i])
            }
            other => return Err(format!("state: expected an enum, found {other:?}")),
        };
        Ok(Self {
            import_id: f.uuid("import_id")?,
            state,
            mode: mode_from(f.take("mode")?)?,
            file_name: f.optional_string("file_name")?,
            size_bytes: f.version("size_bytes")?,
            rows_read: f.version("rows_read")?,
            accepted: f.version("accepted")?,
            rejected: f.version("rejected")?,
            requested_at: f.timestamp("requested_at")?,
            started_at: f.optional_timestamp("started_at")?,
            finished_at: f.optional_timestamp("finished_at")?,
            error: f.optional_string("error")?,
            warnings: match f.optional("warnings")? {
                None => Vec::new(),
                Some(v) => {
                    as_array(v, "warnings")?.into_iter().map(|w| as_string(w, "warnings")).collect::<Result<_, _>>()?
                }
            },
            errors_blob: f.optional_string("errors_blob")?,
        })
    }
}

// ---- exports ------------------------------------------------------------------------------------

const COLUMN_SYMBOLS: [&str; 7] = ["ID", "EMAIL", "NAME", "AGE", "CREATED_AT", "UPDATED_AT", "VERSION"];
const EXPORT_STATE_SYMBOLS: [&str; 5] = ["QUEUED", "RUNNING", "COMPLETED", "FAILED", "EXPIRED"];

fn filter_value(filter: &ExportFilter) -> Value {
    let age = |a: Option<u8>| nullable(a.map(|a| Value::Int(i32::from(a))));
    record(vec![
        ("q", optional_string(filter.q.clone())),
        ("email_domain", optional_string(filter.email_domain.clone())),
        ("min_age", age(filter.min_age)),
        ("max_age", age(filter.max_age)),
        ("created_after", nullable(filter.created_after.map(ts))),
        ("created_before", nullable(filter.created_before.map(ts))),
    ])
}

fn filter_from(mut f: Fields) -> Result<ExportFilter, String> {
    let age = |v: Option<Value>, name: &str| {
        v.map(|v| as_long(v, name).and_then(|n| u8::try_from(n).map_err(|_| format!("{name} out of range"))))
            .transpose()
    };
    Ok(ExportFilter {
        q: f.optional_string("q")?,
        email_domain: f.optional_string("email_domain")?,
        min_age: age(f.optional("min_age")?, "min_age")?,
        max_age: age(f.optional("max_age")?, "max_age")?,
        created_after: f.optional_timestamp("created_after")?,
        created_before: f.optional_timestamp("created_before")?,
    })
}

fn columns_value(columns: &[Column]) -> Value {
    Value::Array(
        columns
            .iter()
            .map(|c| {
                let i = Column::ALL.iter().position(|k| k == c).unwrap_or(0);
                Value::Enum(i as u32, COLUMN_SYMBOLS[i].into())
            })
            .collect(),
    )
}

fn columns_from(value: Value) -> Result<Vec<Column>, String> {
    as_array(value, "columns")?
        .into_iter()
        .map(|v| match v {
            Value::Enum(_, symbol) => COLUMN_SYMBOLS
                .iter()
                .position(|s| *s == symbol)
                .map(|i| Column::ALL[i])
                .ok_or_else(|| format!("columns: unknown column {symbol}")),
            other => Err(format!("columns: expected an enum, found {other:?}")),
        })
        .collect()
}

impl AvroRecord for ExportRequest {
    const SCHEMA_NAME: &'static str = "ExportRequested";

    fn schema() -> &'static Schema {
        &EXPORT_REQUEST_SCHEMA
    }

    fn to_avro(&self) -> Value {
        let positions = self
            .positions
            .iter()
            .map(|p| record(vec![("partition", Value::Int(p.partition)), ("offset", Value::Long(p.offset))]))
            .collect();
        record(vec![
            ("export_id", Value::Uuid(self.export_id)),
            ("filter", filter_value(&self.filter)),
            ("columns", columns_value(&self.columns)),
            ("positions", Value::Array(positions)),
            ("requested_at", ts(self.requested_at)),
        ])
    }

    fn from_fields(f: &mut Fields) -> Result<Self, String> {
        let positions = match f.optional("positions")? {
            None => Vec::new(),
            Some(v) => as_array(v, "positions")?
                .into_iter()
                .map(|p| {
                    let mut p = Fields::of(p)?;
                    let partition = i32::try_from(p.long("partition")?).map_err(|_| "partition out of range")?;
                    Ok(EventPosition { partition, offset: p.long("offset")? })
                })
                .collect::<Result<_, String>>()?,
        };
        Ok(Self {
            export_id: f.uuid("export_id")?,
            filter: filter_from(f.record("filter")?)?,
            columns: columns_from(f.take("columns")?)?,
            positions,
            requested_at: f.timestamp("requested_at")?,
        })
    }
}

impl AvroRecord for ExportStatus {
    const SCHEMA_NAME: &'static str = "ExportStatus";

    fn schema() -> &'static Schema {
        &EXPORT_STATUS_SCHEMA
    }

    fn to_avro(&self) -> Value {
        let state = ExportState::ALL.iter().position(|s| *s == self.state).unwrap_or(0);
        record(vec![
            ("export_id", Value::Uuid(self.export_id)),
            ("state", Value::Enum(state as u32, EXPORT_STATE_SYMBOLS[state].into())),
            ("filter", filter_value(&self.filter)),
            ("columns", columns_value(&self.columns)),
            ("rows_total", long(self.rows_total)),
            ("rows_written", long(self.rows_written)),
            ("bytes", long(self.bytes)),
            ("sha256", optional_string(self.sha256.clone())),
            ("blob", optional_string(self.blob.clone())),
            ("requested_at", ts(self.requested_at)),
            ("started_at", nullable(self.started_at.map(ts))),
            ("finished_at", nullable(self.finished_at.map(ts))),
            ("error", optional_string(self.error.clone())),
        ])
    }

    fn from_fields(f: &mut Fields) -> Result<Self, String> {
        let state = match f.take("state")? {
            Value::Enum(_, symbol) => EXPORT_STATE_SYMBOLS
                .iter()
                .position(|s| *s == symbol)
                .map_or(ExportState::Queued, |i| ExportState::ALL[i]),
            other => return Err(format!("state: expected an enum, found {other:?}")),
        };
        Ok(Self {
            export_id: f.uuid("export_id")?,
            state,
            filter: filter_from(f.record("filter")?)?,
            columns: columns_from(f.take("columns")?)?,
            rows_total: f.version("rows_total")?,
            rows_written: f.version("rows_written")?,
            bytes: f.version("bytes")?,
            sha256: f.optional_string("sha256")?,
            blob: f.optional_string("blob")?,
            requested_at: f.timestamp("requested_at")?,
            started_at: f.optional_timestamp("started_at")?,
            finished_at: f.optional_timestamp("finished_at")?,
            error: f.optional_string("error")?,
        })
    }
}
