//! The ceiling `just bench` measures the gateway's reads against: a bare axum server holding the
//! same users in a DashMap and answering the same three reads with the same JSON, without
//! authentication, limits, metrics or anything else the gateway does.
//!
//! Started by the bench: it copies every user from the gateway (`--from`, with `--token`), then
//! listens on `--addr` and prints `ready <addr>` on stdout.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context as _;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use clap::Parser;
use dashmap::DashMap;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Parser)]
struct Args {
    /// The gateway to copy the users from.
    #[arg(long)]
    from: String,
    /// A bearer token the gateway accepts.
    #[arg(long)]
    token: String,
    #[arg(long, default_value = "127.0.0.1:0")]
    addr: String,
}

/// A user as `GET /users/{id}` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct UserBody {
    id: Uuid,
    email: String,
    name: String,
    age: Option<u8>,
    locale: Option<String>,
    created_at: String,
    updated_at: String,
    version: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct UserPage {
    items: Vec<UserBody>,
    limit: usize,
    next_cursor: Option<Uuid>,
    partial: bool,
}

#[derive(Debug, Default)]
struct Users {
    by_id: DashMap<Uuid, UserBody>,
    /// Lower-cased email to id.
    by_email: DashMap<String, Uuid>,
    /// Ids in creation order, for pages.
    order: Vec<Uuid>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(serve(args))
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let users = Arc::new(copy(&args.from, &args.token).await?);
    let app = axum::Router::new()
        .route("/users/{id}", axum::routing::get(fetch))
        .route("/users", axum::routing::get(list))
        .with_state(users);
    let listener = tokio::net::TcpListener::bind(&args.addr).await.with_context(|| format!("binding {}", args.addr))?;
    println!("ready {}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

/// Every user of the gateway, page by page.
async fn copy(gateway: &str, token: &str) -> anyhow::Result<Users> {
    let client = reqwest::Client::new();
    let mut users = Users::default();
    let mut cursor = String::new();
    loop {
        let page: UserPage = client
            .get(format!("{gateway}/users?limit=1000&cursor={cursor}"))
            .bearer_auth(token)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        for user in page.items {
            users.by_email.insert(user.email.to_lowercase(), user.id);
            users.order.push(user.id);
            users.by_id.insert(user.id, user);
        }
        match page.next_cursor {
            Some(next) => cursor = next.to_string(),
            None => return Ok(users),
        }
    }
}

async fn fetch(State(users): State<Arc<Users>>, Path(id): Path<Uuid>) -> Response {
    let Some(user) = users.by_id.get(&id).map(|u| u.clone()) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let etag = HeaderValue::from_str(&format!("\"{}\"", user.version)).expect("digits are a valid header");
    ([(header::ETAG, etag)], Json(user)).into_response()
}

async fn list(State(users): State<Arc<Users>>, Query(params): Query<HashMap<String, String>>) -> Response {
    let limit = params.get("limit").and_then(|l| l.parse().ok()).unwrap_or(50usize).clamp(1, 1000);
    let items: Vec<UserBody> = match params.get("email") {
        Some(email) => users
            .by_email
            .get(&email.to_lowercase())
            .and_then(|id| users.by_id.get(&*id).map(|u| u.clone()))
            .into_iter()
            .collect(),
        None => {
            let after = params.get("cursor").and_then(|c| Uuid::parse_str(c).ok());
            let from = after.map_or(0, |a| users.order.partition_point(|id| *id <= a));
            users.order[from..].iter().take(limit).filter_map(|id| users.by_id.get(id).map(|u| u.clone())).collect()
        }
    };
    let next_cursor = (items.len() == limit && !params.contains_key("email")).then(|| items[limit - 1].id);
    Json(UserPage { items, limit, next_cursor, partial: false }).into_response()
}
