use reqwest::{Method, StatusCode};
use system_tests::{Options, TestSystem};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Sends a raw HTTP request and returns the status line of the answer, without waiting for the
/// client to finish sending (as a server must answer an oversized upload).
async fn raw_post(base: &str, head: &str, chunks: &[&[u8]]) -> String {
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
    String::from_utf8_lossy(&answer[..n]).lines().next().unwrap_or_default().to_owned()
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
    let head = "POST /imports HTTP/1.1\r\nHost: test\r\nContent-Type: text/csv\r\nContent-Length: 2147483648\r\n\r\n";
    assert!(raw_post(&system.gateway.url, head, &[b"email,name\n"]).await.contains("413"));
    // Without a declared length, it is refused once the stream passes the limit.
    let head = "POST /imports HTTP/1.1\r\nHost: test\r\nContent-Type: text/csv\r\nTransfer-Encoding: chunked\r\n\r\n";
    let row = "x@example.com,X\n".repeat(1024);
    let chunk = format!("{:x}\r\n{row}\r\n", row.len());
    let chunks: Vec<&[u8]> = std::iter::repeat_n(chunk.as_bytes(), 8).collect();
    assert!(raw_post(&system.gateway.url, head, &chunks).await.contains("413"));

    assert_eq!(system.call(Method::GET, "/imports", None).await.body["items"], serde_json::json!([]));
    let leftovers: Vec<_> = std::fs::read_dir(system.options.blob_dir.join("imports"))
        .map(|dir| dir.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "nothing of the refused uploads stays behind: {leftovers:?}");
    system.stop().await;
}
