//! One export, from request to final status.
//!
//! The export first waits until this worker's projection has applied the user events the
//! requester had applied (so every write acknowledged before the request is in it), then takes
//! a snapshot of the matching users in id order (creation order), formats it in parallel and
//! writes it to a staging file while hashing it. Only a complete, synced file is moved to its
//! real name, and only then is the export published as completed: a crash at any point leaves
//! no file that looks complete, and the redelivered request runs the export again.

use std::fs::File;
use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use contract::exports;
use domain::export::{Column, ExportBook, ExportFilter, ExportRequest, ExportState, ExportStatus};
use domain::stored::StoredUser;
use domain::time::Timestamp;
use domain::view::UserView;
use platform::blobs::BlobStore;
use platform::kafka::{HandleError, Positions, Producer};
use platform::topic::Topic;
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::writer;

/// Tuning, from the configuration.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    pub(crate) chunk_rows: usize,
    pub(crate) progress_interval: Duration,
    pub(crate) catch_up_timeout: Duration,
}

/// Chunks per wave: a wave is formatted in parallel while the previous one is written.
const CHUNKS_PER_WAVE: usize = 16;

#[derive(Debug, Clone)]
pub(crate) struct Exporter {
    pub(crate) producer: Producer,
    pub(crate) blobs: BlobStore,
    pub(crate) book: ExportBook,
    pub(crate) users: UserView,
    /// How far the projection has applied the user events.
    pub(crate) positions: Positions,
    pub(crate) statuses: Topic<exports::ExportStatus>,
    pub(crate) limits: Limits,
}

/// The export file's blob name.
pub(crate) fn blob_name(export_id: uuid::Uuid) -> String {
    format!("exports/{export_id}.csv")
}

/// Counters the writing thread updates and the progress reporter reads.
#[derive(Debug, Default)]
struct Progress {
    total: AtomicU64,
    rows: AtomicU64,
    bytes: AtomicU64,
}

#[derive(Debug)]
struct Written {
    rows: u64,
    bytes: u64,
    sha256: String,
    /// Time taken to snapshot the matching users, and to format, hash, write and sync them.
    snapshot: Duration,
    write: Duration,
}

impl Exporter {
    /// Runs `request` to its end. Waiting for the projection, Kafka or the registry is
    /// retryable (the request is redelivered); a file that cannot be written fails the export.
    pub(crate) async fn run(&self, request: ExportRequest) -> Result<(), HandleError> {
        let export_id = request.export_id;
        if let Some(previous) = self.book.get(export_id).filter(|s| s.state.is_finished()) {
            tracing::info!(%export_id, state = previous.state.as_str(), "export already finished");
            return Ok(());
        }
        for position in request.positions.iter().filter(|p| p.offset > 0) {
            let (partition, last) = (position.partition, position.offset - 1);
            if !self.positions.wait_applied(partition, last, self.limits.catch_up_timeout).await {
                return Err(HandleError::retryable(format!(
                    "the projection has not reached offset {last} of partition {partition} yet"
                )));
            }
        }
        let mut status = ExportStatus {
            state: ExportState::Running,
            started_at: Some(Timestamp::now()),
            ..ExportStatus::queued(&request)
        };
        self.publish(&status).await?;
        tracing::info!(%export_id, "export started");

        let progress = Arc::new(Progress::default());
        let name = blob_name(export_id);
        let job = {
            let (users, blobs, name, progress) =
                (self.users.clone(), self.blobs.clone(), name.clone(), progress.clone());
            let (filter, columns, chunk_rows) =
                (request.filter.clone(), request.columns.clone(), self.limits.chunk_rows);
            tokio::task::spawn_blocking(move || {
                write_export(&users, &filter, &columns, chunk_rows, &blobs, &name, &progress)
            })
        };
        tokio::pin!(job);
        let mut every = tokio::time::interval(self.limits.progress_interval);
        every.tick().await;
        let result = loop {
            tokio::select! {
                result = &mut job => break result,
                _ = every.tick() => {
                    status.rows_total = progress.total.load(Ordering::Relaxed);
                    status.rows_written = progress.rows.load(Ordering::Relaxed);
                    status.bytes = progress.bytes.load(Ordering::Relaxed);
                    self.publish(&status).await?;
                }
            }
        };
        status.finished_at = Some(Timestamp::now());
        match result.map_err(|e| e.to_string()).and_then(|written| written) {
            Ok(written) => {
                status.state = ExportState::Completed;
                (status.rows_total, status.rows_written, status.bytes) = (written.rows, written.rows, written.bytes);
                status.sha256 = Some(written.sha256);
                status.blob = Some(name);
                self.publish(&status).await?;
                metrics::counter!("exports_completed_total").increment(1);
                metrics::counter!("export_rows_written_total").increment(written.rows);
                if let Some(ms) = status.duration_ms().filter(|&ms| ms > 0) {
                    metrics::gauge!("export_rows_per_second").set(written.rows as f64 * 1000.0 / ms as f64);
                }
                tracing::info!(%export_id, rows = written.rows, bytes = written.bytes,
                    ms = status.duration_ms().unwrap_or_default(), snapshot_ms = written.snapshot.as_millis() as u64,
                    write_ms = written.write.as_millis() as u64, "export completed");
            }
            Err(error) => {
                self.blobs.remove(&name);
                tracing::warn!(%export_id, %error, "export failed");
                status.state = ExportState::Failed;
                status.error = Some(error);
                self.publish(&status).await?;
                metrics::counter!("exports_failed_total").increment(1);
            }
        }
        Ok(())
    }

