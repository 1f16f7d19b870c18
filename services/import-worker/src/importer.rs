//! One import, from the uploaded file to the final status.
//!
//! Rows are read and validated (`reader`), checked for emails repeated inside the file (the
//! first occurrence wins), and sent to user-service in batches while reading goes on. Every row
//! has a command id derived from the import id and its line, so when an import is resumed after
//! a crash, the rows sent before are recognised by user-service and answered with their first
//! outcome: no row is applied twice, none is refused as "email taken" by its own earlier
//! attempt. The import ends when every sent row is answered; then the error report is written
//! and the final status published.

use std::collections::HashMap;
use std::time::Duration;

use contract::{commands, imports};
use domain::command::{BatchItem, Command, CommandEnvelope};
use domain::import::{ImportBook, ImportMode, ImportRequest, ImportState, ImportStatus};
use domain::import_file::{FileError, Row, RowError};
use domain::reply::{Outcome, Reply};
use domain::time::Timestamp;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use platform::blobs::BlobStore;
use platform::kafka::{HandleError, Producer, Record};
use platform::topic::Topic;
use platform::trace::TraceHeaders;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::reader::{self, Read};
use crate::replies::{REQUESTER, Router};

/// Tuning, from the configuration.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    pub(crate) batch_rows: usize,
    pub(crate) chunk_rows: usize,
    pub(crate) csv: domain::import_file::Limits,
    pub(crate) max_in_flight_rows: usize,
    pub(crate) progress_interval: Duration,
    /// Longest wait for user-service's next answer while rows are in flight.
    pub(crate) reply_timeout: Duration,
}

/// Why an import cannot go on (it ends `failed` with this as its error).
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error(transparent)]
    File(#[from] FileError),
    #[error(
        "user-service did not answer for {} s; rows sent before may still be applied: import the file again in upsert mode once user-service runs",
        .0.as_secs()
    )]
    NoAnswer(Duration),
}

#[derive(Debug, Clone)]
pub(crate) struct Importer {
    pub(crate) producer: Producer,
    pub(crate) blobs: BlobStore,
    pub(crate) book: ImportBook,
    pub(crate) router: Router,
    pub(crate) commands: Topic<commands::UserCommand>,
    pub(crate) statuses: Topic<imports::ImportStatus>,
    pub(crate) limits: Limits,
}

/// The running tally of one import.
struct Tally {
    status: ImportStatus,
    errors: Vec<RowError>,
    /// Email key -> the line that claimed it first.
    seen: HashMap<String, u64>,
    pending: Vec<BatchItem>,
    /// Batch command id -> rows in it, for batches sent and not yet answered.
    in_flight: HashMap<Uuid, usize>,
    in_flight_rows: usize,
}

fn row_id(import_id: Uuid, line: u64) -> Uuid {
    Uuid::new_v5(&import_id, format!("row:{line}").as_bytes())
}

fn batch_id(import_id: Uuid, first_line: u64) -> Uuid {
    Uuid::new_v5(&import_id, format!("batch:{first_line}").as_bytes())
}

/// The error report's blob name.
pub(crate) fn errors_blob(import_id: Uuid) -> String {
    format!("imports/{import_id}.errors.csv")
}

impl Importer {
    /// Runs `request` to its end. A dependency failing (Kafka, the registry) is retryable: the
    /// request is redelivered and the import resumes.
    pub(crate) async fn run(&self, request: ImportRequest) -> Result<(), HandleError> {
        let previous = self.book.get(request.import_id).unwrap_or_else(|| ImportStatus::queued(&request));
        if previous.state.is_finished() {
            tracing::info!(import_id = %request.import_id, state = previous.state.as_str(), "import already finished");
            // Stopped after finishing but before removing the upload: remove it now.
            self.blobs.remove(&request.blob);
            return Ok(());
        }
        let started = Timestamp::now();
        let status =
            ImportStatus { state: ImportState::Running, started_at: Some(started), ..ImportStatus::queued(&request) };
        let mut tally = Tally {
            // Counting starts afresh (every row is read and answered again); what is published
            // never goes below what readers saw (`publish`).
            status,
            errors: Vec::new(),
            seen: HashMap::new(),
            pending: Vec::new(),
            in_flight: HashMap::new(),
            in_flight_rows: 0,
        };
        tracing::info!(import_id = %request.import_id, blob = %request.blob, mode = request.mode.as_str(), "import started");
        self.publish(&tally.status).await?;

        let path = match self.blobs.path(&request.blob) {
            Ok(path) if path.exists() => path,
            _ => return self.fail(&mut tally, "the uploaded file is gone from blob storage".into()).await,
        };
        let mut replies = self.router.open(request.import_id);
        let result = self.import_rows(&request, path, &mut tally, &mut replies).await;
        self.router.close(request.import_id);
        let finished = match result? {
            Some(failure) => self.fail(&mut tally, failure.to_string()).await,
            None => self.complete(&mut tally).await,
        };
        // A finished import never reads its file again (its status and error report stay for
        // the job retention); until then, a redelivered request resumes from it.
        if finished.is_ok() {
            self.blobs.remove(&request.blob);
        }
        finished
    }

