//! Test data for the user-management system, depending on no service:
//!
//! - [`generate`]: realistic import files (plausible names, unique emails, quoted fields,
//!   optional ages) with a chosen share of bad rows of every kind the importer reports;
//!   deterministic for a seed. `just gen-csv` writes one.
//!
//! The system tests (`tests/system`) and the benchmark (`tools/bench`) use it.

pub mod generate;
