//! Counters and the fault event log.
//!
//! Counters are plain atomics updated by the data path (no lock). Events (one per fault
//! applied) go to a bounded in-memory ring that `GET /events` reads, and optionally to a
//! JSON-lines file.

use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::behavior::Direction;

/// Per-proxy counters.
#[derive(Default, Debug)]
pub struct Metrics {
    pub connections_total: AtomicU64,
    pub connections_active: AtomicU64,
    pub exchanges_total: AtomicU64,
    /// Bytes received from the client and sent upstream.
    pub bytes_upstream: AtomicU64,
    /// Bytes received from the backend and sent downstream.
    pub bytes_downstream: AtomicU64,
    /// Bytes written to the backend (after the toxics: dropped or truncated bytes not counted).
    pub sent_upstream: AtomicU64,
    /// Bytes written to the client.
    pub sent_downstream: AtomicU64,
    /// Faults applied, by behavior or toxic type.
    pub faults: Mutex<BTreeMap<String, u64>>,
    /// Set by the statsd sender: connections then report their start and end to `conns`.
    pub per_connection: std::sync::atomic::AtomicBool,
    /// Connection starts and ends not yet sent to statsd (bounded; see [`ConnEvent`]).
    pub conns: Mutex<Vec<ConnEvent>>,
}

/// A connection's start or end, for statsd's per-connection counters (the original's
/// `<protocol>.<uuid>.start/.end/.to_backend/.to_client`). Recorded once per connection
/// start and end, never per chunk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnEvent {
    Start {
        id: u64,
    },
    /// Exchanges (hook-path chunks or messages) forwarded to the backend and to the client.
    End {
        id: u64,
        to_backend: u64,
        to_client: u64,
    },
}

/// Most connection events kept between two statsd sends; more are dropped.
const MAX_CONN_EVENTS: usize = 100_000;

impl Metrics {
    pub fn add_bytes(&self, dir: Direction, n: usize) {
        let c = match dir {
            Direction::Upstream => &self.bytes_upstream,
            Direction::Downstream => &self.bytes_downstream,
        };
        c.fetch_add(n as u64, Ordering::Relaxed);
    }
    pub fn add_sent(&self, dir: Direction, n: usize) {
        let c = match dir {
            Direction::Upstream => &self.sent_upstream,
            Direction::Downstream => &self.sent_downstream,
        };
        c.fetch_add(n as u64, Ordering::Relaxed);
    }
    pub fn fault(&self, kind: &str) {
        *self
            .faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(kind.to_string())
            .or_default() += 1;
    }
    /// Records a connection event when the statsd sender asked for them.
    pub fn conn_event(&self, e: ConnEvent) {
        if !self.per_connection.load(Ordering::Relaxed) {
            return;
        }
        let mut v = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        if v.len() < MAX_CONN_EVENTS {
            v.push(e);
        }
    }
    pub fn faults(&self) -> BTreeMap<String, u64> {
        self.faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// One fault applied to one connection.
#[derive(Clone, Debug, Serialize)]
pub struct Event {
    /// Seconds since the Unix epoch.
    pub time: f64,
    pub proxy: String,
    pub connection: u64,
    pub direction: Option<Direction>,
    /// The behavior or toxic name.
    pub fault: String,
    /// Its type (the behavior name for a vaurien behavior).
    pub kind: String,
    pub parameters: serde_json::Value,
}

/// The most recent events, plus an optional JSON-lines file.
pub struct EventLog {
    ring: Mutex<VecDeque<Event>>,
    capacity: usize,
    file: Mutex<Option<std::fs::File>>,
    seq: AtomicU64,
}

impl Default for EventLog {
    fn default() -> Self {
        EventLog::new(10_000)
    }
}

impl EventLog {
    pub fn new(capacity: usize) -> Self {
        EventLog {
            ring: Mutex::new(VecDeque::new()),
            capacity,
            file: Mutex::new(None),
            seq: AtomicU64::new(0),
        }
    }

    /// Also appends every event to this file, one JSON object a line.
    pub fn set_file(&self, path: &str) -> std::io::Result<()> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        *self.file.lock().unwrap_or_else(|e| e.into_inner()) = Some(f);
        Ok(())
    }

    pub fn record(
        &self,
        proxy: &str,
        connection: u64,
        direction: Option<Direction>,
        fault: &str,
        kind: &str,
        parameters: serde_json::Value,
    ) {
        let time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let ev = Event {
            time,
            proxy: proxy.to_string(),
            connection,
            direction,
            fault: fault.to_string(),
            kind: kind.to_string(),
            parameters,
        };
        self.seq.fetch_add(1, Ordering::Relaxed);
        if let Some(f) = self.file.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            if let Ok(line) = serde_json::to_string(&ev) {
                let _ = writeln!(f, "{line}");
            }
        }
        let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        if ring.len() >= self.capacity {
            ring.pop_front();
        }
        ring.push_back(ev);
    }

