//! CSV exports: what to export (filters, columns), the request that carries the reader's
//! position in the user events (so the export contains every write acknowledged before it), and
//! the status every reader sees. Like imports, a status only moves forward.

use uuid::Uuid;

use crate::book::{JobStatus, StatusBook, job_status_fields};
use crate::reply::EventPosition;
use crate::time::Timestamp;
use crate::user::{Age, FieldError, User};

/// A column of an export file. The default columns are the import format (`email,name,age`),
/// so an export can be imported as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Column {
    Id,
    Email,
    Name,
    Age,
    CreatedAt,
    UpdatedAt,
    Version,
}

impl Column {
    pub const ALL: [Column; 7] =
        [Self::Id, Self::Email, Self::Name, Self::Age, Self::CreatedAt, Self::UpdatedAt, Self::Version];
    pub const DEFAULT: [Column; 3] = [Self::Email, Self::Name, Self::Age];

    /// The header name (also the name clients use to ask for the column).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Id => "id",
            Self::Email => "email",
            Self::Name => "name",
            Self::Age => "age",
            Self::CreatedAt => "created_at",
            Self::UpdatedAt => "updated_at",
            Self::Version => "version",
        }
    }

    /// The column of that exact name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == name)
    }
}

/// Which users an export contains. Every given condition must hold; an age bound excludes users
/// without an age.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportFilter {
    /// Lowercase substring of the name or the email.
    pub q: Option<String>,
    /// Lowercase domain the email must have (the part after `@`).
    pub email_domain: Option<String>,
    pub min_age: Option<u8>,
    pub max_age: Option<u8>,
    /// Created strictly after this instant.
    pub created_after: Option<Timestamp>,
    /// Created strictly before this instant.
    pub created_before: Option<Timestamp>,
}

/// An export as a client asks for it, before validation.
#[derive(Debug, Clone, Default)]
pub struct ExportSpec {
    pub q: Option<String>,
    pub email_domain: Option<String>,
    pub min_age: Option<i64>,
    pub max_age: Option<i64>,
    pub created_after: Option<String>,
    pub created_before: Option<String>,
    pub columns: Option<Vec<String>>,
}

impl ExportSpec {
    /// The filter and columns, or every problem with the spec at once.
    pub fn validate(self) -> Result<(ExportFilter, Vec<Column>), Vec<FieldError>> {
        let mut errors = Vec::new();
        let text = |value: Option<String>| value.map(|v| v.trim().to_lowercase()).filter(|v| !v.is_empty());
        let age = |value: Option<i64>, field: &str, errors: &mut Vec<FieldError>| {
            value.and_then(|n| match Age::parse(n) {
                Ok(age) => Some(age.get()),
                Err(e) => {
                    errors.push(FieldError::new(field, "out_of_range", e.message));
                    None
                }
            })
        };
        let min_age = age(self.min_age, "min_age", &mut errors);
        let max_age = age(self.max_age, "max_age", &mut errors);
        if let (Some(min), Some(max)) = (min_age, max_age)
            && min > max
        {
            errors.push(FieldError::new("max_age", "out_of_range", "max_age must not be below min_age"));
        }
        let instant = |value: Option<String>, field: &str, errors: &mut Vec<FieldError>| {
            let parsed = Timestamp::parse_rfc3339(&value?);
            if parsed.is_none() {
                errors.push(FieldError::new(
                    field,
                    "invalid",
                    "expected an RFC 3339 instant, e.g. 2026-11-21T10:00:00Z",
                ));
            }
            parsed
        };
        let created_after = instant(self.created_after, "created_after", &mut errors);
        let created_before = instant(self.created_before, "created_before", &mut errors);
        // A leading `@` is ignored; a domain no email can have (`a@b`) matches no one.
        let email_domain = text(self.email_domain).map(|d| d.strip_prefix('@').unwrap_or(&d).to_owned());

        let mut columns = Vec::new();
        for name in self.columns.unwrap_or_default() {
            match Column::parse(&name) {
                Some(column) if columns.contains(&column) => {
                    errors.push(FieldError::new("columns", "invalid", format!("column {name:?} is listed twice")));
                }
                Some(column) => columns.push(column),
                None => {
                    let known: Vec<&str> = Column::ALL.iter().map(|c| c.as_str()).collect();
                    errors.push(FieldError::new(
                        "columns",
                        "invalid",
                        format!("unknown column {name:?}; known: {}", known.join(", ")),
                    ));
                }
            }
        }
        if columns.is_empty() {
            columns = Column::DEFAULT.to_vec();
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let filter = ExportFilter { q: text(self.q), email_domain, min_age, max_age, created_after, created_before };
        Ok((filter, columns))
    }
}

impl ExportFilter {
    pub fn matches(&self, user: &User) -> bool {
        if let Some(q) = &self.q
            && !user.name.as_str().to_lowercase().contains(q.as_str())
            && !user.email.key().contains(q.as_str())
        {
            return false;
        }
        if let Some(domain) = &self.email_domain
            && !user.email.domain().eq_ignore_ascii_case(domain)
        {
            return false;
        }
        let age = user.age.map(Age::get);
        if self.min_age.is_some_and(|min| age.is_none_or(|age| age < min))
            || self.max_age.is_some_and(|max| age.is_none_or(|age| age > max))
        {
            return false;
        }
        self.created_after.is_none_or(|t| user.created_at > t)
            && self.created_before.is_none_or(|t| user.created_at < t)
    }
}

/// An export to write. `positions` are the next offsets of the user events the requester had
/// applied: the export waits until its own projection has applied as much.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportRequest {
    pub export_id: Uuid,
    pub filter: ExportFilter,
    pub columns: Vec<Column>,
    pub positions: Vec<EventPosition>,
    pub requested_at: Timestamp,
    /// Who asked for it.
    pub principal: Option<String>,
    /// Under an `Idempotency-Key`: the SHA-256 (hex) of the HTTP request, to tell a retry (the
    /// same digest) from the key used again for another request.
    pub request_digest: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ExportState {
    Queued,
    Running,
    Completed,
    Failed,
    /// Completed, then removed after the retention period.
    Expired,
}

impl ExportState {
    pub const ALL: [ExportState; 5] = [Self::Queued, Self::Running, Self::Completed, Self::Failed, Self::Expired];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Expired => "expired",
        }
    }

    pub fn is_finished(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Expired)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportStatus {
    pub export_id: Uuid,
    pub state: ExportState,
    pub filter: ExportFilter,
    pub columns: Vec<Column>,
    /// Users in the snapshot (known once it is taken).
    pub rows_total: u64,
    pub rows_written: u64,
    pub bytes: u64,
    /// Hex SHA-256 of the file, once completed.
    pub sha256: Option<String>,
    /// The file in blob storage, once completed.
    pub blob: Option<String>,
    pub requested_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub error: Option<String>,
    /// The request digest of the request this job runs (while queued: of the first one
    /// announced under its id); see [`JobStatus::request_digest`].
    pub request_digest: Option<String>,
}

