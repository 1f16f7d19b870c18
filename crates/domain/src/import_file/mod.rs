//! The import file format: a header row naming the columns (`email`, `name`, and optionally
//! `age` and `locale`, in any order, matched ignoring case and spaces; other columns are
//! ignored with a warning), then one
//! user per row. UTF-8 (a BOM is fine), LF or CRLF, RFC 4180 quoting (commas, quotes and line
//! breaks inside quoted fields). Parsing only: the caller brings the bytes.

mod reader;

use std::io::Read;

use csv::ByteRecord;

pub use reader::{Limits, LineReader, Oversize, ReadError, reader};

use crate::command::CreateUser;
use crate::user::{FieldError, NewUser};

/// Why a whole file cannot be imported (nothing is imported then).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error("the file is empty")]
    Empty,
    #[error("the file is not CSV text (binary content or not UTF-8 in its header)")]
    NotText,
    #[error("missing column {0}: the first line must be a header naming the columns, e.g. email,name,age")]
    MissingColumn(&'static str),
    #[error("column {0} appears more than once in the header")]
    DuplicateColumn(String),
    #[error("the file has a header but no data rows")]
    NoRows,
    #[error("unreadable CSV: {0}")]
    Unreadable(String),
    #[error("the header row is refused: {0}")]
    HeaderTooLarge(Oversize),
    #[error("no header and data row within the first {0} bytes")]
    NoRowWithin(usize),
}

impl From<ReadError> for FileError {
    fn from(error: ReadError) -> Self {
        match error {
            ReadError::Io(error) => Self::Unreadable(error.to_string()),
            // Only the header can make a whole file unreadable; a data row's is its own error.
            ReadError::Oversize { oversize, .. } => Self::HeaderTooLarge(oversize),
        }
    }
}

/// Where each known column is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Columns {
    email: usize,
    name: usize,
    age: Option<usize>,
    locale: Option<usize>,
    /// Header names that are not ours, in file order.
    pub unknown: Vec<String>,
}

impl Columns {
    /// Reads the header record from `reader`.
    pub fn read<R: Read>(reader: &mut LineReader<R>) -> Result<Self, FileError> {
        let mut header = ByteRecord::new();
        match reader.read(&mut header)? {
            Some(_) => Self::from_header(&header),
            None => Err(FileError::Empty),
        }
    }

    pub fn from_header(header: &ByteRecord) -> Result<Self, FileError> {
        let mut names = Vec::with_capacity(header.len());
        for (i, raw) in header.iter().enumerate() {
            let raw = if i == 0 { raw.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(raw) } else { raw };
            if raw.contains(&0) {
                return Err(FileError::NotText);
            }
            let name = std::str::from_utf8(raw).map_err(|_| FileError::NotText)?;
            names.push(name.trim().to_lowercase());
        }
        let find = |wanted: &str| -> Result<Option<usize>, FileError> {
            let mut hits = names.iter().enumerate().filter(|(_, n)| n.as_str() == wanted).map(|(i, _)| i);
            let first = hits.next();
            match hits.next() {
                Some(_) => Err(FileError::DuplicateColumn(wanted.to_owned())),
                None => Ok(first),
            }
        };
        let email = find("email")?.ok_or(FileError::MissingColumn("email"))?;
        let name = find("name")?.ok_or(FileError::MissingColumn("name"))?;
        let age = find("age")?;
        let locale = find("locale")?;
        let known = ["email", "name", "age", "locale"];
        let unknown = names.iter().filter(|n| !known.contains(&n.as_str())).cloned().collect();
        Ok(Self { email, name, age, locale, unknown })
    }
}

/// What is wrong with one row, at its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub line: u64,
    pub field: String,
    pub code: String,
    pub message: String,
}

impl RowError {
    pub fn new(line: u64, error: FieldError) -> Self {
        Self { line, field: error.field, code: error.code, message: error.message }
    }

    /// A data row the limits refused whole (it was skipped, never held).
    pub fn oversize(line: u64, oversize: Oversize) -> Self {
        let code = match oversize {
            Oversize::Line(_) => "row_too_long",
            Oversize::Columns(_) => "too_many_columns",
            Oversize::Field(_) => "field_too_long",
        };
        Self { line, field: "row".into(), code: code.into(), message: oversize.to_string() }
    }
}

