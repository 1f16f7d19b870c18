//! Who may call what. Every route but the public ones (`/health`, `/openapi.json`, `/docs`)
//! passes [`authenticate`], which turns the credentials into a [`Principal`] or answers 401; a
//! handler names the role it needs by taking an [`Authorized`] of that role, which answers 403
//! when the principal's role is not enough. Credentials never reach a log: the headers carrying
//! them are marked sensitive, and errors name what was wrong, never the value.

use std::marker::PhantomData;
use std::time::Duration;

use auth::{Authenticator, Principal, Role};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderName, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::error::ApiError;

/// The header an API key comes in.
pub(crate) const API_KEY_HEADER: HeaderName = HeaderName::from_static("x-api-key");

/// Authenticates the request, or answers 401 with a `WWW-Authenticate` challenge.
pub(crate) async fn authenticate(
    State(authenticator): State<Authenticator>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let headers = request.headers();
    let text = |name| headers.get(name).map(|v: &axum::http::HeaderValue| v.to_str().unwrap_or_default());
    let principal = authenticator.authenticate(text(header::AUTHORIZATION), text(API_KEY_HEADER))?;
    request.extensions_mut().insert(principal);
    Ok(next.run(request).await)
}

/// A role a handler can require.
pub(crate) trait Needs: Send + Sync + 'static {
    const ROLE: Role;
}

#[derive(Debug)]
pub(crate) struct Reader;
#[derive(Debug)]
pub(crate) struct Writer;
#[derive(Debug)]
pub(crate) struct Admin;

impl Needs for Reader {
    const ROLE: Role = Role::Reader;
}
impl Needs for Writer {
    const ROLE: Role = Role::Writer;
}
impl Needs for Admin {
    const ROLE: Role = Role::Admin;
}

/// The caller, known to hold at least role `R`: take it as a handler's first argument.
#[derive(Debug)]
pub(crate) struct Authorized<R>(pub(crate) Principal, pub(crate) PhantomData<R>);

impl<R: Needs, S: Send + Sync> FromRequestParts<S> for Authorized<R> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        // Set by `authenticate`; a route outside it is a wiring fault, never an open door.
        let principal = parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or_else(|| ApiError::Internal("a route that needs a role is not behind authentication".into()))?;
        if !principal.role.allows(R::ROLE) {
            return Err(ApiError::Forbidden { role: principal.role, needed: R::ROLE });
        }
        Ok(Self(principal, PhantomData))
    }
}

/// While authentication is disabled, says so every minute: an open API must not go unnoticed.
pub(crate) async fn warn_while_disabled(shutdown: platform::Shutdown) {
    let mut every = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            () = shutdown.wait() => return,
            _ = every.tick() => tracing::warn!(
                "authentication is DISABLED (GATEWAY_AUTH_DISABLED=true): anyone who can reach this port can read and change every user"
            ),
        }
    }
}
