//! The OpenAPI 3.1 document of the public API. Every route is registered through
//! `utoipa_axum`'s `routes!`, which takes a handler's `#[utoipa::path]` description with it, so a
//! route cannot exist without its description; the bodies come from `super::schema`. Served at
//! `/openapi.json`, browsable at `/docs` (Swagger UI, bundled into the binary), both public.
//!
//! What every operation shares is added once, by [`complete`]: the security schemes, the
//! answers any operation may give (401, 403, 408, 429, 503), and problem+json bodies for every
//! error answer.

use axum::Router;
use axum::http::{HeaderValue, header};
use utoipa::OpenApi;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::schema::{Object, Type};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{Ref, RefOr, ResponseBuilder};
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use super::AppState;
use super::schema::{FieldProblem, Problem};

/// Where the document and the browsable docs are served.
pub(crate) const DOCUMENT_PATH: &str = "/openapi.json";
pub(crate) const DOCS_PATH: &str = "/docs";

const PROBLEM_JSON: &str = "application/problem+json";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "User management API",
        version = "1.0.0",
        description = "Users, CSV imports and exports. Writes become commands on Kafka; a 2xx answer means this gateway's reads already show the write. Errors are application/problem+json.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    tags(
        (name = "users", description = "Create, read, change and delete users (reader: reads; writer: writes)"),
        (name = "commands", description = "The outcome of a write answered 202 (writer)"),
        (name = "imports", description = "CSV uploads imported in the background (admin)"),
        (name = "exports", description = "CSV exports written in the background (admin)"),
    ),
    components(schemas(Problem, FieldProblem))
)]
struct ApiDoc;

/// The router every documented route is added to.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
}

/// Answers any operation may give, whatever it does.
const SHARED: [(&str, &str); 5] = [
    ("401", "No credentials, or credentials that prove nothing (see `WWW-Authenticate`)"),
    ("403", "Authenticated, but the role is not enough"),
    ("408", "The request took longer than the gateway's time limit and was cancelled"),
    ("429", "More requests than the caller's rate allows; retry after `Retry-After` seconds"),
    ("503", "Overloaded or a dependency is unavailable; retry after `Retry-After` seconds"),
];

