//! `/commands/{id}`: the outcome of a write that answered 202.

use axum::Json;
use axum::extract::{Path, State};
use domain::reply::Outcome;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::AppState;
use super::auth::{Authorized, Writer};
use super::schema::{CommandState, CommandStatus, FieldProblem, UserBody};
use crate::error::ApiError;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(status))
}

/// The outcome of a recent write
///
/// For a write answered 202: `pending` until user-service decides, then `accepted` or
/// `rejected` (with the reason and the bad fields).
#[utoipa::path(
    get,
    path = "/commands/{id}",
    tag = "commands",
    operation_id = "getCommand",
    params(("id" = Uuid, Path, description = "The command id of the 202 answer")),
    responses(
        (status = 200, description = "Where the command stands", body = CommandStatus),
        (status = 404, description = "No recent command with this id"),
    ),
)]
async fn status(
    _: Authorized<Writer>,
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<CommandStatus>, ApiError> {
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::NotFound(format!("no recent command {id}")))?;
    let mut status = CommandStatus {
        command_id: id,
        status: CommandState::Pending,
        user_id: None,
        user: None,
        reason: None,
        detail: None,
        errors: None,
        items: None,
    };
    match app.bus.status(id)?.map(|reply| reply.outcome) {
        None => {}
        Some(Outcome::Accepted(accepted)) => {
            status.status = CommandState::Accepted;
            status.user_id = Some(accepted.user_id);
            status.user = app.users.get(accepted.user_id).as_ref().map(UserBody::from);
        }
        Some(Outcome::Rejected(rejection)) => {
            status.status = CommandState::Rejected;
            status.reason = Some(rejection.reason.as_str().to_owned());
            status.detail = Some(rejection.message);
            status.errors = Some(rejection.field_errors.into_iter().map(FieldProblem::from).collect());
        }
        Some(Outcome::Batch(items)) => {
            status.status = CommandState::Accepted;
            status.items = Some(items.len());
        }
    }
    Ok(Json(status))
}
