//! Confluent's REST API, the parts clients call. Bodies are JSON whatever the content type
//! (`application/vnd.schemaregistry.v1+json`, `application/json`, none); unknown query
//! parameters are ignored; anything else is a JSON 404.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::error::RegistryError;
use crate::registry::{Registry, SchemaRequest};
use crate::schema::Level;
use crate::state::{StoredSchema, VersionSpec};

pub(crate) const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

type Shared = State<Arc<Registry>>;
type Params = Query<HashMap<String, String>>;
type Reply = Result<Response, RegistryError>;

/// Who may delete and change settings.
#[derive(Debug, Clone)]
pub(crate) enum AdminToken {
    /// Anyone (no token configured: a closed local setup).
    Open,
    /// Callers presenting the token whose SHA-256 this is.
    Sha256([u8; 32]),
}

impl AdminToken {
    pub(crate) fn from_file(path: &std::path::Path) -> anyhow::Result<Self> {
        let token = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read the admin token file {}: {e}", path.display()))?;
        let token = token.trim();
        if token.len() < 16 {
            anyhow::bail!("the admin token in {} is shorter than 16 characters", path.display());
        }
        Ok(Self::Sha256(Sha256::digest(token.as_bytes()).into()))
    }

    pub(crate) fn describe(&self) -> &'static str {
        match self {
            Self::Open => "open to every caller (no SCHEMA_REGISTRY_ADMIN_TOKEN_FILE)",
            Self::Sha256(_) => "need the admin token",
        }
    }

    /// Whether `authorization` (a Bearer token, or Basic with the token as password) holds
    /// the token. Digests are compared, so the time taken says nothing about the token.
    fn admits(&self, authorization: Option<&str>) -> bool {
        let Self::Sha256(expected) = self else { return true };
        let Some(value) = authorization else { return false };
        let presented = if let Some(token) = value.strip_prefix("Bearer ") {
            token.trim().to_owned()
        } else if let Some(encoded) = value.strip_prefix("Basic ") {
            let Ok(decoded) = BASE64.decode(encoded.trim()) else { return false };
            let text = String::from_utf8_lossy(&decoded).into_owned();
            text.split_once(':').map(|(_, password)| password.to_owned()).unwrap_or_default()
        } else {
            return false;
        };
        <[u8; 32]>::from(Sha256::digest(presented.as_bytes())) == *expected
    }
}

/// Deletes and compatibility changes need the admin token (when one is configured).
async fn guard_changes(State(admin): State<AdminToken>, request: Request, next: Next) -> Response {
    let method = request.method();
    let changes = *method == Method::DELETE || (*method == Method::PUT && request.uri().path().starts_with("/config"));
    let authorization = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    if changes && !admin.admits(authorization) {
        return RegistryError::Unauthorized.into_response();
    }
    next.run(request).await
}

pub(crate) fn router(registry: Arc<Registry>, admin: AdminToken) -> Router {
    Router::new()
        .route("/", get(|| async { reply(json!({})) }))
        .route("/schemas/types", get(|| async { reply(json!(["AVRO"])) }))
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/schemas/ids/{id}/schema", get(raw_schema_by_id))
        .route("/schemas/ids/{id}/subjects", get(subjects_by_id))
        .route("/schemas/ids/{id}/versions", get(versions_by_id))
        .route("/subjects", get(subjects))
        .route("/subjects/{subject}", post(lookup).delete(delete_subject))
        .route("/subjects/{subject}/versions", get(versions).post(register))
        .route("/subjects/{subject}/versions/{version}", get(version).delete(delete_version))
        .route("/subjects/{subject}/versions/{version}/schema", get(raw_version))
        .route("/subjects/{subject}/versions/{version}/referencedby", get(referenced_by))
        .route("/compatibility/subjects/{subject}/versions", post(compatibility))
        .route("/compatibility/subjects/{subject}/versions/{version}", post(compatibility_with_version))
        .route("/config", get(global_config).put(set_global_config))
        .route("/config/{subject}", get(subject_config).put(set_subject_config).delete(delete_subject_config))
        .route("/mode", get(|| async { reply(json!({ "mode": "READWRITE" })) }))
        .route("/mode/{subject}", get(|| async { reply(json!({ "mode": "READWRITE" })) }))
        .fallback(|| async { RegistryError::RouteNotFound })
        .method_not_allowed_fallback(|| async { RegistryError::MethodNotAllowed })
        .with_state(registry)
        .layer(middleware::from_fn_with_state(admin, guard_changes))
}

