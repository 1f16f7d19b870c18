//! `just dlq list [--entries]`: what is on the dead-letter topic, grouped by original topic and
//! reason, one entry per original topic/partition/offset however many readers dead-lettered it.
//! `just dlq replay <topic>`: re-publishes that topic's entries, once the cause is fixed, each
//! exactly once however often it runs (see `platform::kafka::dlq`).

use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use platform::CommonConfig;
use platform::kafka::dlq::{self, ReplayError};

#[derive(Debug, Parser)]
#[command(name = "dlq", about = "List or replay what is on the dead-letter topic")]
struct Config {
    #[command(subcommand)]
    action: Action,
    #[command(flatten)]
    common: CommonConfig,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// The entries grouped by original topic and reason code.
    List {
        /// Also print every entry: its origin, groups, reason and where its replay went.
        #[arg(long)]
        entries: bool,
    },
    /// Re-publishes the entries of ORIGINAL_TOPIC not replayed yet to their partitions.
    Replay {
        #[arg(value_name = "ORIGINAL_TOPIC")]
        topic: String,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    platform::service::main("dlq", |config: Config, _shutdown| async move {
        let Config { action, common } = config;
        platform::kafka::check_connection(&common.kafka).await?;
        let dead_letters = &common.topics.dead_letters;
        match action {
            Action::List { entries } => {
                let inventory = dlq::inventory(&common.kafka, dead_letters, None)
                    .await
                    .with_context(|| format!("reading the dead-letter topic {dead_letters}"))?;
                print_list(dead_letters, &inventory, entries);
            }
            Action::Replay { topic } => match dlq::replay(&common.kafka, &common.topics, &topic).await {
                Ok(done) => {
                    for (origin, to) in &done.replayed {
                        println!("replayed {origin} -> {to}");
                    }
                    println!("{topic}: {} entries replayed now, {} replayed before", done.replayed.len(), done.before);
                }
                Err(ReplayError::Refused(why)) => anyhow::bail!("replay of {topic} refused: {why}"),
                Err(error) => return Err(error.into()),
            },
        }
        Ok(())
    })
    .await
}

fn print_list(dead_letters: &str, inventory: &dlq::Inventory, entries: bool) {
    let replayed = inventory.letters.values().filter(|l| l.replayed_to.is_some()).count();
    println!(
        "{dead_letters}: {} records, {} entries ({replayed} replayed), {} records naming no origin",
        inventory.records,
        inventory.letters.len(),
        inventory.foreign
    );
    let groups = inventory.groups();
    if groups.is_empty() {
        return;
    }
    println!(
        "{:<20} {:<18} {:>8} {:>8}  {:<20}  {:<20}  example",
        "original topic", "reason", "entries", "replayed", "first failed", "last failed"
    );
    for group in &groups {
        println!(
            "{:<20} {:<18} {:>8} {:>8}  {:<20}  {:<20}  {}",
            group.topic,
            group.code,
            group.entries,
            group.replayed,
            when(group.first_failed_at_ms),
            when(group.last_failed_at_ms),
            shorten(&group.example, 100),
        );
    }
    if entries {
        println!();
        for letter in inventory.letters.values() {
            let groups = letter.groups.iter().map(String::as_str).collect::<Vec<_>>().join(",");
            let replayed = letter.replayed_to.as_deref().map(|to| format!(" replayed to {to}")).unwrap_or_default();
            println!(
                "{} [{}] {} by {groups}{replayed}: {}",
                letter.origin,
                letter.code,
                when(letter.failed_at_ms),
                shorten(&letter.reason, 200)
            );
        }
    }
}

fn when(ms: Option<i64>) -> String {
    ms.and_then(|ms| u64::try_from(ms).ok())
        .map(|ms| humantime::format_rfc3339_seconds(SystemTime::UNIX_EPOCH + Duration::from_millis(ms)).to_string())
        .unwrap_or_else(|| "-".into())
}

fn shorten(text: &str, chars: usize) -> String {
    let one_line = text.replace('\n', " ");
    match one_line.char_indices().nth(chars) {
        Some((cut, _)) => format!("{}...", &one_line[..cut]),
        None => one_line,
    }
}
