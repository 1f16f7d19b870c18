//! The short version of the fault suite (`just chaos` runs them all): on a three-node cluster
//! of its own, under load, the leader of a `users.commands` partition is killed, then
//! user-service, then user-service is stopped with SIGTERM; nothing acknowledged is lost,
//! nothing is applied twice, the imports complete with each row once, the projections agree,
//! and the stopped service exits within its drain bound without a message it had applied
//! being delivered again.

use std::path::Path;

use system_tests::chaos::{self, Plan};

#[tokio::test]
async fn a_broker_and_user_service_killed_or_stopped_under_load_lose_nothing_and_apply_nothing_twice() {
    let plan = Plan::quick();
    let reports = chaos::run(Path::new(env!("CARGO_BIN_EXE_service")), &plan).await.expect("the suite runs");
    assert_eq!(reports.len(), plan.faults.len());
    for report in &reports {
        assert!(report.writes.done > 0, "writes went through during {}", report.fault.name());
    }
    let failures: Vec<String> = reports.iter().flat_map(chaos::Report::failures).collect();
    assert!(failures.is_empty(), "{failures:#?}");
}
