//! Bulk jobs: import and export requests and statuses.

use contract::{MappingError, exports as x, imports as i};

use super::{Result, age, long, unsigned};
use crate::export::{Column, ExportFilter, ExportRequest, ExportState, ExportStatus};
use crate::import::{ImportMode, ImportRequest, ImportState, ImportStatus};
use crate::reply::EventPosition;
use crate::time::Timestamp;

fn mode_to(mode: ImportMode) -> i::ImportMode {
    match mode {
        ImportMode::Create => i::ImportMode::Create,
        ImportMode::Upsert => i::ImportMode::Upsert,
    }
}

fn mode_from(mode: i::ImportMode) -> ImportMode {
    match mode {
        i::ImportMode::Create => ImportMode::Create,
        i::ImportMode::Upsert => ImportMode::Upsert,
    }
}

fn millis(t: Option<Timestamp>) -> Option<i64> {
    t.map(Timestamp::millis)
}

fn timestamp(millis: Option<i64>) -> Option<Timestamp> {
    millis.map(Timestamp::from_millis)
}

impl TryFrom<ImportRequest> for i::ImportRequested {
    type Error = MappingError;

    fn try_from(request: ImportRequest) -> Result<Self> {
        Ok(Self {
            import_id: request.import_id,
            blob: request.blob,
            file_name: request.file_name,
            size_bytes: long("size_bytes", request.size_bytes)?,
            mode: mode_to(request.mode),
            requested_at: request.requested_at.millis(),
            principal: request.principal,
            request_digest: request.request_digest,
        })
    }
}

impl TryFrom<i::ImportRequested> for ImportRequest {
    type Error = MappingError;

    fn try_from(record: i::ImportRequested) -> Result<Self> {
        Ok(Self {
            import_id: record.import_id,
            blob: record.blob,
            file_name: record.file_name,
            size_bytes: unsigned("size_bytes", record.size_bytes)?,
            mode: mode_from(record.mode),
            requested_at: Timestamp::from_millis(record.requested_at),
            principal: record.principal,
            request_digest: record.request_digest,
        })
    }
}

impl TryFrom<ImportStatus> for i::ImportStatus {
    type Error = MappingError;

    fn try_from(status: ImportStatus) -> Result<Self> {
        Ok(Self {
            import_id: status.import_id,
            state: match status.state {
                ImportState::Queued => i::ImportState::Queued,
                ImportState::Running => i::ImportState::Running,
                ImportState::Completed => i::ImportState::Completed,
                ImportState::Failed => i::ImportState::Failed,
            },
            mode: mode_to(status.mode),
            file_name: status.file_name,
            size_bytes: long("size_bytes", status.size_bytes)?,
            rows_read: long("rows_read", status.rows_read)?,
            accepted: long("accepted", status.accepted)?,
            rejected: long("rejected", status.rejected)?,
            requested_at: status.requested_at.millis(),
            started_at: millis(status.started_at),
            finished_at: millis(status.finished_at),
            error: status.error,
            warnings: status.warnings,
            errors_blob: status.errors_blob,
            request_digest: status.request_digest,
        })
    }
}

impl TryFrom<i::ImportStatus> for ImportStatus {
    type Error = MappingError;

    fn try_from(record: i::ImportStatus) -> Result<Self> {
        Ok(Self {
            import_id: record.import_id,
            state: match record.state {
                i::ImportState::Queued => ImportState::Queued,
                i::ImportState::Running => ImportState::Running,
                i::ImportState::Completed => ImportState::Completed,
                i::ImportState::Failed => ImportState::Failed,
            },
            mode: mode_from(record.mode),
            file_name: record.file_name,
            size_bytes: unsigned("size_bytes", record.size_bytes)?,
            rows_read: unsigned("rows_read", record.rows_read)?,
            accepted: unsigned("accepted", record.accepted)?,
            rejected: unsigned("rejected", record.rejected)?,
            requested_at: Timestamp::from_millis(record.requested_at),
            started_at: timestamp(record.started_at),
            finished_at: timestamp(record.finished_at),
            error: record.error,
            warnings: record.warnings,
            errors_blob: record.errors_blob,
            request_digest: record.request_digest,
        })
    }
}

// ---- exports --------------------------------------------------------------------------------

fn filter_to(filter: ExportFilter) -> x::ExportFilter {
    x::ExportFilter {
        q: filter.q,
        email_domain: filter.email_domain,
        min_age: filter.min_age.map(i32::from),
        max_age: filter.max_age.map(i32::from),
        created_after: millis(filter.created_after),
        created_before: millis(filter.created_before),
    }
}

