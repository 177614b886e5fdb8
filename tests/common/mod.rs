//! Builders shared by the integration tests: real backends on loopback port 0, an in-process
//! vaurien, and a tiny HTTP client for the control API.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use vaurien::behavior::{
    registry, BehaviorError, Direction, Exchange, ExchangeHook, Fault, Kind, Origin, Transforms,
};
use vaurien::proxy::{ProxyConfig, Settings};
use vaurien::server::{Server, ServerConfig};

/// A port free on loopback now (for a child process to listen on).
/// A child process of a test, killed (and reaped) when the test ends, passed or not.
pub struct Killed(pub std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits up to 15 s until something accepts on 127.0.0.1:`port`; panics with the child's
/// stderr (when piped) if it exits first.
pub fn wait_port(port: u16, child: &mut std::process::Child) {
    use std::io::Read;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while std::time::Instant::now() < deadline {
        if let Some(st) = child.try_wait().unwrap() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("the child exited with {st}: {err}");
        }
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("nothing listens on {port}");
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Every test body runs under this limit.
pub const LIMIT: Duration = Duration::from_secs(60);

/// Runs a test body with a time limit.
pub async fn within<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(LIMIT, f)
        .await
        .expect("test took longer than its time limit")
}

/// An echo backend: sends back everything; when the client half-closes, it finishes and
/// half-closes too. Returns its address.
pub async fn echo_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    addr
}

/// A backend that answers each read with `reply(request)` and keeps the connection.
pub async fn reply_server<F>(reply: F) -> SocketAddr
where
    F: Fn(&[u8]) -> Vec<u8> + Send + Sync + 'static,
{
    let reply = Arc::new(reply);
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let reply = reply.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            let out = reply(&buf[..n]);
                            if s.write_all(&out).await.is_err() {
                                break;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

/// A backend that answers one read with `reply` and closes (a one-shot server, as HTTP/1.0).
pub async fn oneshot_server(reply: Vec<u8>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let reply = reply.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                if let Ok(n) = s.read(&mut buf).await {
                    if n > 0 {
                        let _ = s.write_all(&reply).await;
                    }
                }
                let _ = s.shutdown().await;
            });
        }
    });
    addr
}

/// A port nothing listens on.
pub async fn dead_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    drop(l);
    a
}

/// Builder of an in-process vaurien.
pub struct Vaurien {
    pub cfg: ProxyConfig,
    pub http: bool,
    pub seed: Option<u64>,
}

pub fn vaurien(backend: SocketAddr) -> Vaurien {
    Vaurien {
        cfg: ProxyConfig {
            listen: "127.0.0.1:0".into(),
            backend: backend.to_string(),
            settings: Settings {
                timeout: Duration::from_secs(5),
                ..Settings::default()
            },
            ..ProxyConfig::default()
        },
        http: false,
        seed: None,
    }
}

impl Vaurien {
    /// tcp with keep_alive and --stay-connected: both directions stream.
    pub fn streaming(mut self) -> Self {
        self.cfg
            .protocol_options
            .set("keep_alive", vaurien::behavior::Value::Bool(true));
        self.cfg.settings.stay_connected = true;
        self
    }
    pub fn protocol(mut self, name: &str) -> Self {
        self.cfg.protocol = name.into();
        self
    }
    pub fn protocol_option(mut self, name: &str, v: vaurien::behavior::Value) -> Self {
        self.cfg.protocol_options.set(name, v);
        self
    }
    pub fn behavior(mut self, spec: &str) -> Self {
        self.cfg.behavior = spec.into();
        self
    }
    pub fn option(mut self, behavior: &str, name: &str, value: &str) -> Self {
        let kind = vaurien::behavior::registry().get(behavior).unwrap();
        let e = self
            .cfg
            .behavior_options
            .entry(behavior.to_string())
            .or_default();
        e.set_text(&kind.options, name, value).unwrap();
        self
    }
    pub fn timeout(mut self, secs: f64) -> Self {
        self.cfg.settings.timeout = Duration::from_secs_f64(secs);
        self
    }
    pub fn stay_connected(mut self) -> Self {
        self.cfg.settings.stay_connected = true;
        self
    }
    pub fn zero_copy(mut self, on: bool) -> Self {
        self.cfg.settings.zero_copy = on;
        self
    }
    pub fn busy_poll(mut self, window: std::time::Duration) -> Self {
        self.cfg.settings.busy_poll = window;
        self
    }
    pub fn http(mut self) -> Self {
        self.http = true;
        self
    }
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self.cfg.seed = Some(seed);
        self
    }
    pub async fn start(self) -> Running {
        let server = vaurien::api::launch(ServerConfig {
            proxy: Some(self.cfg),
            http: self.http.then(|| "127.0.0.1:0".to_string()),
            seed: self.seed,
            events_file: None,
            grace: Duration::from_secs(3),
        })
        .await
        .expect("vaurien starts");
        let addr = server
            .main_proxy()
            .unwrap()
            .local_addr()
            .await
            .expect("listening");
        Running { server, addr }
    }
}

