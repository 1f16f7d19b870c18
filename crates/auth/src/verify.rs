//! Turning a request's credentials into a [`Principal`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;

use crate::api_keys::ApiKeys;
use crate::config::AuthConfig;
use crate::jwks::KeySet;
use crate::{Principal, Role};

/// A verified token is remembered for at most this long, and never past its expiry: checking
/// a JWT (base64, JSON, HMAC or RSA/EC) was the largest part of the gateway's own work on a
/// `GET` (11% of its CPU, `perf`; BENCHMARKS.md). A token is a string signed whole: the same
/// string checked with the same keys again gives the same answer until it expires. A change of
/// the JWK set forgets every remembered token.
pub const REMEMBERED_FOR: Duration = Duration::from_secs(30);
/// How many verified tokens are remembered (the least used are forgotten first).
const REMEMBERED_TOKENS: usize = 10_000;
/// A longer token is checked every time: the memory holds tokens, not whatever a caller sends.
const MAX_REMEMBERED_LEN: usize = 4 * 1024;

/// The shortest HS256 secret accepted: a shorter one can be brute-forced from a single token.
pub const MIN_SECRET_BYTES: usize = 32;

/// Why the gateway cannot start with this configuration.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(
        "no way to authenticate callers is configured: set GATEWAY_JWT_SECRET_FILE, GATEWAY_JWKS or \
         GATEWAY_API_KEYS(_FILE) (`just dev` makes a local development secret), or \
         GATEWAY_AUTH_DISABLED=true to serve without authentication"
    )]
    NothingConfigured,
    #[error("the JWT secret: {0}")]
    Secret(String),
    #[error("the JWK set: {0}")]
    Jwks(String),
    #[error("the API keys: {0}")]
    ApiKeys(String),
}

/// Why a request is not authenticated (401), or authenticated without any role (403).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("this needs credentials: a bearer token (Authorization: Bearer <jwt>) or an API key (X-API-Key)")]
    Missing,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid: {0}")]
    InvalidToken(&'static str),
    #[error("the API key is not valid")]
    InvalidKey,
    #[error("the token grants no role (claim `role` or `roles`: reader, writer or admin)")]
    NoRole,
}

impl AuthError {
    /// The `WWW-Authenticate` challenge to answer with (RFC 6750).
    pub fn challenge(&self) -> String {
        const REALM: &str = "Bearer realm=\"user-management\"";
        match self {
            Self::Missing => REALM.to_owned(),
            Self::NoRole => format!("{REALM}, error=\"insufficient_scope\""),
            other => format!("{REALM}, error=\"invalid_token\", error_description=\"{other}\""),
        }
    }
}

/// Checks credentials against the configured secret, key set and API keys. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    disabled: bool,
    hmac: Option<DecodingKey>,
    jwks: Option<Arc<KeySet>>,
    /// One validation per accepted algorithm: audience, issuer, expiry, leeway.
    validations: HashMap<Algorithm, Validation>,
    keys: ApiKeys,
    description: String,
    leeway_secs: u64,
    /// Tokens verified lately, by the whole token.
    verified: quick_cache::sync::Cache<String, Verified>,
}

/// A token that passed every check.
#[derive(Debug, Clone)]
struct Verified {
    principal: Principal,
    /// Until when it may be taken without a check: [`REMEMBERED_FOR`] after it was checked, or
    /// its expiry (with the leeway) if sooner.
    until: Instant,
    /// The JWK set it was checked against ([`KeySet::generation`]; 0 without a set).
    keys: u64,
}

/// The algorithms accepted from a JWK set; HS256 only with the configured secret.
const ASYMMETRIC: [Algorithm; 6] =
    [Algorithm::RS256, Algorithm::RS384, Algorithm::RS512, Algorithm::PS256, Algorithm::ES256, Algorithm::ES384];

