//! A client that has lost every broker gets its bootstrap servers back.
//!
//! librdkafka 2.10+ drops each broker missing from a Metadata response. A broker that is still
//! starting answers Metadata with no brokers at all, so a client that asks at that moment is
//! left with none (librdkafka#5301: only the group's or the transactions' coordinator handle
//! remains, and it has no address). Nothing in librdkafka reconnects it: the re-bootstrap
//! timer is stopped by that very response, and no request can go out to start it again. The
//! outage test hit this once in five runs: Kafka restarted, and user-service's consumer stayed
//! in `query-coord` for good while the commands piled up.
//!
//! Every long-lived client reports librdkafka's statistics (every few seconds); when they list
//! no configured or learned broker, [`BrokerWatch`] adds the bootstrap servers again
//! (`rd_kafka_brokers_add`, which is how librdkafka's own re-bootstrap starts). From there the
//! client connects, asks for metadata and learns the cluster as on its first start.

use std::ffi::CString;
use std::sync::atomic::{AtomicPtr, Ordering};

use rdkafka::Statistics;
use rdkafka::bindings::rd_kafka_brokers_add;
use rdkafka::client::{Client, ClientContext};
use rdkafka::types::RDKafka;

use crate::config::KafkaConfig;

/// The statistics interval of every client watched (the longest such a client stays without
/// brokers, once the cluster answers again).
pub(crate) const STATISTICS_INTERVAL_MS: &str = "5000";

/// Whether the brokers of librdkafka's statistics, by their source, hold none it could connect
/// to: none configured (the bootstrap servers) and none learned from metadata. Logical brokers
/// (the coordinators) have no address of their own.
fn lost_every_broker<'a>(sources: impl IntoIterator<Item = &'a str>) -> bool {
    !sources.into_iter().any(|source| matches!(source, "configured" | "learned"))
}

/// Part of a client's context: given the client once it exists ([`BrokerWatch::attach`]), it
/// restores the bootstrap servers whenever the client's statistics show it lost every broker.
pub(crate) struct BrokerWatch {
    bootstrap: CString,
    /// The client whose context holds this watch; null until attached.
    client: AtomicPtr<RDKafka>,
}

impl BrokerWatch {
    pub(crate) fn new(config: &KafkaConfig) -> Self {
        let list = config.bootstrap_servers.replace('\0', "");
        Self { bootstrap: CString::new(list).unwrap_or_default(), client: AtomicPtr::new(std::ptr::null_mut()) }
    }

    /// Remembers the client this watch belongs to (its context holds the watch).
    pub(crate) fn attach<C: ClientContext>(&self, client: &Client<C>) {
        self.client.store(client.native_ptr(), Ordering::Release);
    }

    /// Called from the context's statistics callback.
    pub(crate) fn check(&self, statistics: &Statistics) {
        if !lost_every_broker(statistics.brokers.values().map(|broker| broker.source.as_str())) {
            return;
        }
        let client = self.client.load(Ordering::Acquire);
        if client.is_null() {
            return;
        }
        let added = add_brokers(client, &self.bootstrap);
        metrics::counter!("kafka_client_rebootstraps_total").increment(1);
        tracing::warn!(client = %statistics.client_id, bootstrap = ?self.bootstrap, added,
            "the Kafka client had lost every broker (librdkafka#5301); bootstrap servers added again");
    }
}

/// `rd_kafka_brokers_add`: safe to call from any thread while the client lives.
#[allow(unsafe_code)]
fn add_brokers(client: *mut RDKafka, list: &CString) -> i32 {
    // SAFETY: `client` is the handle of the client whose context owns the watch, taken from
    // the live client (`attach`); the watch is only used from that client's statistics
    // callback, which librdkafka runs while the handle is alive (never after
    // `rd_kafka_destroy`). The list is a valid NUL-terminated string that librdkafka copies.
    unsafe { rd_kafka_brokers_add(client, list.as_ptr()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_coordinators_left_is_every_broker_lost() {
        assert!(lost_every_broker([]));
        assert!(lost_every_broker(["logical"]));
        assert!(lost_every_broker(["logical", "logical", "internal"]));
    }

    #[test]
    fn a_configured_or_learned_broker_is_not_lost() {
        assert!(!lost_every_broker(["configured"]));
        assert!(!lost_every_broker(["logical", "learned"]));
        assert!(!lost_every_broker(["configured", "learned", "logical"]));
    }
}