/// Where an answer leads: OpenAPI links (operation, status, link name, target operation, the
/// target's parameters as runtime expressions), for client generators and for the stateful
/// phase of the contract test (create, read, change, delete in a row).
type LinkRow = (&'static str, &'static str, &'static str, &'static str, &'static [(&'static str, &'static str)]);
const LINKS: &[LinkRow] = {
    const NEW_USER: &[(&str, &str)] = &[("id", "$response.body#/id")];
    const NEW_VERSION: &[(&str, &str)] = &[("id", "$response.body#/id"), ("If-Match", "$response.header.ETag")];
    const SAME_USER: &[(&str, &str)] = &[("id", "$request.path.id")];
    const COMMAND: &[(&str, &str)] = &[("id", "$response.body#/command_id")];
    const IMPORT: &[(&str, &str)] = &[("id", "$response.body#/import_id")];
    const EXPORT: &[(&str, &str)] = &[("id", "$response.body#/export_id")];
    &[
        ("createUser", "201", "GetUser", "getUser", NEW_USER),
        ("createUser", "201", "UpdateUser", "updateUser", NEW_VERSION),
        ("createUser", "201", "DeleteUser", "deleteUser", NEW_VERSION),
        ("createUser", "202", "GetCommand", "getCommand", COMMAND),
        ("getUser", "200", "UpdateUser", "updateUser", NEW_VERSION),
        ("getUser", "200", "DeleteUser", "deleteUser", NEW_VERSION),
        ("updateUser", "200", "GetUser", "getUser", NEW_USER),
        ("updateUser", "200", "DeleteUser", "deleteUser", NEW_VERSION),
        ("updateUser", "202", "GetCommand", "getCommand", COMMAND),
        ("deleteUser", "204", "GetUser", "getUser", SAME_USER),
        ("deleteUser", "202", "GetCommand", "getCommand", COMMAND),
        ("uploadImport", "202", "GetImport", "getImport", IMPORT),
        ("uploadImport", "202", "GetImportErrors", "getImportErrors", IMPORT),
        ("requestExport", "202", "GetExport", "getExport", EXPORT),
        ("requestExport", "202", "DownloadExport", "downloadExport", EXPORT),
    ]
};

/// Completes the document the routes made (see the module's documentation).
pub(crate) fn complete(api: &mut utoipa::openapi::OpenApi) {
    let components = api.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
    );
    components.add_security_scheme(
        "api_key",
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new(super::auth::API_KEY_HEADER.as_str()))),
    );
    api.security = Some(vec![
        SecurityRequirement::new("bearer", Vec::<String>::new()),
        SecurityRequirement::new("api_key", Vec::<String>::new()),
    ]);
    let problem = || ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build();
    let retry_after = || {
        HeaderBuilder::new()
            .schema(Some(Object::with_type(Type::Integer)))
            .description(Some("Seconds to wait before retrying"))
            .build()
    };
    for item in api.paths.paths.values_mut() {
        let operations = [&mut item.get, &mut item.post, &mut item.put, &mut item.patch, &mut item.delete];
        for operation in operations.into_iter().flatten() {
            let id = operation.operation_id.clone().unwrap_or_default();
            let responses = &mut operation.responses.responses;
            for (_, status, name, target, parameters) in LINKS.iter().filter(|link| link.0 == id) {
                let Some(RefOr::T(response)) = responses.get_mut(*status) else {
                    panic!("a link from {id} {status}, which the operation does not answer");
                };
                let link = parameters.iter().fold(LinkBuilder::new().operation_id(*target), |link, (name, value)| {
                    link.parameter(*name, *value)
                });
                response.links.insert((*name).to_owned(), link.build().into());
            }
            for (status, description) in SHARED {
                responses
                    .entry(status.to_owned())
                    .or_insert_with(|| ResponseBuilder::new().description(description).build().into());
            }
            for (status, response) in responses.iter_mut() {
                let RefOr::T(response) = response else { continue };
                if status.starts_with(['4', '5']) && response.content.is_empty() {
                    response.content.insert(PROBLEM_JSON.to_owned(), problem().into());
                }
                if matches!(status.as_str(), "429" | "503" | "507") {
                    response.headers.entry("Retry-After".to_owned()).or_insert_with(|| retry_after().into());
                }
            }
        }
    }
}

