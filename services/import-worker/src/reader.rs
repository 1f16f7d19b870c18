//! Reading an uploaded file: CSV parsing is sequential, validation runs in parallel on rayon,
//! and the next chunk is read while the current one is validated. All of it on a blocking
//! thread, never on the async workers.

use std::fs::File;
use std::path::PathBuf;

use csv::ByteRecord;
use domain::import_file::{self, Columns, FileError, Limits, ReadError, Row, RowError};
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
pub(crate) fn spawn(path: PathBuf, chunk_rows: usize, limits: Limits, tx: mpsc::Sender<Read>) {
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        if let Err(error) = read(&path, chunk_rows.max(1), limits, &tx) {
            let _ = tx.blocking_send(Read::Failed(error));
        }
    });
}

/// A data record with its line, or the error of one the CSV limits refused (never held).
enum Record {
    Read(ByteRecord, u64),
    Refused(RowError),
}

fn read(path: &PathBuf, chunk_rows: usize, limits: Limits, tx: &mpsc::Sender<Read>) -> Result<(), FileError> {
    let file = File::open(path).map_err(|e| FileError::Unreadable(format!("cannot open the uploaded file: {e}")))?;
    let mut reader = import_file::reader(file, limits);
    let columns = Columns::read(&mut reader)?;
    if tx.blocking_send(Read::Header(columns.clone())).is_err() {
        return Ok(());
    }
    let mut chunk = next_chunk(&mut reader, chunk_rows)?;
    while !chunk.is_empty() {
        let check = |record: &Record| match record {
            Record::Read(record, line) => import_file::check_row(&columns, record, *line),
            Record::Refused(error) => Row::Invalid(vec![error.clone()]),
        };
        let (rows, next) =
            rayon::join(|| chunk.par_iter().map(check).collect(), || next_chunk(&mut reader, chunk_rows));
        if tx.blocking_send(Read::Rows(rows)).is_err() {
            return Ok(());
        }
        chunk = next?;
    }
    Ok(())
}

/// Up to `size` data records with their lines (blank lines skipped).
fn next_chunk(reader: &mut import_file::LineReader<File>, size: usize) -> Result<Vec<Record>, FileError> {
    let mut chunk = Vec::with_capacity(size);
    let mut record = ByteRecord::new();
    while chunk.len() < size {
        match reader.read(&mut record) {
            Ok(Some(_)) if import_file::is_blank(&record) => {}
            Ok(Some(line)) => chunk.push(Record::Read(record.clone(), line)),
            Ok(None) => break,
            Err(ReadError::Oversize { line, oversize }) => {
                chunk.push(Record::Refused(RowError::oversize(line, oversize)))
            }
            Err(ReadError::Io(e)) => return Err(FileError::Unreadable(e.to_string())),
        }
    }
    Ok(chunk)
}
