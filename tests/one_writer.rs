//! One writer: bytes a fault injects (the `error` reply) and bytes of a stream a protocol hands
//! over to raw forwarding (an HTTP upgrade) reach the client through the same path as every
//! forwarded byte — the downstream toxics delay them and the sent-bytes counters count them.
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

#[tokio::test]
async fn an_error_reply_passes_the_downstream_toxics_and_is_counted() {
    within(async {
        let backend = common::reply_server(|_| b"+PONG\r\n".to_vec()).await;
        let mut cfg = ProxyConfig {
            listen: "127.0.0.1:0".into(),
            backend: backend.to_string(),
            protocol: "redis".into(),
            behavior: "100:error".into(),
            ..ProxyConfig::default()
        };
        let mut eo = Options::default();
        eo.set("protocol_reply", Value::Bool(true));
        cfg.behavior_options.insert("error".into(), eo);
        let (server, proxy, addr) = engine(cfg).await;
        add_latency(&proxy);
        let before = sent_downstream(&proxy);

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
        assert!(
            took >= Duration::from_millis(LATENCY_MS as u64),
            "the injected reply waited the downstream latency: {took:?}"
        );
        let counted = sent_downstream(&proxy) - before;
        assert!(
            counted >= reply.len() as u64,
            "the injected reply is counted as sent downstream: {counted} < {}",
            reply.len()
        );
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
        assert!(
            took >= Duration::from_millis(LATENCY_MS as u64),
            "the upgraded stream waited the downstream latency: {took:?}"
        );
        let counted = sent_downstream(&proxy) - before;
        assert!(
            counted >= echo.len() as u64,
            "the upgraded stream is counted as sent downstream: {counted}"
        );
        drop(c);
        server.shutdown().await;
    })
    .await;
}
