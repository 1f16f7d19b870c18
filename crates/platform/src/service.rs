//! What every service binary shares: turning configuration into a running process with one
//! clear line on failure, and the base every service builds on (Kafka connection checked,
//! topics provisioned, a producer, health/metrics on the admin listener).

use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::FromArgMatches as _;
use clap::error::ErrorKind;
use tokio::net::TcpListener;

use crate::config::{CommonConfig, KafkaConfig, ShutdownConfig, TelemetryConfig};
use crate::health::{self, Health, Listening};
use crate::kafka::DeadLetters;
use crate::kafka::topics;
use crate::kafka::{self, Producer};
use crate::registry::Registry;
use crate::shutdown::Shutdown;
use crate::topic::Topics;

/// A service as the common `main` runs it: configuration from flags and environment, a build
/// that binds, connects and catches up, then a run until shutdown.
pub trait Service: Sized + Send + 'static {
    type Config: clap::Parser + std::fmt::Debug + Send;

    /// `api-gateway`: in the logs, and in the one line a failure prints.
    const NAME: &'static str;

    /// Where `/health`, `/ready`, `/metrics` (and `/digest`) are served.
    fn admin_addr(&self) -> SocketAddr;

    /// Binds its listeners, connects, rebuilds its state: returns once ready to serve.
    fn build(config: Self::Config, shutdown: Shutdown) -> impl Future<Output = anyhow::Result<Self>> + Send;

    /// Serves until `shutdown`; then stops taking work, drains, commits and flushes.
    fn run_until_stopped(self, shutdown: Shutdown) -> impl Future<Output = anyhow::Result<()>> + Send;
}

// jemalloc, for Rust and (unprefixed, so it replaces the C library's `malloc`) for librdkafka:
// records are allocated on the threads that send them and freed on librdkafka's, and glibc's
// arenas serialize such frees behind a lock. Producing 1M records of 200 bytes costs 2.7 s of
// CPU with glibc, 1.1-1.4 s with jemalloc; with a `traceparent` header, 4.0-4.4 s against 1.3 s.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc returns freed memory to the system only when a thread allocating in the same arena
/// gets round to it, so a service gone idle after a burst (an import, an export, a rebuild)
/// kept the burst's memory. Its background threads return it after the decay time (10 s) in
/// any case: idle RSS at 1M users, gateway 258 -> 247 bytes per user, export-worker 285 -> 256
/// (`just bench`, 2026-11-25). `MALLOC_CONF` still overrides it.
#[cfg(feature = "jemalloc")]
fn purge_in_the_background() {
    if std::env::var_os("MALLOC_CONF").is_none()
        && let Err(error) = tikv_jemalloc_ctl::background_thread::write(true)
    {
        eprintln!("jemalloc's background threads could not be started: {error}");
    }
}

/// The whole `main` of a service's binary: `fn main() -> ExitCode { run::<Application>() }`.
pub fn run<S: Service>() -> ExitCode {
    #[cfg(feature = "jemalloc")]
    purge_in_the_background();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("{}: cannot start the async runtime: {error}", S::NAME);
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(main(S::NAME, |config: S::Config, shutdown: Shutdown| async move {
        S::build(config, shutdown.clone()).await?.run_until_stopped(shutdown).await
    }));
    // Work still running now was given up past the drain bound (blocking tasks, say): not
    // waited for.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    code
}

