//! `just bench`: the system's speed, measured end to end on this machine.
//!
//! Starts a fresh Kafka and schema registry and the four services (release builds) on ports of
//! their own, then, in one run:
//! - memory: each service's idle resident memory with no users;
//! - import: uploads a generated file of N rows and measures the seconds until the import is
//!   complete and until every user is readable through the gateway (sampled as it goes, for the
//!   progress plot); rows/s; peak RSS and CPU of every process; and Kafka's own producer perf
//!   test for N records of the size of one user event (the raw ceiling);
//! - export: exports every imported user and measures the seconds until the download has
//!   completed, against the `csv` crate alone writing the same rows to a file;
//! - memory again, idle at N users: bytes per user;
//! - cold start: each service holding users restarted alone over the imported users, then all
//!   three at once: seconds until ready, resident memory before and after; the digests;
//! - reads (by id, a page, by email) at fixed arrival rates and at saturation, against the
//!   gateway and against a bare axum + DashMap server holding the same users (`ceiling`);
//! - writes (create, update, delete, each answered once visible) at fixed arrival rates, and
//!   the highest rate of creates sustained with p99 within 100 ms.
//!
//! Prints every figure with its target, writes them as JSON under `bench/results/`, and (for a
//! complete run) the table and plots of BENCHMARKS.md. Asserts nothing about the figures.
//!
//! With `--churn`, instead: N users (10,000 by default) created, every one then updated 99
//! times by upsert imports, the log cleaner waited for, and the restarts measured against the
//! restarts over the N fresh users.

mod interactive;
mod load;
mod plots;
mod report;
mod system;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use serde_json::Value;

use interactive::{Read, Sample, Server, Write};
use report::{Export, Import, Memory, Results};
use system::System;

#[derive(Debug, Parser)]
#[command(
    name = "bench",
    about = "Measure the system end to end: imports, exports, reads, writes, memory, cold starts"
)]
struct Args {
    /// Rows in the imported file (10,000 with `--quick`).
    #[arg(long)]
    rows: Option<u64>,
    /// Where the bench keeps its Kafka data, blobs and generated file.
    #[arg(long, default_value = ".local/bench")]
    dir: std::path::PathBuf,
    /// Skip Kafka's producer perf test.
    #[arg(long)]
    no_kafka_baseline: bool,
    /// A short run (10,000 users, runs of 2 s): checks that every part works, measures little;
    /// leaves BENCHMARKS.md alone.
    #[arg(long)]
    quick: bool,
    /// Seconds of each fixed-rate run (30 unless `--quick`).
    #[arg(long)]
    seconds: Option<u64>,
    /// Only the import, export, memory and cold starts (no reads or writes).
    #[arg(long)]
    no_interactive: bool,
    /// Measure restarts after many updates of the same users instead (`--rows` users, 10,000
    /// unless given, each updated `--updates` times).
    #[arg(long)]
    churn: bool,
    #[arg(long, default_value_t = 99)]
    updates: u64,
}

impl Args {
    fn kind(&self) -> report::Kind {
        if self.quick {
            report::Kind::Quick
        } else if self.no_interactive || self.no_kafka_baseline || self.rows.is_some() || self.seconds.is_some() {
            report::Kind::Partial
        } else {
            report::Kind::Complete
        }
    }
}

/// The shape of a run: how long and how hard.
#[derive(Debug, Clone)]
struct Plan {
    rows: u64,
    /// Each fixed-rate run.
    fixed: Duration,
    /// Each closed-loop run.
    saturated: Duration,
    /// Connections of the closed loops.
    connections: usize,
    /// Arrival rates of the reads by id (the plot's points); the other reads run at the first
    /// but one.
    read_rates: Vec<f64>,
    /// Arrival rates of every write.
    write_rates: Vec<f64>,
    /// Where the search for the highest sustained rate of creates starts.
    sustained_from: f64,
    /// Users sampled for reads, updates and deletes.
    sample: usize,
}