impl ExportStatus {
    pub fn queued(request: &ExportRequest) -> Self {
        Self {
            export_id: request.export_id,
            state: ExportState::Queued,
            filter: request.filter.clone(),
            columns: request.columns.clone(),
            rows_total: 0,
            rows_written: 0,
            bytes: 0,
            sha256: None,
            blob: None,
            requested_at: request.requested_at,
            started_at: None,
            finished_at: None,
            error: None,
            request_digest: request.request_digest.clone(),
        }
    }

    /// Milliseconds from start to finish, once finished.
    pub fn duration_ms(&self) -> Option<i64> {
        Some(self.finished_at?.millis() - self.started_at?.millis())
    }
}

impl JobStatus for ExportStatus {
    job_status_fields!(export_id, ExportState::Queued);

    /// This status, never behind `previous`. A finished export stays as it finished, except that
    /// a completed one may later expire. A rerun after a crash counts again from zero, but while
    /// running, what readers saw does not go back. A job is announced (queued) once: a second
    /// announcement under its id (a retry, or a request racing it under the same idempotency
    /// key) changes nothing.
    fn not_behind(mut self, previous: &Self) -> Self {
        if previous.state == ExportState::Completed && self.state == ExportState::Expired {
            return ExportStatus { state: ExportState::Expired, ..previous.clone() };
        }
        if previous.state.is_finished() || self.state == ExportState::Queued {
            return previous.clone();
        }
        // The worker's statuses carry the digest of the request it runs.
        self.request_digest = self.request_digest.or_else(|| previous.request_digest.clone());
        if !self.state.is_finished() {
            self.state = self.state.max(previous.state);
            self.rows_written = self.rows_written.max(previous.rows_written);
            self.rows_total = self.rows_total.max(previous.rows_total);
            self.bytes = self.bytes.max(previous.bytes);
        }
        self.started_at = previous.started_at.or(self.started_at);
        self
    }
}

