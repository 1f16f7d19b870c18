//! Who is calling, and what they may do.
//!
//! The gateway turns a request's credentials into a [`Principal`] with a [`Role`]:
//! - bearer tokens (JWT): HS256 with a shared secret, RS256/ES256 (and their longer variants)
//!   with public keys from a JWK set (a file or a URL), checked for signature, expiry (with a
//!   clock-skew leeway), audience and, when configured, issuer ([`verify`]);
//! - API keys for machines, stored as SHA-256 hashes only ([`api_keys`]): a key is long and
//!   random, so a fast hash is enough and its cost is paid on every request.
//!
//! [`config::AuthConfig`] is the one configuration block; [`dev`] mints local development
//! tokens (`just token <role>`) from a secret made on this machine, never built in.

pub mod api_keys;
pub mod config;
pub mod dev;
mod jwks;
pub mod verify;

use std::fmt;
use std::str::FromStr;

pub use config::{AuthConfig, Secret};
pub use verify::{AuthError, Authenticator, SetupError};

/// What a principal may do; each role can do everything the ones before it can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Read users.
    Reader,
    /// Also create, change and delete users, and follow their commands.
    Writer,
    /// Also imports, exports, their files and job lists.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Reader, Role::Writer, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reader => "reader",
            Self::Writer => "writer",
            Self::Admin => "admin",
        }
    }

    /// Whether this role covers `needed`.
    pub fn allows(self, needed: Role) -> bool {
        self >= needed
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|role| role.as_str().eq_ignore_ascii_case(raw.trim()))
            .ok_or_else(|| format!("unknown role {raw:?}: one of reader, writer, admin"))
    }
}

/// An authenticated caller: who (`jwt:<sub>`, `apikey:<name>`, or `anonymous` while
/// authentication is off) and with which role. The id travels in every command and event the
/// caller causes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub id: String,
    pub role: Role,
}

impl Principal {
    /// The caller when authentication is disabled: may do everything.
    pub fn anonymous() -> Self {
        Self { id: "anonymous".into(), role: Role::Admin }
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.id, self.role)
    }
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_and_parse_by_name() {
        assert!(Role::Admin.allows(Role::Writer) && Role::Writer.allows(Role::Reader));
        assert!(!Role::Reader.allows(Role::Writer) && !Role::Writer.allows(Role::Admin));
        assert_eq!("Writer".parse::<Role>(), Ok(Role::Writer));
        assert!("root".parse::<Role>().is_err());
    }
}
