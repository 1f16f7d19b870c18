//! `just chaos`: the fault suite on a fresh three-node cluster with the registry and the four
//! services (started through the `service` binary next to this one). Prints one line per fault
//! and exits non-zero if any acknowledged write was lost or applied twice, an import did not
//! complete with each row once, the projections disagreed, or a service stopped with SIGTERM
//! overran its drain bound or had a message it had applied delivered again.

use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use system_tests::chaos::{self, Fault, Plan};

#[derive(Debug, Parser)]
#[command(name = "chaos", about = "Inject faults under load and check that nothing is lost or applied twice")]
struct Args {
    /// The short version `just test` runs: one broker kill, one service kill and one SIGTERM,
    /// lighter load.
    #[arg(long)]
    quick: bool,
    /// Only these faults, comma-separated (kill-commands-leader, kill-events-leader,
    /// kill-coordinator, restart-broker, kill-registry, kill-user-service, kill-api-gateway,
    /// kill-import-worker, kill-export-worker, pause-broker, sigterm-user-service,
    /// sigterm-api-gateway, sigterm-import-worker, sigterm-export-worker).
    #[arg(long, value_delimiter = ',')]
    faults: Vec<String>,
    /// Clients writing through the gateway (default: the plan's).
    #[arg(long)]
    clients: Option<usize>,
    /// Writes per second of each client (default: the plan's).
    #[arg(long)]
    rate: Option<f64>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let mut plan = if args.quick { Plan::quick() } else { Plan::full() };
    if !args.faults.is_empty() {
        let chosen: Option<Vec<Fault>> = args.faults.iter().map(|name| Fault::parse(name)).collect();
        let Some(chosen) = chosen else {
            eprintln!("chaos: unknown fault in {:?}", args.faults);
            return ExitCode::from(2);
        };
        plan.faults = chosen;
    }
    plan.clients = args.clients.unwrap_or(plan.clients);
    plan.rate = args.rate.unwrap_or(plan.rate);
    let launcher = match std::env::current_exe() {
        Ok(exe) => exe.with_file_name("service"),
        Err(error) => {
            eprintln!("chaos: {error}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "chaos: {} faults, {} clients at {} writes/s each, {}-row import per fault",
        plan.faults.len(),
        plan.clients,
        plan.rate,
        plan.import_rows
    );
    let started = Instant::now();
    // Ctrl-C or SIGTERM drops the run: its stack stops (see `Stack`'s `Drop`).
    let stopped = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let term = async move {
            match term.as_mut() {
                Some(term) => term.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! { _ = tokio::signal::ctrl_c() => {}, _ = term => {} }
    };
    let reports = tokio::select! {
        outcome = chaos::run(&launcher, &plan) => match outcome {
            Ok(reports) => reports,
            Err(error) => {
                eprintln!("chaos: {error:#}");
                return ExitCode::FAILURE;
            }
        },
        () = stopped => {
            eprintln!("chaos: interrupted; the cluster and the registry are stopped");
            return ExitCode::from(130);
        }
    };
    let failures: Vec<String> = reports.iter().flat_map(chaos::Report::failures).collect();
    println!("chaos: {} faults in {:.0} s", reports.len(), started.elapsed().as_secs_f64());
    if failures.is_empty() {
        println!("chaos: nothing lost, nothing applied twice, every import complete, projections equal");
        return ExitCode::SUCCESS;
    }
    for failure in failures {
        eprintln!("chaos: FAILED {failure}");
    }
    ExitCode::FAILURE
}
