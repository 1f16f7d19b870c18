//! The user-management domain, shared by every service and free of I/O:
//!
//! - [`user`]: the user and its validated fields (`Email::parse`, `Name::parse`, `Age::parse`);
//! - [`command`], [`event`], [`reply`]: what travels on the commands, events and replies topics;
//! - [`import`]: bulk import requests and their status; [`import_file`]: the CSV format;
//! - [`export`]: export filters, columns, requests and status; [`book`]: the status of bulk jobs;
//! - [`decide`]: the rules, as a pure function from a command and the current users to a
//!   decision (an event to apply, nothing to change, or a rejection with its reason);
//! - [`view`]: the users as a read model built by applying events (each service keeps one);
//! - [`wire`]: the domain's messages as the records of the Avro contract (`contract`, generated
//!   from `schemas/`), checked both ways.
//!
//! Nothing here opens a socket or reads a file; services do that through `platform`.

pub mod book;
pub mod command;
pub mod decide;
pub mod event;
pub mod export;
pub mod import;
pub mod import_file;
pub mod reply;
pub mod stored;
pub mod time;
pub mod user;
pub mod view;
pub mod wire;

pub use uuid::Uuid;
