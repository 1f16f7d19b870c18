//! One cancellation token per process: SIGTERM or Ctrl-C cancels it, and every loop (HTTP
//! servers, consumers) selects on it to stop accepting work, drain, commit and flush.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio_util::sync::CancellationToken;

/// A cheap, cloneable handle on the process's shutdown signal.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
}

impl Shutdown {
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels this handle when the process receives SIGTERM or Ctrl-C (SIGINT).
    pub fn on_signals(self) -> Self {
        let this = self.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutdown signal received: stopping intake, draining, committing");
            this.trigger();
        });
        self
    }

    /// Starts the shutdown (idempotent).
    pub fn trigger(&self) {
        self.token.cancel();
    }

    pub fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves once shutdown has started.
    pub async fn wait(&self) {
        self.token.cancelled().await;
    }

    /// A child that is cancelled with this one but can also be cancelled on its own
    /// (one component stopping without stopping the process, in tests).
    pub fn child(&self) -> Self {
        Self { token: self.token.child_token() }
    }

    /// A shutdown for what the work in flight at this one still needs, such as the gateway's
    /// reply and projection readers (a request being drained waits for its reply): see
    /// [`Later`].
    pub fn later(&self) -> Later {
        let later = Later { shutdown: Shutdown::new(), held: Arc::default() };
        let (signal, this) = (self.clone(), later.clone());
        tokio::spawn(async move {
            signal.wait().await;
            if !this.held.load(Ordering::SeqCst) {
                this.shutdown.trigger();
            }
        });
        later
    }
}

/// A shutdown that comes with its parent's until [`Later::hold`] (a service still starting
/// has nothing in flight), and after it at [`Later::release`] (once the work in flight has
/// drained).
#[derive(Debug, Clone)]
pub struct Later {
    shutdown: Shutdown,
    held: Arc<AtomicBool>,
}

impl Later {
    pub fn shutdown(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// From now on, the parent's shutdown no longer ends it: [`Later::release`] does.
    pub fn hold(&self) {
        self.held.store(true, Ordering::SeqCst);
    }

    /// The work in flight has drained: it ends.
    pub fn release(&self) {
        self.shutdown.trigger();
    }
}

async fn wait_for_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(%err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(err) => {
                tracing::error!(%err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_child_stops_with_its_parent_but_not_the_other_way_round() {
        let parent = Shutdown::new();
        let child = parent.child();
        child.trigger();
        assert!(!parent.is_triggered());
        let other = parent.child();
        parent.trigger();
        other.wait().await;
        assert!(other.is_triggered());
    }

    #[tokio::test]
    async fn later_comes_with_the_signal_until_held_then_only_when_released() {
        let signal = Shutdown::new();
        let unheld = signal.later();
        let held = signal.later();
        held.hold();
        signal.trigger();
        unheld.shutdown().wait().await;
        let waited = tokio::time::timeout(std::time::Duration::from_millis(100), held.shutdown().wait()).await;
        assert!(waited.is_err(), "held past the signal");
        held.release();
        assert!(held.shutdown().is_triggered());
    }
}
