//! The control plane is not a hole: both dialects refuse a cross-origin request and a `Host`
//! that is not an address of the API (DNS rebinding), and the API listens on loopback by
//! default. Ordinary clients (no `Origin`, the `Host` they connected to) are served.

mod common;

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::within;

/// Sends one request with exactly these header lines; returns the status and the body.
async fn raw(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[&str],
    body: &str,
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status line");
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn a_foreign_host_is_refused_by_both_dialects() {
    within(async {
        let backend = common::echo_server().await;
        let v = common::vaurien(backend).http().start().await;
        let api = v.api();
        let own = format!("Host: {api}");
        for path in ["/behavior", "/proxies", "/version"] {
            let (status, _) = raw(api, "GET", path, &[&own], "").await;
            assert_eq!(status, 200, "{path} with the API's own Host");
            let (status, body) = raw(api, "GET", path, &["Host: attacker.example:8080"], "").await;
            assert_eq!(status, 403, "{path} with a foreign Host: {body}");
            assert!(
                body.contains("attacker.example"),
                "the refusal says why: {body}"
            );
        }
        let (status, _) = raw(api, "GET", "/proxies", &["Host: localhost"], "").await;
        assert_eq!(status, 200, "localhost names the API");
        v.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_cross_origin_change_is_refused_and_changes_nothing() {
    within(async {
        let backend = common::echo_server().await;
        let v = common::vaurien(backend).http().start().await;
        let api = v.api();
        let own = format!("Host: {api}");
        let evil = "Origin: http://evil.example";
        let (status, body) = raw(
            api,
            "PUT",
            "/behavior",
            &[&own, evil],
            r#"{"name": "blackout"}"#,
        )
        .await;
        assert_eq!(status, 403, "vaurien dialect: {body}");
        let (status, body) = raw(
            api,
            "POST",
            "/proxies",
            &[&own, evil],
            r#"{"name": "x", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:1"}"#,
        )
        .await;
        assert_eq!(status, 403, "toxiproxy dialect: {body}");
        // Nothing changed.
        let (_, behavior) = raw(api, "GET", "/behavior", &[&own], "").await;
        assert!(
            behavior.contains("dummy"),
            "the behavior is unchanged: {behavior}"
        );
        let (_, proxies) = raw(api, "GET", "/proxies", &[&own], "").await;
        assert!(
            !proxies.contains("\"x\""),
            "no proxy was created: {proxies}"
        );
        // The API's own origin (a page it serves) is accepted.
        let same = format!("Origin: http://{api}");
        let (status, body) = raw(
            api,
            "PUT",
            "/behavior",
            &[&own, &same],
            r#"{"name": "dummy"}"#,
        )
        .await;
        assert_eq!(status, 200, "same origin: {body}");
        v.stop().await;
    })
    .await;
}

#[test]
fn the_api_listens_on_loopback_by_default() {
    let r = vaurien::cli::parse([
        "vaurien",
        "--proxy",
        "127.0.0.1:0",
        "--backend",
        "127.0.0.1:1",
        "--http",
    ])
    .expect("parses");
    let http = r.server.http.expect("--http asks for the API");
    let host = http.rsplit_once(':').map(|(h, _)| h).unwrap();
    let ips: Vec<std::net::IpAddr> = std::net::ToSocketAddrs::to_socket_addrs(&(host, 0))
        .expect("resolves")
        .map(|a| a.ip())
        .collect();
    assert!(
        !ips.is_empty() && ips.iter().all(|ip| ip.is_loopback()),
        "{http} is loopback: {ips:?}"
    );
    let t = vaurien::toxiserver::parse(&[]).expect("no flags");
    assert!(
        t.host == "localhost" || t.host.starts_with("127."),
        "toxiproxy-server: {}",
        t.host
    );
}
