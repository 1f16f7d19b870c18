//! What the log says happened, against what the clients were told: every acknowledged write
//! has its event (none lost), no write has two (none duplicated), and the services holding
//! users agree.

use std::collections::HashMap;
use std::time::Duration;

use contract::events::UserEvent;
use domain::event::{Event, EventEnvelope};
use platform::kafka::{Incoming, replay};
use platform::registry::Registry;
use platform::topic::{Topic, TopicName};
use serde_json::Value;
use uuid::Uuid;

use super::load::{Outcome, Record, Write};
use super::stack::{HOLDERS, Stack};
use platform::testing::poll;

/// Every event of `users.events`, counted by the write it carries out.
#[derive(Debug, Default)]
pub struct Applied {
    created: HashMap<String, usize>,
    renamed: HashMap<String, usize>,
    deleted: HashMap<Uuid, usize>,
    per_command: HashMap<Uuid, usize>,
}

impl Applied {
    /// Reads `users.events` to its end (committed records), as any other client would.
    pub async fn read(stack: &Stack) -> anyhow::Result<Self> {
        let registry =
            Registry::new(&platform::registry::RegistryConfig { url: stack.registry_url() }, Duration::from_secs(10));
        let name: TopicName<UserEvent> = "users.events".parse().map_err(anyhow::Error::msg)?;
        let topic = Topic::bind(&name, &registry).await?;
        let (records, _) =
            replay(&stack.kafka_config(), name.as_str(), Vec::new(), |all: &mut Vec<Incoming>, m| all.push(m)).await?;
        let mut applied = Self::default();
        for record in &records {
            let envelope: EventEnvelope = topic.decode(record).await?;
            *applied.per_command.entry(envelope.command_id).or_default() += 1;
            match envelope.event {
                Event::Created(user) => *applied.created.entry(user.email.as_str().to_owned()).or_default() += 1,
                Event::Updated(user) => *applied.renamed.entry(user.name.as_str().to_owned()).or_default() += 1,
                Event::Deleted { user_id, .. } => *applied.deleted.entry(user_id).or_default() += 1,
            }
        }
        Ok(applied)
    }

    /// How many events carried out `write`.
    pub fn count(&self, write: &Write) -> usize {
        let found = match write {
            Write::Create { email } => self.created.get(email),
            Write::Update { name, .. } => self.renamed.get(name),
            Write::Delete { user } => self.deleted.get(user),
        };
        found.copied().unwrap_or(0)
    }

    pub fn created(&self, email: &str) -> usize {
        self.created.get(email).copied().unwrap_or(0)
    }

    /// Commands that produced more than one event.
    pub fn commands_applied_twice(&self) -> usize {
        self.per_command.values().filter(|&&n| n > 1).count()
    }
}

/// The writes of one phase against the log.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    /// Final answers 201/200/204.
    pub done: usize,
    /// Writes answered 202 first (each must apply in the end).
    pub accepted: usize,
    /// Acknowledged (final or 202) but absent from the log.
    pub lost: usize,
    /// Applied more than once.
    pub duplicated: usize,
    pub unresolved: usize,
    pub refused: usize,
    pub longest_wait: Duration,
    /// The first refusals, to show.
    pub refusals: Vec<String>,
}

pub fn tally(records: &[Record], phase: usize, applied: &Applied) -> Tally {
    let mut tally = Tally::default();
    for record in records.iter().filter(|r| r.phase == phase) {
        let events = applied.count(&record.write);
        tally.duplicated += usize::from(events > 1);
        match &record.outcome {
            Outcome::Done { accepted_first, .. } => {
                tally.done += 1;
                tally.accepted += usize::from(*accepted_first);
                tally.lost += usize::from(events == 0);
                tally.longest_wait = tally.longest_wait.max(record.waited);
            }
            Outcome::Accepted => {
                tally.accepted += 1;
                tally.lost += usize::from(events == 0);
            }
            Outcome::Unresolved => tally.unresolved += 1,
            Outcome::Refused { status, body } => {
                tally.refused += 1;
                if tally.refusals.len() < 3 {
                    tally.refusals.push(format!("{status} {body}"));
                }
            }
        }
    }
    tally
}

/// Waits until the services holding users report the same positions, then whether their
/// digests agree (`None`: the positions never met within `within`).
pub async fn digests_agree(stack: &Stack, within: Duration) -> Option<bool> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().ok()?;
    poll(within, || async {
        let mut digests = Vec::new();
        for service in HOLDERS {
            let answer = client.get(format!("{}/digest", stack.admins[service])).send().await.ok()?;
            digests.push(answer.json::<Value>().await.ok()?);
        }
        let same = |field: &str| digests.windows(2).all(|pair| pair[0][field] == pair[1][field]);
        same("positions").then(|| ["users", "versions", "emails"].iter().all(|field| same(field)))
    })
    .await
}