fn reply(body: Value) -> Response {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], Json(body)).into_response()
}

fn flag(params: &HashMap<String, String>, name: &str) -> bool {
    params.get(name).is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

fn parse_id(text: &str) -> Result<u32, RegistryError> {
    text.parse().map_err(|_| RegistryError::SchemaNotFound(text.to_owned()))
}

fn schema_body(stored: &StoredSchema) -> Value {
    let mut body = json!({ "schema": stored.schema });
    if let Some(schema_type) = &stored.schema_type {
        body["schemaType"] = json!(schema_type);
    }
    if !stored.references.is_empty() {
        body["references"] = json!(stored.references);
    }
    body
}

/// The schema text is itself JSON; `/schema` endpoints return it as the body.
fn raw(schema: &str) -> Reply {
    let value: Value = serde_json::from_str(schema).map_err(|e| RegistryError::InvalidSchema(e.to_string()))?;
    Ok(reply(value))
}

/// A JSON body, accepted whatever its content type, with Confluent's 422 when it is not JSON.
pub(crate) struct Body<T>(T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = RegistryError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|e| RegistryError::UnprocessableEntity(format!("Unreadable request body: {e}")))?;
        serde_json::from_slice(&bytes)
            .map(Body)
            .map_err(|e| RegistryError::UnprocessableEntity(format!("Unrecognized request body: {e}")))
    }
}

async fn schema_by_id(State(registry): Shared, Path(id): Path<String>) -> Reply {
    Ok(reply(schema_body(&registry.schema_by_id(parse_id(&id)?)?)))
}

async fn raw_schema_by_id(State(registry): Shared, Path(id): Path<String>) -> Reply {
    raw(&registry.schema_by_id(parse_id(&id)?)?.schema)
}

async fn subjects_by_id(State(registry): Shared, Path(id): Path<String>, Query(params): Params) -> Reply {
    let mut subjects: Vec<String> =
        registry.usages(parse_id(&id)?, flag(&params, "deleted"))?.into_iter().map(|(s, _)| s).collect();
    subjects.dedup();
    Ok(reply(json!(subjects)))
}

async fn versions_by_id(State(registry): Shared, Path(id): Path<String>, Query(params): Params) -> Reply {
    let usages = registry.usages(parse_id(&id)?, flag(&params, "deleted"))?;
    let body: Vec<Value> = usages.into_iter().map(|(s, v)| json!({ "subject": s, "version": v })).collect();
    Ok(reply(json!(body)))
}

async fn subjects(State(registry): Shared, Query(params): Params) -> Reply {
    let prefix = params.get("subjectPrefix").map(String::as_str).unwrap_or_default();
    let subjects: Vec<String> =
        registry.subjects(flag(&params, "deleted")).into_iter().filter(|s| s.starts_with(prefix)).collect();
    Ok(reply(json!(subjects)))
}

async fn versions(State(registry): Shared, Path(subject): Path<String>, Query(params): Params) -> Reply {
    Ok(reply(json!(registry.versions(&subject, flag(&params, "deleted"))?)))
}

async fn register(State(registry): Shared, Path(subject): Path<String>, Body(request): Body<SchemaRequest>) -> Reply {
    let id = registry.register(&subject, &request).await?;
    Ok(reply(json!({ "id": id })))
}

async fn lookup(
    State(registry): Shared,
    Path(subject): Path<String>,
    Query(params): Params,
    Body(request): Body<SchemaRequest>,
) -> Reply {
    let found = registry.lookup(&subject, &request, flag(&params, "deleted"))?;
    Ok(reply(json!({ "subject": found.subject, "version": found.version, "id": found.id, "schema": found.schema })))
}