/// `/openapi.json` and `/docs`, open to anyone. The docs page runs Swagger UI's own scripts and
/// styles (from this server only), so it gets a policy of its own instead of the API's
/// `default-src 'none'`.
pub(crate) fn public_router(api: utoipa::openapi::OpenApi) -> Router {
    const DOCS_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
        img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'";
    Router::from(SwaggerUi::new(DOCS_PATH).url(DOCUMENT_PATH, api)).layer(
        tower_http::set_header::SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(DOCS_POLICY),
        ),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn document() -> Value {
        serde_json::to_value(crate::http::openapi_document()).expect("a JSON document")
    }

    /// Regenerated by `just openapi`.
    const CHECKED_IN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");

    #[test]
    fn the_served_document_is_the_checked_in_openapi_json() {
        let served = crate::http::openapi_document().to_pretty_json().expect("serializes") + "\n";
        if std::env::var_os("UPDATE_OPENAPI").is_some() {
            std::fs::write(CHECKED_IN, &served).expect("writes openapi.json");
        }
        let checked_in = std::fs::read_to_string(CHECKED_IN).unwrap_or_default();
        assert!(checked_in == served, "{CHECKED_IN} differs from the document the gateway serves: run `just openapi`");
    }

    fn operations(document: &Value) -> Vec<(String, String, &Value)> {
        let mut all = Vec::new();
        for (path, item) in document["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("a path item") {
                all.push((method.clone(), path.clone(), operation));
            }
        }
        all
    }

    #[test]
    fn every_operation_documents_every_answer_it_can_give() {
        let document = document();
        let all = operations(&document);
        assert!(all.len() >= 14, "{} operations", all.len());
        for (method, path, operation) in all {
            let responses = operation["responses"].as_object().expect("responses");
            for status in ["401", "403", "408", "429", "503"] {
                assert!(responses.contains_key(status), "{method} {path} lacks {status}");
            }
            if operation.get("requestBody").is_some() {
                for status in ["413", "415", "422"] {
                    assert!(responses.contains_key(status), "{method} {path} takes a body but lacks {status}");
                }
            }
            for (status, response) in responses {
                assert!(!response["description"].as_str().unwrap_or_default().is_empty(), "{method} {path} {status}");
                if status.starts_with(['4', '5']) {
                    assert!(
                        response["content"][PROBLEM_JSON]["schema"]["$ref"] == "#/components/schemas/Problem",
                        "{method} {path} {status} is not problem+json"
                    );
                }
            }
            for status in ["429", "503"] {
                assert!(responses[status]["headers"].get("Retry-After").is_some(), "{method} {path} {status}");
            }
            assert!(operation["operationId"].is_string() && operation["tags"].is_array(), "{method} {path}");
        }
        assert_eq!(document["openapi"], "3.1.0");
        let schemes = document["components"]["securitySchemes"].as_object().expect("security schemes");
        assert!(schemes.contains_key("bearer") && schemes.contains_key("api_key"));
    }

    #[test]
    fn every_link_leads_to_an_operation_with_the_parameters_it_fills_from_fields_that_exist() {
        let document = document();
        let all = operations(&document);
        let by_id = |id: &str| all.iter().find(|(.., op)| op["operationId"] == id).map(|(.., op)| *op);
        let mut count = 0;
        for (method, path, operation) in &all {
            for (status, response) in operation["responses"].as_object().expect("responses") {
                let Some(links) = response.get("links").and_then(Value::as_object) else { continue };
                let body = response["content"]["application/json"]["schema"]["$ref"].as_str().unwrap_or_default();
                let fields = document.pointer(body.trim_start_matches('#')).map(|s| &s["properties"]);
                for (name, link) in links {
                    count += 1;
                    let target = by_id(link["operationId"].as_str().unwrap_or_default());
                    let target = target.unwrap_or_else(|| panic!("{method} {path} {status} {name}: no such operation"));
                    let accepted: Vec<&str> = target["parameters"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|p| p["name"].as_str())
                        .collect();
                    for (parameter, expression) in link["parameters"].as_object().expect("parameters") {
                        assert!(
                            accepted.contains(&parameter.as_str()),
                            "{name} fills {parameter}, which it does not take"
                        );
                        let expression = expression.as_str().expect("an expression");
                        if let Some(field) = expression.strip_prefix("$response.body#/") {
                            assert!(
                                fields.is_some_and(|f| f.get(field).is_some()),
                                "{name}: the answer has no {field}"
                            );
                        } else if let Some(header) = expression.strip_prefix("$response.header.") {
                            assert!(response["headers"].get(header).is_some(), "{name}: the answer has no {header}");
                        } else {
                            assert_eq!(expression, "$request.path.id", "{name}");
                        }
                    }
                }
            }
        }
        assert_eq!(count, LINKS.len());
    }

    #[test]
    fn the_export_columns_documented_are_the_domains() {
        let documented =
            &document()["components"]["schemas"]["ExportFilters"]["properties"]["columns"]["items"]["enum"];
        let domain: Vec<&str> = domain::export::Column::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(documented, &serde_json::json!(domain));
    }

    #[test]
    fn every_reference_names_a_component() {
        fn refs<'a>(value: &'a Value, found: &mut Vec<&'a str>) {
            match value {
                Value::Object(map) => {
                    if let Some(Value::String(target)) = map.get("$ref") {
                        found.push(target);
                    }
                    map.values().for_each(|v| refs(v, found));
                }
                Value::Array(items) => items.iter().for_each(|v| refs(v, found)),
                _ => {}
            }
        }
        let document = document();
        let mut found = Vec::new();
        refs(&document, &mut found);
        assert!(!found.is_empty());
        for target in found {
            let pointer = target.strip_prefix('#').expect("a local reference");
            assert!(document.pointer(pointer).is_some(), "{target} names nothing");
        }
    }
}