/// One data row, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Row {
    Valid { line: u64, email_key: String, user: CreateUser },
    Invalid(Vec<RowError>),
}

/// Checks one data record against the columns and the user rules. `line` is where the record
/// starts in the file (1 is the header).
pub fn check_row(columns: &Columns, record: &ByteRecord, line: u64) -> Row {
    let mut errors = Vec::new();
    let mut text = |index: Option<usize>, field: &str| -> Option<String> {
        let index = index?;
        let Some(raw) = record.get(index) else {
            errors.push(FieldError::new(field, "missing_column", format!("the row has no {field} column")));
            return None;
        };
        match std::str::from_utf8(raw) {
            Ok(value) => Some(value.to_owned()),
            Err(_) => {
                errors.push(FieldError::new(field, "bad_utf8", format!("{field} is not valid UTF-8")));
                None
            }
        }
    };
    let email = text(Some(columns.email), "email");
    let name = text(Some(columns.name), "name");
    let age_text = text(columns.age, "age");
    // An empty cell gives no locale (and keeps an upserted user's).
    let locale = text(columns.locale, "locale").filter(|l| !l.trim().is_empty());
    let age = match age_text.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(raw) => match raw.parse::<i64>() {
            Ok(age) => Some(age),
            Err(_) => {
                errors.push(FieldError::new("age", "invalid", "age must be a whole number"));
                None
            }
        },
    };
    if let (Some(email), Some(name)) = (email, name) {
        let raw = CreateUser { email, name, age, locale };
        match NewUser::parse(&raw) {
            Ok(user) if errors.is_empty() => return Row::Valid { line, email_key: user.email.key(), user: raw },
            Ok(_) => {}
            Err(domain_errors) => {
                let new: Vec<FieldError> =
                    domain_errors.into_iter().filter(|e| !errors_has(&errors, &e.field)).collect();
                errors.extend(new);
            }
        }
    }
    Row::Invalid(errors.into_iter().map(|e| RowError::new(line, e)).collect())
}

fn errors_has(errors: &[FieldError], field: &str) -> bool {
    errors.iter().any(|e| e.field == field)
}

/// A record of nothing but spaces: a blank line, not a row.
pub fn is_blank(record: &ByteRecord) -> bool {
    record.iter().all(|f| f.iter().all(u8::is_ascii_whitespace))
}

/// What the start of an upload says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Precheck {
    /// A valid header and a first data row: the file can be imported (its rows are checked
    /// one by one when it is).
    Importable(Columns),
    /// Not enough bytes yet to tell.
    NeedMore,
    Refused(FileError),
}

/// Whether a file starting with `prefix` can be imported: a valid header within the limits and
/// at least one data row. `complete` says `prefix` is the whole file. Decides from at most
/// [`Limits::prefix_bytes`]: an upload can be refused while it is still arriving.
pub fn precheck_prefix(prefix: &[u8], complete: bool, limits: Limits) -> Precheck {
    let mut reader = reader::with_buffer(prefix, limits, 64 * 1024);
    let mut record = ByteRecord::new();
    // A record that ends where the prefix ends may continue in the bytes still to come.
    let unfinished = |reader: &LineReader<&[u8]>| !complete && reader.at_end();
    let columns = match reader.read(&mut record) {
        Err(error) => return Precheck::Refused(error.into()),
        Ok(None) if complete => return Precheck::Refused(FileError::Empty),
        Ok(None) => return need_more(prefix, limits),
        Ok(Some(_)) if unfinished(&reader) => return need_more(prefix, limits),
        Ok(Some(_)) => match Columns::from_header(&record) {
            Ok(columns) => columns,
            Err(error) => return Precheck::Refused(error),
        },
    };
    loop {
        match reader.read(&mut record) {
            Err(ReadError::Io(error)) => return Precheck::Refused(FileError::Unreadable(error.to_string())),
            // A row refused by the limits is still a row: it is reported when imported.
            Err(ReadError::Oversize { .. }) => return Precheck::Importable(columns),
            Ok(Some(_)) if unfinished(&reader) => return need_more(prefix, limits),
            Ok(Some(_)) if is_blank(&record) => {}
            Ok(Some(_)) => return Precheck::Importable(columns),
            Ok(None) if complete => return Precheck::Refused(FileError::NoRows),
            Ok(None) => return need_more(prefix, limits),
        }
    }
}