impl Plan {
    fn of(args: &Args) -> Self {
        if args.quick {
            let fixed = Duration::from_secs(args.seconds.unwrap_or(2));
            return Self {
                rows: args.rows.unwrap_or(10_000),
                fixed,
                saturated: fixed,
                connections: 64,
                read_rates: vec![500.0, 2_000.0],
                write_rates: vec![100.0, 500.0],
                sustained_from: 500.0,
                sample: 10_000,
            };
        }
        Self {
            rows: args.rows.unwrap_or(1_000_000),
            fixed: Duration::from_secs(args.seconds.unwrap_or(30)),
            saturated: Duration::from_secs(10),
            connections: 64,
            read_rates: vec![1_000.0, 5_000.0, 10_000.0, 20_000.0],
            write_rates: vec![100.0, 1_000.0],
            sustained_from: 1_000.0,
            sample: 200_000,
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut system = System::start(&args.dir).await?;
    let result = if args.churn { churn(&args, &mut system).await } else { run(&args, &mut system).await };
    system.stop().await;
    result
}

async fn run(args: &Args, system: &mut System) -> anyhow::Result<()> {
    let plan = Plan::of(args);
    let client = system.client()?;
    let mut results = Results::new(plan.rows, args.quick);
    let empty = system.idle_rss().await;

    results.import = Some(import_file(args, &plan, system, &client).await?);
    results.export = Some(export(args, system, &client).await?);
    let full = system.idle_rss().await;
    let users = system.gateway_projection_size(&client).await?;
    results.memory = Memory::between(&empty, &full, users);
    results.memory.print();
    results.cold_starts = cold_starts(system, &client).await?;

    if !args.no_interactive {
        let sample = Arc::new(Sample::take(&system.gateway_url(), &client, plan.sample).await?);
        let gateway =
            Server { name: "gateway", addr: system.gateway_addr(), authorization: Some(system.authorization()?) };
        reads(&plan, system, &gateway, &sample, &mut results).await?;
        writes(&plan, &gateway, &sample, &mut results).await;
    }
    results.finish(args.kind())
}

async fn import_file(args: &Args, plan: &Plan, system: &System, client: &reqwest::Client) -> anyhow::Result<Import> {
    let file = args.dir.join("users.csv");
    let generated = Instant::now();
    let summary = testkit::generate::generate(
        std::io::BufWriter::new(std::fs::File::create(&file)?),
        &testkit::generate::Spec { rows: plan.rows, bad_share: 0.0, seed: 1 },
        false,
    )?;
    let size = std::fs::metadata(&file)?.len();
    println!(
        "generated {} rows ({:.1} MiB) in {:.2}s",
        summary.rows,
        size as f64 / (1 << 20) as f64,
        generated.elapsed().as_secs_f64()
    );

    let body = tokio::fs::read(&file).await?;
    let before = system.resources();
    let started = Instant::now();
    let response = client
        .post(format!("{}/imports", system.gateway_url()))
        .header("content-type", "text/csv")
        .body(body)
        .send()
        .await?;
    let accepted: Value = response.json().await?;
    let uploaded = started.elapsed();
    let import_id = accepted["import_id"].as_str().context("no import id")?.to_owned();

    let patience = Instant::now() + Duration::from_secs(600);
    let mut progress = Vec::new();
    let mut completed = None;
    let status = loop {
        if Instant::now() > patience {
            bail!("the import did not complete within 10 minutes");
        }
        progress.push((started.elapsed().as_secs_f64(), system.gateway_projection_size(client).await?));
        let status: Value =
            client.get(format!("{}/imports/{import_id}", system.gateway_url())).send().await?.json().await?;
        match status["status"].as_str() {
            Some("completed") => {
                let expected = status["accepted"].as_u64().unwrap_or_default();
                completed.get_or_insert(started.elapsed());
                if progress.last().is_some_and(|(_, users)| *users >= expected) {
                    break status;
                }
            }
            Some("failed") => bail!("the import failed: {status}"),
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let readable = started.elapsed();
    let imported = completed.unwrap_or(readable);
    let expected = status["accepted"].as_u64().unwrap_or_default();

    println!("\nimport of {} rows (accepted {expected}, rejected {}):", plan.rows, status["rejected"]);
    println!("  upload to the gateway           {:>8.2} s", uploaded.as_secs_f64());
    println!("  import completed                {:>8.2} s", imported.as_secs_f64());
    println!("  every user readable via gateway {:>8.2} s", readable.as_secs_f64());
    println!("  throughput                      {:>8.0} rows/s", plan.rows as f64 / readable.as_secs_f64());
    let cpu = print_resources(system, &before, "import");

    let mut kafka_perf_seconds = None;
    if !args.no_kafka_baseline {
        let record_size = system::event_record_size();
        let baseline = system.kafka_producer_perf(plan.rows, record_size).await?;
        println!(
            "\nKafka's own producer perf test, {} records of {record_size} bytes (acks=all, idempotent, lz4):",
            plan.rows
        );
        println!("  {:.2} s ({:.0} records/s)", plan.rows as f64 / baseline, baseline);
        kafka_perf_seconds = Some(plan.rows as f64 / baseline);
    }
    Ok(Import {
        rows: plan.rows,
        completed_seconds: imported.as_secs_f64(),
        readable_seconds: readable.as_secs_f64(),
        kafka_perf_seconds,
        cpu_seconds: cpu,
        progress,
    })
}

/// Reads by id at each planned rate and at saturation, then pages and lookups by email, each
/// against the gateway and the ceiling.
async fn reads(
    plan: &Plan,
    system: &System,
    gateway: &Server,
    sample: &Arc<Sample>,
    results: &mut Results,
) -> anyhow::Result<()> {
    let ceiling = system.start_ceiling().await?;
    let bare = Server { name: "ceiling", addr: ceiling.addr, authorization: None };
    println!("\nreads ({} users sampled; the ceiling: bare axum + DashMap, same JSON):", sample.ids.len());
    let ok = hyper::StatusCode::OK;
    for read in Read::ALL {
        let rates: &[f64] = if read == Read::ById { &plan.read_rates } else { &plan.read_rates[1..2] };
        for server in [gateway, &bare] {
            let make = read.requests(server, sample);
            results.reads.push(
                interactive::saturate(read.label(), server, make.clone(), ok, plan.connections, plan.saturated).await,
            );
            for rate in rates {
                results
                    .reads
                    .push(interactive::at_rate(read.label(), server, make.clone(), ok, *rate, plan.fixed).await);
            }
        }
    }
    drop(ceiling);
    Ok(())
}

/// Creates, updates and deletes at each planned rate, then the search for the highest sustained
/// rate of creates.
async fn writes(plan: &Plan, gateway: &Server, sample: &Arc<Sample>, results: &mut Results) {
    println!("\nwrites (each answered once visible to reads):");
    let mut deleted = 0;
    for write in [Write::Create, Write::Update, Write::Delete] {
        for rate in &plan.write_rates {
            let make = write.requests(gateway, sample, &format!("{rate}"), deleted);
            let run = interactive::at_rate(write.label(), gateway, make, write.expected(), *rate, plan.fixed).await;
            if write == Write::Delete {
                deleted += (rate * plan.fixed.as_secs_f64()) as usize;
            }
            results.writes.push(run);
        }
    }
    println!("\nthe highest rate of creates sustained with p99 <= {} ms:", report::SUSTAINED_P99_MS);
    let (rate, runs) =
        interactive::highest_sustained(gateway, sample, plan.sustained_from, report::SUSTAINED_P99_MS, plan.fixed)
            .await;
    results.sustained_creates_per_second = rate;
    results.writes.extend(runs);
}

/// Restarts each service holding users alone, then all at once; prints readiness times and
/// resident memory, then the digests. Returns the seconds until ready by service.
async fn cold_starts(system: &mut System, client: &reqwest::Client) -> anyhow::Result<BTreeMap<String, f64>> {
    let users = system.gateway_projection_size(client).await?;
    println!(
        "
cold start over {users} live users (SIGTERM, start, until /ready):"
    );
    println!("  service          ready in   idle RSS before   idle RSS after   after/before");
    let mut times = BTreeMap::new();
    for name in system::HOLDING_USERS {
        let before = system.rss(name).unwrap_or_default();
        let took = system.restart(&[name]).await?;
        let after = system.idle_rss_of(name).await.unwrap_or_default();
        println!(
            "  {name:<16} {:>6.2} s   {:>11.0} MiB   {:>10.0} MiB   {:>8.2}x",
            took.as_secs_f64(),
            before as f64 / 1024.0,
            after as f64 / 1024.0,
            after as f64 / before.max(1) as f64
        );
        times.insert(name.to_owned(), took.as_secs_f64());
    }
    let all = system.restart(&system::HOLDING_USERS).await?;
    println!("  all three at once {:>5.2} s", all.as_secs_f64());
    times.insert("all three at once".to_owned(), all.as_secs_f64());
    let digests = system.digests(client).await?;
    for digest in &digests {
        println!(
            "  digest {:<14} users {} versions {} emails {} positions {}",
            digest["service"].as_str().unwrap_or("?"),
            digest["users"],
            digest["versions"],
            digest["emails"],
            digest["positions"]
        );
    }
    let agree =
        digests.windows(2).all(|p| ["users", "versions", "emails", "positions"].iter().all(|f| p[0][f] == p[1][f]));
    println!("  digests {}", if agree { "agree" } else { "DIFFER" });
    if !agree {
        bail!("the projections' digests differ after the cold starts");
    }
    Ok(times)
}

/// Imports `body` and waits until the import is complete.
async fn import(system: &System, client: &reqwest::Client, body: Vec<u8>, mode: &str) -> anyhow::Result<Value> {
    let url = format!("{}/imports?mode={mode}", system.gateway_url());
    let accepted: Value =
        client.post(url).header("content-type", "text/csv").body(body).send().await?.error_for_status()?.json().await?;
    let id = accepted["import_id"].as_str().context("no import id")?.to_owned();
    let patience = Instant::now() + Duration::from_secs(600);
    loop {
        let status: Value = client.get(format!("{}/imports/{id}", system.gateway_url())).send().await?.json().await?;
        match status["status"].as_str() {
            Some("completed") => return Ok(status),
            Some("failed") => bail!("the import failed: {status}"),
            _ if Instant::now() > patience => bail!("the import did not complete within 10 minutes"),
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// `--churn`: restarts over N fresh users, then over the same N users after each was updated
/// `--updates` times and the log cleaner compacted `users.state`.
async fn churn(args: &Args, system: &mut System) -> anyhow::Result<()> {
    let users = args.rows.unwrap_or(10_000);
    let client = system.client()?;
    let file = |round: u64| {
        let mut csv = String::from("email,name,age\n");
        for i in 0..users {
            csv.push_str(&format!("churn{i}@bench.example,User {i} round {round},{}\n", 20 + i % 50));
        }
        csv.into_bytes()
    };
    import(system, &client, file(0), "create").await?;
    println!("{users} users created");
    let fresh = cold_starts(system, &client).await?;

    let started = Instant::now();
    for round in 1..=args.updates {
        let status = import(system, &client, file(round), "upsert").await?;
        if status["accepted"].as_u64() != Some(users) {
            bail!("round {round} did not update every user: {status}");
        }
    }
    println!("\n{} updates of each of the {users} users in {:.1} s", args.updates, started.elapsed().as_secs_f64());
    // Only closed segments are compacted, and a segment rolls on a write once it is older than
    // the compaction lag: a few writes to every partition after it, as a live system has.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let mut rolling = String::from("email,name,age\n");
    for i in 0..60 {
        rolling.push_str(&format!("roll{i}@bench.example,Roll {i},30\n"));
    }
    import(system, &client, rolling.into_bytes(), "create").await?;
    let users = users + 60;
    let waiting = Instant::now();
    let mut records = system.state_records().await?;
    while records > users * 5 / 2 && waiting.elapsed() < Duration::from_secs(300) {
        tokio::time::sleep(Duration::from_secs(5)).await;
        records = system.state_records().await?;
    }
    println!(
        "users.state holds {records} records after {:.0} s of waiting for the log cleaner ({} writes)",
        waiting.elapsed().as_secs_f64(),
        users * (args.updates + 1)
    );
    let churned = cold_starts(system, &client).await?;
    println!("\nrestart after the updates vs over fresh users:");
    for (name, fresh) in &fresh {
        let churned = churned[name];
        println!("  {name:<17} {churned:>6.2} s vs {fresh:>6.2} s ({:+.0}%)", 100.0 * (churned / fresh - 1.0));
    }
    Ok(())
}

/// Every process's peak memory, and the CPU it used since `before`; returns the CPU seconds.
fn print_resources(system: &System, before: &BTreeMap<String, (u64, f64)>, phase: &str) -> BTreeMap<String, f64> {
    println!("\n  process          peak RSS   CPU during the {phase}");
    let mut used = BTreeMap::new();
    for (name, (kib, cpu)) in system.resources() {
        let spent = cpu - before.get(&name).map_or(0.0, |(_, c)| *c);
        println!("  {name:<16} {:>5.0} MiB   {spent:>6.2} s", kib as f64 / 1024.0);
        used.insert(name, spent);
    }
    used
}

async fn export(args: &Args, system: &System, client: &reqwest::Client) -> anyhow::Result<Export> {
    let before = system.resources();
    let started = Instant::now();
    let accepted: Value =
        client.post(format!("{}/exports", system.gateway_url())).send().await?.error_for_status()?.json().await?;
    let id = accepted["export_id"].as_str().context("no export id")?.to_owned();
    let patience = Instant::now() + Duration::from_secs(600);
    let status = loop {
        let status: Value = client.get(format!("{}/exports/{id}", system.gateway_url())).send().await?.json().await?;
        match status["status"].as_str() {
            Some("completed") => break status,
            Some("failed") => bail!("the export failed: {status}"),
            _ if Instant::now() > patience => bail!("the export did not complete within 10 minutes"),
            _ => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    };
    let written = started.elapsed();
    let mut response = client.get(format!("{}/exports/{id}/download", system.gateway_url())).send().await?;
    let file = args.dir.join("export.csv");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&file)?);
    while let Some(chunk) = response.chunk().await? {
        std::io::Write::write_all(&mut out, &chunk)?;
    }
    std::io::Write::flush(&mut out)?;
    let downloaded = started.elapsed();
    let rows = status["rows_written"].as_u64().unwrap_or_default();
    let bytes = status["bytes"].as_u64().unwrap_or_default();

    println!("\nexport of {rows} users ({:.1} MiB):", bytes as f64 / (1 << 20) as f64);
    println!("  file written (status completed)  {:>8.2} s", written.as_secs_f64());
    println!("  download completed              {:>8.2} s", downloaded.as_secs_f64());
    println!("  throughput                      {:>8.0} rows/s", rows as f64 / downloaded.as_secs_f64());
    print_resources(system, &before, "export");

    // The ceiling: the csv crate alone, one thread, writing the same rows to a file.
    let records: Vec<csv::StringRecord> = csv::Reader::from_path(&file)?.records().collect::<Result<_, _>>()?;
    let bare = Instant::now();
    let mut writer = csv::Writer::from_path(args.dir.join("export-bare.csv"))?;
    writer.write_record(["email", "name", "age"])?;
    for record in &records {
        writer.write_record(record)?;
    }
    writer.flush()?;
    drop(writer);
    let bare = bare.elapsed();
    let ceiling = records.len() as f64 / bare.as_secs_f64();
    println!("\nthe csv crate alone writing the same {} rows to a file:", records.len());
    println!(
        "  {:.2} s ({ceiling:.0} rows/s); the export end to end reaches {:.0}% of it",
        bare.as_secs_f64(),
        100.0 * (rows as f64 / downloaded.as_secs_f64()) / ceiling
    );
    Ok(Export { rows, downloaded_seconds: downloaded.as_secs_f64(), csv_alone_seconds: bare.as_secs_f64() })
}
