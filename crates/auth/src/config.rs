//! The authentication settings of the gateway, flattened into its configuration.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use clap::Args;

/// A value that must never be printed: its `Debug` and `Display` say `[redacted]`, so a
/// configuration can be logged whole.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Ok(Self(raw.to_owned()))
    }
}

/// How callers prove who they are. At least one way must be configured, or authentication
/// explicitly disabled: there is no built-in secret.
#[derive(Debug, Clone, Args)]
pub struct AuthConfig {
    /// Serve without authentication, every caller acting as admin. Only for a closed bench:
    /// a warning is logged every minute while it is on.
    #[arg(long = "auth-disabled", env = "GATEWAY_AUTH_DISABLED", default_value_t = false)]
    pub disabled: bool,

    /// A file holding the HS256 secret tokens are signed with (at least 32 bytes; `just dev`
    /// makes one in .local/dev/jwt-secret).
    #[arg(long = "jwt-secret-file", env = "GATEWAY_JWT_SECRET_FILE")]
    pub jwt_secret_file: Option<PathBuf>,

    /// The HS256 secret itself, for platforms that hand secrets over as variables (prefer the
    /// file).
    #[arg(long = "jwt-secret", env = "GATEWAY_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<Secret>,

    /// The public keys of RS256/ES256 tokens: a JWK set file, or an http(s) URL re-read every
    /// `jwks-refresh-secs` and when a token names a key it does not hold.
    #[arg(long = "jwks", env = "GATEWAY_JWKS")]
    pub jwks: Option<String>,

    /// How often a JWK set URL is re-read.
    #[arg(long = "jwks-refresh-secs", env = "GATEWAY_JWKS_REFRESH_SECS", default_value_t = 300)]
    pub jwks_refresh_secs: u64,

    /// Tokens must name this audience (`aud`).
    #[arg(long = "jwt-audience", env = "GATEWAY_JWT_AUDIENCE", default_value = "user-management")]
    pub jwt_audience: String,

    /// When set, tokens must come from this issuer (`iss`).
    #[arg(long = "jwt-issuer", env = "GATEWAY_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// Clock skew tolerated on a token's expiry and not-before times.
    #[arg(long = "jwt-leeway-secs", env = "GATEWAY_JWT_LEEWAY_SECS", default_value_t = 30)]
    pub jwt_leeway_secs: u64,

    /// API keys, comma-separated `name:role:sha256-hex` (the SHA-256 of the key, never the key;
    /// `just api-key <name> <role>` makes one).
    #[arg(long = "api-keys", env = "GATEWAY_API_KEYS", hide_env_values = true)]
    pub api_keys: Option<Secret>,

    /// A file of API keys, one `name:role:sha256-hex` a line (`#` starts a comment).
    #[arg(long = "api-keys-file", env = "GATEWAY_API_KEYS_FILE")]
    pub api_keys_file: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Probe {
        #[command(flatten)]
        auth: AuthConfig,
    }

    #[test]
    fn secrets_never_show_in_a_logged_configuration() {
        let probe = Probe::try_parse_from([
            "probe",
            "--jwt-secret",
            "hunter2-hunter2-hunter2-hunter2-x",
            "--api-keys",
            "etl:writer:abcdef",
        ])
        .unwrap();
        let logged = format!("{probe:?} {probe:#?}");
        assert!(!logged.contains("hunter2") && !logged.contains("abcdef"), "{logged}");
        assert_eq!(probe.auth.jwt_secret.unwrap().expose(), "hunter2-hunter2-hunter2-hunter2-x");
    }
}
