//! `just schema-check [DIR]`: the contract in `DIR` (default `schemas`) against every release in
//! `DIR/releases/`, at FULL_TRANSITIVE. Prints a line per record; exits 1 if any change would
//! be refused by the project's subjects, 2 if the schemas cannot be read.

use std::path::PathBuf;
use std::process::ExitCode;

use schema_registry::evolution::{self, LEVEL};

fn main() -> ExitCode {
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "schemas".into()));
    let verdicts = match evolution::check(&dir) {
        Ok(verdicts) => verdicts,
        Err(error) => {
            eprintln!("schema-check: {error}");
            return ExitCode::from(2);
        }
    };
    let mut refused = 0;
    for verdict in &verdicts {
        let against =
            if verdict.releases.is_empty() { "new, no release yet".into() } else { verdict.releases.join(", ") };
        if verdict.problems.is_empty() {
            println!("ok       {} ({LEVEL} against {against})", verdict.record);
        } else {
            refused += 1;
            println!("REFUSED  {} ({LEVEL} against {against}):", verdict.record);
            for problem in &verdict.problems {
                println!("           {problem}");
            }
        }
    }
    if refused > 0 {
        eprintln!("schema-check: {refused} record(s) changed incompatibly; see schemas/README.md for what may change");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
