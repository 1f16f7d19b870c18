//! The API's JSON as types. Answers are serialized from them, and the OpenAPI document is derived
//! from them (`super::openapi`), so the two cannot drift apart. Request bodies are read field by
//! field (`super::body`, to name every bad field at once); their types here document the shape
//! those readers accept.

use domain::export::{ExportState, ExportStatus};
use domain::import::{ImportState, ImportStatus};
use domain::time::Timestamp;
use domain::user::{FieldError, User};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, IntoResponses, ToSchema};
use uuid::Uuid;

/// A user, as every read and write answers it. Its `ETag` is `"<version>"`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UserBody {
    pub(crate) id: Uuid,
    pub(crate) email: String,
    pub(crate) name: String,
    #[schema(minimum = 0, maximum = 150)]
    pub(crate) age: Option<u8>,
    /// A language tag such as `en` or `pt-BR`.
    pub(crate) locale: Option<String>,
    #[schema(format = DateTime)]
    pub(crate) created_at: String,
    #[schema(format = DateTime)]
    pub(crate) updated_at: String,
    /// 1 when created, one more with every change.
    #[schema(minimum = 1)]
    pub(crate) version: u64,
}

impl From<&User> for UserBody {
    fn from(user: &User) -> Self {
        Self {
            id: user.id,
            email: user.email.as_str().to_owned(),
            name: user.name.as_str().to_owned(),
            age: user.age.map(|a| a.get()),
            locale: user.locale.as_ref().map(|l| l.as_str().to_owned()),
            created_at: user.created_at.to_string(),
            updated_at: user.updated_at.to_string(),
            version: user.version,
        }
    }
}

/// A page of users in creation order.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UserPage {
    pub(crate) items: Vec<UserBody>,
    pub(crate) limit: usize,
    /// Pass as `cursor` for the next page; null on the last one.
    pub(crate) next_cursor: Option<Uuid>,
    /// A `q` search that ran out of its time budget: the matches found so far, and a cursor to
    /// go on from.
    pub(crate) partial: bool,
}

/// `POST /users`: email and name required.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // Documentation only: `super::body::create` reads the body.
pub(crate) struct NewUser {
    /// Unique, compared without regard to case.
    #[schema(format = Email, max_length = 254, example = "ada@example.com")]
    email: String,
    #[schema(
        max_length = 200,
        pattern = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*$",
        example = "Ada Lovelace"
    )]
    name: String,
    #[schema(minimum = 0, maximum = 150)]
    age: Option<u8>,
    #[schema(pattern = r"^\s*[A-Za-z]{2,3}([-_][A-Za-z]{4})?([-_]([A-Za-z]{2}|[0-9]{3}))?\s*$", example = "en-GB")]
    locale: Option<String>,
}

/// `PATCH /users/{id}`: the fields to change; null clears `age` or `locale`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // Documentation only: `super::body::update` reads the body.
pub(crate) struct UserChanges {
    #[schema(format = Email, max_length = 254, nullable = false)]
    email: Option<String>,
    #[schema(
        max_length = 200,
        nullable = false,
        pattern = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*$"
    )]
    name: Option<String>,
    #[schema(minimum = 0, maximum = 150)]
    age: Option<u8>,
    #[schema(pattern = r"^\s*[A-Za-z]{2,3}([-_][A-Za-z]{4})?([-_]([A-Za-z]{2}|[0-9]{3}))?\s*$")]
    locale: Option<String>,
}

/// The `Idempotency-Key` of a write (users, imports, exports).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // Documentation only: `super::idempotency` reads the header.
pub(crate) struct KeyHeader {
    /// Makes a retry safe: the same key with the same request (for an import: the same mode,
    /// file name and file) gets the first answer again (24 h); with another request, 422. 1 to
    /// 255 visible ASCII characters (inner spaces and tabs too).
    #[serde(rename = "Idempotency-Key")]
    #[param(nullable = false, min_length = 1, max_length = 255, pattern = r"^[!-~]([\t -~]*[!-~])?$")]
    idempotency_key: Option<String>,
}

/// The optional headers of a write to users.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // Documentation only: the handlers read the headers.
pub(crate) struct WriteHeaders {
    /// Carried through to the command, its event and its reply.
    #[serde(rename = "X-Correlation-Id")]
    #[param(nullable = false)]
    correlation_id: Option<Uuid>,
}

/// The condition of a write to an existing user.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // Documentation only: the handlers read the header.
pub(crate) struct IfMatch {
    /// Only if the user is at this version (its `ETag`, e.g. `"3"`), or at one of several
    /// (`"3", "4"`); `*` for any. A weak tag never matches.
    #[serde(rename = "If-Match")]
    #[param(nullable = false, pattern = r#"^(\*|[0-9]+|(W/)?"[!#-~]*"(, ?(W/)?"[!#-~]*")*)$"#)]
    if_match: Option<String>,
}

