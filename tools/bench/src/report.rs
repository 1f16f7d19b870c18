//! What a bench run measured: printed against the targets, written as JSON under
//! `bench/results/`, and (for a full run) as BENCHMARKS.md's table and plots.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::interactive::{Read, Run, Write};
use crate::plots;

/// The p99 a rate of creates must keep to count as sustained.
pub(crate) const SUSTAINED_P99_MS: f64 = 100.0;

const RESULTS_DIR: &str = "bench/results";
const BENCHMARKS: &str = "BENCHMARKS.md";
const BEGIN: &str = "<!-- bench:begin (written by `just bench`; edit around it) -->";
const END: &str = "<!-- bench:end -->";

/// What a run measured: the whole documented run, a part of it, or the quick check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Complete,
    Partial,
    Quick,
}

#[derive(Debug, Serialize)]
pub(crate) struct Results {
    pub(crate) date: String,
    pub(crate) machine: Machine,
    pub(crate) rows: u64,
    pub(crate) quick: bool,
    pub(crate) import: Option<Import>,
    pub(crate) export: Option<Export>,
    pub(crate) memory: Memory,
    /// Seconds from start until ready, over the imported users.
    pub(crate) cold_starts: BTreeMap<String, f64>,
    pub(crate) reads: Vec<Run>,
    pub(crate) writes: Vec<Run>,
    pub(crate) sustained_creates_per_second: Option<f64>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Machine {
    pub(crate) cpu: String,
    pub(crate) cores: usize,
    pub(crate) memory_gib: f64,
}

impl Machine {
    fn this() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
            .unwrap_or_else(|| "unknown".into());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let kib: f64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or_default();
        Self {
            cpu,
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            memory_gib: kib / (1024.0 * 1024.0),
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct Import {
    pub(crate) rows: u64,
    pub(crate) completed_seconds: f64,
    pub(crate) readable_seconds: f64,
    /// Kafka's producer perf test for as many records of the event's size.
    pub(crate) kafka_perf_seconds: Option<f64>,
    pub(crate) cpu_seconds: BTreeMap<String, f64>,
    /// (seconds since the upload began, users readable through the gateway)
    pub(crate) progress: Vec<(f64, u64)>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Export {
    pub(crate) rows: u64,
    pub(crate) downloaded_seconds: f64,
    pub(crate) csv_alone_seconds: f64,
}

/// Idle resident memory of each service with no users and with the imported ones.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Memory {
    pub(crate) users: u64,
    /// Service -> (MiB idle with no users, MiB idle with `users`, bytes per user)
    pub(crate) services: BTreeMap<String, (f64, f64, f64)>,
}

impl Memory {
    /// From idle RSS figures in KiB.
    pub(crate) fn between(empty: &BTreeMap<String, u64>, full: &BTreeMap<String, u64>, users: u64) -> Self {
        let services = full
            .iter()
            .map(|(name, &kib)| {
                let before = empty.get(name).copied().unwrap_or_default();
                let per_user = (kib as f64 - before as f64) * 1024.0 / users.max(1) as f64;
                (name.clone(), (before as f64 / 1024.0, kib as f64 / 1024.0, per_user))
            })
            .collect();
        Self { users, services }
    }

    pub(crate) fn print(&self) {
        println!("\nidle memory, no users and {} users:", self.users);
        println!("  service          no users    {:>9} users   bytes per user", self.users);
        for (name, (empty, full, per_user)) in &self.services {
            println!("  {name:<16} {empty:>6.0} MiB   {full:>9.0} MiB   {per_user:>10.0}");
        }
    }
}

/// One figure against its target.
#[derive(Debug, Serialize)]
struct Target {
    what: String,
    measured: String,
    target: String,
    /// None: not measured in this run.
    met: Option<bool>,
}

impl Results {
    pub(crate) fn new(rows: u64, quick: bool) -> Self {
        Self {
            date: domain::time::Timestamp::now().to_string(),
            machine: Machine::this(),
            rows,
            quick,
            import: None,
            export: None,
            memory: Memory::default(),
            cold_starts: BTreeMap::new(),
            reads: Vec::new(),
            writes: Vec::new(),
            sustained_creates_per_second: None,
        }
    }

    fn read(&self, read: Read, server: &str, rate: Option<f64>) -> Option<&Run> {
        self.reads.iter().find(|r| r.operation == read.label() && r.server == server && r.offered_per_second == rate)
    }

    fn write(&self, write: Write, rate: f64) -> Option<&Run> {
        self.writes.iter().find(|r| r.operation == write.label() && r.offered_per_second == Some(rate))
    }

    /// The fixed arrival rate the reads' p99s are compared at: the highest both the gateway and
    /// the ceiling sustained (p99 under 100 ms), else the lowest.
    fn read_rate(&self) -> Option<f64> {
        let rates: Vec<f64> = self
            .reads
            .iter()
            .filter(|r| r.operation == Read::ById.label() && r.server == "gateway")
            .filter_map(|r| r.offered_per_second)
            .collect();
        let kept = |rate: f64| {
            ["gateway", "ceiling"]
                .iter()
                .all(|s| self.read(Read::ById, s, Some(rate)).is_some_and(|r| r.sustained(SUSTAINED_P99_MS)))
        };
        rates.iter().copied().filter(|r| kept(*r)).reduce(f64::max).or_else(|| rates.first().copied())
    }

    fn targets(&self) -> Vec<Target> {
        let mut targets = Vec::new();
        let saturated = (self.read(Read::ById, "gateway", None), self.read(Read::ById, "ceiling", None));
        targets.push(match saturated {
            (Some(g), Some(c)) => {
                let ratio = g.succeeded_per_second / c.succeeded_per_second;
                Target {
                    what: format!(
                        "GET /users/{{id}} at saturation ({} connections)",
                        g.connections.unwrap_or_default()
                    ),
                    measured: format!(
                        "{:.0} req/s vs {:.0}: {:.0}% of the ceiling",
                        g.succeeded_per_second,
                        c.succeeded_per_second,
                        100.0 * ratio
                    ),
                    target: ">= 90% of the ceiling".into(),
                    met: Some(ratio >= 0.9),
                }
            }
            _ => Target::missing("GET /users/{id} at saturation", ">= 90% of the ceiling"),
        });
        let rate = self.read_rate();
        let at_rate =
            rate.map(|r| (self.read(Read::ById, "gateway", Some(r)), self.read(Read::ById, "ceiling", Some(r))));
        targets.push(match at_rate {
            Some((Some(g), Some(c))) => Target {
                what: format!("GET /users/{{id}} p99 at {:.0}/s", rate.unwrap_or_default()),
                measured: format!(
                    "{:.2} ms vs {:.2} ms: {:.2}x the ceiling's",
                    g.p99_ms,
                    c.p99_ms,
                    g.p99_ms / c.p99_ms
                ),
                target: "<= 1.5x the ceiling's".into(),
                met: Some(g.p99_ms <= 1.5 * c.p99_ms),
            },
            _ => Target::missing("GET /users/{id} p99 at a fixed rate", "<= 1.5x the ceiling's"),
        });
        targets.push(match self.write(Write::Create, 100.0) {
            Some(run) => Target {
                what: "POST /users -> 201 at 100/s".into(),
                measured: format!("p50 {:.2} ms, p99 {:.2} ms{}", run.p50_ms, run.p99_ms, failures(run)),
                target: "p50 <= 5 ms, p99 <= 15 ms".into(),
                met: Some(run.p50_ms <= 5.0 && run.p99_ms <= 15.0 && run.sustained(15.0)),
            },
            None => Target::missing("POST /users -> 201 at 100/s", "p50 <= 5 ms, p99 <= 15 ms"),
        });
        targets.push(match self.write(Write::Create, 1000.0) {
            Some(run) => Target {
                what: "POST /users -> 201 at 1,000/s".into(),
                measured: format!("p99 {:.2} ms{}", run.p99_ms, failures(run)),
                target: "p99 <= 30 ms".into(),
                met: Some(run.sustained(30.0)),
            },
            None => Target::missing("POST /users -> 201 at 1,000/s", "p99 <= 30 ms"),
        });
        targets.push(Target {
            what: format!("creates sustained (p99 <= {SUSTAINED_P99_MS} ms, read-your-writes)"),
            measured: match self.sustained_creates_per_second {
                Some(rate) => format!("{rate:.0}/s"),
                None if self.writes.is_empty() => "not measured".into(),
                None => "none of the rates tried".into(),
            },
            target: ">= 10,000/s".into(),
            met: (!self.writes.is_empty()).then(|| self.sustained_creates_per_second.is_some_and(|r| r >= 10_000.0)),
        });
        targets.push(match &self.import {
            Some(Import { rows, readable_seconds, kafka_perf_seconds: Some(kafka), .. }) => Target {
                what: format!("import of {rows} rows until readable vs Kafka's producer perf test"),
                measured: format!("{readable_seconds:.2} s vs {kafka:.2} s: {:.2}x", readable_seconds / kafka),
                target: "<= 1.5x".into(),
                met: Some(readable_seconds / kafka <= 1.5),
            },
            _ => Target::missing("import until readable vs Kafka's producer perf test", "<= 1.5x"),
        });
        for name in crate::system::HOLDING_USERS {
            targets.push(match self.memory.services.get(name) {
                Some((_, _, per_user)) => Target {
                    what: format!("idle RSS per user, {name}"),
                    measured: format!("{per_user:.0} bytes"),
                    target: "<= 250 bytes".into(),
                    met: Some(*per_user <= 250.0),
                },
                None => Target::missing(&format!("idle RSS per user, {name}"), "<= 250 bytes"),
            });
        }
        targets
    }

    /// Prints the targets, writes the JSON and, for a complete run (everything measured at the
    /// documented size), BENCHMARKS.md and its plots: a partial run's figures go only to
    /// `bench/results/partial-*.json`, never over the table's.
    pub(crate) fn finish(&self, run: Kind) -> anyhow::Result<()> {
        let targets = self.targets();
        println!("\ntargets:");
        for t in &targets {
            println!("  {:<5} {:<62} {:<48} target {}", t.verdict(), t.what, t.measured, t.target);
        }
        std::fs::create_dir_all(RESULTS_DIR)?;
        let stamp = self.date.replace(':', "-");
        let name = match run {
            Kind::Quick => format!("quick-{stamp}.json"),
            Kind::Partial => format!("partial-{stamp}.json"),
            Kind::Complete => format!("{stamp}.json"),
        };
        let path = Path::new(RESULTS_DIR).join(name);
        let mut json = serde_json::to_value(self)?;
        json["targets"] = serde_json::to_value(&targets)?;
        std::fs::write(&path, serde_json::to_string_pretty(&json)?)?;
        println!("\nwritten: {}", path.display());
        if run == Kind::Complete {
            plots::draw(self)?;
            self.write_benchmarks(&targets)?;
            println!("written: {BENCHMARKS} and its plots in {}", plots::DIR);
        }
        Ok(())
    }

    /// Replaces the figures between BENCHMARKS.md's markers (the prose around them stays).
    fn write_benchmarks(&self, targets: &[Target]) -> anyhow::Result<()> {
        let current =
            std::fs::read_to_string(BENCHMARKS).unwrap_or_else(|_| format!("# Benchmarks\n\n{BEGIN}\n{END}\n"));
        let (Some(begin), Some(end)) = (current.find(BEGIN), current.find(END)) else {
            anyhow::bail!("{BENCHMARKS} lacks the markers {BEGIN} and {END}");
        };
        let updated = format!("{}{BEGIN}\n{}{}", &current[..begin], self.markdown(targets), &current[end..]);
        std::fs::write(BENCHMARKS, updated)?;
        Ok(())
    }

    fn markdown(&self, targets: &[Target]) -> String {
        let mut md = String::new();
        let m = &self.machine;
        let _ = writeln!(
            md,
            "Run of {} on {} ({} cores, {:.0} GiB), {} users.\n",
            &self.date[..10.min(self.date.len())],
            m.cpu,
            m.cores,
            m.memory_gib,
            self.rows
        );
        md.push_str("| | measured | target | |\n|---|---|---|---|\n");
        for t in targets {
            let _ = writeln!(md, "| {} | {} | {} | {} |", t.what, t.measured, t.target, t.verdict());
        }
        md.push_str("\n#### Reads and writes\n\n");
        md.push_str("| operation | server | load | ok/s | p50 ms | p99 ms | p99.9 ms | max ms | failed |\n");
        md.push_str("|---|---|---|---|---|---|---|---|---|\n");
        for run in self.reads.iter().chain(&self.writes) {
            let load = match (run.offered_per_second, run.connections) {
                (Some(rate), _) => format!("{rate:.0}/s"),
                (None, Some(c)) => format!("{c} connections"),
                _ => String::new(),
            };
            let _ = writeln!(
                md,
                "| `{}` | {} | {load} | {:.0} | {:.2} | {:.2} | {:.2} | {:.1} | {} |",
                run.operation,
                run.server,
                run.succeeded_per_second,
                run.p50_ms,
                run.p99_ms,
                run.p999_ms,
                run.max_ms,
                run.failed
            );
        }
        if let Some(import) = &self.import {
            let _ = writeln!(
                md,
                "\n#### Import and export\n\nImport of {} rows: complete in {:.2} s, every user readable in {:.2} s \
                 ({:.0} rows/s){}. CPU during the import: {}.",
                import.rows,
                import.completed_seconds,
                import.readable_seconds,
                import.rows as f64 / import.readable_seconds,
                import
                    .kafka_perf_seconds
                    .map(|k| format!("; Kafka's producer perf test: {k:.2} s"))
                    .unwrap_or_default(),
                import.cpu_seconds.iter().map(|(n, s)| format!("{n} {s:.1} s")).collect::<Vec<_>>().join(", ")
            );
        }
        if let Some(export) = &self.export {
            let _ = writeln!(
                md,
                "\nExport of {} rows downloaded in {:.2} s; the csv crate alone writes them in {:.2} s.",
                export.rows, export.downloaded_seconds, export.csv_alone_seconds
            );
        }
        let _ = writeln!(
            md,
            "\n#### Memory and cold starts\n\n| service | idle, no users | idle, {} users | bytes per user | cold start |",
            self.memory.users
        );
        md.push_str("|---|---|---|---|---|\n");
        for (name, (empty, full, per_user)) in &self.memory.services {
            let start = self.cold_starts.get(name).map(|s| format!("{s:.2} s")).unwrap_or_else(|| "-".into());
            let _ = writeln!(md, "| {name} | {empty:.0} MiB | {full:.0} MiB | {per_user:.0} | {start} |");
        }
        if let Some(all) = self.cold_starts.get("all three at once") {
            let _ = writeln!(md, "\nAll three services holding users restarted at once: ready in {all:.2} s.");
        }
        md.push_str("\n![GET latency against arrival rate](bench/plots/get-latency.png)\n");
        md.push_str("![POST latency against arrival rate](bench/plots/post-latency.png)\n");
        md.push_str("![Import progress](bench/plots/import-progress.png)\n");
        md
    }
}

fn failures(run: &Run) -> String {
    if run.failed > 0 { format!(" ({} failed)", run.failed) } else { String::new() }
}

impl Target {
    fn missing(what: &str, target: &str) -> Self {
        Self { what: what.into(), measured: "not measured".into(), target: target.into(), met: None }
    }

    fn verdict(&self) -> &'static str {
        match self.met {
            Some(true) => "met",
            Some(false) => "NOT",
            None => "-",
        }
    }
}