async fn version(
    State(registry): Shared,
    Path((subject, version)): Path<(String, String)>,
    Query(params): Params,
) -> Reply {
    let value = registry.version(&subject, VersionSpec::parse(&version)?, flag(&params, "deleted"))?;
    let mut body = schema_body(&StoredSchema {
        schema: value.schema.clone(),
        schema_type: value.schema_type.clone(),
        references: value.references.clone(),
    });
    body["subject"] = json!(value.subject);
    body["version"] = json!(value.version);
    body["id"] = json!(value.id);
    Ok(reply(body))
}

async fn raw_version(
    State(registry): Shared,
    Path((subject, version)): Path<(String, String)>,
    Query(params): Params,
) -> Reply {
    raw(&registry.version(&subject, VersionSpec::parse(&version)?, flag(&params, "deleted"))?.schema)
}

async fn referenced_by(State(registry): Shared, Path((subject, version)): Path<(String, String)>) -> Reply {
    Ok(reply(json!(registry.referenced_by(&subject, VersionSpec::parse(&version)?)?)))
}

async fn delete_subject(State(registry): Shared, Path(subject): Path<String>, Query(params): Params) -> Reply {
    Ok(reply(json!(registry.delete_subject(&subject, flag(&params, "permanent")).await?)))
}

async fn delete_version(
    State(registry): Shared,
    Path((subject, version)): Path<(String, String)>,
    Query(params): Params,
) -> Reply {
    let spec = VersionSpec::parse(&version)?;
    Ok(reply(json!(registry.delete_version(&subject, spec, flag(&params, "permanent")).await?)))
}

async fn compatibility(
    State(registry): Shared,
    Path(subject): Path<String>,
    Query(params): Params,
    Body(request): Body<SchemaRequest>,
) -> Reply {
    compatibility_reply(registry.test_compatibility(&subject, None, &request)?, &params)
}

async fn compatibility_with_version(
    State(registry): Shared,
    Path((subject, version)): Path<(String, String)>,
    Query(params): Params,
    Body(request): Body<SchemaRequest>,
) -> Reply {
    let spec = VersionSpec::parse(&version)?;
    compatibility_reply(registry.test_compatibility(&subject, Some(spec), &request)?, &params)
}

fn compatibility_reply(problems: Vec<String>, params: &HashMap<String, String>) -> Reply {
    let mut body = json!({ "is_compatible": problems.is_empty() });
    if flag(params, "verbose") {
        body["messages"] = json!(problems);
    }
    Ok(reply(body))
}

#[derive(Debug, Deserialize)]
struct LevelRequest {
    compatibility: Option<String>,
}

impl LevelRequest {
    fn level(&self) -> Result<Level, RegistryError> {
        self.compatibility.as_deref().and_then(|l| l.parse().ok()).ok_or(RegistryError::InvalidCompatibilityLevel)
    }
}

async fn global_config(State(registry): Shared) -> Reply {
    Ok(reply(json!({ "compatibilityLevel": registry.global_level() })))
}

async fn set_global_config(State(registry): Shared, Body(request): Body<LevelRequest>) -> Reply {
    let level = request.level()?;
    registry.set_level(None, level).await?;
    Ok(reply(json!({ "compatibility": level })))
}

async fn subject_config(State(registry): Shared, Path(subject): Path<String>, Query(params): Params) -> Reply {
    let level = registry.subject_level(&subject, flag(&params, "defaultToGlobal"))?;
    Ok(reply(json!({ "compatibilityLevel": level })))
}

async fn set_subject_config(
    State(registry): Shared,
    Path(subject): Path<String>,
    Body(request): Body<LevelRequest>,
) -> Reply {
    let level = request.level()?;
    registry.set_level(Some(&subject), level).await?;
    Ok(reply(json!({ "compatibility": level })))
}

async fn delete_subject_config(State(registry): Shared, Path(subject): Path<String>) -> Reply {
    Ok(reply(json!({ "compatibilityLevel": registry.delete_subject_level(&subject).await? })))
}