fn filter_from(filter: x::ExportFilter) -> Result<ExportFilter> {
    Ok(ExportFilter {
        q: filter.q,
        email_domain: filter.email_domain,
        min_age: filter.min_age.map(|a| age("min_age", i64::from(a))).transpose()?,
        max_age: filter.max_age.map(|a| age("max_age", i64::from(a))).transpose()?,
        created_after: timestamp(filter.created_after),
        created_before: timestamp(filter.created_before),
    })
}

fn columns_to(columns: Vec<Column>) -> Vec<x::ExportColumn> {
    columns
        .into_iter()
        .map(|column| match column {
            Column::Id => x::ExportColumn::Id,
            Column::Email => x::ExportColumn::Email,
            Column::Name => x::ExportColumn::Name,
            Column::Age => x::ExportColumn::Age,
            Column::CreatedAt => x::ExportColumn::CreatedAt,
            Column::UpdatedAt => x::ExportColumn::UpdatedAt,
            Column::Version => x::ExportColumn::Version,
        })
        .collect()
}

fn columns_from(columns: Vec<x::ExportColumn>) -> Vec<Column> {
    columns
        .into_iter()
        .map(|column| match column {
            x::ExportColumn::Id => Column::Id,
            x::ExportColumn::Email => Column::Email,
            x::ExportColumn::Name => Column::Name,
            x::ExportColumn::Age => Column::Age,
            x::ExportColumn::CreatedAt => Column::CreatedAt,
            x::ExportColumn::UpdatedAt => Column::UpdatedAt,
            x::ExportColumn::Version => Column::Version,
        })
        .collect()
}

impl TryFrom<ExportRequest> for x::ExportRequested {
    type Error = MappingError;

    fn try_from(request: ExportRequest) -> Result<Self> {
        Ok(Self {
            export_id: request.export_id,
            filter: filter_to(request.filter),
            columns: columns_to(request.columns),
            positions: request
                .positions
                .into_iter()
                .map(|p| x::EventsPosition { partition: p.partition, offset: p.offset })
                .collect(),
            requested_at: request.requested_at.millis(),
            principal: request.principal,
            request_digest: request.request_digest,
        })
    }
}

impl TryFrom<x::ExportRequested> for ExportRequest {
    type Error = MappingError;

    fn try_from(record: x::ExportRequested) -> Result<Self> {
        Ok(Self {
            export_id: record.export_id,
            filter: filter_from(record.filter)?,
            columns: columns_from(record.columns),
            positions: record
                .positions
                .into_iter()
                .map(|p| EventPosition { partition: p.partition, offset: p.offset })
                .collect(),
            requested_at: Timestamp::from_millis(record.requested_at),
            principal: record.principal,
            request_digest: record.request_digest,
        })
    }
}

impl TryFrom<ExportStatus> for x::ExportStatus {
    type Error = MappingError;

    fn try_from(status: ExportStatus) -> Result<Self> {
        Ok(Self {
            export_id: status.export_id,
            state: match status.state {
                ExportState::Queued => x::ExportState::Queued,
                ExportState::Running => x::ExportState::Running,
                ExportState::Completed => x::ExportState::Completed,
                ExportState::Failed => x::ExportState::Failed,
                ExportState::Expired => x::ExportState::Expired,
            },
            filter: filter_to(status.filter),
            columns: columns_to(status.columns),
            rows_total: long("rows_total", status.rows_total)?,
            rows_written: long("rows_written", status.rows_written)?,
            bytes: long("bytes", status.bytes)?,
            sha256: status.sha256,
            blob: status.blob,
            requested_at: status.requested_at.millis(),
            started_at: millis(status.started_at),
            finished_at: millis(status.finished_at),
            error: status.error,
            request_digest: status.request_digest,
        })
    }
}

impl TryFrom<x::ExportStatus> for ExportStatus {
    type Error = MappingError;

    fn try_from(record: x::ExportStatus) -> Result<Self> {
        Ok(Self {
            export_id: record.export_id,
            state: match record.state {
                x::ExportState::Queued => ExportState::Queued,
                x::ExportState::Running => ExportState::Running,
                x::ExportState::Completed => ExportState::Completed,
                x::ExportState::Failed => ExportState::Failed,
                x::ExportState::Expired => ExportState::Expired,
            },
            filter: filter_from(record.filter)?,
            columns: columns_from(record.columns),
            rows_total: unsigned("rows_total", record.rows_total)?,
            rows_written: unsigned("rows_written", record.rows_written)?,
            bytes: unsigned("bytes", record.bytes)?,
            sha256: record.sha256,
            blob: record.blob,
            requested_at: Timestamp::from_millis(record.requested_at),
            started_at: timestamp(record.started_at),
            finished_at: timestamp(record.finished_at),
            error: record.error,
            request_digest: record.request_digest,
        })
    }
}