/// What a request with a JSON body may answer whatever it asks, for `responses(...)` (their
/// problem+json bodies are added by `super::openapi::complete`).
#[derive(IntoResponses)]
#[allow(dead_code)] // Documentation only.
pub(crate) enum JsonBodyAnswers {
    /// Malformed JSON, a body that is not an object, or a malformed header (Idempotency-Key,
    /// If-Match, X-Correlation-Id)
    #[response(status = 400)]
    BadRequest,
    /// The body is larger than the limit
    #[response(status = 413)]
    TooLarge,
    /// Not application/json
    #[response(status = 415)]
    NotJson,
    /// Invalid fields (each named), or an Idempotency-Key used for another request
    #[response(status = 422)]
    Invalid,
}

/// Where a command stands.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum CommandState {
    Pending,
    Accepted,
    Rejected,
}

/// A write that had no outcome within the command timeout (202): ask `status_url` later, or
/// retry under the same `Idempotency-Key`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CommandPending {
    pub(crate) command_id: Uuid,
    pub(crate) status: CommandState,
    pub(crate) status_url: String,
}

/// The outcome of a recent command (`GET /commands/{id}`).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CommandStatus {
    pub(crate) command_id: Uuid,
    pub(crate) status: CommandState,
    /// Accepted: the user it created or changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) user_id: Option<Uuid>,
    /// Accepted: the user as it is now (absent once deleted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) user: Option<UserBody>,
    /// Rejected: `email_taken`, `not_found`, `version_conflict` or `invalid`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) errors: Option<Vec<FieldProblem>>,
    /// An import's batch: how many rows it held.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) items: Option<usize>,
}

/// One bad field of a request.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct FieldProblem {
    pub(crate) field: String,
    /// Machine-readable: `required`, `invalid`, `invalid_type`, `too_long`, `out_of_range`,
    /// `unknown`, `taken`, ...
    pub(crate) code: String,
    pub(crate) message: String,
}

impl From<FieldError> for FieldProblem {
    fn from(error: FieldError) -> Self {
        Self { field: error.field, code: error.code, message: error.message }
    }
}

/// An error, as RFC 9457 `application/problem+json`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Problem {
    /// A URN naming the kind of problem, e.g. `urn:problem:validation`.
    #[serde(rename = "type")]
    pub(crate) kind: String,
    pub(crate) title: String,
    pub(crate) status: u16,
    pub(crate) detail: String,
    /// The bad fields, when fields were at fault.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) errors: Vec<FieldProblem>,
}

/// Where a job stands.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum JobState {
    Queued,
    Running,
    Completed,
    Failed,
    /// An export whose file was removed after the retention period.
    Expired,
}

impl From<ImportState> for JobState {
    fn from(state: ImportState) -> Self {
        match state {
            ImportState::Queued => Self::Queued,
            ImportState::Running => Self::Running,
            ImportState::Completed => Self::Completed,
            ImportState::Failed => Self::Failed,
        }
    }
}

impl From<ExportState> for JobState {
    fn from(state: ExportState) -> Self {
        match state {
            ExportState::Queued => Self::Queued,
            ExportState::Running => Self::Running,
            ExportState::Completed => Self::Completed,
            ExportState::Failed => Self::Failed,
            ExportState::Expired => Self::Expired,
        }
    }
}

fn time(at: Option<Timestamp>) -> Option<String> {
    at.map(|t| t.to_string())
}

/// When a job was asked for, started and finished.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct JobTimes {
    #[schema(format = DateTime)]
    pub(crate) requested_at: String,
    #[schema(format = DateTime)]
    pub(crate) started_at: Option<String>,
    #[schema(format = DateTime)]
    pub(crate) finished_at: Option<String>,
}

impl JobTimes {
    fn of(requested: Timestamp, started: Option<Timestamp>, finished: Option<Timestamp>) -> Self {
        Self { requested_at: requested.to_string(), started_at: time(started), finished_at: time(finished) }
    }
}

/// `?limit=` of a job list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Documentation only: `super::jobs::recent` reads the query.
pub(crate) struct JobListQuery {
    /// How many (20 unless given).
    #[param(nullable = false, minimum = 1, maximum = 100)]
    limit: Option<u8>,
}

/// An upload taken (202): the import runs in the background.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ImportAccepted {
    pub(crate) import_id: Uuid,
    pub(crate) status: JobState,
    pub(crate) status_url: String,
}

/// An import's progress and result.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ImportBody {
    pub(crate) import_id: Uuid,
    pub(crate) status: JobState,
    /// `create` or `upsert`.
    pub(crate) mode: String,
    pub(crate) file_name: Option<String>,
    pub(crate) size_bytes: u64,
    /// Data rows read so far, good and bad.
    pub(crate) rows_read: u64,
    pub(crate) accepted: u64,
    pub(crate) rejected: u64,
    #[serde(flatten)]
    pub(crate) times: JobTimes,
    pub(crate) rows_per_second: Option<f64>,
    /// Why a failed import failed (nothing was imported).
    pub(crate) error: Option<String>,
    pub(crate) warnings: Vec<String>,
    /// The rejected rows as CSV, once finished.
    pub(crate) errors_url: Option<String>,
}

