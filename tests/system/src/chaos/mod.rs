//! The fault suite (`just chaos`; a short version runs in `just test`): the whole system on a
//! three-node cluster under a steady load of writes through the gateway and an import per
//! fault, with one fault injected at a time. After each fault, with the load paused, it checks
//! the log against what the clients were told: every acknowledged write applied (202s
//! included), none applied twice, the import complete with each row once, and the digests of
//! every users projection equal. Timings are reported, not asserted.

pub mod load;
pub mod stack;
pub mod stop;
pub mod verify;

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use platform::testing::poll;
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

pub use stack::Stack;

use load::{Client, Gate, Shared};
use stop::StopCheck;
use verify::{Applied, Tally};

/// One fault, injected while the load runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// kill -9 of the leader of `users.commands` partition 0, restarted after recovery.
    KillCommandsLeader,
    /// kill -9 of the leader of `users.events` partition 0, restarted after recovery.
    KillEventsLeader,
    /// kill -9 of the broker coordinating user-service's transactions, restarted after recovery.
    KillCoordinator,
    /// A controlled shutdown of a broker and its start.
    RestartBroker,
    /// kill -9 of the schema registry, started again 5 s later.
    KillRegistry,
    /// kill -9 of a service and its restart at once.
    KillService(&'static str),
    /// SIGTERM to a service and its restart once it has stopped: within its drain bound, and
    /// no message it had applied is delivered again.
    StopService(&'static str),
    /// SIGSTOP of a broker for longer than the session timeout, then SIGCONT.
    PauseBroker,
}

impl Fault {
    pub const ALL: [Fault; 14] = [
        Fault::KillCommandsLeader,
        Fault::KillEventsLeader,
        Fault::KillCoordinator,
        Fault::RestartBroker,
        Fault::KillRegistry,
        Fault::KillService("user-service"),
        Fault::KillService("api-gateway"),
        Fault::KillService("import-worker"),
        Fault::KillService("export-worker"),
        Fault::PauseBroker,
        Fault::StopService("user-service"),
        Fault::StopService("api-gateway"),
        Fault::StopService("import-worker"),
        Fault::StopService("export-worker"),
    ];

    pub fn name(self) -> String {
        match self {
            Fault::KillCommandsLeader => "kill-commands-leader".into(),
            Fault::KillEventsLeader => "kill-events-leader".into(),
            Fault::KillCoordinator => "kill-coordinator".into(),
            Fault::RestartBroker => "restart-broker".into(),
            Fault::KillRegistry => "kill-registry".into(),
            Fault::KillService(service) => format!("kill-{service}"),
            Fault::StopService(service) => format!("sigterm-{service}"),
            Fault::PauseBroker => "pause-broker".into(),
        }
    }

    pub fn parse(name: &str) -> Option<Fault> {
        Fault::ALL.into_iter().find(|fault| fault.name() == name)
    }
}

/// How hard and how long.
#[derive(Debug, Clone)]
pub struct Plan {
    pub faults: Vec<Fault>,
    pub clients: usize,
    /// Writes per second of each client.
    pub rate: f64,
    /// Load before each fault, and after its recovery.
    pub before: Duration,
    pub after: Duration,
    /// Rows of the import started with each fault.
    pub import_rows: usize,
    /// How long a broker stays paused (longer than the 10 s session timeout).
    pub pause: Duration,
}

impl Plan {
    /// Every fault, 8 clients at 10 writes/s each, a 2,000-row import per fault.
    pub fn full() -> Self {
        Self {
            faults: Fault::ALL.to_vec(),
            clients: 8,
            rate: 10.0,
            before: Duration::from_secs(10),
            after: Duration::from_secs(10),
            import_rows: 2_000,
            pause: Duration::from_secs(15),
        }
    }

    /// One broker killed, one service killed and one stopped with SIGTERM, lighter load: the
    /// version `just test` runs.
    pub fn quick() -> Self {
        Self {
            faults: vec![
                Fault::KillCommandsLeader,
                Fault::KillService("user-service"),
                Fault::StopService("user-service"),
            ],
            clients: 4,
            rate: 5.0,
            before: Duration::from_secs(5),
            after: Duration::from_secs(5),
            import_rows: 500,
            ..Self::full()
        }
    }
}

/// What one fault did.
#[derive(Debug, Clone)]
pub struct Report {
    pub fault: Fault,
    /// What it hit ("node 2", "user-service").
    pub target: String,
    pub writes: Tally,
    /// From the fault until every service was ready and a write was answered 201 in under 2 s.
    pub recovery: Option<Duration>,
    pub import: ImportCheck,
    /// Whether the users projections agreed at equal positions after the fault.
    pub digests_agree: Option<bool>,
    /// For a SIGTERM: how the stop went.
    pub stop: Option<StopCheck>,
}

#[derive(Debug, Clone, Default)]
pub struct ImportCheck {
    pub status: String,
    pub rows: usize,
    pub lost: usize,
    pub duplicated: usize,
}

impl Report {
    /// What breaks the promise: anything lost, applied twice or wrongly refused, an import not
    /// completed, the projections disagreeing.
    pub fn failures(&self) -> Vec<String> {
        let mut failures = Vec::new();
        let name = self.fault.name();
        let writes = &self.writes;
        if writes.lost > 0 || writes.duplicated > 0 || writes.refused > 0 {
            failures.push(format!(
                "{name}: {} writes lost, {} duplicated, {} refused (a retry refused because of its own first attempt)",
                writes.lost, writes.duplicated, writes.refused
            ));
        }
        let import = &self.import;
        if import.status != "completed" || import.lost > 0 || import.duplicated > 0 {
            failures.push(format!(
                "{name}: import {} with {} of {} rows lost, {} duplicated",
                import.status, import.lost, import.rows, import.duplicated
            ));
        }
        if self.digests_agree != Some(true) {
            failures.push(format!("{name}: digests agree: {:?}", self.digests_agree));
        }
        for failure in self.stop.iter().flat_map(StopCheck::failures) {
            failures.push(format!("{name}: {failure}"));
        }
        failures
    }
}

/// Runs `plan` on a fresh stack whose services `launcher` starts (`src/bin/service.rs`),
/// printing each fault's row as it completes.
pub async fn run(launcher: &Path, plan: &Plan) -> anyhow::Result<Vec<Report>> {
    let mut stack = Stack::start(launcher).await?;
    let outcome = run_on(&mut stack, plan).await;
    stack.stop().await;
    outcome
}

async fn run_on(stack: &mut Stack, plan: &Plan) -> anyhow::Result<Vec<Report>> {
    let claims = auth::dev::Claims::new("chaos", auth::Role::Admin, Duration::from_secs(24 * 3600));
    let token = auth::dev::sign(&stack.secret, &claims)?;
    let shared = Arc::new(Shared::default());
    let patience = Duration::from_secs(90);
    let clients: Vec<_> = (0..plan.clients)
        .map(|id| {
            let client = Client {
                id,
                api: stack.api.clone(),
                token: token.clone(),
                pace: Duration::from_secs_f64(1.0 / plan.rate),
                patience,
                shared: Arc::clone(&shared),
            };
            tokio::spawn(client.run())
        })
        .collect();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
    let run_id = Uuid::now_v7().simple().to_string();
    let mut reports = Vec::new();
    let mut twice_before = 0;
    println!("{}", header());
    for (phase, &fault) in plan.faults.iter().enumerate() {
        shared.phase.store(phase, Ordering::SeqCst);
        shared.gate.send_replace(Gate::Open);
        let emails: Vec<String> =
            (0..plan.import_rows).map(|i| format!("imp{phase}-{i}-{run_id}@chaos.test")).collect();
        let import = start_import(&http, &stack.api, &token, &emails).await;
        tokio::time::sleep(plan.before).await;

        let (target, recovery, mut stop) = inject(stack, fault, plan, &http, &token).await?;
        let exited = stack.exited();
        if !exited.is_empty() {
            anyhow::bail!("after {}: {}\nevery log: {}", fault.name(), exited.join("\n"), stack.save_logs("exited"));
        }
        tokio::time::sleep(plan.after).await;
        if let (Some(stop), Fault::StopService(service)) = (&mut stop, fault) {
            stop.redelivered = Some(stop::redelivered(&stop.applied, &stack.resumed(service)));
        }

        // The checks, with the load paused: every write in hand finishes (or gives up).
        shared.gate.send_replace(Gate::Paused);
        poll(patience + Duration::from_secs(30), || async { (shared.busy.load(Ordering::SeqCst) == 0).then_some(()) })
            .await;
        let import_status = match &import {
            Some(id) => finish_import(&http, &stack.api, &token, id).await,
            None => "not accepted".to_owned(),
        };
        stack.fully_replicated(Duration::from_secs(180)).await?;
        stack.all_ready(Duration::from_secs(120)).await?;
        let digests_agree = verify::digests_agree(stack, Duration::from_secs(120)).await;
        let applied = Applied::read(stack).await?;
        let mut writes = verify::tally(&shared.records(), phase, &applied);
        let twice = applied.commands_applied_twice();
        writes.duplicated += twice - twice_before;
        twice_before = twice;
        let import = ImportCheck {
            status: import_status,
            rows: emails.len(),
            lost: emails.iter().filter(|e| applied.created(e) == 0).count(),
            duplicated: emails.iter().filter(|e| applied.created(e) > 1).count(),
        };
        let report = Report { fault, target, writes, recovery, import, digests_agree, stop };
        println!("{}", row(&report));
        for refusal in &report.writes.refusals {
            println!("    refused: {refusal}");
        }
        if !report.failures().is_empty() || report.recovery.is_none() {
            println!("{}", stack.warnings(40));
            println!("    every log: {}", stack.save_logs(&fault.name()));
        }
        reports.push(report);
    }
    shared.gate.send_replace(Gate::Stopped);
    for client in clients {
        let _ = client.await;
    }
    println!("chaos: the running services' logs: {}", stack.save_logs("run"));
    Ok(reports)
}

/// Injects `fault`, waits for the system to recover, and puts back what it took away (a
/// killed broker is started again). Returns the target, the time to recover, and for a
/// SIGTERM how the stop went.
async fn inject(
    stack: &mut Stack,
    fault: Fault,
    plan: &Plan,
    http: &reqwest::Client,
    token: &str,
) -> anyhow::Result<(String, Option<Duration>, Option<StopCheck>)> {
    let started = Instant::now();
    let recovered = async |stack: &Stack| {
        let (ready, written) = tokio::join!(
            stack.all_ready(Duration::from_secs(180)),
            probe_write(http, &stack.api, token, Duration::from_secs(180))
        );
        (ready.is_ok() && written).then(|| started.elapsed())
    };
    let node_of = |stack: &Stack| -> anyhow::Result<i32> {
        match fault {
            Fault::KillCommandsLeader | Fault::PauseBroker => stack.leader("users.commands", 0),
            Fault::KillEventsLeader => stack.leader("users.events", 0),
            Fault::KillCoordinator => stack.transaction_coordinator("user-service"),
            _ => stack.leader("users.state", 0),
        }
    };
    Ok(match fault {
        Fault::KillCommandsLeader | Fault::KillEventsLeader | Fault::KillCoordinator => {
            let node = node_of(stack)?;
            stack.node("kill", node)?;
            let recovery = recovered(stack).await;
            stack.node("start", node)?;
            (format!("node {node}"), recovery, None)
        }
        Fault::RestartBroker => {
            let node = node_of(stack)?;
            stack.node("stop", node)?;
            stack.node("start", node)?;
            (format!("node {node}"), recovered(stack).await, None)
        }
        Fault::PauseBroker => {
            let node = node_of(stack)?;
            stack.node("pause", node)?;
            tokio::time::sleep(plan.pause).await;
            stack.node("resume", node)?;
            (format!("node {node}, {} s", plan.pause.as_secs()), recovered(stack).await, None)
        }
        Fault::KillRegistry => {
            stack.kill_registry()?;
            tokio::time::sleep(Duration::from_secs(5)).await;
            stack.registry(&["start"])?;
            ("registry, 5 s".to_owned(), recovered(stack).await, None)
        }
        Fault::KillService(service) => {
            stack.kill_and_restart(service).await?;
            (service.to_owned(), recovered(stack).await, None)
        }
        Fault::StopService(service) => {
            let stop = stack.stop_and_restart(service).await?;
            (service.to_owned(), recovered(stack).await, Some(stop))
        }
    })
}

/// Creates probe users until one is answered 201 within 2 s (true) or `within` passes.
async fn probe_write(http: &reqwest::Client, api: &str, token: &str, within: Duration) -> bool {
    poll(within, || async {
        let email = format!("probe-{}@chaos.test", Uuid::now_v7().simple());
        let answer = http
            .post(format!("{api}/users"))
            .bearer_auth(token)
            .timeout(Duration::from_secs(2))
            .json(&json!({ "email": email, "name": "probe" }))
            .send()
            .await
            .ok()?;
        (answer.status() == StatusCode::CREATED).then_some(())
    })
    .await
    .is_some()
}

/// Uploads a CSV of `emails` (under an idempotency key, retried until accepted); its id.
async fn start_import(http: &reqwest::Client, api: &str, token: &str, emails: &[String]) -> Option<String> {
    let mut csv = String::from("email,name\n");
    for (i, email) in emails.iter().enumerate() {
        let _ = writeln!(csv, "{email},Imported {i}");
    }
    let key = Uuid::now_v7().to_string();
    poll(Duration::from_secs(60), || async {
        let answer = http
            .post(format!("{api}/imports"))
            .bearer_auth(token)
            .header("idempotency-key", &key)
            .header("content-type", "text/csv")
            .body(csv.clone())
            .send()
            .await
            .ok()?;
        let body: Value = answer.json().await.ok()?;
        body["import_id"].as_str().map(str::to_owned)
    })
    .await
}

/// Waits for the import to finish: "completed", or "failed: <reason>", or "not finished".
async fn finish_import(http: &reqwest::Client, api: &str, token: &str, id: &str) -> String {
    let finished = poll(Duration::from_secs(300), || async {
        let answer = http.get(format!("{api}/imports/{id}")).bearer_auth(token).send().await.ok()?;
        let body: Value = answer.json().await.ok()?;
        match body["status"].as_str()? {
            "completed" => Some("completed".to_owned()),
            "failed" | "expired" => Some(format!("failed: {}", body["error"].as_str().unwrap_or_default())),
            _ => None,
        }
    })
    .await;
    finished.unwrap_or_else(|| "not finished".to_owned())
}

/// The table's header.
pub fn header() -> String {
    format!(
        "{:<22} {:<14} {:>6} {:>5} {:>5} {:>4} {:>10} {:>8} {:>9} {:>9} {:<12} {:<7} {:>7} {:>7}",
        "fault",
        "target",
        "acked",
        "202s",
        "lost",
        "dup",
        "unresolved",
        "refused",
        "max wait",
        "recovery",
        "import",
        "digests",
        "stopped",
        "redeliv"
    )
}

/// One fault's line of the table.
pub fn row(report: &Report) -> String {
    let seconds = |d: Duration| format!("{:.1} s", d.as_secs_f64());
    let writes = &report.writes;
    let import = if report.import.lost + report.import.duplicated == 0 && report.import.status == "completed" {
        format!("{} rows ok", report.import.rows)
    } else {
        report.import.status.chars().take(12).collect()
    };
    let (stopped, redelivered) = match &report.stop {
        Some(stop) => {
            let redelivered = stop.redelivered.map_or_else(|| "?".to_owned(), |n| n.to_string());
            (format!("{}{}", seconds(stop.took), if stop.clean { "" } else { "!" }), redelivered)
        }
        None => ("-".to_owned(), "-".to_owned()),
    };
    format!(
        "{:<22} {:<14} {:>6} {:>5} {:>5} {:>4} {:>10} {:>8} {:>9} {:>9} {:<12} {:<7} {:>7} {:>7}",
        report.fault.name(),
        report.target,
        writes.done,
        writes.accepted,
        writes.lost,
        writes.duplicated,
        writes.unresolved,
        writes.refused,
        seconds(writes.longest_wait),
        report.recovery.map_or_else(|| "never".to_owned(), seconds),
        import,
        match report.digests_agree {
            Some(true) => "equal",
            Some(false) => "DIFFER",
            None => "apart",
        },
        stopped,
        redelivered
    )
}
