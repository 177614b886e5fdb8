//! The page at `/ui` and what it needs from the API: its three files are served by both
//! faces and name nothing outside the API; a browser's same-origin requests reach the
//! Toxiproxy routes while cross-site ones are still refused; `GET /events/stream` streams the
//! fault events as they happen; `/behavior?proxy=NAME` acts on any proxy. The page itself,
//! in a real browser: tests_ui/ (scripts/test_ui.sh).

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::{http_with, json, within};

const FILES: [(&str, &str); 3] = [
    ("/ui", "text/html"),
    ("/ui/ui.js", "text/javascript"),
    ("/ui/ui.css", "text/css"),
];

/// The page's files from the API at `api`: each served with its type, a CSP that allows only
/// the API itself, and no URL of another site in it.
async fn check_files(api: SocketAddr) {
    for (path, ty) in FILES {
        let (status, h, body) = http_with(api, "GET", path, None, &[]).await;
        assert_eq!(status, 200, "{path}");
        assert!(h["content-type"].starts_with(ty), "{path}: {h:?}");
        assert!(
            h["content-security-policy"].starts_with("default-src 'self'"),
            "{path}: {h:?}"
        );
        let text = String::from_utf8(body).unwrap();
        assert!(text.len() > 200, "{path} has content");
        for outside in ["://", "url(", "@import", "src=\"//", "href=\"//"] {
            assert!(!text.contains(outside), "{path} names '{outside}'");
        }
        if path == "/ui" {
            // Whatever it loads is one of the other two files.
            for part in text.split(['"', '\'']).filter(|p| p.starts_with('/')) {
                assert!(
                    part == "/ui/ui.js" || part == "/ui/ui.css",
                    "/ui loads {part}"
                );
            }
        }
    }
}

#[tokio::test]
async fn the_page_is_served_by_vaurien_http() {
    within(async {
        let backend = common::echo_server().await;
        let v = common::vaurien(backend).http().start().await;
        check_files(v.api()).await;
        // Typed in the address bar (a browser's navigation).
        let nav = [("User-Agent", "Mozilla/5.0"), ("Sec-Fetch-Site", "none")];
        let (status, _, _) = http_with(v.api(), "GET", "/ui", None, &nav).await;
        assert_eq!(status, 200);
        v.stop().await;
    })
    .await;
}

/// The `toxiproxy-server` binary, on a free port.
struct ToxiproxyServer(std::process::Child, SocketAddr);