impl From<&ImportStatus> for ImportBody {
    fn from(status: &ImportStatus) -> Self {
        let id = status.import_id;
        Self {
            import_id: id,
            status: status.state.into(),
            mode: status.mode.as_str().to_owned(),
            file_name: status.file_name.clone(),
            size_bytes: status.size_bytes,
            rows_read: status.rows_read,
            accepted: status.accepted,
            rejected: status.rejected,
            times: JobTimes::of(status.requested_at, status.started_at, status.finished_at),
            rows_per_second: status.rows_per_second(Timestamp::now()).map(f64::round),
            error: status.error.clone(),
            warnings: status.warnings.clone(),
            errors_url: status.errors_blob.as_ref().map(|_| format!("/imports/{id}/errors")),
        }
    }
}

/// `POST /exports`: every filter is optional; all must hold for a user to be exported.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // Documentation only: `super::body::export` reads the body.
pub(crate) struct ExportFilters {
    /// Part of the name or email, case-insensitive.
    q: Option<String>,
    /// The email's domain, e.g. `example.com` (a leading `@` is ignored).
    email_domain: Option<String>,
    #[schema(minimum = 0, maximum = 150)]
    min_age: Option<u8>,
    #[schema(minimum = 0, maximum = 150)]
    max_age: Option<u8>,
    #[schema(format = DateTime)]
    created_after: Option<String>,
    #[schema(format = DateTime)]
    created_before: Option<String>,
    #[schema(schema_with = export_columns)]
    columns: Option<Vec<String>>,
}

/// `columns`: a list of the domain's column names (`domain::export::Column`), each at most once,
/// or null (utoipa has no attribute for `uniqueItems`).
fn export_columns() -> utoipa::openapi::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, SchemaType, Type};
    let names = domain::export::Column::ALL.map(domain::export::Column::as_str);
    ArrayBuilder::new()
        .schema_type(SchemaType::Array(vec![Type::Array, Type::Null]))
        .items(ObjectBuilder::new().schema_type(Type::String).enum_values(Some(names)))
        .unique_items(true)
        .description(Some("Which columns, in order, each once (default: email, name, age)."))
        .build()
}

/// An export asked for (202): it is written in the background.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ExportAccepted {
    pub(crate) export_id: Uuid,
    pub(crate) status: JobState,
    pub(crate) status_url: String,
    pub(crate) download_url: String,
}

/// The filters an export applies.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ExportFilterBody {
    pub(crate) q: Option<String>,
    pub(crate) email_domain: Option<String>,
    pub(crate) min_age: Option<u8>,
    pub(crate) max_age: Option<u8>,
    #[schema(format = DateTime)]
    pub(crate) created_after: Option<String>,
    #[schema(format = DateTime)]
    pub(crate) created_before: Option<String>,
}

/// An export's progress and result.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ExportBody {
    pub(crate) export_id: Uuid,
    pub(crate) status: JobState,
    pub(crate) filter: ExportFilterBody,
    pub(crate) columns: Vec<String>,
    pub(crate) rows_total: u64,
    pub(crate) rows_written: u64,
    pub(crate) bytes: u64,
    /// Hex SHA-256 of the file (its `ETag`), once completed.
    pub(crate) sha256: Option<String>,
    #[serde(flatten)]
    pub(crate) times: JobTimes,
    pub(crate) duration_ms: Option<i64>,
    pub(crate) error: Option<String>,
    /// Once completed.
    pub(crate) download_url: Option<String>,
}

impl From<&ExportStatus> for ExportBody {
    fn from(status: &ExportStatus) -> Self {
        let id = status.export_id;
        let filter = &status.filter;
        Self {
            export_id: id,
            status: status.state.into(),
            filter: ExportFilterBody {
                q: filter.q.clone(),
                email_domain: filter.email_domain.clone(),
                min_age: filter.min_age,
                max_age: filter.max_age,
                created_after: time(filter.created_after),
                created_before: time(filter.created_before),
            },
            columns: status.columns.iter().map(|c| c.as_str().to_owned()).collect(),
            rows_total: status.rows_total,
            rows_written: status.rows_written,
            bytes: status.bytes,
            sha256: status.sha256.clone(),
            times: JobTimes::of(status.requested_at, status.started_at, status.finished_at),
            duration_ms: status.duration_ms(),
            error: status.error.clone(),
            download_url: (status.state == ExportState::Completed).then(|| format!("/exports/{id}/download")),
        }
    }
}

/// Recent imports, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ImportList {
    pub(crate) items: Vec<ImportBody>,
}

/// Recent exports, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ExportList {
    pub(crate) items: Vec<ExportBody>,
}