/// The body of every `main` (services through [`run`], tools directly): parse config (a bad
/// value exits 2 with one line on stderr), set up logs and signal handling, run until shutdown,
/// and turn a failure into one line on stderr and exit code 1. The configuration must flatten
/// a [`TelemetryConfig`] and a [`ShutdownConfig`] (every [`CommonConfig`] does): the logs are
/// set up from the first; the second bounds the time from a shutdown signal to the end.
pub async fn main<C, F, Fut>(name: &'static str, run: F) -> ExitCode
where
    C: clap::Parser + std::fmt::Debug,
    F: FnOnce(C, Shutdown) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let parsed = C::command().try_get_matches().and_then(|matches| {
        let process = (TelemetryConfig::from_arg_matches(&matches)?, ShutdownConfig::from_arg_matches(&matches)?);
        Ok((C::from_arg_matches(&matches)?, process))
    });
    let (config, (telemetry, stopping)) = match parsed {
        Ok(parsed) => parsed,
        Err(error) if matches!(error.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = error.print();
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            let message = error.to_string();
            let first = message.lines().next().unwrap_or_default().trim_start_matches("error: ");
            eprintln!("{name}: invalid configuration: {first}");
            return ExitCode::from(2);
        }
    };
    let telemetry = crate::telemetry::init(name, &telemetry);
    tracing::info!(?config, "{name} starting");
    let shutdown = Shutdown::new().on_signals();
    let outcome = within_drain(run(config, shutdown.clone()), &shutdown, stopping.drain()).await;
    telemetry.shutdown().await;
    match outcome {
        Ok(()) => {
            tracing::info!("{name} stopped cleanly");
            ExitCode::SUCCESS
        }
        Err(error) => {
            tracing::error!(error = %format!("{error:#}"), "{name} failed");
            eprintln!("{name}: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// The process took longer than its drain bound to stop.
#[derive(Debug, thiserror::Error)]
#[error(
    "did not stop within SHUTDOWN_DRAIN_SECS ({0:?}) of the shutdown signal; exiting with work \
     unfinished (what was not committed is delivered again after a restart)"
)]
pub struct DrainExceeded(pub std::time::Duration);

/// Runs `work` to its end, but for at most `drain` once `shutdown` has started.
pub async fn within_drain(
    work: impl Future<Output = anyhow::Result<()>>,
    shutdown: &Shutdown,
    drain: std::time::Duration,
) -> anyhow::Result<()> {
    tokio::pin!(work);
    tokio::select! {
        outcome = &mut work => return outcome,
        () = shutdown.wait() => {}
    }
    match tokio::time::timeout(drain, work).await {
        Ok(outcome) => outcome,
        Err(_) => Err(DrainExceeded(drain).into()),
    }
}

/// The readiness check that stays false until the service has built everything it serves
/// from (its other checks appear one by one as it gets to them).
const STARTED: &str = "started";

/// The part of a running service that is the same everywhere.
#[derive(Debug)]
pub struct ServiceBase {
    pub name: &'static str,
    pub health: Health,
    pub producer: Producer,
    pub kafka: KafkaConfig,
    pub registry: Registry,
    /// Every project topic, bound to its record and schema.
    pub topics: Topics,
    /// Answering since the start; taken by [`ServiceBase::serve_until_stopped`].
    admin: std::sync::Mutex<Option<Listening>>,
    /// Routes a service adds to its admin listener (`/digest`).
    admin_routes: std::sync::Mutex<axum::Router>,
    admin_addr: SocketAddr,
}

impl ServiceBase {
    /// Binds the admin listener and answers on it at once (`/ready`: 503 with what the
    /// service waits for), checks that Kafka and the Schema Registry answer, ensures the topic
    /// catalog and the subjects (compatibility level, this version's schemas), creates the
    /// producer and keeps the `kafka` readiness check true to whether Kafka answers. Fails with
    /// a clear error on a busy port, an unreachable broker or registry, or a schema the
    /// registry refuses as incompatible.
    pub async fn build(
        name: &'static str,
        admin_addr: SocketAddr,
        config: &CommonConfig,
        shutdown: &Shutdown,
    ) -> anyhow::Result<Self> {
        let (kafka_config, topics_config) = (&config.kafka, &config.topics);
        let admin = TcpListener::bind(admin_addr)
            .await
            .with_context(|| format!("cannot listen on {admin_addr} (admin: health, metrics)"))?;
        crate::telemetry::prometheus();
        let health = Health::new(name);
        health.not_ready(STARTED, "starting");
        health.not_ready("kafka", "connecting");
        let admin = Listening::start(admin, health::router(health.clone()), shutdown.clone())?;
        let admin_addr = admin.local_addr();
        tracing::info!("admin (health, ready, metrics) listening on http://{admin_addr}");
        let cluster = kafka::check_connection(kafka_config).await?;
        tracing::info!(bootstrap = %kafka_config.bootstrap_servers, brokers = cluster.brokers, "connected to Kafka");
        topics::ensure_and_log(kafka_config, &topics_config.catalog()).await?;
        let producer = Producer::new(kafka_config, name)?;
        health.ready("kafka", format!("{} broker(s) at {}", cluster.brokers, kafka_config.bootstrap_servers));
        tokio::spawn(kafka::watch_connection(kafka_config.clone(), health.clone(), shutdown.clone()));
        health.not_ready(STARTED, "setting up the schema registry subjects");
        let registry = Registry::new(&config.registry, kafka_config.startup_timeout());
        registry.check().await?;
        let topics = Topics::bind(topics_config, &registry).await.context("setting up the schema registry subjects")?;
        tracing::info!(url = %registry.url(), "connected to the schema registry; subjects set up");
        health.ready("registry", format!("answers at {}", registry.url()));
        tokio::spawn(crate::registry::watch(registry.clone(), health.clone(), shutdown.clone()));
        health.not_ready(STARTED, "reading its state");
        let admin = std::sync::Mutex::new(Some(admin));
        let admin_routes = std::sync::Mutex::new(axum::Router::new());
        Ok(Self {
            name,
            health,
            producer,
            kafka: kafka_config.clone(),
            registry,
            topics,
            admin,
            admin_routes,
            admin_addr,
        })
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// Where this service's readers send records they can never apply.
    pub fn dead_letters(&self) -> DeadLetters {
        DeadLetters {
            producer: self.producer.clone(),
            topic: self.topics.dead_letters.clone(),
            reader: self.name.to_owned(),
        }
    }

    /// Adds a route to the admin listener (before it is served).
    pub fn admin_route(&self, path: &str, route: axum::routing::MethodRouter) {
        let mut routes = self.admin_routes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *routes = std::mem::take(&mut *routes).route(path, route);
    }

    /// Serves `/health`, `/ready`, `/metrics` and the added routes until shutdown, then
    /// flushes the producer. Call it once, when the service has started: `/ready` can pass
    /// from now on.
    pub async fn serve_until_stopped(&self) -> anyhow::Result<()> {
        let admin = self.admin.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        let admin = admin.context("the admin listener is served once")?;
        let extra = std::mem::take(&mut *self.admin_routes.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        let router = health::router(self.health.clone()).merge(extra);
        self.health.ready(STARTED, "started");
        admin.serve(router).await.context("admin server failed")?;
        self.producer
            .flush(std::time::Duration::from_secs(30))
            .await
            .context("flushing the Kafka producer on shutdown")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn work_ends_on_its_own_until_shutdown_then_within_the_drain_bound() {
        let shutdown = Shutdown::new();
        let quick = within_drain(async { Ok(()) }, &shutdown, Duration::from_secs(5));
        assert!(quick.await.is_ok());

        // No bound before the signal: a day of work is a day of work.
        let long = within_drain(
            async {
                tokio::time::sleep(Duration::from_secs(86_400)).await;
                Ok(())
            },
            &shutdown,
            Duration::from_secs(5),
        );
        assert!(long.await.is_ok());

        let stuck = {
            let shutdown = shutdown.clone();
            tokio::spawn(async move { within_drain(std::future::pending(), &shutdown, Duration::from_secs(5)).await })
        };
        tokio::time::sleep(Duration::from_secs(60)).await;
        shutdown.trigger();
        let started = tokio::time::Instant::now();
        let outcome = stuck.await.unwrap();
        assert_eq!(started.elapsed(), Duration::from_secs(5), "given up at the bound, not before");
        assert!(outcome.is_err_and(|e| e.downcast_ref::<DrainExceeded>().is_some()), "the drain exceeded");
    }
}
