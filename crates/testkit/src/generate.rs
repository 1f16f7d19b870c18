//! Realistic test files for imports: plausible names and unique emails, quoted names with
//! commas, optional ages, and a chosen share of bad rows of every kind the importer reports.
//! Deterministic for a given seed.

use std::io::{self, Write};

const FIRST: [&str; 24] = [
    "Ada",
    "Grace",
    "Alan",
    "Edsger",
    "Barbara",
    "Donald",
    "Margaret",
    "Linus",
    "Katherine",
    "Dennis",
    "Frances",
    "Ken",
    "Radia",
    "Tim",
    "Hedy",
    "John",
    "Joan",
    "Niklaus",
    "Sophie",
    "Guido",
    "Anita",
    "Bjarne",
    "Mary",
    "Zoë",
];
const LAST: [&str; 24] = [
    "Lovelace",
    "Hopper",
    "Turing",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "Hamilton",
    "Torvalds",
    "Johnson",
    "Ritchie",
    "Allen",
    "Thompson",
    "Perlman",
    "Berners-Lee",
    "Lamarr",
    "McCarthy",
    "Clarke",
    "Wirth",
    "Wilson",
    "van Rossum",
    "Borg",
    "Stroustrup",
    "Keller",
    "O'Brien",
];
const DOMAINS: [&str; 6] =
    ["example.com", "example.org", "mail.example.net", "corp.example", "uni.example.edu", "ex.io"];

/// What to generate.
#[derive(Debug, Clone)]
pub struct Spec {
    pub rows: u64,
    /// Share of rows that are bad, from 0 to 1.
    pub bad_share: f64,
    pub seed: u64,
}

/// What was generated.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub rows: u64,
    pub bad: u64,
    /// The emails of the good rows (only if asked for).
    pub valid_emails: Vec<String>,
}

/// A small, fast, deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, share: f64) -> bool {
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < share
    }
}

/// Writes a CSV (header `email,name,age`) to `out`.
pub fn generate(out: impl Write, spec: &Spec, keep_valid_emails: bool) -> io::Result<Summary> {
    let mut writer = csv::WriterBuilder::new().flexible(true).buffer_capacity(1 << 20).from_writer(out);
    writer.write_record(["email", "name", "age"])?;
    let mut rng = Rng(spec.seed.max(1));
    let mut summary = Summary::default();
    let mut last_valid: Option<String> = None;
    for i in 0..spec.rows {
        let first = FIRST[rng.below(FIRST.len() as u64) as usize];
        let last = LAST[rng.below(LAST.len() as u64) as usize];
        let domain = DOMAINS[rng.below(DOMAINS.len() as u64) as usize];
        let local: String =
            format!("{first}.{last}.{i}").chars().filter(|c| c.is_ascii_alphanumeric() || *c == '.').collect();
        let email = format!("{}@{domain}", local.to_lowercase());
        let name = if rng.below(20) == 0 { format!("{last}, {first}") } else { format!("{first} {last}") };
        let age = if rng.below(10) == 0 { String::new() } else { rng.below(101).to_string() };
        summary.rows += 1;
        if rng.chance(spec.bad_share) {
            summary.bad += 1;
            match rng.below(6) {
                0 => writer.write_record([email.replace('@', "-at-").as_str(), &name, &age])?,
                1 => writer.write_record([email.as_str(), "", &age])?,
                2 => writer.write_record([email.as_str(), &name, &(151 + rng.below(800)).to_string()])?,
                3 => writer.write_record([email.as_str(), &name, "forty"])?,
                4 => match &last_valid {
                    Some(taken) => writer.write_record([taken.to_uppercase().as_str(), &name, &age])?,
                    None => writer.write_record(["", &name, &age])?,
                },
                _ => writer.write_record([email.as_str()])?,
            }
            continue;
        }
        writer.write_record([email.as_str(), &name, &age])?;
        if keep_valid_emails {
            summary.valid_emails.push(email.clone());
        }
        last_valid = Some(email);
    }
    writer.flush()?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use domain::import_file::{self, Columns, Row};

    use super::*;

    #[test]
    fn the_generated_file_has_the_announced_good_and_bad_rows() {
        let mut file = Vec::new();
        let summary = generate(&mut file, &Spec { rows: 2_000, bad_share: 0.1, seed: 7 }, true).unwrap();
        assert_eq!(summary.rows, 2_000);
        assert!((150..250).contains(&summary.bad), "{}", summary.bad);

        let mut reader = import_file::reader(&file[..], import_file::Limits::default());
        let columns = Columns::read(&mut reader).unwrap();
        let mut record = csv::ByteRecord::new();
        let (mut valid, mut seen) = (Vec::new(), std::collections::HashSet::new());
        while let Some(line) = reader.read(&mut record).unwrap() {
            if let Row::Valid { email_key, user, .. } = import_file::check_row(&columns, &record, line)
                && seen.insert(email_key)
            {
                valid.push(user.email);
            }
        }
        assert_eq!(valid, summary.valid_emails, "exactly the announced rows are good");
    }
}
