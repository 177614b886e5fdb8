//! `GET /metrics`: Toxiproxy's byte counters with its names and labels, then vaurien's own
//! (connections, exchanges, faults applied by type, fault events dropped).
//!
//! Proxies come and go, so nothing is registered ahead: each scrape lists the proxies and a
//! [`Collector`] reads their atomics while `prometheus-client` encodes the text format.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::base::events::EventLog;
use crate::base::metrics::Metrics;
use crate::base::Direction;
use crate::proxy::ProxyShared;
use crate::server::Server;

/// The `Content-Type` of what [`prometheus`] returns (Prometheus text format 0.0.4, as
/// Toxiproxy serves).
pub use prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// `GET /metrics`: the text exposition of every proxy's counters.
pub async fn prometheus(server: &Server) -> String {
    let mut proxies = Vec::new();
    for p in server.all_proxies() {
        let listener = match p.local_addr().await {
            Some(a) => a.to_string(),
            None => p.listen(),
        };
        proxies.push(Scraped {
            listener,
            upstream: p.shared.backend(),
            shared: p.shared.clone(),
        });
    }
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Engine {
        proxies,
        events: server.events.clone(),
    }));
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry);
    out
}

/// A proxy as one scrape sees it.
struct Scraped {
    listener: String,
    upstream: String,
    shared: Arc<ProxyShared>,
}

/// Reads the engine's counters when the registry is encoded.
struct Engine {
    proxies: Vec<Scraped>,
    events: Arc<EventLog>,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("proxies", &self.proxies.len())
            .finish_non_exhaustive()
    }
}

/// A per-proxy family: name (without `_total`), type, help, the value read.
type PerProxy = (&'static str, MetricType, &'static str, fn(&Metrics) -> u64);

fn load(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

impl Collector for Engine {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        // Toxiproxy's: `<name>_total{direction,listener,proxy,upstream}`.
        type Bytes = fn(&Metrics, Direction) -> &AtomicU64;
        let bytes: [(&str, &str, Bytes); 2] = [
            (
                "toxiproxy_proxy_received_bytes",
                "The total bytes received from the source of each direction",
                |m, d| match d {
                    Direction::Upstream => &m.bytes_upstream,
                    Direction::Downstream => &m.bytes_downstream,
                },
            ),
            (
                "toxiproxy_proxy_sent_bytes",
                "The total bytes sent to the destination of each direction",
                |m, d| match d {
                    Direction::Upstream => &m.sent_upstream,
                    Direction::Downstream => &m.sent_downstream,
                },
            ),
        ];
        for (name, help, pick) in bytes {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for p in &self.proxies {
                for dir in [Direction::Upstream, Direction::Downstream] {
                    let labels = [
                        ("direction", dir.as_str()),
                        ("listener", p.listener.as_str()),
                        ("proxy", p.shared.name.as_str()),
                        ("upstream", p.upstream.as_str()),
                    ];
                    ConstCounter::new(load(pick(&p.shared.metrics, dir)))
                        .encode(family.encode_family(&labels)?)?;
                }
            }
        }
        // vaurien's: `{proxy}`.
        let per_proxy: [PerProxy; 3] = [
            (
                "vaurien_connections",
                MetricType::Counter,
                "Connections accepted",
                |m| load(&m.connections_total),
            ),
            (
                "vaurien_connections_active",
                MetricType::Gauge,
                "Connections open now",
                |m| load(&m.connections_active),
            ),
            (
                "vaurien_exchanges",
                MetricType::Counter,
                "Exchanges handled",
                |m| load(&m.exchanges_total),
            ),
        ];
        for (name, kind, help, pick) in per_proxy {
            let mut family = encoder.encode_descriptor(name, help, None, kind)?;
            for p in &self.proxies {
                let labels = [("proxy", p.shared.name.as_str())];
                let v = pick(&p.shared.metrics);
                let sample = family.encode_family(&labels)?;
                match kind {
                    MetricType::Gauge => ConstGauge::new(v).encode(sample)?,
                    _ => ConstCounter::new(v).encode(sample)?,
                }
            }
        }
        let mut family = encoder.encode_descriptor(
            "vaurien_faults",
            "Faults applied, by behavior or toxic type",
            None,
            MetricType::Counter,
        )?;
        for p in &self.proxies {
            for (kind, n) in p.shared.metrics.faults() {
                let labels = [("proxy", p.shared.name.as_str()), ("type", kind.as_str())];
                ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
            }
        }
        let family = encoder.encode_descriptor(
            "vaurien_events_dropped",
            "Fault events dropped because the event log's writer was behind",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(self.events.dropped()).encode(family)?;
        Ok(())
    }
}
