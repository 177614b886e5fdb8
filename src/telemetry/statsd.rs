//! statsd output, as the original had it (`statsd` settings), through the `cadence` client:
//! every second, the counters that moved are sent as statsd counters
//! `<prefix>.<proxy>.<counter>:<delta>|c`, and the original's per-connection counters
//! `<prefix>.<protocol>.<connection id>.start:1|c`, `.end:1|c`, `.to_backend:N|c`,
//! `.to_client:N|c` (N exchanges in that direction; sent with `.end`, when not 0).
//!
//! With a sample rate below 1, each of these sends happens with that probability and carries
//! `|@rate`, so that the statsd server's scaling by 1/rate gives back the true counts on
//! average (as the original's statsd client did). Several lines a datagram, each datagram
//! under 1400 bytes (cadence's buffered UDP sink), flushed every second.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use cadence::prelude::*;
use cadence::{BufferedUdpMetricSink, StatsdClient};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::base::metrics::{ConnEvent, Metrics};
use crate::server::Server;

/// Where statsd counters go.
#[derive(Clone, Debug, PartialEq)]
pub struct Statsd {
    pub host: String,
    pub port: u16,
    pub prefix: String,
    pub sample_rate: f64,
}

/// Largest datagram.
const DATAGRAM: usize = 1400;

/// Starts the sender on the current runtime; it stops with the process. The proxies record
/// their connections' starts and ends from now on (from the first tick, a client that came
/// while the statsd host was being resolved had no `.start`).
pub fn spawn(server: Arc<Server>, cfg: Statsd) {
    server.record_connections();
    tokio::spawn(async move {
        let Some(mut sender) = Sender::connect(&cfg, server.seed).await else {
            return;
        };
        let mut last: BTreeMap<String, u64> = BTreeMap::new();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            for p in server.all_proxies() {
                let m = &p.shared.metrics;
                let conns = std::mem::take(&mut *m.conns.lock().unwrap_or_else(|e| e.into_inner()));
                let proto = p.shared.protocol.name();
                for e in conns {
                    match e {
                        ConnEvent::Start { id } => sender.count(&format!("{proto}.{id}.start"), 1),
                        ConnEvent::End {
                            id,
                            to_backend,
                            to_client,
                        } => {
                            for (k, v) in [
                                ("to_backend", to_backend),
                                ("to_client", to_client),
                                ("end", 1),
                            ] {
                                if v > 0 {
                                    sender.count(&format!("{proto}.{id}.{k}"), v);
                                }
                            }
                        }
                    }
                }
                for (k, v) in proxy_counters(m) {
                    let key = format!("{}.{k}", p.shared.name);
                    // The delta since the last tick, sent or not: a send skipped by the
                    // sampling is not carried over (the rate accounts for it).
                    let prev = last.insert(key.clone(), v).unwrap_or(0);
                    if v > prev {
                        sender.count(&key, v - prev);
                    }
                }
            }
            sender.flush();
        }
    });
}

/// A proxy's counters, by statsd name.
fn proxy_counters(m: &Metrics) -> Vec<(String, u64)> {
    let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    let mut counters = vec![
        ("start".to_string(), load(&m.connections_total)),
        ("exchanges".to_string(), load(&m.exchanges_total)),
        ("to_backend".to_string(), load(&m.bytes_upstream)),
        ("to_client".to_string(), load(&m.bytes_downstream)),
        (
            "end".to_string(),
            load(&m.connections_total).saturating_sub(load(&m.connections_active)),
        ),
    ];
    for (k, v) in m.faults() {
        counters.push((format!("faults.{k}"), v));
    }
    counters
}

/// The cadence client and the sampling.
struct Sender {
    client: StatsdClient,
    rate: f64,
    rng: SmallRng,
}

impl Sender {
    /// Resolves the statsd host once (as the original's client did) and opens a UDP socket of
    /// its family; `None` (with a warning) when either fails.
    async fn connect(cfg: &Statsd, seed: Option<u64>) -> Option<Sender> {
        let sink = match Sender::sink(cfg).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(host = %cfg.host, port = cfg.port, error = %e, "statsd disabled");
                return None;
            }
        };
        Some(Sender {
            client: StatsdClient::from_sink(&cfg.prefix, sink),
            rate: cfg.sample_rate,
            rng: match seed {
                Some(s) => SmallRng::seed_from_u64(s),
                None => SmallRng::from_os_rng(),
            },
        })
    }

    async fn sink(cfg: &Statsd) -> std::io::Result<BufferedUdpMetricSink> {
        let addr = tokio::net::lookup_host((cfg.host.as_str(), cfg.port))
            .await?
            .next()
            .ok_or_else(|| std::io::Error::other("the host has no address"))?;
        let socket = std::net::UdpSocket::bind(if addr.is_ipv6() {
            "[::]:0"
        } else {
            "0.0.0.0:0"
        })?;
        // Never block the runtime: a datagram that does not fit now is lost, as UDP goes.
        socket.set_nonblocking(true)?;
        BufferedUdpMetricSink::with_capacity(addr, socket, DATAGRAM).map_err(std::io::Error::other)
    }

    /// Sends `key:delta|c`, sampled at the configured rate (`|@rate` when below 1).
    fn count(&mut self, key: &str, delta: u64) {
        if self.rate >= 1.0 {
            let _ = self.client.count_with_tags(key, delta).try_send();
        } else if self.rng.random::<f64>() < self.rate {
            let _ = self
                .client
                .count_with_tags(key, delta)
                .with_sampling_rate(self.rate)
                .try_send();
        }
    }

    fn flush(&self) {
        let _ = self.client.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::{ProxySpec, ServerConfig};

    fn spec(name: &str) -> ProxySpec {
        ProxySpec {
            name: name.into(),
            listen: "127.0.0.1:0".into(),
            upstream: "127.0.0.1:9".into(),
            enabled: true,
            protocol: "tcp".into(),
            toxics: Vec::new(),
            declares_toxics: false,
        }
    }

    /// A client that comes while the sender still resolves the statsd host (or before its
    /// first tick) gets its `.start` too: the proxies record connections from `spawn` on, and
    /// so does a proxy made later through the API, from its first connection.
    #[tokio::test]
    async fn connections_are_recorded_from_the_moment_statsd_starts() {
        let server = Server::start(ServerConfig::default()).await.unwrap();
        let first = server.create_proxy(&spec("first")).await.unwrap();
        assert!(!first.shared.metrics.per_connection.load(Ordering::Relaxed));
        let cfg = Statsd {
            host: "127.0.0.1".into(),
            port: 9,
            prefix: String::new(),
            sample_rate: 1.0,
        };
        spawn(server.clone(), cfg);
        // No await since `spawn`: on this one-thread runtime the sender has not run yet.
        assert!(first.shared.metrics.per_connection.load(Ordering::Relaxed));
        let later = server.create_proxy(&spec("later")).await.unwrap();
        assert!(later.shared.metrics.per_connection.load(Ordering::Relaxed));
        server.shutdown().await;
    }
}
