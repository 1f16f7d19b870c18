//! Development tokens: a random HS256 secret made on this machine (never built in) and tokens
//! signed with it, for `just dev`, `just token <role>`, the tests and the benchmark.

use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{EncodingKey, Header};
use serde::Serialize;

use crate::Role;

/// Where `just dev` and `just token` keep the local development secret.
pub const DEV_SECRET_FILE: &str = ".local/dev/jwt-secret";

/// The audience the gateway expects unless configured otherwise.
pub const DEFAULT_AUDIENCE: &str = "user-management";

/// The secret in `path`, made (random, 256 bits, readable by the owner only) if absent.
pub fn secret_file(path: &Path) -> io::Result<String> {
    if let Ok(secret) = std::fs::read_to_string(path) {
        return Ok(secret.trim().to_owned());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let secret = random_secret()?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => io::Write::write_all(&mut file, secret.as_bytes())?,
        // Made by someone else meanwhile: theirs is the one.
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
        Err(error) => return Err(error),
    }
    Ok(std::fs::read_to_string(path)?.trim().to_owned())
}

/// 256 random bits as hex.
pub fn random_secret() -> io::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| io::Error::other(e.to_string()))?;
    Ok(crate::hex(&bytes))
}

/// The claims of a token this project mints.
#[derive(Debug, Clone, Serialize)]
pub struct Claims {
    pub sub: String,
    pub role: String,
    pub aud: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    pub iat: u64,
    pub exp: u64,
}

impl Claims {
    /// A token for `subject` with `role`, valid for `ttl` from now, for the default audience.
    pub fn new(subject: &str, role: Role, ttl: Duration) -> Self {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        Self {
            sub: subject.to_owned(),
            role: role.as_str().to_owned(),
            aud: DEFAULT_AUDIENCE.to_owned(),
            iss: None,
            iat: now,
            exp: now + ttl.as_secs(),
        }
    }
}

/// `claims` signed with HS256 and `secret`.
pub fn sign(secret: &str, claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
    jsonwebtoken::encode(&Header::default(), claims, &EncodingKey::from_secret(secret.trim().as_bytes()))
}