    /// Reads, sends and tallies until every row is answered; `Some` if the file is unusable
    /// or user-service stopped answering.
    async fn import_rows(
        &self,
        request: &ImportRequest,
        path: std::path::PathBuf,
        tally: &mut Tally,
        replies: &mut mpsc::UnboundedReceiver<Reply>,
    ) -> Result<Option<Failure>, HandleError> {
        let (tx, mut rows) = mpsc::channel(2);
        reader::spawn(path, self.limits.chunk_rows, self.limits.csv, tx);
        let mut sends = FuturesUnordered::new();
        let mut ticker = tokio::time::interval(self.limits.progress_interval);
        let mut reading = true;
        // Since the last answer, or since rows were sent with none in flight before.
        let mut waiting_since = tokio::time::Instant::now();
        loop {
            if !reading && tally.in_flight.is_empty() && sends.is_empty() {
                return Ok(None);
            }
            if tally.in_flight.is_empty() {
                waiting_since = tokio::time::Instant::now();
            }
            let room = tally.in_flight_rows < self.limits.max_in_flight_rows;
            let given_up_at = waiting_since + self.limits.reply_timeout;
            tokio::select! {
                read = rows.recv(), if reading && room => match read {
                    Some(Read::Header(columns)) => {
                        tally.status.warnings =
                            columns.unknown.iter().map(|c| format!("unknown column '{c}' ignored")).collect();
                    }
                    Some(Read::Rows(chunk)) => {
                        for row in chunk {
                            self.tally_row(request, tally, row);
                            if tally.pending.len() >= self.limits.batch_rows {
                                sends.push(self.send_batch(request, tally));
                            }
                        }
                    }
                    Some(Read::Failed(error)) => return Ok(Some(error.into())),
                    None => {
                        reading = false;
                        if tally.status.rows_read == 0 {
                            return Ok(Some(FileError::NoRows.into()));
                        }
                        if !tally.pending.is_empty() {
                            sends.push(self.send_batch(request, tally));
                        }
                    }
                },
                Some(sent) = sends.next(), if !sends.is_empty() => sent?,
                Some(reply) = replies.recv() => {
                    self.tally_reply(tally, reply);
                    waiting_since = tokio::time::Instant::now();
                }
                _ = ticker.tick() => self.publish(&tally.status).await?,
                () = tokio::time::sleep_until(given_up_at), if !tally.in_flight.is_empty() => {
                    tracing::warn!(import_id = %request.import_id, in_flight_rows = tally.in_flight_rows,
                        "no answer from user-service within the reply timeout");
                    return Ok(Some(Failure::NoAnswer(self.limits.reply_timeout)));
                }
            }
        }
    }

    fn tally_row(&self, request: &ImportRequest, tally: &mut Tally, row: Row) {
        tally.status.rows_read += 1;
        match row {
            Row::Invalid(errors) => {
                tally.status.rejected += 1;
                rows_counted("invalid");
                tally.errors.extend(errors);
            }
            Row::Valid { line, email_key, user } => {
                if let Some(first) = tally.seen.get(&email_key) {
                    tally.status.rejected += 1;
                    rows_counted("duplicate_in_file");
                    tally.errors.push(RowError {
                        line,
                        field: "email".into(),
                        code: "duplicate_in_file".into(),
                        message: format!("{} already appears on line {first} of this file", user.email.trim()),
                    });
                    return;
                }
                tally.seen.insert(email_key, line);
                tally.pending.push(BatchItem {
                    command_id: row_id(request.import_id, line),
                    line,
                    upsert: request.mode == ImportMode::Upsert,
                    user,
                });
            }
        }
    }

    /// Takes the pending rows as one batch command; the returned future sends it.
    fn send_batch(
        &self,
        request: &ImportRequest,
        tally: &mut Tally,
    ) -> impl std::future::Future<Output = Result<(), HandleError>> + use<> {
        let items = std::mem::take(&mut tally.pending);
        let command_id = batch_id(request.import_id, items[0].line);
        tally.in_flight.insert(command_id, items.len());
        tally.in_flight_rows += items.len();
        let envelope = CommandEnvelope {
            command_id,
            correlation_id: request.import_id,
            requester: REQUESTER.to_owned(),
            issued_at: Timestamp::now(),
            principal: request.principal.clone(),
            request_digest: None,
            command: Command::Batch(items),
        };
        let encoded = self.commands.encode(envelope);
        let (producer, topic) = (self.producer.clone(), self.commands.name().to_owned());
        // The import's span: user-service continues its trace.
        let trace = TraceHeaders::current();
        async move {
            let bytes = encoded.map_err(HandleError::permanent)?;
            let key = command_id.to_string();
            producer.send(Record::new(&topic, &bytes).key(key.as_bytes()).trace(&trace)).await?;
            Ok(())
        }
    }

