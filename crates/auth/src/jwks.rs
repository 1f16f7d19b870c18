//! The public keys of asymmetrically signed tokens, from a JWK set file or URL, re-read in the
//! background (periodically, and soon after a token names a key the set does not hold, for key
//! rotation) so that verifying a token never waits on I/O.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use tokio::sync::Notify;

use crate::verify::SetupError;

/// A verification key of the set.
pub(crate) struct Key {
    pub(crate) kid: Option<String>,
    /// The one algorithm the key is for, when the set says (`alg`).
    pub(crate) algorithm: Option<Algorithm>,
    pub(crate) family: AlgorithmFamily,
    pub(crate) key: DecodingKey,
}

#[derive(Debug, Clone)]
enum Source {
    File(PathBuf),
    Url(String),
}

/// The current keys; cheap to read from any thread.
pub(crate) struct KeySet {
    source: Source,
    keys: RwLock<Arc<Vec<Key>>>,
    /// Counts the sets read so far: what a token verified with one of them remembers.
    generation: AtomicU64,
    wanted: Notify,
    http: reqwest::Client,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySet").field("source", &self.source).field("keys", &self.current().len()).finish()
    }
}

/// At most one re-read this often on demand (a flood of tokens naming unknown keys must not
/// become a flood of fetches).
const ON_DEMAND_PAUSE: Duration = Duration::from_secs(10);

impl KeySet {
    /// Reads the set once (failing startup if it cannot), then keeps it fresh every `refresh`.
    pub(crate) async fn load(location: &str, refresh: Duration) -> Result<Arc<Self>, SetupError> {
        let source = if location.starts_with("http://") || location.starts_with("https://") {
            Source::Url(location.to_owned())
        } else {
            Source::File(PathBuf::from(location))
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| SetupError::Jwks(format!("cannot make an HTTP client: {e}")))?;
        let set = Arc::new(Self {
            source,
            keys: RwLock::new(Arc::new(Vec::new())),
            generation: AtomicU64::new(0),
            wanted: Notify::new(),
            http,
        });
        let keys = set.read().await?;
        if keys.is_empty() {
            return Err(SetupError::Jwks(format!("{location} holds no RSA or EC key")));
        }
        set.replace(keys);
        tokio::spawn(Arc::clone(&set).keep_fresh(refresh));
        Ok(set)
    }

    fn replace(&self, keys: Vec<Key>) {
        *self.keys.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(keys);
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Changes whenever the set is read again (whether or not its keys changed).
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub(crate) fn current(&self) -> Arc<Vec<Key>> {
        Arc::clone(&self.keys.read().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// Asks for a re-read soon (a token named a key id the set does not hold).
    pub(crate) fn want_refresh(&self) {
        self.wanted.notify_one();
    }

    async fn keep_fresh(self: Arc<Self>, every: Duration) {
        loop {
            // Whichever comes first: the period, or a request (then at most once per pause).
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = self.wanted.notified() => {}
            }
            match self.read().await {
                Ok(keys) if !keys.is_empty() => {
                    self.replace(keys);
                }
                Ok(_) => tracing::warn!(source = ?self.source, "the JWK set is empty now; keeping the keys it had"),
                Err(error) => tracing::warn!(%error, "cannot re-read the JWK set; keeping the keys it had"),
            }
            tokio::time::sleep(ON_DEMAND_PAUSE.min(every)).await;
        }
    }

    async fn read(&self) -> Result<Vec<Key>, SetupError> {
        let text = match &self.source {
            Source::File(path) => tokio::fs::read_to_string(path)
                .await
                .map_err(|e| SetupError::Jwks(format!("cannot read {}: {e}", path.display())))?,
            Source::Url(url) => {
                let fetch = async { self.http.get(url).send().await?.error_for_status()?.text().await };
                fetch.await.map_err(|e| SetupError::Jwks(format!("cannot fetch {url}: {e}")))?
            }
        };
        parse(&text)
    }
}

/// The RSA and EC keys of a JWK set document. Symmetric (`oct`) keys are refused: a shared
/// secret has no place in a published key set.
pub(crate) fn parse(text: &str) -> Result<Vec<Key>, SetupError> {
    let set: JwkSet = serde_json::from_str(text).map_err(|e| SetupError::Jwks(format!("not a JWK set: {e}")))?;
    let mut keys = Vec::new();
    for jwk in &set.keys {
        let family = match jwk.algorithm {
            AlgorithmParameters::RSA(_) => AlgorithmFamily::Rsa,
            AlgorithmParameters::EllipticCurve(_) => AlgorithmFamily::Ec,
            _ => {
                tracing::warn!(kid = ?jwk.common.key_id, "skipping a JWK that is neither RSA nor EC");
                continue;
            }
        };
        let algorithm = jwk.common.key_algorithm.and_then(|alg| Algorithm::try_from(alg).ok());
        let key = DecodingKey::from_jwk(jwk)
            .map_err(|e| SetupError::Jwks(format!("unusable key {:?}: {e}", jwk.common.key_id)))?;
        keys.push(Key { kid: jwk.common.key_id.clone(), algorithm, family, key });
    }
    Ok(keys)
}