#[derive(Deserialize)]
struct Claims {
    sub: String,
    /// Seconds since the Unix epoch (required and checked by the validation).
    exp: u64,
    #[serde(default)]
    role: Option<Value>,
    #[serde(default)]
    roles: Option<Value>,
}

impl Authenticator {
    /// Reads the secret, the key set and the API keys; fails if none is configured (unless
    /// authentication is disabled) or any is unusable.
    pub async fn build(config: &AuthConfig) -> Result<Self, SetupError> {
        let mut parts = Vec::new();
        let secret = match (&config.jwt_secret_file, &config.jwt_secret) {
            (Some(path), _) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| SetupError::Secret(format!("cannot read {}: {e}", path.display())))?,
            ),
            (None, Some(secret)) => Some(secret.expose().to_owned()),
            (None, None) => None,
        };
        let hmac = match secret.as_deref().map(str::trim) {
            Some(secret) if secret.len() < MIN_SECRET_BYTES => {
                return Err(SetupError::Secret(format!("shorter than {MIN_SECRET_BYTES} bytes")));
            }
            Some(secret) => {
                parts.push("HS256 tokens".to_owned());
                Some(DecodingKey::from_secret(secret.as_bytes()))
            }
            None => None,
        };
        let jwks = match &config.jwks {
            Some(location) => {
                let set = KeySet::load(location, Duration::from_secs(config.jwks_refresh_secs.max(1))).await?;
                parts.push(format!("RS/ES tokens ({} keys from {location})", set.current().len()));
                Some(set)
            }
            None => None,
        };
        let mut keys = ApiKeys::default();
        if let Some(listed) = &config.api_keys {
            keys.add(listed.expose(), "GATEWAY_API_KEYS").map_err(SetupError::ApiKeys)?;
        }
        if let Some(path) = &config.api_keys_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| SetupError::ApiKeys(format!("cannot read {}: {e}", path.display())))?;
            keys.add(&text, &path.display().to_string()).map_err(SetupError::ApiKeys)?;
        }
        if !keys.is_empty() {
            parts.push(format!("{} API keys", keys.len()));
        }
        if parts.is_empty() && !config.disabled {
            return Err(SetupError::NothingConfigured);
        }
        let validations = std::iter::once(Algorithm::HS256)
            .chain(ASYMMETRIC)
            .map(|algorithm| {
                let mut validation = Validation::new(algorithm);
                validation.set_required_spec_claims(&["exp", "sub", "aud"]);
                validation.set_audience(&[&config.jwt_audience]);
                if let Some(issuer) = &config.jwt_issuer {
                    validation.set_issuer(&[issuer]);
                    validation.required_spec_claims.insert("iss".into());
                }
                validation.leeway = config.jwt_leeway_secs;
                validation.validate_nbf = true;
                (algorithm, validation)
            })
            .collect();
        let description = if config.disabled { "disabled".to_owned() } else { parts.join(", ") };
        Ok(Self {
            inner: Arc::new(Inner {
                disabled: config.disabled,
                hmac,
                jwks,
                validations,
                keys,
                description,
                leeway_secs: config.jwt_leeway_secs,
                verified: quick_cache::sync::Cache::new(REMEMBERED_TOKENS),
            }),
        })
    }

    pub fn is_disabled(&self) -> bool {
        self.inner.disabled
    }

    /// What is accepted, for the startup log (names no secret).
    pub fn describe(&self) -> &str {
        &self.inner.description
    }

    /// The caller behind an `Authorization` header value and an `X-API-Key` header value.
    pub fn authenticate(&self, authorization: Option<&str>, api_key: Option<&str>) -> Result<Principal, AuthError> {
        if self.inner.disabled {
            return Ok(Principal::anonymous());
        }
        if let Some(key) = api_key {
            return self.inner.keys.find(key).cloned().ok_or(AuthError::InvalidKey);
        }
        let Some(authorization) = authorization.map(str::trim) else {
            return Err(AuthError::Missing);
        };
        let (scheme, token) = authorization.split_once(' ').unwrap_or((authorization, ""));
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(AuthError::InvalidToken("only Bearer tokens are accepted"));
        }
        self.verify(token.trim())
    }

    /// A token verified lately is taken as it was (see [`REMEMBERED_FOR`]); any other is checked.
    fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let keys = self.inner.jwks.as_ref().map_or(0, |set| set.generation());
        if let Some(known) = self.inner.verified.get(token)
            && known.keys == keys
            && Instant::now() < known.until
        {
            return Ok(known.principal);
        }
        let (principal, expires) = self.check(token)?;
        if token.len() <= MAX_REMEMBERED_LEN {
            let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs();
            let valid_for = Duration::from_secs((expires.saturating_add(self.inner.leeway_secs)).saturating_sub(now));
            let until = Instant::now() + valid_for.min(REMEMBERED_FOR);
            self.inner.verified.insert(token.to_owned(), Verified { principal: principal.clone(), until, keys });
        }
        Ok(principal)
    }

    /// Checks `token` in full: its principal and expiry (seconds since the Unix epoch).
    fn check(&self, token: &str) -> Result<(Principal, u64), AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::InvalidToken("malformed"))?;
        let validation =
            self.inner.validations.get(&header.alg).ok_or(AuthError::InvalidToken("algorithm not accepted"))?;
        let claims = if header.alg.family() == AlgorithmFamily::Hmac {
            let key = self.inner.hmac.as_ref().ok_or(AuthError::InvalidToken("algorithm not accepted"))?;
            decode(token, key, validation)?
        } else {
            let set = self.inner.jwks.as_ref().ok_or(AuthError::InvalidToken("algorithm not accepted"))?;
            let keys = set.current();
            let mut candidates = keys
                .iter()
                .filter(|k| k.family == header.alg.family() && k.algorithm.is_none_or(|a| a == header.alg))
                .filter(|k| header.kid.is_none() || k.kid == header.kid)
                .peekable();
            if candidates.peek().is_none() {
                if header.kid.is_some() {
                    set.want_refresh();
                }
                return Err(AuthError::InvalidToken("signed with an unknown key"));
            }
            let mut last = AuthError::InvalidToken("bad signature");
            let mut verified = None;
            for key in candidates {
                match decode(token, &key.key, validation) {
                    Ok(claims) => {
                        verified = Some(claims);
                        break;
                    }
                    Err(error) => last = error,
                }
            }
            verified.ok_or(last)?
        };
        let role = [claims.role, claims.roles]
            .into_iter()
            .flatten()
            .flat_map(|value| match value {
                Value::String(one) => vec![one],
                Value::Array(many) => many.into_iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
                _ => Vec::new(),
            })
            .filter_map(|name| name.parse::<Role>().ok())
            .max()
            .ok_or(AuthError::NoRole)?;
        Ok((Principal { id: format!("jwt:{}", claims.sub), role }, claims.exp))
    }
}

fn decode(token: &str, key: &DecodingKey, validation: &Validation) -> Result<Claims, AuthError> {
    match jsonwebtoken::decode::<Claims>(token, key, validation) {
        Ok(data) => Ok(data.claims),
        Err(error) => Err(match error.kind() {
            ErrorKind::ExpiredSignature => AuthError::Expired,
            ErrorKind::InvalidSignature => AuthError::InvalidToken("bad signature"),
            ErrorKind::InvalidAudience => AuthError::InvalidToken("wrong audience"),
            ErrorKind::InvalidIssuer => AuthError::InvalidToken("wrong issuer"),
            ErrorKind::ImmatureSignature => AuthError::InvalidToken("not valid yet"),
            ErrorKind::MissingRequiredClaim(_) => {
                AuthError::InvalidToken("a required claim (exp, sub, aud) is missing")
            }
            ErrorKind::InvalidAlgorithm => AuthError::InvalidToken("algorithm not accepted"),
            _ => AuthError::InvalidToken("malformed"),
        }),
    }
}
