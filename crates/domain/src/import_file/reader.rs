//! Reading CSV records with true line numbers and bounded memory: a record longer than
//! [`Limits::max_line_bytes`], with more than [`Limits::max_columns`] fields or a field longer
//! than [`Limits::max_field_bytes`] is skipped without being held, and reported as
//! [`ReadError::Oversize`] at its line; the reader then goes on with the next record. Whatever
//! a file holds (one 1 GiB line, millions of columns), a reader holds at most its input buffer
//! and one record within the limits.

use std::io::Read;

use csv::ByteRecord;
use csv_core::ReadRecordResult;

/// The caps on one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of a record's fields (a row of this project is well under 1 KiB).
    pub max_line_bytes: usize,
    pub max_field_bytes: usize,
    pub max_columns: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_line_bytes: 64 * 1024, max_field_bytes: 8 * 1024, max_columns: 256 }
    }
}

impl Limits {
    /// How much of a file's start must show a header and a first row: two records at the
    /// limit, and some blank lines.
    pub fn prefix_bytes(&self) -> usize {
        2 * self.max_line_bytes + 64 * 1024
    }
}

/// Which limit a record broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Oversize {
    #[error("the row is longer than {0} bytes")]
    Line(usize),
    #[error("the row has more than {0} columns")]
    Columns(usize),
    #[error("a field is longer than {0} bytes")]
    Field(usize),
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The record starting at `line` broke a limit; it was skipped, and reading can go on.
    #[error("line {line}: {oversize}")]
    Oversize { line: u64, oversize: Oversize },
}

/// A CSV reader that knows the true line each record starts on. (The `csv` crate's own line
/// numbers drift with CRLF line ends and skipped blank lines, and every rejected row must name
/// its real line.)
#[derive(Debug)]
pub struct LineReader<R> {
    input: R,
    core: csv_core::Reader,
    limits: Limits,
    buffer: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    /// The line of `buffer[start]`.
    line: u64,
    fields: Vec<u8>,
    ends: Vec<usize>,
}

/// A reader over `input` with `limits`; the header is its first record.
pub fn reader<R: Read>(input: R, limits: Limits) -> LineReader<R> {
    with_buffer(input, limits, 1 << 20)
}

pub(super) fn with_buffer<R: Read>(input: R, limits: Limits, buffer: usize) -> LineReader<R> {
    LineReader {
        input,
        core: csv_core::Reader::new(),
        limits,
        buffer: vec![0; buffer],
        start: 0,
        end: 0,
        eof: false,
        line: 1,
        fields: vec![0; 4096.min(limits.max_line_bytes.max(1))],
        ends: vec![0; 64.min(limits.max_columns.max(1))],
    }
}

impl<R: Read> LineReader<R> {
    fn fill(&mut self) -> std::io::Result<()> {
        if self.start == self.end && !self.eof {
            self.start = 0;
            self.end = loop {
                match self.input.read(&mut self.buffer) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            };
            self.eof = self.end == 0;
        }
        Ok(())
    }

    /// Whether the input has run out: the last record read ended with the input, not with a
    /// line end (it may be cut short if more input was to come).
    pub fn at_end(&self) -> bool {
        self.eof
    }

