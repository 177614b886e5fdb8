//! The fault event log: one event per fault applied to a connection, kept in a bounded ring
//! that `GET /events` reads, and optionally appended to a JSON-lines file.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::Direction;

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
