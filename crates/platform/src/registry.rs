//! The Schema Registry through Confluent's REST API (ours without Docker, Confluent's with
//! it): the calls the services make, each answering a typed error that says whether trying
//! again can help (the registry unreachable or failing) or not (it refused: an unknown id, an
//! incompatible schema).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use clap::Args;
use serde::Deserialize;
use serde_json::json;

use crate::health::Health;
use crate::shutdown::Shutdown;

/// Where the Schema Registry is.
#[derive(Debug, Clone, Args)]
pub struct RegistryConfig {
    /// Base URL of a Confluent-compatible Schema Registry.
    #[arg(long = "schema-registry-url", env = "SCHEMA_REGISTRY_URL", default_value = "http://127.0.0.1:8081")]
    pub url: String,
}

/// Compatibility levels as the registry names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compatibility {
    Backward,
    Full,
    /// Every version reads, and is read by, every other: both directions of a rolling upgrade
    /// hold, and old history stays readable. The project's subjects run at this level.
    FullTransitive,
}

impl Compatibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Backward => "BACKWARD",
            Self::Full => "FULL",
            Self::FullTransitive => "FULL_TRANSITIVE",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// No answer (connection refused, timeout): worth trying again.
    #[error("cannot reach the schema registry at {url}: {source}")]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// A 5xx answer: worth trying again.
    #[error("the schema registry failed to {what} (HTTP {status}): {message}")]
    Failed { what: String, status: u16, message: String },
    /// A 4xx answer: asking again gets the same.
    #[error("the schema registry refused to {what} (HTTP {status}, error {code}): {message}")]
    Refused { what: String, status: u16, code: i64, message: String },
}

impl RegistryError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unreachable { .. } | Self::Failed { .. })
    }

    /// The registry does not know the subject, version or schema asked for.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Refused { status: 404, .. })
    }
}

/// Confluent's error body.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    error_code: i64,
    message: String,
}

/// A cheap `Clone` client.
#[derive(Debug, Clone)]
pub struct Registry {
    url: String,
    client: reqwest::Client,
    /// Ids of schemas asked for and not found for want of an answer (the registry away or
    /// failing): a reader waits on each until it is found. Shared by the clones.
    unanswered: Arc<Mutex<BTreeSet<u32>>>,
}

impl Registry {
    /// Calls give up after `timeout` (an unreachable registry error).
    pub fn new(config: &RegistryConfig, timeout: Duration) -> Self {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .expect("a client with a timeout and default TLS settings builds");
        Self { url: config.url.trim_end_matches('/').to_owned(), client, unanswered: Arc::default() }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Fails with a clear error if the registry does not answer.
    pub async fn check(&self) -> Result<(), RegistryError> {
        self.call::<serde_json::Value>(reqwest::Method::GET, "/subjects", None, "list subjects").await.map(|_| ())
    }

    /// [`Registry::check`] with a timeout of its own.
    async fn check_within(&self, timeout: Duration) -> Result<(), RegistryError> {
        match tokio::time::timeout(timeout, self.check()).await {
            Ok(answer) => answer,
            Err(_) => Err(RegistryError::Failed {
                what: "list subjects".to_owned(),
                status: 504,
                message: format!("no answer within {timeout:?}"),
            }),
        }
    }

    fn unanswered(&self) -> std::sync::MutexGuard<'_, BTreeSet<u32>> {
        self.unanswered.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets `subject`'s compatibility level (whether or not it has versions yet).
    pub async fn set_compatibility(&self, subject: &str, level: Compatibility) -> Result<(), RegistryError> {
        let body = json!({ "compatibility": level.as_str() });
        let what = format!("set the compatibility of {subject}");
        self.call::<serde_json::Value>(reqwest::Method::PUT, &format!("/config/{subject}"), Some(body), &what)
            .await
            .map(|_| ())
    }

    /// Registers `schema` under `subject` (the same schema again gets the same id) and returns
    /// its id; an incompatible schema is refused with 409.
    pub async fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        #[derive(Deserialize)]
        struct Registered {
            id: u32,
        }
        let body = json!({ "schema": schema, "schemaType": "AVRO" });
        let what = format!("register a schema under {subject}");
        let registered: Registered =
            self.call(reqwest::Method::POST, &format!("/subjects/{subject}/versions"), Some(body), &what).await?;
        Ok(registered.id)
    }