    /// Marks the export of `request` failed for `reason` unless it finished: its request is
    /// going to the dead letters.
    pub(crate) async fn give_up(&self, request: &ExportRequest, reason: &platform::kafka::Poison) {
        let status = self.book.get(request.export_id).unwrap_or_else(|| ExportStatus::queued(request));
        if status.state.is_finished() {
            return;
        }
        let failed = ExportStatus {
            state: ExportState::Failed,
            error: Some(format!("the export was given up: {}", reason.reason)),
            ..status
        };
        tracing::warn!(export_id = %request.export_id, %reason, "export given up");
        if let Err(error) = self.publish(&failed).await {
            tracing::error!(export_id = %request.export_id, %error, "cannot mark the given-up export failed");
        }
    }

    /// Publishes `status` (never behind what was published before) and records it.
    pub(crate) async fn publish(&self, status: &ExportStatus) -> Result<(), HandleError> {
        let status = self.book.not_behind(status.clone());
        self.statuses.publish(&self.producer, status.export_id.to_string().as_bytes(), status.clone()).await?;
        self.book.apply(status);
        Ok(())
    }

    /// Removes the files of exports completed more than `retention` ago and marks them expired.
    pub(crate) async fn expire(&self, retention: Duration) -> Result<usize, HandleError> {
        let cutoff = Timestamp::now().millis() - i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        let due: Vec<ExportStatus> = self
            .book
            .all()
            .into_iter()
            .filter(|s| s.state == ExportState::Completed && s.finished_at.is_some_and(|t| t.millis() <= cutoff))
            .collect();
        for status in &due {
            if let Some(blob) = &status.blob {
                self.blobs.remove(blob);
            }
            self.publish(&ExportStatus { state: ExportState::Expired, ..status.clone() }).await?;
            tracing::info!(export_id = %status.export_id, "export expired; file removed");
        }
        Ok(due.len())
    }
}

/// Snapshot, format and write: the blocking part of an export (rayon does the CPU work).
fn write_export(
    users: &UserView,
    filter: &ExportFilter,
    columns: &[Column],
    chunk_rows: usize,
    blobs: &BlobStore,
    name: &str,
    progress: &Progress,
) -> Result<Written, String> {
    let started = std::time::Instant::now();
    // Ids in id order (UUID v7: creation order); each user's current version, shared.
    let ids = users.ids();
    // A filter sees each user whole (copied out of its compact form) only when there is one.
    let everyone = *filter == ExportFilter::default();
    let snapshot: Vec<Arc<StoredUser>> = ids
        .par_iter()
        .filter_map(|id| match everyone {
            true => users.get_shared(*id),
            false => users.get_shared_if(*id, |u| filter.matches(u)),
        })
        .collect();
    drop(ids);
    progress.total.store(snapshot.len() as u64, Ordering::Relaxed);
    let snapshotted = started.elapsed();

    let staging = blobs.staging_path(name).map_err(|e| e.to_string())?;
    let mut file = File::create(&staging).map_err(|e| format!("cannot create {}: {e}", staging.display()))?;
    let mut hasher = Sha256::new();
    let mut bytes = 0u64;
    let mut write = |chunk: &[u8]| -> Result<(), String> {
        hasher.update(chunk);
        file.write_all(chunk).map_err(|e| format!("cannot write {}: {e}", staging.display()))?;
        bytes += chunk.len() as u64;
        progress.bytes.store(bytes, Ordering::Relaxed);
        Ok(())
    };
    write(&writer::header(columns))?;
    let chunk_rows = chunk_rows.max(1);
    let mut formatted: Option<(Vec<Vec<u8>>, usize)> = None;
    for wave in snapshot.chunks(chunk_rows * CHUNKS_PER_WAVE) {
        // Format this wave in parallel while the previous one is hashed and written.
        let (next, written) = rayon::join(
            || writer::format_parallel(wave, columns, chunk_rows),
            || -> Result<(), String> {
                if let Some((chunks, rows)) = formatted.take() {
                    chunks.iter().try_for_each(|chunk| write(chunk))?;
                    progress.rows.fetch_add(rows as u64, Ordering::Relaxed);
                }
                Ok(())
            },
        );
        written?;
        formatted = Some((next, wave.len()));
    }
    if let Some((chunks, rows)) = formatted.take() {
        chunks.iter().try_for_each(|chunk| write(chunk))?;
        progress.rows.fetch_add(rows as u64, Ordering::Relaxed);
    }
    drop(file);
    // Durable (bytes and directory entries) before the status points to it.
    blobs.commit(name).map_err(|e| e.to_string())?;
    let sha256 = format!("{:x}", hasher.finalize());
    let write = started.elapsed() - snapshotted;
    Ok(Written { rows: snapshot.len() as u64, bytes, sha256, snapshot: snapshotted, write })
}
