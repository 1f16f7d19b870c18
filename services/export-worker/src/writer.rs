//! CSV serialisation of users: chunks of rows are formatted in parallel (rayon) and written in
//! order. The header names the columns as the import expects them, so the default export
//! (`email,name,age`) imports as it is.

use std::borrow::Borrow;

use domain::export::Column;
use domain::stored::StoredUser;
use rayon::prelude::*;

fn writer(capacity: usize) -> csv::Writer<Vec<u8>> {
    csv::WriterBuilder::new().has_headers(false).from_writer(Vec::with_capacity(capacity))
}

fn finish(writer: csv::Writer<Vec<u8>>) -> Vec<u8> {
    // `into_inner` only flushes into the Vec, which cannot fail.
    writer.into_inner().expect("flushing into memory cannot fail")
}

/// The header line.
pub fn header(columns: &[Column]) -> Vec<u8> {
    let mut out = writer(128);
    // Infallible: see `finish`.
    let _ = out.write_record(columns.iter().map(|c| c.as_str()));
    finish(out)
}

/// The lines of `users`, in order.
pub fn format_rows<U: Borrow<StoredUser>>(users: &[U], columns: &[Column]) -> Vec<u8> {
    let mut out = writer(users.len() * 48);
    let mut numbers = itoa::Buffer::new();
    let mut uuid = uuid::Uuid::encode_buffer();
    for user in users {
        let user: &StoredUser = user.borrow();
        for column in columns {
            // Infallible: see `finish`.
            let _ = match column {
                Column::Id => out.write_field(user.id().hyphenated().encode_lower(&mut uuid).as_bytes()),
                Column::Email => out.write_field(user.email()),
                Column::Name => out.write_field(user.name()),
                Column::Age => match user.age() {
                    Some(age) => out.write_field(numbers.format(age.get())),
                    None => out.write_field(""),
                },
                Column::CreatedAt => out.write_field(user.created_at().to_string()),
                Column::UpdatedAt => out.write_field(user.updated_at().to_string()),
                Column::Version => out.write_field(numbers.format(user.version())),
            };
        }
        let _ = out.write_record(None::<&[u8]>);
    }
    finish(out)
}

/// The lines of `users` formatted in parallel chunks of `chunk_rows`, in order.
pub fn format_parallel<U: Borrow<StoredUser> + Sync>(
    users: &[U],
    columns: &[Column],
    chunk_rows: usize,
) -> Vec<Vec<u8>> {
    users.par_chunks(chunk_rows.max(1)).map(|chunk| format_rows(chunk, columns)).collect()
}

#[cfg(test)]
mod tests {
    use domain::time::Timestamp;
    use domain::user::{Age, Email, Name, User};
    use uuid::Uuid;

    use super::*;

    fn user(email: &str, name: &str, age: Option<i64>) -> StoredUser {
        StoredUser::new(&User {
            id: Uuid::nil(),
            email: Email::parse(email).unwrap(),
            name: Name::parse(name).unwrap(),
            age: age.map(|a| Age::parse(a).unwrap()),
            created_at: Timestamp::from_millis(1_000),
            updated_at: Timestamp::from_millis(2_000),
            version: 3,
            locale: None,
        })
    }

    #[test]
    fn fields_are_quoted_only_when_needed() {
        let users = [user("a@b.co", "Plain", Some(7)), user("q@b.co", "Doe, \"Jo\"\nJr", None)];
        let text = String::from_utf8(format_rows(&users, &Column::DEFAULT)).unwrap();
        assert_eq!(text, "a@b.co,Plain,7\nq@b.co,\"Doe, \"\"Jo\"\"\nJr\",\n");
        assert_eq!(header(&Column::DEFAULT), b"email,name,age\n");
    }

    #[test]
    fn every_column_has_a_text_form() {
        let text = String::from_utf8(format_rows(&[user("a@b.co", "A", Some(150))], &Column::ALL)).unwrap();
        assert_eq!(
            text,
            "00000000-0000-0000-0000-000000000000,a@b.co,A,150,1970-01-01T00:00:01.000Z,1970-01-01T00:00:02.000Z,3\n"
        );
    }

    #[test]
    fn parallel_chunks_keep_the_order() {
        let users: Vec<StoredUser> = (0..1000).map(|i| user(&format!("u{i}@x.io"), "N", Some(i % 100))).collect();
        let joined: Vec<u8> = format_parallel(&users, &Column::DEFAULT, 7).concat();
        assert_eq!(joined, format_rows(&users, &Column::DEFAULT));
    }
}