    fn tally_reply(&self, tally: &mut Tally, reply: Reply) {
        // A batch answered twice (user-service redelivered it) counts once.
        let Some(rows) = tally.in_flight.remove(&reply.command_id) else { return };
        tally.in_flight_rows -= rows;
        let Outcome::Batch(items) = reply.outcome else { return };
        for item in items {
            match item.result {
                Ok(_) => {
                    tally.status.accepted += 1;
                    rows_counted("accepted");
                }
                Err(rejection) => {
                    tally.status.rejected += 1;
                    rows_counted(rejection.reason.as_str());
                    let field = rejection.field_errors.first().map_or("email", |e| e.field.as_str()).to_owned();
                    tally.errors.push(RowError {
                        line: item.line,
                        field,
                        code: rejection.reason.as_str().to_owned(),
                        message: rejection.message,
                    });
                }
            }
        }
    }

    async fn complete(&self, tally: &mut Tally) -> Result<(), HandleError> {
        let import_id = tally.status.import_id;
        let name = errors_blob(import_id);
        tally.errors.sort_by_key(|e| e.line);
        let errors = std::mem::take(&mut tally.errors);
        let blobs = self.blobs.clone();
        let report = name.clone();
        tokio::task::spawn_blocking(move || write_report(&blobs, &report, &errors))
            .await
            .map_err(HandleError::retryable)?
            .map_err(HandleError::retryable)?;
        let status = &mut tally.status;
        status.state = ImportState::Completed;
        status.finished_at = Some(Timestamp::now());
        status.errors_blob = Some(name);
        self.publish(status).await?;
        tracing::info!(%import_id, rows = status.rows_read, accepted = status.accepted, rejected = status.rejected,
            rows_per_second = status.rows_per_second(Timestamp::now()).unwrap_or_default() as u64, "import completed");
        Ok(())
    }

    /// Marks the import of `request` failed for `reason` unless it finished: its request is
    /// going to the dead letters.
    pub(crate) async fn give_up(&self, request: &ImportRequest, reason: &platform::kafka::Poison) {
        let status = self.book.get(request.import_id).unwrap_or_else(|| ImportStatus::queued(request));
        if status.state.is_finished() {
            return;
        }
        let failed = ImportStatus {
            state: ImportState::Failed,
            finished_at: Some(Timestamp::now()),
            error: Some(format!("the import was given up: {}", reason.reason)),
            ..status
        };
        tracing::warn!(import_id = %request.import_id, %reason, "import given up");
        if let Err(error) = self.publish(&failed).await {
            tracing::error!(import_id = %request.import_id, %error, "cannot mark the given-up import failed");
        }
    }

    async fn fail(&self, tally: &mut Tally, error: String) -> Result<(), HandleError> {
        tracing::warn!(import_id = %tally.status.import_id, %error, "import failed");
        let status = &mut tally.status;
        status.state = ImportState::Failed;
        status.finished_at = Some(Timestamp::now());
        status.error = Some(error);
        self.publish(status).await
    }

    async fn publish(&self, status: &ImportStatus) -> Result<(), HandleError> {
        if let Some(rate) = status.rows_per_second(Timestamp::now()) {
            metrics::gauge!("import_rows_per_second").set(rate);
        }
        let status = self.book.not_behind(status.clone());
        self.statuses.publish(&self.producer, status.import_id.to_string().as_bytes(), status.clone()).await?;
        self.book.apply(status);
        Ok(())
    }
}

/// `import_rows_total{outcome}`: `accepted`, `invalid`, `duplicate_in_file`, or user-service's
/// rejection reason (a fixed list); `rate()` of it is the rows imported per second.
fn rows_counted(outcome: &'static str) {
    metrics::counter!("import_rows_total", "outcome" => outcome).increment(1);
}

/// Writes the error report: one line per rejected row, in file order.
fn write_report(blobs: &BlobStore, name: &str, errors: &[RowError]) -> Result<(), String> {
    let staging = blobs.staging_path(name).map_err(|e| e.to_string())?;
    let mut writer = csv::Writer::from_path(&staging).map_err(|e| e.to_string())?;
    writer.write_record(["line", "field", "code", "message"]).map_err(|e| e.to_string())?;
    for error in errors {
        let line = error.line.to_string();
        writer.write_record([line.as_str(), &error.field, &error.code, &error.message]).map_err(|e| e.to_string())?;
    }
    writer.flush().map_err(|e| e.to_string())?;
    drop(writer);
    blobs.commit(name).map_err(|e| e.to_string())?;
    Ok(())
}