fn need_more(prefix: &[u8], limits: Limits) -> Precheck {
    if prefix.len() >= limits.prefix_bytes() {
        Precheck::Refused(FileError::NoRowWithin(limits.prefix_bytes()))
    } else {
        Precheck::NeedMore
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`precheck_prefix`] fed as an upload arrives, chunk by chunk.
    fn precheck<R: Read>(mut input: R, limits: Limits) -> Result<Columns, FileError> {
        let mut prefix = Vec::new();
        let mut chunk = vec![0; 64 * 1024];
        loop {
            let n = input.read(&mut chunk).map_err(|e| FileError::Unreadable(e.to_string()))?;
            prefix.extend_from_slice(&chunk[..n]);
            match precheck_prefix(&prefix, n == 0, limits) {
                Precheck::Importable(columns) => return Ok(columns),
                Precheck::Refused(error) => return Err(error),
                Precheck::NeedMore => {}
            }
        }
    }

    fn rows(file: &str) -> (Columns, Vec<Row>) {
        let mut reader = reader(file.as_bytes(), Limits::default());
        let columns = Columns::read(&mut reader).expect("header");
        let mut rows = Vec::new();
        let mut record = ByteRecord::new();
        while let Some(line) = reader.read(&mut record).expect("a record within the limits") {
            if !is_blank(&record) {
                rows.push(check_row(&columns, &record, line));
            }
        }
        (columns, rows)
    }

    #[test]
    fn lines_are_true_with_crlf_blank_lines_and_quoted_line_breaks() {
        for end in ["\n", "\r\n"] {
            let file =
                ["email,name", "a@example.com,A", "", "  ", "b@example.com,\"B", "B\"", "c@example.com,C"].join(end);
            let (_, rows) = rows(&file);
            assert_eq!(valid_lines(&rows), [2, 5, 7], "line ends {end:?}");
        }
    }

    fn valid_lines(rows: &[Row]) -> Vec<u64> {
        rows.iter().filter_map(|r| if let Row::Valid { line, .. } = r { Some(*line) } else { None }).collect()
    }

    #[test]
    fn columns_are_found_by_name_in_any_order_with_bom_and_crlf() {
        let file = "\u{feff}Age , NAME,email,phone\r\n36,Ada,ada@example.com,123\r\n,Bob,bob@example.com,\r\n";
        let (columns, rows) = rows(file);
        assert_eq!(columns.unknown, ["phone"]);
        assert_eq!(valid_lines(&rows), [2, 3]);
        let Row::Valid { user, .. } = &rows[0] else { panic!() };
        assert_eq!((user.email.as_str(), user.name.as_str(), user.age), ("ada@example.com", "Ada", Some(36)));
    }

    #[test]
    fn quoted_fields_keep_commas_quotes_and_line_breaks_and_lines_stay_true() {
        let file = "email,name\n\"a@example.com\",\"Smith, \"\"Jr\"\"\nSecond line\"\nb@example.com,B\n";
        let (_, rows) = rows(file);
        let Row::Valid { user, .. } = &rows[0] else { panic!("{rows:?}") };
        assert_eq!(user.name, "Smith, \"Jr\"\nSecond line");
        assert_eq!(valid_lines(&rows), [2, 4], "the second record starts on line 4");
    }

    #[test]
    fn each_bad_row_names_its_line_field_and_reason() {
        let file = "email,name,age\nnot-an-email,A,1\nc@example.com,,2\nd@example.com,D,old\ne@example.com\nf@example.com,F,200\n";
        let (_, rows) = rows(file);
        let errors: Vec<(u64, String, String)> = rows
            .iter()
            .flat_map(|r| match r {
                Row::Invalid(errors) => errors.iter().map(|e| (e.line, e.field.clone(), e.code.clone())).collect(),
                Row::Valid { .. } => vec![],
            })
            .collect();
        let expected = [
            (2, "email", "invalid"),
            (3, "name", "required"),
            (4, "age", "invalid"),
            (5, "name", "missing_column"),
            (5, "age", "missing_column"),
            (6, "age", "out_of_range"),
        ];
        assert_eq!(errors.len(), expected.len(), "{errors:?}");
        for ((line, field, code), (l, f, c)) in errors.iter().zip(expected) {
            assert_eq!((*line, field.as_str(), code.as_str()), (l, f, c));
        }
    }

    #[test]
    fn an_optional_locale_column_is_read_checked_and_left_out_when_empty() {
        let file = "email,name,Locale\na@example.com,A,pt_br\nb@example.com,B,\nc@example.com,C,klingon\n";
        let (columns, rows) = rows(file);
        assert!(columns.unknown.is_empty(), "locale is a known column");
        let locales: Vec<Option<&str>> = rows
            .iter()
            .filter_map(|r| if let Row::Valid { user, .. } = r { Some(user.locale.as_deref()) } else { None })
            .collect();
        assert_eq!(locales, [Some("pt_br"), None], "raw values: user-service normalises them");
        let Row::Invalid(errors) = &rows[2] else { panic!("{rows:?}") };
        assert_eq!((errors[0].line, errors[0].field.as_str(), errors[0].code.as_str()), (4, "locale", "invalid"));
    }

    #[test]
    fn invalid_utf8_in_a_field_is_reported_on_its_row() {
        let mut file = b"email,name\n".to_vec();
        file.extend_from_slice(b"x@example.com,\xff\xfe\n");
        let mut reader = reader(&file[..], Limits::default());
        let columns = Columns::read(&mut reader).unwrap();
        let mut record = ByteRecord::new();
        let line = reader.read(&mut record).unwrap().unwrap();
        let Row::Invalid(errors) = check_row(&columns, &record, line) else { panic!() };
        assert_eq!((errors[0].field.as_str(), errors[0].code.as_str()), ("name", "bad_utf8"));
    }

    #[test]
    fn files_that_cannot_be_imported_are_refused_with_the_reason() {
        assert_eq!(precheck(&b""[..], Limits::default()).unwrap_err(), FileError::Empty);
        assert_eq!(precheck(&b"email,name\n"[..], Limits::default()).unwrap_err(), FileError::NoRows);
        assert_eq!(precheck(&b"email,name\n\n  \n"[..], Limits::default()).unwrap_err(), FileError::NoRows);
        assert_eq!(
            precheck(&b"ada@example.com,Ada,36\n"[..], Limits::default()).unwrap_err(),
            FileError::MissingColumn("email")
        );
        assert_eq!(
            precheck(&b"email,email,name\na,b,c\n"[..], Limits::default()).unwrap_err(),
            FileError::DuplicateColumn("email".into())
        );
        assert_eq!(
            precheck(&b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"[..], Limits::default()).unwrap_err(),
            FileError::NotText
        );
        assert!(precheck(&b"email,name\na@b.co,A\n"[..], Limits::default()).is_ok());
    }

    #[test]
    fn the_start_of_an_upload_decides_as_soon_as_it_can_and_never_needs_more_than_its_bound() {
        let limits = Limits { max_line_bytes: 100, max_field_bytes: 50, max_columns: 8 };
        let decide = |prefix: &str, complete| precheck_prefix(prefix.as_bytes(), complete, limits);
        assert_eq!(decide("ema", false), Precheck::NeedMore, "the header may go on");
        assert_eq!(decide("email,name", false), Precheck::NeedMore);
        assert_eq!(decide("email,name\n", false), Precheck::NeedMore, "no row yet");
        assert_eq!(decide("email,name\n\n\na@b.co,A", false), Precheck::NeedMore, "the row may go on");
        assert!(matches!(decide("email,name\na@b.co,A\n", false), Precheck::Importable(_)));
        assert!(matches!(decide("email,name\na@b.co,A", true), Precheck::Importable(_)));
        assert_eq!(decide("email,nom\n", false), Precheck::Refused(FileError::MissingColumn("name")));
        // A header over the limits is refused as soon as it is seen, however much is to come.
        let wide = ",".repeat(20);
        assert_eq!(decide(&wide, false), Precheck::Refused(FileError::HeaderTooLarge(Oversize::Columns(8))));
        let long = "x".repeat(120);
        assert!(matches!(decide(&long, false), Precheck::Refused(FileError::HeaderTooLarge(_))));
        // A data row over the limits is that row's error, reported when imported.
        assert!(matches!(decide(&format!("email,name\n{long}\n"), false), Precheck::Importable(_)));
        let blank = "\n".repeat(limits.prefix_bytes());
        assert_eq!(
            decide(&format!("email,name\n{blank}"), false),
            Precheck::Refused(FileError::NoRowWithin(limits.prefix_bytes()))
        );
    }
}
