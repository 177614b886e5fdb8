//! Bounded memory under every traffic shape: a client that stops reading while the backend
//! streams (up to 1 GB), a backend that stops reading while the client uploads, many such
//! connections at once, and the same under `latency`, `bandwidth` and `slicer` toxics. The
//! proxy runs as its own process (the `vaurien` binary), so that its RSS is its own.
//!
//! The bound: 64 MiB plus a fixed amount per connection — [`PER_CONN`] (measured: about 5 KiB)
//! without toxics, [`PER_CONN_TOXIC`] under toxics (it covers a latency link's whole queue,
//! `MAX_QUEUED_BYTES` = 512 KiB). Backpressure must reach the sender: each connection moves far
//! less than the gigabyte it was offered.

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpSocket, TcpStream};

const MIB: u64 = 1024 * 1024;
const BASE: u64 = 64 * MIB;
const PER_CONN: u64 = 32 * 1024;
const PER_CONN_TOXIC: u64 = 1280 * 1024;
/// What a sender offers on each connection.
const OFFER: u64 = 1 << 30;
/// Most a connection may move before backpressure stops it (socket buffers on the way).
const MOVED_MAX: u64 = 64 * MIB;

/// A vaurien process: a streaming tcp proxy (both directions at once) and its API.
struct Vaurien {
    child: Child,
    proxy: SocketAddr,
    api: SocketAddr,
}

impl Vaurien {
    async fn start(backend: SocketAddr) -> Vaurien {
        let (pp, ap) = (common::free_port(), common::free_port());
        let child = Command::new(env!("CARGO_BIN_EXE_vaurien"))
            .args(["--proxy", &format!("127.0.0.1:{pp}")])
            .args(["--backend", &backend.to_string()])
            .args([
                "--protocol",
                "tcp",
                "--protocol-tcp-keep-alive",
                "--stay-connected",
            ])
            .args([
                "--http",
                "--http-host",
                "127.0.0.1",
                "--http-port",
                &ap.to_string(),
            ])
            .args(["--log-level", "error"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("vaurien starts");
        let v = Vaurien {
            child,
            proxy: ([127, 0, 0, 1], pp).into(),
            api: ([127, 0, 0, 1], ap).into(),
        };
        for _ in 0..200 {
            if TcpStream::connect(v.api).await.is_ok() {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("vaurien did not listen");
    }

    fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the proxy is alive");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .expect("VmRSS")
            * 1024
    }

    async fn toxic(&self, body: &str) {
        let (status, _, resp) = common::http(
            self.api,
            "POST",
            "/proxies/vaurien/toxics",
            Some(body.as_bytes()),
        )
        .await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&resp));
    }
}

impl Drop for Vaurien {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes up to [`OFFER`] bytes, counting what the socket took.
async fn offer(mut s: TcpStream, moved: Arc<AtomicU64>) {
    let chunk = vec![0x5a_u8; 64 * 1024];
    let mut sent = 0;
    while sent < OFFER {
        if s.write_all(&chunk).await.is_err() {
            return;
        }
        sent += chunk.len() as u64;
        moved.fetch_add(chunk.len() as u64, Ordering::Relaxed);
    }
}

/// A socket with small kernel buffers on the test's side, so that a stall shows fast.
fn small_socket() -> TcpSocket {
    let s = TcpSocket::new_v4().unwrap();
    s.set_recv_buffer_size(64 * 1024).unwrap();
    s.set_send_buffer_size(64 * 1024).unwrap();
    s
}

/// Which side stops reading.
#[derive(Clone, Copy, Debug)]
enum Shape {
    /// The backend streams, the client never reads.
    Download,
    /// The client uploads, the backend never reads.
    Upload,
}

/// Runs `conns` connections of `shape` through a proxy with `toxic` (a Toxiproxy toxic body)
/// until nothing moves any more; checks the proxy's RSS and that backpressure held.
async fn stalled(shape: Shape, conns: usize, toxic: Option<&str>) {
    let per_conn = if toxic.is_some() {
        PER_CONN_TOXIC
    } else {
        PER_CONN
    };
    let moved = Arc::new(AtomicU64::new(0));
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend = l.local_addr().unwrap();
    let m = moved.clone();
    let accept = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            let _ = socket2::SockRef::from(&s).set_send_buffer_size(64 * 1024);
            let _ = socket2::SockRef::from(&s).set_recv_buffer_size(64 * 1024);
            match shape {
                Shape::Download => {
                    tokio::spawn(offer(s, m.clone()));
                }
                Shape::Upload => held.push(s),
            }
        }
    });
    let v = Vaurien::start(backend).await;
    if let Some(t) = toxic {
        v.toxic(t).await;
    }
    let before = v.rss();
    let mut clients = Vec::new();
    for _ in 0..conns {
        let s = small_socket().connect(v.proxy).await.expect("connects");
        match shape {
            Shape::Download => clients.push(s),
            Shape::Upload => {
                tokio::spawn(offer(s, moved.clone()));
            }
        }
    }
    // Until nothing moved for a second (each connection's buffers are full).
    let start = Instant::now();
    let mut last = u64::MAX;
    let mut quiet = 0;
    while quiet < 5 && start.elapsed() < Duration::from_secs(40) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = moved.load(Ordering::Relaxed);
        quiet = if now == last { quiet + 1 } else { 0 };
        last = now;
    }
    let rss = v.rss();
    let total = moved.load(Ordering::Relaxed);
    let bound = BASE + conns as u64 * per_conn;
    eprintln!(
        "{shape:?} x{conns} {}: RSS {} -> {} MiB (bound {} MiB), {} MiB moved in all",
        toxic.unwrap_or("no toxic"),
        before / MIB,
        rss / MIB,
        bound / MIB,
        total / MIB
    );
    assert!(
        rss < bound,
        "{shape:?} x{conns}: RSS {rss} over the bound {bound}"
    );
    assert!(
        total < conns as u64 * MOVED_MAX,
        "{shape:?} x{conns}: backpressure reaches the sender ({total} bytes moved)"
    );
    assert!(total > 0, "traffic flowed before the stall");
    drop(clients);
    accept.abort();
}

fn run(f: impl std::future::Future<Output = ()>) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            tokio::time::timeout(Duration::from_secs(120), f)
                .await
                .expect("within its time limit")
        });
}

// One test per shape, run one after another in this binary (the harness's threads would
// otherwise overlap them and the proxy's memory with them).
#[test]
fn memory_stays_bounded_under_every_shape() {
    run(async {
        stalled(Shape::Download, 1000, None).await;
        stalled(Shape::Upload, 1000, None).await;
        let latency = r#"{"type":"latency","stream":"downstream","attributes":{"latency":20}}"#;
        let latency_up = r#"{"type":"latency","stream":"upstream","attributes":{"latency":20}}"#;
        let bandwidth =
            r#"{"type":"bandwidth","stream":"downstream","attributes":{"rate":100000}}"#;
        let slicer = r#"{"type":"slicer","stream":"upstream","attributes":{"average_size":64,"size_variation":32,"delay":0}}"#;
        stalled(Shape::Download, 100, Some(latency)).await;
        stalled(Shape::Upload, 100, Some(latency_up)).await;
        stalled(Shape::Download, 100, Some(bandwidth)).await;
        stalled(Shape::Upload, 100, Some(slicer)).await;
    });
}
