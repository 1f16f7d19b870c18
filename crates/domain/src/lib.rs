//! The user-management domain, shared by every service and free of I/O: validated value types
//! (`Email::parse(..) -> Result`), the user aggregate, commands, events and command outcomes,
//! and their mapping to the Avro contract in `schemas/`.
//!
//! Nothing here may open a socket, read a file or spawn a task; the services do that through
//! the `platform` crate. The types arrive with the users issue; until then the crate only fixes
//! its place in the workspace.
