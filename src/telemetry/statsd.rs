//! statsd output, as the original had it (`statsd` settings): every second, the counters that
//! moved are sent as statsd counters `<prefix>.<proxy>.<counter>:<delta>|c`, and the
//! original's per-connection counters `<prefix>.<protocol>.<connection id>.start:1|c`,
//! `.end:1|c`, `.to_backend:N|c`, `.to_client:N|c` (N exchanges in that direction; sent with
//! `.end`, when not 0). Datagrams stay under 1400 bytes.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::base::metrics::ConnEvent;
use crate::server::Server;

/// Where statsd counters go.
#[derive(Clone, Debug, PartialEq)]
pub struct Statsd {
    pub host: String,
    pub port: u16,
    pub prefix: String,
    pub sample_rate: f64,
}

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