    /// The schema with `id`, as registered.
    pub async fn schema(&self, id: u32) -> Result<String, RegistryError> {
        #[derive(Deserialize)]
        struct Found {
            schema: String,
        }
        let what = format!("find schema {id}");
        let found: Result<Found, _> = self.call(reqwest::Method::GET, &format!("/schemas/ids/{id}"), None, &what).await;
        match &found {
            Err(error) if error.is_retryable() => self.unanswered().insert(id),
            _ => self.unanswered().remove(&id),
        };
        Ok(found?.schema)
    }

    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
        what: &str,
    ) -> Result<T, RegistryError> {
        let unreachable = |source| RegistryError::Unreachable { url: self.url.clone(), source };
        let mut request = self.client.request(method, format!("{}{path}", self.url));
        if let Some(body) = body {
            request = request.header("content-type", "application/vnd.schemaregistry.v1+json").body(body.to_string());
        }
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let text = response.text().await.map_err(unreachable)?;
        if status.is_success() {
            return serde_json::from_str(&text).map_err(|e| RegistryError::Failed {
                what: what.to_owned(),
                status: status.as_u16(),
                message: format!("unexpected answer {text:?}: {e}"),
            });
        }
        let (code, message) = match serde_json::from_str::<ErrorBody>(&text) {
            Ok(body) => (body.error_code, body.message),
            Err(_) => (i64::from(status.as_u16()), text),
        };
        let what = what.to_owned();
        let status = status.as_u16();
        Err(if status >= 500 {
            RegistryError::Failed { what, status, message }
        } else {
            RegistryError::Refused { what, status, code, message }
        })
    }
}

/// How often [`watch`] asks whether the registry answers, and how long it waits.
const WATCH_EVERY: Duration = Duration::from_secs(3);
const WATCH_TIMEOUT: Duration = Duration::from_secs(2);

/// What the `registry` readiness check says.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    Ready(String),
    /// Away, but no reader waits on it: every schema in use is known.
    Degraded(String),
    /// Away while a reader waits for a schema only it can give.
    NotReady(String),
}

fn verdict(url: &str, answer: &Result<(), RegistryError>, unanswered: &BTreeSet<u32>) -> Verdict {
    match answer {
        Ok(()) => Verdict::Ready(format!("answers at {url}")),
        Err(error) if unanswered.is_empty() => {
            Verdict::Degraded(format!("{error}; every schema in use is cached, so nothing waits on it"))
        }
        Err(error) => {
            let ids: Vec<String> = unanswered.iter().map(u32::to_string).collect();
            Verdict::NotReady(format!("{error}; reading waits for schema id(s) {}", ids.join(", ")))
        }
    }
}

/// Keeps the `registry` readiness check of `health` true to the registry until `shutdown`: ready
/// while it answers; degraded while it does not but no reader needs it (every schema met so
/// far is cached, the usual case); not ready while a reader waits for a schema it alone can give.
pub async fn watch(registry: Registry, health: Health, shutdown: Shutdown) {
    let mut every = tokio::time::interval(WATCH_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = None;
    loop {
        tokio::select! {
            () = shutdown.wait() => return,
            _ = every.tick() => {}
        }
        let answer = registry.check_within(WATCH_TIMEOUT).await;
        let now = verdict(&registry.url, &answer, &registry.unanswered());
        let changed = !matches!((&last, &now), (Some(a), b) if std::mem::discriminant(a) == std::mem::discriminant(b));
        match &now {
            Verdict::Ready(detail) => {
                if changed && last.is_some() {
                    tracing::info!(url = %registry.url, "the schema registry answers again");
                }
                health.ready("registry", detail);
            }
            Verdict::Degraded(detail) => {
                if changed {
                    tracing::warn!(url = %registry.url, %detail, "the schema registry does not answer: degraded");
                }
                health.degraded("registry", detail);
            }
            Verdict::NotReady(detail) => {
                if changed {
                    tracing::warn!(url = %registry.url, %detail, "the schema registry does not answer: not ready");
                }
                health.not_ready("registry", detail);
            }
        }
        last = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_unreachable_or_failing_registry_is_worth_a_retry() {
        let refused = RegistryError::Refused { what: "x".into(), status: 404, code: 40403, message: "m".into() };
        let failed = RegistryError::Failed { what: "x".into(), status: 503, message: "m".into() };
        assert!(!refused.is_retryable() && refused.is_not_found());
        assert!(failed.is_retryable() && !failed.is_not_found());
    }

    #[tokio::test]
    async fn a_registry_that_is_not_there_is_unreachable() {
        let registry = Registry::new(&RegistryConfig { url: "http://127.0.0.1:1/".into() }, Duration::from_millis(500));
        assert_eq!(registry.url(), "http://127.0.0.1:1");
        let error = registry.check().await.unwrap_err();
        assert!(error.is_retryable(), "{error}");
        assert!(error.to_string().contains("cannot reach the schema registry at http://127.0.0.1:1"), "{error}");
    }

    #[tokio::test]
    async fn a_schema_asked_for_while_the_registry_is_away_is_remembered_until_found() {
        let registry = Registry::new(&RegistryConfig { url: "http://127.0.0.1:1".into() }, Duration::from_millis(500));
        assert!(registry.schema(7).await.unwrap_err().is_retryable());
        assert_eq!(*registry.unanswered(), BTreeSet::from([7]));
        let away = registry.check().await;
        assert!(
            matches!(verdict(registry.url(), &away, &registry.unanswered()), Verdict::NotReady(d) if d.ends_with("schema id(s) 7"))
        );
        assert!(
            matches!(verdict(registry.url(), &away, &BTreeSet::new()), Verdict::Degraded(d) if d.contains("cached"))
        );
        assert!(matches!(verdict(registry.url(), &Ok(()), &registry.unanswered()), Verdict::Ready(_)));
    }
}
