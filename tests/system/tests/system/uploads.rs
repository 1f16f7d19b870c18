use std::time::Duration;

use reqwest::{Method, StatusCode};
use system_tests::{Options, TestSystem};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support;

/// Sends a raw HTTP request and returns the answer's first read (status line, headers and, as
/// hyper writes a small answer at once, its body), without waiting for the client to finish
/// sending (as a server must answer an oversized upload).
pub(crate) async fn raw_post(base: &str, head: &str, chunks: &[&[u8]]) -> String {
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(head.as_bytes()).await.expect("headers");
    for chunk in chunks {
        if stream.write_all(chunk).await.is_err() {
            break; // the server already answered and closed
        }
    }
    let mut answer = vec![0; 4096];
    let n = stream.read(&mut answer).await.expect("an answer");
    String::from_utf8_lossy(&answer[..n]).into_owned()
}

/// The head of a CSV upload by an admin, with `framing` (a length or chunked encoding).
pub(crate) fn upload_head(system: &TestSystem, framing: &str) -> String {
    let token = system.token(auth::Role::Admin);
    format!(
        "POST /imports HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {token}\r\nContent-Type: text/csv\r\n{framing}\r\n\r\n"
    )
}

/// `body` as one HTTP chunk.
pub(crate) fn chunk(body: &[u8]) -> Vec<u8> {
    [format!("{:x}\r\n", body.len()).as_bytes(), body, b"\r\n"].concat()
}

#[tokio::test]
async fn an_upload_whose_header_breaks_the_csv_limits_is_refused_before_it_ends() {
    let system = TestSystem::start().await;
    let head = upload_head(&system, "Transfer-Encoding: chunked");
    // One line of commas (millions of columns), one line without a comma (one huge field):
    // the first 256 KiB of each are sent, and the upload is left open. The answer must come
    // from what arrived, in bounded memory, not after the rest.
    for (line, reason) in [(b",", "more than 256 columns"), (b"x", "longer than 8192 bytes")] {
        let start = chunk(&line.repeat(256 * 1024));
        let answer = tokio::time::timeout(Duration::from_secs(20), raw_post(&system.gateway.url, &head, &[&start]))
            .await
            .expect("answered before the upload ended");
        assert!(answer.starts_with("HTTP/1.1 422"), "{reason}: {answer}");
    }
    // The reason, as a client with the whole (smaller) file sees it.
    let wide = format!("{}email,name\na@b.co,A\n", "c,".repeat(300));
    let answer =
        system.client.post(format!("{}/imports", system.gateway.url)).header("content-type", "text/csv").body(wide);
    let problem: serde_json::Value = answer.send().await.unwrap().json().await.unwrap();
    assert!(problem["detail"].as_str().unwrap().contains("more than 256 columns"), "{problem}");
    assert_eq!(system.call(Method::GET, "/imports", None).await.body["items"], serde_json::json!([]));
    system.stop().await;
}

#[tokio::test]
async fn a_row_over_the_csv_limits_is_rejected_at_its_line_and_the_other_rows_are_imported() {
    let system = TestSystem::start_with(Options { import_worker: true, ..Options::default() }).await;
    let long = "y".repeat(70 * 1024);
    let file = format!(
        "email,name\nfirst@example.com,First\nwide@example.com,{}\nlong@example.com,\"{long}\"\nlast@example.com,Last\n",
        ",x".repeat(300)
    );
    let id = support::upload(&system, file.as_bytes(), None).await;
    let last = support::wait_import(&system, &id, Duration::from_secs(60)).await.pop().unwrap();
    assert_eq!((last["accepted"].as_u64(), last["rejected"].as_u64()), (Some(2), Some(2)), "{last}");
    let report = system.client.get(format!("{}/imports/{id}/errors", system.gateway.url)).send().await.unwrap();
    let report = report.text().await.unwrap();
    assert!(report.contains("3,row,too_many_columns,") && report.contains("4,row,field_too_long,"), "{report}");
    system.stop().await;
}

#[tokio::test]
async fn unimportable_uploads_get_clear_errors_and_nothing_is_imported() {
    let options = Options { max_import_bytes: 64 * 1024, ..Options::default() };
    let system = TestSystem::start_with(options).await;
    let post = |body: Vec<u8>, content_type: &'static str, query: &'static str| {
        let request = system
            .client
            .post(format!("{}/imports{query}", system.gateway.url))
            .header("content-type", content_type)
            .body(body);
        async move {
            let response = request.send().await.expect("answer");
            let status = response.status();
            let body: serde_json::Value = response.json().await.expect("problem json");
            (status, body)
        }
    };
    for (body, detail) in [
        (b"".to_vec(), "empty"),
        (b"email,name,age\r\n".to_vec(), "no data rows"),
        (b"ada@example.com,Ada,36\n".to_vec(), "missing column email"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00".to_vec(), "not CSV text"),
    ] {
        let (status, problem) = post(body, "text/csv", "").await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
        assert!(problem["detail"].as_str().unwrap().contains(detail), "{detail}: {problem}");
    }
    let (status, _) = post(b"email,name\na@b.co,A\n".to_vec(), "application/json", "").await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (status, _) = post(b"email,name\na@b.co,A\n".to_vec(), "text/csv", "?mode=sometimes").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // A 2 GiB upload is refused from its declared length, before its body is read.
    let head = upload_head(&system, "Content-Length: 2147483648");
    assert!(raw_post(&system.gateway.url, &head, &[b"email,name\n"]).await.starts_with("HTTP/1.1 413"));
    // Without a declared length, it is refused once the stream passes the limit.
    let head = upload_head(&system, "Transfer-Encoding: chunked");
    let row = "x@example.com,X\n".repeat(1024);
    let chunk = format!("{:x}\r\n{row}\r\n", row.len());
    let header = self::chunk(b"email,name\n");
    let chunks: Vec<&[u8]> = std::iter::once(&header[..]).chain(std::iter::repeat_n(chunk.as_bytes(), 8)).collect();
    assert!(raw_post(&system.gateway.url, &head, &chunks).await.starts_with("HTTP/1.1 413"));

    assert_eq!(system.call(Method::GET, "/imports", None).await.body["items"], serde_json::json!([]));
    let leftovers: Vec<_> = std::fs::read_dir(system.options.blob_dir.join("imports"))
        .map(|dir| dir.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "nothing of the refused uploads stays behind: {leftovers:?}");
    system.stop().await;
}
