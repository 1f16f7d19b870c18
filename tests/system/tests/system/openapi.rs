//! The API's description, from the outside: `/openapi.json` and `/docs` are public, the served
//! document is the checked-in one, the gateway serves no route the document lacks, and a tool
//! nobody here wrote (schemathesis) finds the gateway true to the document.

use auth::Role;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use system_tests::{Options, TestSystem};

/// The checked-in document (`just openapi` regenerates it).
const CHECKED_IN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../services/api-gateway/openapi.json");

/// An anonymous client: no default credentials.
fn anonymous() -> reqwest::Client {
    reqwest::Client::new()
}

#[tokio::test]
async fn the_document_and_the_docs_page_are_public_and_the_document_is_the_checked_in_one() {
    let system = TestSystem::start().await;
    let answer = anonymous().get(format!("{}/openapi.json", system.gateway.url)).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let served: Value = answer.json().await.unwrap();
    let checked_in: Value = serde_json::from_str(&std::fs::read_to_string(CHECKED_IN).unwrap()).unwrap();
    assert!(served == checked_in, "the served document is not {CHECKED_IN}: run `just openapi`");

    let page = anonymous().get(format!("{}/docs/", system.gateway.url)).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let policy = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(policy.contains("script-src 'self'") && policy.contains("frame-ancestors 'none'"), "{policy}");
    assert!(page.text().await.unwrap().contains("swagger-ui"));
    let script = anonymous().get(format!("{}/docs/swagger-initializer.js", system.gateway.url)).send().await.unwrap();
    assert_eq!(script.status(), StatusCode::OK);
    assert!(script.text().await.unwrap().contains("/openapi.json"), "the page loads this server's document");
    system.stop().await;
}

/// A documented path with its parameters filled in.
fn concrete(template: &str) -> String {
    template.replace("{id}", &uuid::Uuid::now_v7().to_string())
}

fn no_route(answer: &system_tests::Answer) -> bool {
    answer.status == StatusCode::NOT_FOUND && answer.body["detail"].as_str().unwrap_or_default().starts_with("no route")
}

#[tokio::test]
async fn the_gateway_serves_no_route_and_no_method_the_document_lacks() {
    let system = TestSystem::start().await;
    let document = serde_json::to_value(api_gateway::http::openapi_document()).unwrap();
    let paths = document["paths"].as_object().unwrap();
    let methods = [Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE];
    for (template, item) in paths {
        let path = concrete(template);
        for method in &methods {
            let documented = item.get(method.as_str().to_lowercase()).is_some();
            let answer = system.call(method.clone(), &path, None).await;
            if documented {
                assert!(
                    !no_route(&answer) && answer.status != StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {template} is documented but not served: {} {}",
                    answer.status,
                    answer.body
                );
            } else {
                assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {template} is served undocumented");
            }
        }
    }
    // Paths next to the documented ones, and the admin port's: none is served here.
    for path in ["/metrics", "/ready", "/admin", "/users/x/y", "/commands", "/imports/x/y", "/exports/x/errors"] {
        for method in &methods {
            let answer = system.call(method.clone(), path, None).await;
            assert!(no_route(&answer), "{method} {path}: {} {}", answer.status, answer.body);
        }
    }
    system.stop().await;
}

/// How many operations the document describes.
fn operation_count() -> usize {
    let document = serde_json::to_value(api_gateway::http::openapi_document()).unwrap();
    document["paths"].as_object().unwrap().values().map(|item| item.as_object().unwrap().len()).sum()
}

/// Opens a gateway's /docs in headless Chromium and checks the page and a screenshot.
const DOCS_CHECK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/docs-check.sh");

/// Swagger UI in a real browser with no internet (Debian's chromium): the bundled page loads
/// the document under the docs page's own security policy and renders every operation.
#[tokio::test]
async fn the_docs_page_renders_every_operation_in_a_headless_browser() {
    let system = TestSystem::start().await;
    let shot = std::env::temp_dir().join(platform::testing::unique("docs")).with_extension("png");
    let run = tokio::process::Command::new(DOCS_CHECK)
        .args([system.gateway.url.as_str(), shot.to_str().unwrap()])
        .output()
        .await
        .expect("runs deploy/docs-check.sh");
    let said = format!("{}{}", String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    assert!(run.status.success(), "{}: {said}", run.status);
    assert!(said.contains(&format!("shows all {} operations", operation_count())), "{said}");
    std::fs::remove_file(shot).unwrap();
    system.stop().await;
}

/// Runs schemathesis against a gateway (rate limit off) with an admin token.
const CONTRACT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/api-contract.sh");

/// schemathesis (deploy/api-contract.sh, tests/system/contract/) generates requests from the
/// document, valid and invalid, for every operation, follows its links (create, read, change,
/// delete), and checks every answer: no server error, every status and header documented, bodies
/// as described, invalid requests refused, valid ones taken.
#[tokio::test]
async fn schemathesis_finds_the_gateway_true_to_its_document_in_every_operation() {
    let system =
        TestSystem::start_with(Options { import_worker: true, export_worker: true, ..Options::default() }).await;
    let run = tokio::process::Command::new(CONTRACT)
        .args([system.gateway.url.as_str(), system.token(Role::Admin).as_str()])
        .output()
        .await
        .expect("runs deploy/api-contract.sh");
    let report = String::from_utf8_lossy(&run.stdout);
    let errors = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "schemathesis found failures ({}):\n{report}\n{errors}", run.status);
    let document = serde_json::to_value(api_gateway::http::openapi_document()).unwrap();
    let operations: usize =
        document["paths"].as_object().unwrap().values().map(|item| item.as_object().unwrap().len()).sum();
    assert!(
        report.contains(&format!("Tested: {operations}\n")),
        "not every one of {operations} operations was tested:\n{report}"
    );
    system.stop().await;
}