/// A running in-process vaurien.
pub struct Running {
    pub server: Arc<Server>,
    /// The proxy's address.
    pub addr: SocketAddr,
}

impl Running {
    pub fn api(&self) -> SocketAddr {
        self.server.api_addr().expect("started with http")
    }
    pub async fn connect(&self) -> TcpStream {
        TcpStream::connect(self.addr).await.unwrap()
    }
    pub async fn stop(self) {
        self.server.shutdown().await;
    }
}

/// Sends `data`, half-closes, and reads everything until EOF.
pub async fn roundtrip(s: &mut TcpStream, data: &[u8]) -> std::io::Result<Vec<u8>> {
    let (mut r, mut w) = s.split();
    let send = async {
        w.write_all(data).await?;
        w.shutdown().await
    };
    let mut out = Vec::new();
    let recv = r.read_to_end(&mut out);
    let (a, b) = tokio::join!(send, recv);
    a?;
    b?;
    Ok(out)
}

/// Reads until EOF or error; returns what was read and whether it ended in an error.
pub async fn read_all(s: &mut TcpStream) -> (Vec<u8>, Option<std::io::Error>) {
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf).await {
            Ok(0) => return (out, None),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => return (out, Some(e)),
        }
    }
}

/// Deterministic pseudo-random bytes.
pub fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

pub fn sha256(data: &[u8]) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(data))
}

/// A minimal HTTP/1.1 client for the control API: returns (status, headers, body).
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
) -> (u16, BTreeMap<String, String>, Vec<u8>) {
    http_with(addr, method, path, body, &[]).await
}

pub async fn http_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
    headers: &[(&str, &str)],
) -> (u16, BTreeMap<String, String>, Vec<u8>) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let body = body.unwrap_or(b"");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let mut hdrs = BTreeMap::new();
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            hdrs.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let mut body = raw[split + 4..].to_vec();
    if hdrs.get("transfer-encoding").map(|v| v.as_str()) == Some("chunked") {
        body = dechunk(&body);
    }
    (status, hdrs, body)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(i) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size =
            usize::from_str_radix(std::str::from_utf8(&b[..i]).unwrap().trim(), 16).unwrap_or(0);
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[i + 2..i + 2 + size]);
        b = &b[i + 2 + size + 2..];
    }
}

/// The JSON body of a control API call.
pub async fn json(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (u16, serde_json::Value) {
    let (status, _, b) = http(addr, method, path, body.map(str::as_bytes)).await;
    let v = serde_json::from_slice(&b).unwrap_or(serde_json::Value::Null);
    (status, v)
}

/// A behavior that rewrites every message both ways with `f` (see `ExchangeHook::transform`),
/// and counts the bytes it was given.
pub struct Rewriter {
    f: fn(&[u8]) -> Vec<u8>,
    pub seen: AtomicUsize,
}

#[async_trait::async_trait]
impl ExchangeHook for Rewriter {
    fn transforms(&self) -> Transforms {
        Transforms {
            up: true,
            down: true,
        }
    }
    async fn transform(
        &self,
        _cx: &mut Exchange<'_>,
        _dir: Direction,
        message: &[u8],
    ) -> Result<Option<Bytes>, BehaviorError> {
        self.seen.fetch_add(message.len(), Ordering::Relaxed);
        Ok(Some(Bytes::from((self.f)(message))))
    }
}

/// Registers behavior `name` as a [`Rewriter`] of `f` (once per process: every proxy built
/// with it shares the one instance returned, so that its count is seen).
pub fn rewriter(name: &'static str, f: fn(&[u8]) -> Vec<u8>) -> Arc<Rewriter> {
    static MADE: OnceLock<Mutex<BTreeMap<&'static str, Arc<Rewriter>>>> = OnceLock::new();
    let mut made = MADE.get_or_init(Default::default).lock().unwrap();
    made.entry(name)
        .or_insert_with(|| {
            let hook = Arc::new(Rewriter {
                f,
                seen: AtomicUsize::new(0),
            });
            let built = hook.clone();
            registry().register(Kind::new(
                name,
                "rewrites every message",
                Origin::Plugin,
                vec![],
                move |_| Ok(Fault::Hook(built.clone())),
            ));
            hook
        })
        .clone()
}
