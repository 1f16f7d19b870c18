//! Routing user-service's replies to the import waiting for them. Every worker instance tails
//! the replies topic from where it started; replies to other requesters are skipped undecoded.

use std::sync::Arc;

use contract::replies::UserCommandReply;
use dashmap::DashMap;
use domain::reply::{Outcome, REQUESTER_HEADER, Reply};
use platform::kafka::{HandleError, Handler, Incoming};
use platform::topic::Topic;
use tokio::sync::mpsc;
use uuid::Uuid;

/// The requester id of import workers.
pub(crate) const REQUESTER: &str = "import-worker";

/// Running imports by id, each with the channel its replies go to.
#[derive(Debug, Clone, Default)]
pub(crate) struct Router {
    routes: Arc<DashMap<Uuid, mpsc::UnboundedSender<Reply>>>,
}

impl Router {
    /// Replies correlated with `import_id` arrive on the returned channel until `close`.
    pub(crate) fn open(&self, import_id: Uuid) -> mpsc::UnboundedReceiver<Reply> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.routes.insert(import_id, tx);
        rx
    }

    pub(crate) fn close(&self, import_id: Uuid) {
        self.routes.remove(&import_id);
    }
}

#[derive(Debug)]
pub(crate) struct Replies {
    pub(crate) router: Router,
    pub(crate) topic: Topic<UserCommandReply>,
}

impl Handler for Replies {
    async fn handle(&self, message: &Incoming) -> Result<(), HandleError> {
        if message.header(REQUESTER_HEADER) != Some(REQUESTER.as_bytes()) {
            return Ok(());
        }
        let reply: Reply = self.topic.decode(message).await?;
        if let (Outcome::Batch(_), Some(route)) = (&reply.outcome, self.router.routes.get(&reply.correlation_id)) {
            let _ = route.send(reply);
        }
        Ok(())
    }
}