impl Drop for ToxiproxyServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn toxiproxy_server() -> ToxiproxyServer {
    let port = common::free_port();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_toxiproxy-server"))
        .args(["-host", "127.0.0.1", "-port", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("toxiproxy-server starts");
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let server = ToxiproxyServer(child, addr);
    for _ in 0..200 {
        if TcpStream::connect(addr).await.is_ok() {
            return server;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("toxiproxy-server did not listen on {addr}");
}

#[tokio::test]
async fn the_page_is_served_by_toxiproxy_server() {
    within(async {
        let t = toxiproxy_server().await;
        check_files(t.1).await;
    })
    .await;
}

/// The status of one request with these extra headers.
async fn status(
    api: SocketAddr,
    headers: &[(&str, &str)],
    method: &str,
    path: &str,
    body: Option<&str>,
) -> u16 {
    http_with(api, method, path, body.map(str::as_bytes), headers)
        .await
        .0
}

#[tokio::test]
async fn same_origin_browsers_pass_cross_site_ones_do_not() {
    within(async {
        let backend = common::echo_server().await;
        let v = common::vaurien(backend).http().start().await;
        let api = v.api();
        let own = format!("http://{api}");
        let moz = ("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) Chrome/140");
        let curl = ("User-Agent", "curl/8");
        let site = |s| ("Sec-Fetch-Site", s);
        // Toxiproxy's CSRF guard, kept: a browser that does not say it is the page's own.
        assert_eq!(status(api, &[moz], "GET", "/proxies", None).await, 403);
        let typed = [moz, site("none")];
        assert_eq!(status(api, &typed, "GET", "/proxies", None).await, 403);
        assert_eq!(
            status(api, &[moz], "GET", "/events/stream", None).await,
            403
        );
        // The page's own requests.
        let page = [moz, site("same-origin")];
        assert_eq!(status(api, &page, "GET", "/proxies", None).await, 200);
        assert_eq!(status(api, &page, "GET", "/metrics", None).await, 200);
        // A browser without Sec-Fetch-* that sends the API's own Origin.
        let body = r#"{"name":"mine","listen":"127.0.0.1:0","upstream":"127.0.0.1:1"}"#;
        let old = [moz, ("Origin", own.as_str())];
        assert_eq!(status(api, &old, "POST", "/proxies", Some(body)).await, 201);
        // Another site, whatever the User-Agent says, on both dialects.
        for s in ["cross-site", "same-site"] {
            for (method, path, body) in [
                ("GET", "/proxies", None),
                (
                    "POST",
                    "/proxies/mine/toxics",
                    Some(r#"{"type":"latency"}"#),
                ),
                ("PUT", "/behavior", Some(r#"{"name":"blackout"}"#)),
                ("GET", "/ui", None),
            ] {
                for ua in [moz, curl] {
                    let got = status(api, &[ua, site(s)], method, path, body).await;
                    assert_eq!(got, 403, "{s} {method} {path} {ua:?}");
                }
            }
        }
        // A forged same-origin mark does not make a foreign Origin the API's own.
        let forged = [moz, site("same-origin"), ("Origin", "http://evil.example")];
        assert_eq!(
            status(api, &forged, "DELETE", "/proxies/mine", None).await,
            403
        );
        // Nothing the refused requests asked for happened.
        let (_, proxies) = json(api, "GET", "/proxies", None).await;
        assert_eq!(proxies["mine"]["toxics"], serde_json::json!([]));
        let (_, b) = json(api, "GET", "/behavior", None).await;
        assert_eq!(b["behavior"], "dummy");
        v.stop().await;
    })
    .await;
}

/// Reads from `s` until `text` holds `needle`, or the deadline.
async fn read_until(s: &mut TcpStream, text: &mut String, needle: &str) {
    let mut buf = [0u8; 8192];
    let found = tokio::time::timeout(Duration::from_secs(20), async {
        while !text.contains(needle) {
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0, "the stream ended before '{needle}': {text}");
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    })
    .await;
    assert!(found.is_ok(), "no '{needle}' in the stream: {text}");
}

async fn open_stream(api: SocketAddr, query: &str) -> (TcpStream, String) {
    let mut s = TcpStream::connect(api).await.unwrap();
    let req = format!("GET /events/stream{query} HTTP/1.1\r\nHost: {api}\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut text = String::new();
    read_until(&mut s, &mut text, "vaurien events").await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("content-type: text/event-stream"), "{text}");
    (s, text)
}

#[tokio::test]
async fn the_event_stream_shows_faults_as_they_happen() {
    within(async {
        let backend = common::echo_server().await;
        let v = common::vaurien(backend).http().start().await;
        let api = v.api();
        let (mut all, mut all_text) = open_stream(api, "").await;
        let (mut mine, mut mine_text) = open_stream(api, "?proxy=vaurien").await;
        let (mut other, mut other_text) = open_stream(api, "?proxy=other").await;
        let (st, _) = json(
            api,
            "POST",
            "/proxies/vaurien/toxics",
            Some(r#"{"name":"slow","type":"latency","attributes":{"latency":10}}"#),
        )
        .await;
        assert_eq!(st, 200);
        let mut c = v.connect().await;
        assert_eq!(common::roundtrip(&mut c, b"ping").await.unwrap(), b"ping");
        for (s, text) in [(&mut all, &mut all_text), (&mut mine, &mut mine_text)] {
            read_until(s, text, "\"kind\":\"latency\"").await;
            let line = text
                .lines()
                .find(|l| l.starts_with("data: ") && l.contains("latency"))
                .unwrap();
            let ev: serde_json::Value = serde_json::from_str(&line[6..]).unwrap();
            assert_eq!(ev["proxy"], "vaurien");
            assert_eq!(ev["fault"], "slow");
        }
        // The events listed by GET /events are the ones streamed.
        let (_, listed) = json(api, "GET", "/events", None).await;
        assert_eq!(listed[0]["fault"], "slow");
        // Another proxy's stream saw nothing, and every stream ends when the API stops.
        let stop = tokio::spawn(v.stop());
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), other.read_to_end(&mut rest))
            .await
            .expect("the stream ends when the API stops")
            .unwrap();
        other_text.push_str(&String::from_utf8_lossy(&rest));
        assert!(!other_text.contains("data: "), "{other_text}");
        stop.await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn behavior_of_any_proxy() {
    within(async {
        let t = toxiproxy_server().await;
        let api = t.1;
        let (st, _) = json(
            api,
            "POST",
            "/proxies",
            Some(r#"{"name":"db","listen":"127.0.0.1:0","upstream":"127.0.0.1:1"}"#),
        )
        .await;
        assert_eq!(st, 201);
        let (_, p) = json(api, "GET", "/proxies/db", None).await;
        assert!(p.get("behavior").is_none(), "passthrough is not shown: {p}");
        let (st, b) = json(api, "GET", "/behavior", None).await;
        assert_eq!(st, 400, "no command line proxy: {b}");
        let mix = r#"{"name":"50:delay,10:error"}"#;
        let (st, _) = json(api, "PUT", "/behavior?proxy=db", Some(mix)).await;
        assert_eq!(st, 200);
        let (_, b) = json(api, "GET", "/behavior?proxy=db", None).await;
        assert_eq!(b["behavior"], "50:delay,10:error");
        let (_, p) = json(api, "GET", "/proxies/db", None).await;
        assert_eq!(p["behavior"], "50:delay,10:error");
        let (st, e) = json(api, "PUT", "/behavior?proxy=nope", Some(mix)).await;
        assert_eq!(st, 400);
        assert_eq!(e["errors"][0]["description"], "no proxy named 'nope'");
    })
    .await;
}
