//! One writer: bytes a fault injects (the `error` reply), bytes a hook rewrote (a reply made
//! longer) and bytes of a stream a protocol hands over to raw forwarding (an HTTP upgrade)
//! reach the client through the same path as every forwarded byte — the downstream toxics
//! delay them and the sent-bytes counters count them.
//! The engine runs here without the control API (`Server::start`, no `--http`).

mod common;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use common::within;
use vaurien::behavior::{Options, Value};
use vaurien::proxy::{Limits, Proxy, ProxyConfig};
use vaurien::server::{Server, ServerConfig};

const LATENCY_MS: i64 = 300;

/// The engine alone: a server with the proxy of `cfg` and no control plane.
async fn engine(cfg: ProxyConfig) -> (Arc<Server>, Arc<Proxy>, SocketAddr) {
    let server = Server::start(ServerConfig {
        proxy: Some(cfg),
        grace: Duration::from_secs(1),
        ..ServerConfig::default()
    })
    .await
    .expect("the engine starts without the API");
    assert!(
        server.api_addr().is_none(),
        "no control plane was asked for"
    );
    let proxy = server.main_proxy().expect("the command line's proxy");
    let addr = proxy.local_addr().await.expect("listening");
    (server, proxy, addr)
}

/// A downstream `latency` toxic of [`LATENCY_MS`] on `proxy`.
fn add_latency(proxy: &Proxy) {
    let mut o = Options::default();
    o.set("latency", Value::Int(LATENCY_MS));
    proxy
        .shared
        .add_toxic("lat", "latency", "downstream", 1.0, o, Limits::default())
        .expect("latency toxic added");
}

fn sent_downstream(p: &Proxy) -> u64 {
    p.shared.metrics.sent_downstream.load(Ordering::Relaxed)
}

/// Reads until `want` bytes came or the peer closed.
async fn read_n(s: &mut TcpStream, want: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while out.len() < want {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    out
}

/// A redis proxy with `behavior` (and its options) before a backend that answers `+PONG`, a
/// downstream latency toxic added; and the sent-bytes counter at that point.
async fn redis_engine(
    behavior: &str,
    options: Option<Options>,
) -> (Arc<Server>, Arc<Proxy>, SocketAddr, u64) {
    let backend = common::reply_server(|_| b"+PONG\r\n".to_vec()).await;
    let mut cfg = ProxyConfig {
        listen: "127.0.0.1:0".into(),
        backend: backend.to_string(),
        protocol: "redis".into(),
        behavior: format!("100:{behavior}"),
        ..ProxyConfig::default()
    };
    if let Some(o) = options {
        cfg.behavior_options.insert(behavior.into(), o);
    }
    let (server, proxy, addr) = engine(cfg).await;
    add_latency(&proxy);
    let before = sent_downstream(&proxy);
    (server, proxy, addr, before)
}

/// `what`, `len` bytes that reached the client `took` after the request, went through the
/// link: the downstream latency delayed them and the counter counted them.
fn assert_through_the_link(proxy: &Proxy, before: u64, took: Duration, len: usize, what: &str) {
    assert!(
        took >= Duration::from_millis(LATENCY_MS as u64),
        "the {what} waited the downstream latency: {took:?}"
    );
    let counted = sent_downstream(proxy) - before;
    assert!(
        counted >= len as u64,
        "the {what} is counted as sent downstream: {counted} < {len}"
    );
}

#[tokio::test]
async fn an_error_reply_passes_the_downstream_toxics_and_is_counted() {
    within(async {
        let mut eo = Options::default();
        eo.set("protocol_reply", Value::Bool(true));
        let (server, proxy, addr, before) = redis_engine("error", Some(eo)).await;

        let mut c = TcpStream::connect(addr).await.unwrap();
        let t = Instant::now();
        c.write_all(b"*1\r\n$4\r\nPING\r\n").await.unwrap();
        let mut reply = read_n(&mut c, 1).await;
        let took = t.elapsed();
        while !reply.ends_with(b"\r\n") {
            let more = read_n(&mut c, 1).await;
            assert!(!more.is_empty(), "the reply arrives whole");
            reply.extend(more);
        }
        assert!(
            reply.starts_with(b"-ERR"),
            "the error behavior answered: {:?}",
            String::from_utf8_lossy(&reply)
        );
        assert_through_the_link(&proxy, before, took, reply.len(), "injected reply");
        drop(c);
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_rewritten_reply_passes_the_downstream_toxics_and_is_counted() {
    within(async {
        // Each message, doubled: a `+PONG` reply becomes two.
        let hook = common::rewriter("test_twice", |m| [m, m].concat());
        let (server, proxy, addr, before) = redis_engine("test_twice", None).await;

        let mut c = TcpStream::connect(addr).await.unwrap();
        let t = Instant::now();
        // (The request goes doubled too; the backend answers the one read once.)
        c.write_all(b"*1\r\n$4\r\nPING\r\n").await.unwrap();
        let want = b"+PONG\r\n+PONG\r\n";
        let reply = read_n(&mut c, want.len()).await;
        let took = t.elapsed();
        assert_eq!(reply, want, "the client gets what the hook returned");
        assert_through_the_link(&proxy, before, took, want.len(), "rewritten reply");
        assert!(hook.seen.load(Ordering::Relaxed) > 0);
        drop(c);
        server.shutdown().await;
    })
    .await;
}

/// A backend that answers one upgrade request with `101`, then echoes `pong:` + what it reads.
async fn upgrade_backend() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = s
                    .write_all(
                        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\n\
                          Connection: Upgrade\r\n\r\n",
                    )
                    .await;
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            let mut out = b"pong:".to_vec();
                            out.extend_from_slice(&buf[..n]);
                            if s.write_all(&out).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn an_upgraded_stream_passes_the_downstream_toxics_and_is_counted() {
    within(async {
        let backend = upgrade_backend().await;
        let cfg = ProxyConfig {
            listen: "127.0.0.1:0".into(),
            backend: backend.to_string(),
            protocol: "http".into(),
            ..ProxyConfig::default()
        };
        let (server, proxy, addr) = engine(cfg).await;
        add_latency(&proxy);

        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(
            b"GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n",
        )
        .await
        .unwrap();
        let mut head = read_n(&mut c, 1).await;
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let more = read_n(&mut c, 1).await;
            assert!(!more.is_empty(), "the 101 arrives whole");
            head.extend(more);
        }
        assert!(head.starts_with(b"HTTP/1.1 101"), "upgraded: {head:?}");

        // Now a raw stream: what the backend sends back waits the latency and is counted.
        let before = sent_downstream(&proxy);
        let t = Instant::now();
        c.write_all(b"hello").await.unwrap();
        let echo = read_n(&mut c, b"pong:hello".len()).await;
        let took = t.elapsed();
        assert_eq!(echo, b"pong:hello", "the upgraded stream is whole");
        assert_through_the_link(&proxy, before, took, echo.len(), "upgraded stream");
        drop(c);
        server.shutdown().await;
    })
    .await;
}
