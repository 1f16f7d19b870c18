//! `just gen-csv N [path] [--bad-share S] [--seed N]`: writes a realistic import file.

use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use testkit::generate::{Spec, generate};

#[derive(Debug, Parser)]
#[command(name = "gen-csv", about = "Generate a CSV of users to import")]
struct Args {
    /// Data rows to write.
    rows: u64,
    /// Output file.
    #[arg(default_value = "users.csv")]
    path: PathBuf,
    /// Share of bad rows (invalid email, empty name, bad age, repeated email, missing column).
    #[arg(long, default_value_t = 0.0)]
    bad_share: f64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if !(0.0..=1.0).contains(&args.bad_share) {
        eprintln!("gen-csv: --bad-share must be between 0 and 1");
        return ExitCode::from(2);
    }
    let started = Instant::now();
    let written = File::create(&args.path).and_then(|file| {
        generate(BufWriter::new(file), &Spec { rows: args.rows, bad_share: args.bad_share, seed: args.seed }, false)
    });
    match written {
        Ok(summary) => {
            let bytes = std::fs::metadata(&args.path).map(|m| m.len()).unwrap_or_default();
            println!(
                "{}: {} rows ({} bad), {:.1} MiB in {:.2}s",
                args.path.display(),
                summary.rows,
                summary.bad,
                bytes as f64 / (1 << 20) as f64,
                started.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("gen-csv: cannot write {}: {error}", args.path.display());
            ExitCode::FAILURE
        }
    }
}