    /// The recorded events, oldest first, optionally for one proxy.
    pub fn events(&self, proxy: Option<&str>) -> Vec<Event> {
        self.ring
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|e| proxy.is_none_or(|p| e.proxy == p))
            .cloned()
            .collect()
    }

    pub fn clear(&self) {
        self.ring.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// How many events were ever recorded.
    pub fn count(&self) -> u64 {
        self.seq.load(Ordering::Relaxed)
    }
}

/// `GET /metrics`: Prometheus text. Toxiproxy's byte counters with its labels, then vaurien's
/// own: connections, exchanges and faults applied by type.
pub async fn prometheus(server: &crate::server::Server) -> String {
    use std::fmt::Write as _;
    let mut rows = Vec::new();
    for p in server.all_proxies() {
        let listener = match p.local_addr().await {
            Some(a) => a.to_string(),
            None => p.listen(),
        };
        rows.push((
            p.shared.name.clone(),
            listener,
            p.shared.backend(),
            p.clone(),
        ));
    }
    let esc = |s: &str| {
        s.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    };
    let mut out = String::new();
    for (metric, help, sent) in [
        (
            "toxiproxy_proxy_received_bytes_total",
            "The total bytes received from the source of each direction",
            false,
        ),
        (
            "toxiproxy_proxy_sent_bytes_total",
            "The total bytes sent to the destination of each direction",
            true,
        ),
    ] {
        let _ = writeln!(out, "# HELP {metric} {help}");
        let _ = writeln!(out, "# TYPE {metric} counter");
        for (name, listener, upstream, p) in &rows {
            let m = &p.shared.metrics;
            for (dir, recv, snt) in [
                ("upstream", &m.bytes_upstream, &m.sent_upstream),
                ("downstream", &m.bytes_downstream, &m.sent_downstream),
            ] {
                let v = if sent { snt } else { recv }.load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "{metric}{{direction=\"{dir}\",listener=\"{}\",proxy=\"{}\",upstream=\"{}\"}} {v}",
                    esc(listener),
                    esc(name),
                    esc(upstream)
                );
            }
        }
    }
    type Pick = fn(&Metrics) -> u64;
    let counters: [(&str, &str, &str, Pick); 3] = [
        (
            "vaurien_connections_total",
            "counter",
            "Connections accepted",
            |m| m.connections_total.load(Ordering::Relaxed),
        ),
        (
            "vaurien_connections_active",
            "gauge",
            "Connections open now",
            |m| m.connections_active.load(Ordering::Relaxed),
        ),
        (
            "vaurien_exchanges_total",
            "counter",
            "Exchanges handled",
            |m| m.exchanges_total.load(Ordering::Relaxed),
        ),
    ];
    for (metric, kind, help, pick) in counters {
        let _ = writeln!(out, "# HELP {metric} {help}");
        let _ = writeln!(out, "# TYPE {metric} {kind}");
        for (name, _, _, p) in &rows {
            let _ = writeln!(
                out,
                "{metric}{{proxy=\"{}\"}} {}",
                esc(name),
                pick(&p.shared.metrics)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP vaurien_faults_total Faults applied, by behavior or toxic type"
    );
    let _ = writeln!(out, "# TYPE vaurien_faults_total counter");
    for (name, _, _, p) in &rows {
        for (kind, n) in p.shared.metrics.faults() {
            let _ = writeln!(
                out,
                "vaurien_faults_total{{proxy=\"{}\",type=\"{}\"}} {n}",
                esc(name),
                esc(&kind)
            );
        }
    }
    out
}

/// statsd output, as the original had it (`statsd` settings): every second, the counters that
/// moved are sent as statsd counters `<prefix>.<proxy>.<counter>:<delta>|c`, and the
/// original's per-connection counters `<prefix>.<protocol>.<connection id>.start:1|c`,
/// `.end:1|c`, `.to_backend:N|c`, `.to_client:N|c` (N exchanges in that direction; sent with
/// `.end`, when not 0). Datagrams stay under 1400 bytes.
pub mod statsd {
    use std::collections::BTreeMap;
    use std::sync::atomic::Ordering;
    use std::sync::Arc;
    use std::time::Duration;

    use super::ConnEvent;
    use crate::config::Statsd;
    use crate::server::Server;

    /// A counter line, with the sample rate when below 1.
    fn line(key: &str, delta: u64, rate: f64) -> String {
        if rate < 1.0 {
            format!("{key}:{delta}|c|@{rate}")
        } else {
            format!("{key}:{delta}|c")
        }
    }

    /// Starts the sender on the current runtime; it stops with the process.
    pub fn spawn(server: Arc<Server>, cfg: Statsd) {
        tokio::spawn(async move {
            let sock = match tokio::net::UdpSocket::bind(if cfg.host.contains(':') {
                "[::]:0"
            } else {
                "0.0.0.0:0"
            })
            .await
            {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "statsd disabled: cannot open a UDP socket");
                    return;
                }
            };
            let target = format!("{}:{}", cfg.host, cfg.port);
            let mut last: BTreeMap<String, u64> = BTreeMap::new();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let mut lines = Vec::new();
                for p in server.all_proxies() {
                    let m = &p.shared.metrics;
                    let name = &p.shared.name;
                    m.per_connection.store(true, Ordering::Relaxed);
                    let events =
                        std::mem::take(&mut *m.conns.lock().unwrap_or_else(|e| e.into_inner()));
                    let proto = p.shared.protocol.name();
                    for e in events {
                        let (id, counts) = match e {
                            ConnEvent::Start { id } => (id, vec![("start", 1)]),
                            ConnEvent::End {
                                id,
                                to_backend,
                                to_client,
                            } => (
                                id,
                                vec![
                                    ("to_backend", to_backend),
                                    ("to_client", to_client),
                                    ("end", 1),
                                ],
                            ),
                        };
                        for (k, v) in counts {
                            if v > 0 {
                                let key = format!("{}.{proto}.{id}.{k}", cfg.prefix);
                                lines.push(line(&key, v, cfg.sample_rate));
                            }
                        }
                    }
                    let mut counters = vec![
                        (
                            "start".to_string(),
                            m.connections_total.load(Ordering::Relaxed),
                        ),
                        (
                            "exchanges".to_string(),
                            m.exchanges_total.load(Ordering::Relaxed),
                        ),
                        (
                            "to_backend".to_string(),
                            m.bytes_upstream.load(Ordering::Relaxed),
                        ),
                        (
                            "to_client".to_string(),
                            m.bytes_downstream.load(Ordering::Relaxed),
                        ),
                    ];
                    let ended = m.connections_total.load(Ordering::Relaxed)
                        - m.connections_active.load(Ordering::Relaxed);
                    counters.push(("end".to_string(), ended));
                    for (k, v) in m.faults() {
                        counters.push((format!("faults.{k}"), v));
                    }
                    for (k, v) in counters {
                        let key = format!("{}.{}.{}", cfg.prefix, name, k);
                        let prev = last.insert(key.clone(), v).unwrap_or(0);
                        if v > prev {
                            lines.push(line(&key, v - prev, cfg.sample_rate));
                        }
                    }
                }
                // Several lines a datagram, each datagram under a safe size.
                let mut packet = String::new();
                for l in lines {
                    if !packet.is_empty() && packet.len() + 1 + l.len() > 1400 {
                        let _ = sock.send_to(packet.as_bytes(), &target).await;
                        packet.clear();
                    }
                    if !packet.is_empty() {
                        packet.push('\n');
                    }
                    packet.push_str(&l);
                }
                if !packet.is_empty() {
                    let _ = sock.send_to(packet.as_bytes(), &target).await;
                }
            }
        });
    }
}
