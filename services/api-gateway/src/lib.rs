//! The public HTTP API of the user-management system (axum).
//!
//! Writes become Avro commands on Kafka; user-service's replies come back over the replies
//! topic ([`commands`]). Reads are answered from the gateway's own projection of the users
//! (`platform::users`: the state topic on start, then the events); a write answers only once
//! that projection shows it, so a read through the same gateway right after sees it.
//!
//! - [`config`]: environment configuration;
//! - [`http`]: the routes (`/users`, `/imports`, `/exports`, `/commands/{id}`, health);
//! - `jobs`: imports and exports: job announcements, the job status views, blob storage;
//! - [`error`]: the problem+json error type;
//! - [`Application`]: startup and the run loop until SIGTERM/Ctrl-C.

pub mod commands;
pub mod config;
pub mod error;
pub mod http;
mod jobs;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use auth::Authenticator;
use platform::blobs::BlobStore;
use platform::health::{Health, Listening};
use platform::kafka::{StartAt, Tail};
use platform::service::{Service, ServiceBase};
use platform::{Later, Shutdown};
use tokio::net::TcpListener;

pub use config::Config;

use commands::{CommandBus, Replies};
use http::{AppState, Shared};
use jobs::{Exports, Imports, Jobs};

/// A started gateway: listeners bound, projection caught up, replies followed.
#[derive(Debug)]
pub struct Application {
    base: ServiceBase,
    /// The public API, answering 503 while the gateway starts.
    listener: Listening,
    config: Config,
    state: AppState,
    authenticator: Authenticator,
    /// The readers requests wait on: they stop once the API has drained.
    readers: Later,
}

impl Application {
    pub fn http_addr(&self) -> SocketAddr {
        self.listener.local_addr()
    }
}

impl Service for Application {
    type Config = Config;

    const NAME: &'static str = "api-gateway";

    fn admin_addr(&self) -> SocketAddr {
        self.base.admin_addr()
    }

    async fn build(config: Config, shutdown: Shutdown) -> anyhow::Result<Self> {
        let authenticator = Authenticator::build(&config.auth).await.context("authentication")?;
        if authenticator.is_disabled() {
            tokio::spawn(http::warn_while_disabled(shutdown.clone()));
        }
        let listener = TcpListener::bind(config.http_addr)
            .await
            .with_context(|| format!("cannot listen on {} (public API)", config.http_addr))?;
        // Answering from now on: `/health`, and 503 until the gateway has caught up.
        let listener = Listening::start(listener, http::starting(Health::new(Self::NAME)), shutdown.clone())?;
        let base = ServiceBase::build(Self::NAME, config.admin_addr, &config.common, &shutdown).await?;
        let blobs = BlobStore::open(&config.blobs)?;
        let topics = &base.topics;

        // What a request in flight at shutdown still waits for (its reply, its write becoming
        // readable, a job's status) keeps running until the API has drained.
        let readers = shutdown.later();
        let (users, positions) = base.users_projection(readers.shutdown()).await?;

        let status_ttl = Duration::from_secs(config.command_status_ttl_secs);
        let timeout = Duration::from_millis(config.command_timeout_ms);
        let bus = CommandBus::new(
            base.producer.clone(),
            topics.user_commands.clone(),
            topics.user_replies.clone(),
            timeout,
            status_ttl,
        );
        // Replies from the last status TTL on, so a restarted gateway still knows recent outcomes.
        let replies = Tail::start(&base.kafka, topics.user_replies.name(), StartAt::Since(status_ttl)).await?;
        replies.follow(Replies(bus.clone()), readers.shutdown()).await?;
        tokio::spawn(expire_outcomes(bus.clone(), shutdown.clone()));

        let following = readers.shutdown();
        let imports = Imports {
            jobs: Jobs::follow(&base, "imports", (&topics.import_status, &topics.import_requests), timeout, &following)
                .await?,
            blobs: blobs.clone(),
            max_bytes: config.max_import_bytes,
            limits: config.csv.limits(),
        };
        let exports = Exports {
            jobs: Jobs::follow(&base, "exports", (&topics.export_status, &topics.export_requests), timeout, &following)
                .await?,
            blobs,
        };

        tracing::info!(
            requester = %bus.requester(),
            authentication = authenticator.describe(),
            "api listening on http://{}",
            listener.local_addr()
        );
        let search_budget = Duration::from_millis(config.limits.search_budget_ms);
        let state = AppState::new(Shared { users, positions, bus, imports, exports, search_budget });
        Ok(Self { base, listener, config, state, authenticator, readers })
    }

    /// Serves until shutdown: stops accepting, finishes in-flight requests, flushes Kafka.
    async fn run_until_stopped(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let rate_limit = http::RateLimit::new(&self.config.limits);
        tokio::spawn(rate_limit.clone().forget_idle(shutdown.clone()));
        let router = http::router(self.state, self.base.health.clone(), self.authenticator, rate_limit, &self.config);
        self.readers.hold();
        let api = async {
            let served = self.listener.serve(router).await;
            self.readers.release();
            served
        };
        let (api, admin) = tokio::join!(api, self.base.serve_until_stopped());
        api.context("public API server failed")?;
        admin
    }
}

async fn expire_outcomes(bus: CommandBus, shutdown: Shutdown) {
    let mut every = tokio::time::interval(Duration::from_secs(30));
    loop {
        tokio::select! {
            () = shutdown.wait() => return,
            _ = every.tick() => bus.expire(),
        }
    }
}
