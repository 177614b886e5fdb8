#![no_main]
//! Whole connections through a real proxy, in process: a scripted client and a scripted
//! backend, on loopback sockets on a tokio current-thread runtime, write the fuzzer's bytes in
//! the pieces it chooses and read whatever comes. No panic anywhere (the proxy's own tasks
//! included: libFuzzer's panic hook aborts), and no hang: once both sides have closed, the
//! proxy lets the connection go within a bound.
//!
//! The input: a byte that picks the protocol and settings, a byte that picks the behavior,
//! then the script (see [`Op`]).
use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use vaurien::behavior::{Options, Value};
use vaurien::proxy::{ProxyConfig, Settings};
use vaurien::server::{Server, ServerConfig};

const PROTOCOLS: [&str; 6] = ["tcp", "http", "redis", "memcache", "smtp", "mysql"];

/// Behavior mixes, with their options: (mix, behavior, option, value).
type Setting = (&'static str, &'static str, Value);
const BEHAVIORS: [(&str, &[Setting]); 17] = [
    ("100:dummy", &[]),
    (
        "100:error",
        &[("error", "protocol_reply", Value::Bool(true))],
    ),
    ("100:error", &[("error", "inject", Value::Bool(true))]),
    ("100:error", &[]),
    (
        "50:error,50:dummy",
        &[("error", "protocol_reply", Value::Bool(true))],
    ),
    (
        "100:transient",
        &[
            ("transient", "agitate", Value::Int(2)),
            ("transient", "protocol_reply", Value::Bool(true)),
        ],
    ),
    ("100:delay", &[("delay", "sleep", Value::Float(0.002))]),
    ("100:abort", &[]),
    ("100:blackout", &[]),
    ("100:hang", &[]),
    ("100:slicer", &[("slicer", "average_size", Value::Int(3))]),
    ("100:limit_data", &[("limit_data", "bytes", Value::Int(40))]),
    (
        "100:latency",
        &[
            ("latency", "latency", Value::Int(1)),
            ("latency", "jitter", Value::Int(1)),
        ],
    ),
    ("100:bandwidth", &[("bandwidth", "rate", Value::Int(1000))]),
    (
        "50:slow_close,50:reset_peer",
        &[
            ("slow_close", "delay", Value::Int(1)),
            ("reset_peer", "timeout", Value::Int(1)),
        ],
    ),
    ("100:timeout", &[("timeout", "timeout", Value::Int(20))]),
    (
        "100:packet_loss",
        &[("packet_loss", "loss_rate", Value::Float(0.3))],
    ),
];

/// `--timeout` of the proxies: how long a quiet read waits.
const TIMEOUT: Duration = Duration::from_millis(250);
/// The most one script sleeps in its pauses.
const SLEEPS: Duration = Duration::from_millis(5);
/// How long the proxy may take to let a connection go once both sides closed.
const RELEASE: Duration = Duration::from_secs(3);

/// One step of the script. Each control byte: bit 0 the side (client, backend); bits 1-2 the
/// step: 0, 1 and 2 write the next N bytes (N given by the byte after); 3 is a half-close when
/// bit 3 is clear, else a pause of bits 4-5 milliseconds (0: the proxy gets a turn only).
/// After each step the proxy gets a turn; pauses sleep [`SLEEPS`] in all at most, then are
/// turns only.
enum Op<'a> {
    Write(usize, &'a [u8]),
    Shutdown(usize),
    Pause(u64),
}

fn script(mut s: &[u8]) -> Vec<Op<'_>> {
    let mut ops = Vec::new();
    while let [ctl, rest @ ..] = s {
        let side = (ctl & 1) as usize;
        s = rest;
        ops.push(match ((ctl >> 1) & 3, ctl & 8 != 0) {
            (3, false) => Op::Shutdown(side),
            (3, true) => Op::Pause(((ctl >> 4) & 3) as u64),
            _ => {
                let [n, rest @ ..] = s else { break };
                let n = (*n as usize).min(rest.len());
                let (bytes, rest) = rest.split_at(n);
                s = rest;
                Op::Write(side, bytes)
            }
        });
    }
    ops
}

