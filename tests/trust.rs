//! Who may talk to the server and who may publish, over real sockets: a web page of another origin cannot
//! publish through a browser on this machine, a DNS-rebinding page cannot read, the demo page's own form
//! still publishes, and an empty publish token is refused at start.

mod support;

use std::process::Command;

use support::{Server, exchange};

fn publish(server: &Server, origin: Option<&str>, host: &str) -> String {
    let origin = origin.map(|o| format!("Origin: {o}\r\n")).unwrap_or_default();
    let raw = format!(
        "POST /home/events HTTP/1.1\r\nHost: {host}\r\n{origin}Content-Type: text/plain\r\nContent-Length: 2\r\n\
         Connection: close\r\n\r\nhi"
    );
    String::from_utf8_lossy(&exchange(server, raw.as_bytes())).into_owned()
}

fn get(server: &Server, path: &str, host: &str) -> String {
    let raw = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    String::from_utf8_lossy(&exchange(server, raw.as_bytes())).into_owned()
}

#[test]
fn a_page_of_another_origin_cannot_publish_through_loopback_trust() {
    let server = Server::start(&["--cors-origin", "*"]);
    let own = server.addr.to_string();
    // A "simple" cross-site POST, which the browser sends without a preflight.
    let answer = publish(&server, Some("https://evil.example"), &own);
    assert!(answer.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{answer}");
    assert!(answer.contains("another origin may not publish"), "{answer}");
    // The demo page's own form (same origin) and a script without Origin still publish.
    let answer = publish(&server, Some(&format!("http://{own}")), &own);
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    let answer = publish(&server, None, &own);
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    let metrics = get(&server, "/metrics", &own);
    assert!(metrics.contains("\nmio_sse_publishes_total 2\n"), "only the two allowed: {metrics}");
}

#[test]
fn a_dns_rebinding_page_cannot_read_streams_or_metrics() {
    let server = Server::start(&["--allow-host", "sse.internal"]);
    let port = server.addr.port();
    for path in ["/home/events", "/metrics", "/"] {
        let answer = get(&server, path, &format!("evil.example:{port}"));
        assert!(answer.starts_with("HTTP/1.1 421 Misdirected Request\r\n"), "{path}: {answer}");
    }
    let answer =
        publish(&server, Some(&format!("http://evil.example:{port}")), &format!("evil.example:{port}"));
    assert!(answer.starts_with("HTTP/1.1 421"), "{answer}");
    for host in [format!("localhost:{port}"), format!("127.0.0.1:{port}"), format!("sse.internal:{port}")] {
        let answer = get(&server, "/metrics", &host);
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{host}: {answer}");
    }
}

#[test]
fn an_empty_publish_token_is_refused_at_start() {
    let out = Command::new(env!("CARGO_BIN_EXE_mio-sse"))
        .args(["--listen", "127.0.0.1:0", "--publish-token", ""])
        .output()
        .expect("run mio-sse");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("must not be empty"), "{stderr}");
}

#[test]
fn with_a_token_a_header_without_bearer_is_refused() {
    let server = Server::start(&["--publish-token", "s3cret"]);
    let raw = format!(
        "POST /home/events HTTP/1.1\r\nHost: {}\r\nAuthorization: junk\r\nContent-Length: 2\r\n\
         Connection: close\r\n\r\nhi",
        server.addr
    );
    let answer = String::from_utf8_lossy(&exchange(&server, raw.as_bytes())).into_owned();
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
}