/// The latest status of every export (each reader keeps one).
pub type ExportBook = StatusBook<ExportStatus>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::user::{Email, Name};

    fn user(email: &str, name: &str, age: Option<u8>, created: i64) -> User {
        User {
            id: Uuid::now_v7(),
            email: Email::parse(email).unwrap(),
            name: Name::parse(name).unwrap(),
            age: age.map(|a| Age::parse(i64::from(a)).unwrap()),
            created_at: Timestamp::from_millis(created),
            updated_at: Timestamp::from_millis(created),
            version: 1,
            locale: None,
        }
    }

    fn filter(spec: ExportSpec) -> ExportFilter {
        spec.validate().unwrap().0
    }

    #[test]
    fn every_condition_must_hold() {
        let ada = user("Ada@Example.com", "Ada Lovelace", Some(36), 1_000);
        let spec = |q: &str| ExportSpec { q: Some(q.into()), ..ExportSpec::default() };
        assert!(filter(spec("LOVE")).matches(&ada));
        assert!(filter(spec("ada@ex")).matches(&ada));
        assert!(!filter(spec("grace")).matches(&ada));
        let domain = |d: &str| filter(ExportSpec { email_domain: Some(d.into()), ..ExportSpec::default() });
        assert!(domain("example.COM").matches(&ada) && domain("@example.com").matches(&ada));
        assert!(!domain("ample.com").matches(&ada));
        assert!(!domain("ada@example.com").matches(&ada) && !domain("example .com").matches(&ada));
        let ages = |min, max| filter(ExportSpec { min_age: min, max_age: max, ..ExportSpec::default() });
        assert!(ages(Some(36), Some(36)).matches(&ada));
        assert!(!ages(Some(37), None).matches(&ada) && !ages(None, Some(35)).matches(&ada));
        assert!(!ages(Some(0), None).matches(&user("b@x.io", "B", None, 0)), "an age bound needs an age");
        let created = |after: &str, before: &str| {
            filter(ExportSpec {
                created_after: Some(after.into()),
                created_before: Some(before.into()),
                ..ExportSpec::default()
            })
        };
        assert!(created("1970-01-01T00:00:00.999Z", "1970-01-01T00:00:01.001Z").matches(&ada));
        assert!(!created("1970-01-01T00:00:01Z", "1970-01-01T00:00:02Z").matches(&ada), "after is strict");
    }

    #[test]
    fn a_bad_spec_names_every_bad_field() {
        let spec = ExportSpec {
            min_age: Some(-1),
            max_age: Some(151),
            created_after: Some("yesterday".into()),
            columns: Some(vec!["email".into(), "password".into(), "email".into(), "Name".into()]),
            ..ExportSpec::default()
        };
        let errors = spec.validate().unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["min_age", "max_age", "created_after", "columns", "columns", "columns"]);
        let inverted = ExportSpec { min_age: Some(50), max_age: Some(20), ..ExportSpec::default() };
        assert_eq!(inverted.validate().unwrap_err()[0].field, "max_age");
    }

    #[test]
    fn columns_default_to_the_import_format() {
        let (_, columns) = ExportSpec::default().validate().unwrap();
        assert_eq!(columns, Column::DEFAULT);
        let chosen = ExportSpec { columns: Some(vec!["id".into(), "version".into()]), ..ExportSpec::default() };
        assert_eq!(chosen.validate().unwrap().1, [Column::Id, Column::Version]);
    }

    #[test]
    fn a_completed_export_may_expire_but_never_goes_back() {
        let request = ExportRequest {
            export_id: Uuid::nil(),
            filter: ExportFilter::default(),
            columns: Column::DEFAULT.to_vec(),
            positions: Vec::new(),
            requested_at: Timestamp::from_millis(0),
            principal: None,
            request_digest: None,
        };
        let done = ExportStatus {
            state: ExportState::Completed,
            rows_written: 9,
            sha256: Some("ab".into()),
            ..ExportStatus::queued(&request)
        };
        let rerun = ExportStatus { state: ExportState::Running, rows_written: 2, ..ExportStatus::queued(&request) };
        assert_eq!(rerun.clone().not_behind(&done), done);
        let expired = ExportStatus { state: ExportState::Expired, ..ExportStatus::queued(&request) }.not_behind(&done);
        assert_eq!((expired.state, expired.rows_written), (ExportState::Expired, 9));
        let running = ExportStatus { rows_written: 5, ..rerun.clone() };
        assert_eq!(rerun.not_behind(&running).rows_written, 5);
    }

    #[test]
    fn the_first_announcement_of_an_export_stands_and_the_worker_names_the_request_it_runs() {
        let queued = |digest: &str, at: i64| {
            ExportStatus::queued(&ExportRequest {
                export_id: Uuid::nil(),
                filter: ExportFilter::default(),
                columns: Column::DEFAULT.to_vec(),
                positions: Vec::new(),
                requested_at: Timestamp::from_millis(at),
                principal: None,
                request_digest: Some(digest.into()),
            })
        };
        let book = ExportBook::default();
        book.apply(queued("aa", 1));
        book.apply(queued("bb", 2));
        assert_eq!(book.get(Uuid::nil()), Some(queued("aa", 1)));
        let running = ExportStatus { state: ExportState::Running, ..queued("bb", 2) };
        book.apply(running.clone());
        book.apply(queued("cc", 3));
        assert_eq!(book.get(Uuid::nil()), Some(running));
        let done = ExportStatus { state: ExportState::Completed, request_digest: None, ..queued("bb", 2) };
        book.apply(done);
        assert_eq!(book.get(Uuid::nil()).unwrap().request_digest.as_deref(), Some("bb"));
    }
}
