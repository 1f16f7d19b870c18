//! `/commands/{id}`: the outcome of a write that answered 202.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use domain::reply::Outcome;
use serde_json::json;
use uuid::Uuid;

use super::auth::{Authorized, Writer};
use super::{AppState, user_json};
use crate::error::ApiError;

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/commands/{id}", get(status))
}

async fn status(
    _: Authorized<Writer>,
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::NotFound(format!("no recent command {id}")))?;
    let body = match app.bus.status(id)? {
        None => json!({ "command_id": id, "status": "pending" }),
        Some(reply) => match reply.outcome {
            Outcome::Accepted(accepted) => json!({
                "command_id": id,
                "status": "accepted",
                "user_id": accepted.user_id,
                "user": app.users.get(accepted.user_id).as_ref().map(user_json),
            }),
            Outcome::Rejected(rejection) => json!({
                "command_id": id,
                "status": "rejected",
                "reason": rejection.reason.as_str(),
                "detail": rejection.message,
                "errors": rejection.field_errors.iter()
                    .map(|e| json!({ "field": e.field, "code": e.code, "message": e.message }))
                    .collect::<Vec<_>>(),
            }),
            Outcome::Batch(items) => json!({
                "command_id": id,
                "status": "accepted",
                "items": items.len(),
            }),
        },
    };
    Ok(Json(body).into_response())
}