    /// Reads the next record into `record` and returns the line it starts on; `None` at the end.
    /// Blank lines are skipped (and counted).
    pub fn read(&mut self, record: &mut ByteRecord) -> Result<Option<u64>, ReadError> {
        // Skip line ends and blank lines up to the record's first byte.
        loop {
            self.fill()?;
            if self.eof {
                return Ok(None);
            }
            match self.buffer[self.start] {
                b'\n' => self.line += 1,
                b'\r' => {}
                _ => break,
            }
            self.start += 1;
        }
        let first_line = self.line;
        let Limits { max_line_bytes, max_field_bytes, max_columns } = self.limits;
        let (mut out, mut nends) = (0, 0);
        // Once a limit is broken, the rest of the record is read into the same buffers and
        // dropped: the reader moves past it without holding it.
        let mut refused: Option<Oversize> = None;
        loop {
            self.fill()?;
            let input = &self.buffer[self.start..self.end];
            let (result, nin, nout, nend) =
                self.core.read_record(input, &mut self.fields[out..], &mut self.ends[nends..]);
            self.line += input[..nin].iter().filter(|b| **b == b'\n').count() as u64;
            self.start += nin;
            out += nout;
            nends += nend;
            if refused.is_none() {
                // The fields finished in this call, and the one still open.
                let mut from = if nends > nend { self.ends[nends - nend - 1] } else { 0 };
                for &to in &self.ends[nends - nend..nends] {
                    if to - from > max_field_bytes {
                        refused = Some(Oversize::Field(max_field_bytes));
                    }
                    from = to;
                }
                if out - from > max_field_bytes {
                    refused = Some(Oversize::Field(max_field_bytes));
                }
            }
            match result {
                ReadRecordResult::InputEmpty => {}
                ReadRecordResult::OutputFull if self.fields.len() < max_line_bytes => {
                    self.fields.resize((self.fields.len() * 2).min(max_line_bytes), 0);
                }
                ReadRecordResult::OutputFull => {
                    refused.get_or_insert(Oversize::Line(max_line_bytes));
                }
                ReadRecordResult::OutputEndsFull if self.ends.len() < max_columns => {
                    self.ends.resize((self.ends.len() * 2).min(max_columns), 0);
                }
                ReadRecordResult::OutputEndsFull => {
                    refused.get_or_insert(Oversize::Columns(max_columns));
                }
                ReadRecordResult::Record => break,
                ReadRecordResult::End => {
                    if nends == 0 && refused.is_none() {
                        return Ok(None);
                    }
                    break;
                }
            }
            if refused.is_some() {
                (out, nends) = (0, 0);
            }
        }
        record.clear();
        if let Some(oversize) = refused {
            return Err(ReadError::Oversize { line: first_line, oversize });
        }
        let mut from = 0;
        for &to in &self.ends[..nends] {
            record.push_field(&self.fields[from..to]);
            from = to;
        }
        Ok(Some(first_line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Limits {
        Limits { max_line_bytes: 40, max_field_bytes: 16, max_columns: 4 }
    }

    /// Every record of `input` as (line, fields) or the line and limit it broke.
    fn all(input: &[u8], limits: Limits) -> Vec<Result<(u64, usize), (u64, Oversize)>> {
        let mut reader = with_buffer(input, limits, 7);
        let mut record = ByteRecord::new();
        let mut out = Vec::new();
        loop {
            match reader.read(&mut record) {
                Ok(Some(line)) => out.push(Ok((line, record.len()))),
                Ok(None) => return out,
                Err(ReadError::Oversize { line, oversize }) => out.push(Err((line, oversize))),
                Err(error) => panic!("{error}"),
            }
        }
    }

    #[test]
    fn a_record_over_a_limit_is_skipped_at_its_line_and_reading_goes_on() {
        let long_line = format!("{}\n", ["abcdefghijklmno"; 3].join(","));
        let wide = "a,b,c,d,e\n";
        let long_field = format!("\"{}\",b\n", "x".repeat(17));
        let quoted_lines = "\"a\nb\",c\n";
        let file = format!("h1,h2\n{long_line}ok,1\n{wide}{long_field}{quoted_lines}last,2");
        assert_eq!(
            all(file.as_bytes(), small()),
            [
                Ok((1, 2)),
                Err((2, Oversize::Line(40))),
                Ok((3, 2)),
                Err((4, Oversize::Columns(4))),
                Err((5, Oversize::Field(16))),
                Ok((6, 2)),
                Ok((8, 2)),
            ]
        );
    }

    #[test]
    fn memory_stays_within_the_limits_whatever_the_record() {
        // 8 MiB of commas on one line: 8 million empty fields.
        let commas = vec![b','; 8 << 20];
        let mut commas_reader = reader(&commas[..], Limits::default());
        let mut record = ByteRecord::new();
        assert!(matches!(
            commas_reader.read(&mut record),
            Err(ReadError::Oversize { line: 1, oversize: Oversize::Columns(256) })
        ));
        assert!(commas_reader.ends.len() <= 256 && commas_reader.fields.len() <= 64 * 1024, "buffers grew");
        let one_field = vec![b'x'; 8 << 20];
        let mut field_reader = reader(&one_field[..], Limits::default());
        let refused = field_reader.read(&mut record);
        assert!(matches!(refused, Err(ReadError::Oversize { oversize: Oversize::Field(_), .. })), "{refused:?}");
        assert!(field_reader.fields.len() <= 64 * 1024, "buffers grew past the limits");
        assert!(matches!(field_reader.read(&mut record), Ok(None)));
    }
}
