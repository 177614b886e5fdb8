//! Counters of a proxy.
//!
//! Counters are plain atomics updated by the data path (no lock). Events (one per fault
//! applied) go to a bounded in-memory ring that `GET /events` reads, and optionally to a
//! JSON-lines file.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::Direction;

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
        let mut faults = self.faults.lock().unwrap_or_else(|e| e.into_inner());
        // No allocation once the kind is known (this runs for every exchange a fault takes).
        match faults.get_mut(kind) {
            Some(n) => *n += 1,
            None => {
                faults.insert(kind.to_string(), 1);
            }
        }
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