/// The proxy for a configuration byte and a behavior byte.
fn config(conf: u8, behavior: u8) -> ProxyConfig {
    let protocol = PROTOCOLS[conf as usize % PROTOCOLS.len()];
    let flags = conf as usize / PROTOCOLS.len();
    let mut protocol_options = Options::default();
    protocol_options.set("keep_alive", Value::Bool(flags & 1 != 0));
    if flags & 2 != 0 {
        // Tiny reads: every message arrives in many pieces.
        protocol_options.set("buffer", Value::Int(7));
    }
    if flags & 4 != 0 && protocol == "http" {
        protocol_options.set("overwrite_host_header", Value::Bool(true));
    }
    let (mix, settings) = BEHAVIORS[behavior as usize % BEHAVIORS.len()];
    let mut behavior_options: std::collections::BTreeMap<String, Options> = Default::default();
    for (name, option, value) in settings {
        behavior_options
            .entry(name.to_string())
            .or_default()
            .set(option, value.clone());
    }
    ProxyConfig {
        listen: "127.0.0.1:0".into(),
        backend: "127.0.0.1:9".into(),
        protocol: protocol.into(),
        protocol_options,
        behavior: mix.into(),
        behavior_options,
        settings: Settings {
            timeout: TIMEOUT,
            stay_connected: flags & 8 != 0,
            busy_poll: if flags & 16 != 0 {
                Duration::from_micros(200)
            } else {
                Duration::ZERO
            },
            ..Settings::default()
        },
        seed: Some(7),
        ..ProxyConfig::default()
    }
}

struct Env {
    rt: tokio::runtime::Runtime,
    /// Proxies started so far, by (configuration, behavior) byte.
    proxies: HashMap<(u8, usize), (Arc<Server>, SocketAddr)>,
}

thread_local! {
    static ENV: RefCell<Env> = RefCell::new(Env {
        rt: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime"),
        proxies: HashMap::new(),
    });
}

/// Drains a socket until it ends.
async fn drain(mut r: tokio::net::tcp::OwnedReadHalf) {
    let mut buf = vec![0u8; 65536];
    while let Ok(n) = r.read(&mut buf).await {
        if n == 0 {
            break;
        }
    }
}

async fn run(server: &Server, proxy: SocketAddr, ops: &[Op<'_>]) {
    let main = server.main_proxy().expect("the proxy");
    let backends = TcpListener::bind("127.0.0.1:0").await.expect("a backend");
    let backend_addr = backends.local_addr().expect("its address").to_string();
    main.shared.set_backend(&backend_addr).expect("an address");
    let client = TcpStream::connect(proxy).await.expect("the proxy accepts");
    let backend = match tokio::time::timeout(RELEASE, backends.accept()).await {
        Ok(Ok((s, _))) => s,
        _ => panic!("the proxy did not connect to the backend"),
    };
    drop(backends);
    let (client_r, client_w) = client.into_split();
    let (backend_r, backend_w) = backend.into_split();
    let readers = [
        tokio::spawn(drain(client_r)),
        tokio::spawn(drain(backend_r)),
    ];
    let mut writers = [Some(client_w), Some(backend_w)];
    let mut sleeps = SLEEPS;
    for op in ops {
        match op {
            Op::Write(side, bytes) => {
                if let Some(w) = writers[*side].as_mut() {
                    // The proxy may have closed this side, or stopped reading it: either is
                    // fine, the script goes on.
                    let _ = tokio::time::timeout(TIMEOUT, w.write_all(bytes)).await;
                }
            }
            Op::Shutdown(side) => {
                if let Some(mut w) = writers[*side].take() {
                    let _ = w.shutdown().await;
                }
            }
            Op::Pause(ms) => {
                let d = Duration::from_millis(*ms).min(sleeps);
                if !d.is_zero() {
                    sleeps -= d;
                    tokio::time::sleep(d).await;
                }
            }
        }
        // Let the proxy take this piece before the next one.
        for _ in 0..4 {
            tokio::task::yield_now().await;
        }
    }
    drop(writers);
    for r in readers {
        r.abort();
        let _ = r.await;
    }
    let active = &main.shared.metrics.connections_active;
    let deadline = tokio::time::Instant::now() + RELEASE;
    while active.load(Ordering::Relaxed) > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "hang: the proxy holds the connection {RELEASE:?} after both sides closed"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fuzz_target!(|raw: &[u8]| {
    let [conf, behavior, rest @ ..] = raw else {
        return;
    };
    let behavior = *behavior as usize % BEHAVIORS.len();
    let ops = script(rest);
    ENV.with_borrow_mut(|env| {
        let Env { rt, proxies } = env;
        let (server, addr) = proxies
            .entry((*conf, behavior))
            .or_insert_with(|| {
                rt.block_on(async {
                    let cfg = ServerConfig {
                        proxy: Some(config(*conf, behavior as u8)),
                        ..ServerConfig::default()
                    };
                    let server = Server::start(cfg).await.expect("the proxy starts");
                    let addr = server
                        .main_proxy()
                        .expect("the proxy")
                        .local_addr()
                        .await
                        .expect("listening");
                    (server, addr)
                })
            })
            .clone();
        rt.block_on(run(&server, addr, &ops));
    });
});
