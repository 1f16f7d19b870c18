//! Reading an uploaded file: CSV parsing is sequential, validation runs in parallel on rayon,
//! and the next chunk is read while the current one is validated. All of it on a blocking
//! thread, never on the async workers.

use std::fs::File;
use std::path::PathBuf;

use csv::ByteRecord;
use domain::import_file::{self, Columns, FileError, Row};
use rayon::prelude::*;
use tokio::sync::mpsc;

/// What the reader sends: the header first, then validated rows chunk by chunk.
#[derive(Debug)]
pub(crate) enum Read {
    Header(Columns),
    Rows(Vec<Row>),
    Failed(FileError),
}

/// Reads `path` on a blocking thread, sending into `tx`; stops early if `tx` is closed.
pub(crate) fn spawn(path: PathBuf, chunk_rows: usize, tx: mpsc::Sender<Read>) {
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        if let Err(error) = read(&path, chunk_rows.max(1), &tx) {
            let _ = tx.blocking_send(Read::Failed(error));
        }
    });
}

fn read(path: &PathBuf, chunk_rows: usize, tx: &mpsc::Sender<Read>) -> Result<(), FileError> {
    let file = File::open(path).map_err(|e| FileError::Unreadable(format!("cannot open the uploaded file: {e}")))?;
    let mut reader = import_file::reader(file);
    let columns = Columns::read(&mut reader)?;
    if tx.blocking_send(Read::Header(columns.clone())).is_err() {
        return Ok(());
    }
    let mut chunk = next_chunk(&mut reader, chunk_rows)?;
    while !chunk.is_empty() {
        let (rows, next) = rayon::join(
            || chunk.par_iter().map(|(record, line)| import_file::check_row(&columns, record, *line)).collect(),
            || next_chunk(&mut reader, chunk_rows),
        );
        if tx.blocking_send(Read::Rows(rows)).is_err() {
            return Ok(());
        }
        chunk = next?;
    }
    Ok(())
}

/// Up to `size` data records with their lines (blank lines skipped).
fn next_chunk(reader: &mut import_file::LineReader<File>, size: usize) -> Result<Vec<(ByteRecord, u64)>, FileError> {
    let mut chunk = Vec::with_capacity(size);
    let mut record = ByteRecord::new();
    while chunk.len() < size {
        match reader.read(&mut record) {
            Ok(Some(_)) if import_file::is_blank(&record) => {}
            Ok(Some(line)) => chunk.push((record.clone(), line)),
            Ok(None) => break,
            Err(e) => return Err(FileError::Unreadable(e.to_string())),
        }
    }
    Ok(chunk)
}
