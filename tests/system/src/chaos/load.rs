//! The steady load: clients creating, renaming and deleting users of their own through the
//! gateway at a fixed pace, as a careful client would. Each write has an `Idempotency-Key` of
//! its own; a write without a final answer (an error, a timeout, a 503, a 202) is sent again
//! under its key until it gets one, so every write either has its outcome or is reported
//! unresolved. Every write is written down with the phase it started in.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

/// A logical write, named by what makes it unique in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    Create {
        email: String,
    },
    /// Renames `user` to a name no other write uses.
    Update {
        user: Uuid,
        name: String,
    },
    Delete {
        user: Uuid,
    },
}

/// How a write ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Its final answer (201, 200, 204); `accepted_first` if a 202 came before it.
    Done { status: u16, accepted_first: bool },
    /// Answered 202 and never anything final before the client gave up asking: it must
    /// still apply in the end.
    Accepted,
    /// No answer that says anything before the client gave up.
    Unresolved,
    /// A refusal (4xx other than 408/429) that a correct system would not give.
    Refused { status: u16, body: String },
}

#[derive(Debug, Clone)]
pub struct Record {
    pub phase: usize,
    pub write: Write,
    pub outcome: Outcome,
    /// From the first attempt to the final answer (or to giving up).
    pub waited: Duration,
}

/// Whether clients may start a new user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Open,
    /// Between phases, for the checks: the writes in hand finish, no new user starts.
    Paused,
    Stopped,
}

/// What the clients share with the conductor.
#[derive(Debug)]
pub struct Shared {
    pub phase: AtomicUsize,
    pub gate: tokio::sync::watch::Sender<Gate>,
    /// Clients in the middle of a user's writes.
    pub busy: AtomicUsize,
    pub ledger: Mutex<Vec<Record>>,
}

impl Default for Shared {
    fn default() -> Self {
        let (gate, _) = tokio::sync::watch::channel(Gate::Open);
        Self { phase: AtomicUsize::new(0), gate, busy: AtomicUsize::new(0), ledger: Mutex::default() }
    }
}

impl Shared {
    pub fn records(&self) -> Vec<Record> {
        self.ledger.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

#[derive(Debug)]
pub struct Client {
    pub id: usize,
    pub api: String,
    pub token: String,
    /// Time between two writes of this client.
    pub pace: Duration,
    /// How long a write is retried before it is reported unresolved.
    pub patience: Duration,
    pub shared: Arc<Shared>,
}

impl Client {
    /// Runs users through create, two renames and (every third user) a delete, until stopped.
    pub async fn run(self) {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("a client");
        let mut next = tokio::time::Instant::now();
        for user in 0.. {
            let mut gate = self.shared.gate.subscribe();
            match gate.wait_for(|gate| *gate != Gate::Paused).await.map(|gate| *gate) {
                Ok(Gate::Open) => {}
                _ => return,
            }
            self.shared.busy.fetch_add(1, Ordering::SeqCst);
            let email = format!("c{}-u{user}-{}@chaos.test", self.id, Uuid::now_v7().simple());
            let mut id = None;
            for step in 0..4 {
                let write = match (step, id) {
                    (0, _) => Write::Create { email: email.clone() },
                    (1 | 2, Some(user)) => Write::Update { user, name: format!("c{}-{user}-n{step}", self.id) },
                    (3, Some(user)) if user.as_u128() % 3 == 0 => Write::Delete { user },
                    _ => break,
                };
                tokio::time::sleep_until(next).await;
                let phase = self.shared.phase.load(Ordering::SeqCst);
                let ((outcome, waited), created) = self.perform(&http, &write).await;
                // The pace resumes after a long wait; no burst to catch up.
                next = (next + self.pace).max(tokio::time::Instant::now());
                let done = matches!(outcome, Outcome::Done { .. });
                id = id.or(created);
                let record = Record { phase, write, outcome, waited };
                self.shared.ledger.lock().unwrap_or_else(PoisonError::into_inner).push(record);
                if !done {
                    // Nothing more for a user whose write's outcome is unknown.
                    break;
                }
            }
            self.shared.busy.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Sends `write` under a key of its own until a final answer or the patience runs out;
    /// the outcome, how long it took, and the created user's id.
    async fn perform(&self, http: &reqwest::Client, write: &Write) -> ((Outcome, Duration), Option<Uuid>) {
        let key = Uuid::now_v7().to_string();
        let (method, path, body) = match write {
            Write::Create { email } => {
                (Method::POST, "/users".to_owned(), Some(json!({ "email": email, "name": "new" })))
            }
            Write::Update { user, name } => (Method::PATCH, format!("/users/{user}"), Some(json!({ "name": name }))),
            Write::Delete { user } => (Method::DELETE, format!("/users/{user}"), None),
        };
        let started = Instant::now();
        let mut accepted = false;
        let mut backoff = Duration::from_millis(100);
        while started.elapsed() < self.patience {
            let mut request = http
                .request(method.clone(), format!("{}{path}", self.api))
                .bearer_auth(&self.token)
                .header("idempotency-key", &key);
            if let Some(body) = &body {
                request = request.json(body);
            }
            if let Ok(answer) = request.send().await {
                let status = answer.status();
                let text = answer.text().await.unwrap_or_default();
                match status {
                    StatusCode::OK | StatusCode::CREATED | StatusCode::NO_CONTENT => {
                        let created = serde_json::from_str::<Value>(&text)
                            .ok()
                            .and_then(|v| v["id"].as_str().and_then(|id| id.parse().ok()));
                        let outcome = Outcome::Done { status: status.as_u16(), accepted_first: accepted };
                        return ((outcome, started.elapsed()), created);
                    }
                    StatusCode::ACCEPTED => accepted = true,
                    status
                        if status.is_client_error()
                            && !matches!(status, StatusCode::REQUEST_TIMEOUT | StatusCode::TOO_MANY_REQUESTS) =>
                    {
                        let refused = Outcome::Refused { status: status.as_u16(), body: text };
                        return ((refused, started.elapsed()), None);
                    }
                    _ => {}
                }
            }
            // The client's retry policy (a careful client backs off), not a wait in a test.
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
        let outcome = if accepted { Outcome::Accepted } else { Outcome::Unresolved };
        ((outcome, started.elapsed()), None)
    }
}
