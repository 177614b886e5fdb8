//! The fault event log: one event per fault applied to a connection, kept in a bounded ring
//! that `GET /events` reads, and optionally appended to a JSON-lines file.
//!
//! Connections never wait on it: [`EventLog::record`] hands the event to a writer thread of
//! its own through a bounded queue and returns; when the queue is full the event is dropped
//! and counted ([`EventLog::dropped`], with a warning at most once a second). The writer owns
//! the ring and the file. Readers ([`EventLog::events`], [`EventLog::clear`]) go through the
//! same queue, so they see every event recorded before they were called. A std thread rather
//! than a task: it works under any runtime (the CLI's, the Python module's, a test's) and its
//! blocking file writes never hold a runtime worker.
//!
//! A recorded event does not wake the writer (that would be a thread wake-up per exchange
//! under a behavior): while events come, it drains the queue every [`NAP`]; after [`DOZE`]
//! naps without one it sleeps until the next event, which wakes it. Readers wake it at once,
//! and so does a queue half full.
//!
//! Live readers (`GET /events/stream`) [`EventLog::subscribe`]: the writer passes each event it
//! puts in the ring to a bounded broadcast channel, so a slow reader misses events (it is told
//! how many) and never slows the writer or the connections.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::{broadcast, mpsc, oneshot};

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

/// Events kept for `GET /events`.
const RING: usize = 10_000;
/// Events waiting for the writer; one more is dropped.
const QUEUE: usize = 8_192;
/// No `last_warning` yet.
const NEVER: u64 = u64::MAX;
/// How long the writer waits between two drains of the queue while events come.
const NAP: Duration = Duration::from_millis(5);
/// Naps without an event after which the writer sleeps until woken.
const DOZE: u32 = 20;

/// The writer drains the queue every [`NAP`]: a record needs not wake it.
const AWAKE: u8 = 0;
/// The writer sleeps until woken: the next record wakes it.
const ASLEEP: u8 = 1;
/// Events a live reader may be behind before it misses some.
const LIVE: usize = 4_096;

/// What the writer is asked to do, in order.
enum Msg {
    Record(Box<Event>),
    /// The events in the ring (of one proxy, or all), once everything before is written.
    Read(Option<String>, oneshot::Sender<Vec<Event>>),
    Clear(oneshot::Sender<()>),
}

/// The most recent events, plus an optional JSON-lines file, written by a thread of its own.
pub struct EventLog {
    queue: mpsc::Sender<Msg>,
    /// The writer thread, woken by readers, by a half-full queue and after its sleep.
    writer: std::thread::Thread,
    /// [`AWAKE`] or [`ASLEEP`], shared with the writer.
    state: Arc<AtomicU8>,
    /// What the writer passes each event to, for [`EventLog::subscribe`].
    live: broadcast::Sender<Event>,
    recorded: AtomicU64,
    dropped: AtomicU64,
    /// Milliseconds after `born` of the last "events dropped" warning ([`NEVER`] before).
    last_warning: AtomicU64,
    born: Instant,
}

impl Default for EventLog {
    fn default() -> Self {
        EventLog::new(RING)
    }
}

impl EventLog {
    /// A log keeping the last `capacity` events in memory.
    pub fn new(capacity: usize) -> Self {
        EventLog::start(capacity, QUEUE, None)
    }

    /// A log that also appends every event to the file at `path`, one JSON object a line.
    pub fn with_file(path: &str) -> std::io::Result<Self> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(EventLog::start(RING, QUEUE, Some(f)))
    }

    fn start(capacity: usize, queue: usize, file: Option<std::fs::File>) -> Self {
        let (tx, rx) = mpsc::channel(queue);
        let state = Arc::new(AtomicU8::new(AWAKE));
        let shared = state.clone();
        let (live, _) = broadcast::channel(LIVE);
        let to_readers = live.clone();
        // Ends when the log is dropped (the queue closes).
        let writer = std::thread::Builder::new()
            .name("vaurien-events".into())
            .spawn(move || write_events(rx, capacity, file, &shared, to_readers))
            .expect("cannot start the event log's writer thread")
            .thread()
            .clone();
        EventLog {
            queue: tx,
            writer,
            state,
            live,
            recorded: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            last_warning: AtomicU64::new(NEVER),
            born: Instant::now(),
        }
    }

    /// Records one fault applied; never waits (see the module's doc).
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
        let ev = Box::new(Event {
            time,
            proxy: proxy.to_string(),
            connection,
            direction,
            fault: fault.to_string(),
            kind: kind.to_string(),
            parameters,
        });
        match self.queue.try_send(Msg::Record(ev)) {
            Ok(()) => {
                self.recorded.fetch_add(1, Ordering::Relaxed);
                let asleep = self.state.load(Ordering::Relaxed) == ASLEEP
                    && self.state.swap(AWAKE, Ordering::AcqRel) == ASLEEP;
                if asleep || self.queue.capacity() < self.queue.max_capacity() / 2 {
                    self.writer.unpark();
                }
            }
            Err(_) => {
                let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                self.warn_dropped(dropped);
            }
        }
    }

    /// At most one warning a second while events are dropped.
    fn warn_dropped(&self, dropped: u64) {
        let now = self.born.elapsed().as_millis() as u64;
        let last = self.last_warning.load(Ordering::Relaxed);
        if (last == NEVER || now.saturating_sub(last) >= 1000)
            && self
                .last_warning
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                dropped,
                "fault events dropped: the event log's writer is behind"
            );
        }
    }

    /// The recorded events, oldest first, optionally for one proxy: every event recorded
    /// before this call is in (unless dropped or pushed out of the ring), and in the file.
    pub async fn events(&self, proxy: Option<&str>) -> Vec<Event> {
        let (tx, rx) = oneshot::channel();
        if self
            .queue
            .send(Msg::Read(proxy.map(str::to_string), tx))
            .await
            .is_err()
        {
            return Vec::new();
        }
        self.writer.unpark();
        rx.await.unwrap_or_default()
    }

    /// Forgets the events recorded so far (the file keeps them).
    pub async fn clear(&self) {
        let (tx, rx) = oneshot::channel();
        if self.queue.send(Msg::Clear(tx)).await.is_ok() {
            self.writer.unpark();
            let _ = rx.await;
        }
    }

    /// Every event recorded from now on, as the writer puts it in the ring. A reader more than
    /// a few thousand events behind misses the oldest (`RecvError::Lagged` says how many).
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.live.subscribe()
    }

    /// How many events were ever recorded (dropped ones not included).
    pub fn count(&self) -> u64 {
        self.recorded.load(Ordering::Relaxed)
    }

    /// How many events were dropped because the writer was behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl Drop for EventLog {
    /// A sleeping writer wakes, finds the queue closed (within a [`NAP`]) and ends.
    fn drop(&mut self) {
        self.writer.unpark();
    }
}

/// The writer: owns the ring and the file. Writes are buffered and flushed whenever the
/// queue runs empty and before answering a reader.
fn write_events(
    mut rx: mpsc::Receiver<Msg>,
    capacity: usize,
    file: Option<std::fs::File>,
    state: &AtomicU8,
    live: broadcast::Sender<Event>,
) {
    let mut ring: VecDeque<Event> = VecDeque::new();
    let mut file = file.map(std::io::BufWriter::new);
    let flush = |file: &mut Option<std::io::BufWriter<std::fs::File>>| {
        if let Some(f) = file.as_mut() {
            let _ = f.flush();
        }
    };
    let mut quiet = 0u32;
    loop {
        let first = match rx.try_recv() {
            Ok(msg) => msg,
            Err(mpsc::error::TryRecvError::Disconnected) => break,
            Err(mpsc::error::TryRecvError::Empty) => {
                quiet = quiet.saturating_add(1);
                if quiet < DOZE {
                    std::thread::park_timeout(NAP);
                    continue;
                }
                // Asleep, then a last look: a record made before it saw ASLEEP is found here,
                // one made after wakes this thread.
                state.store(ASLEEP, Ordering::Release);
                match rx.try_recv() {
                    Ok(msg) => {
                        state.store(AWAKE, Ordering::Release);
                        msg
                    }
                    Err(mpsc::error::TryRecvError::Disconnected) => break,
                    Err(mpsc::error::TryRecvError::Empty) => {
                        // Woken by a record, a reader, or the log dropped (checked above at
                        // the next turn); a spurious wake-up only costs a turn.
                        std::thread::park();
                        state.store(AWAKE, Ordering::Release);
                        quiet = 0;
                        continue;
                    }
                }
            }
        };
        quiet = 0;
        let mut next = Some(first);
        while let Some(msg) = next {
            match msg {
                Msg::Record(ev) => {
                    if let Some(f) = file.as_mut() {
                        if serde_json::to_writer(&mut *f, &ev).is_ok() {
                            let _ = f.write_all(b"\n");
                        }
                    }
                    if ring.len() >= capacity {
                        ring.pop_front();
                    }
                    if live.receiver_count() > 0 {
                        // Fails only when every reader left meanwhile.
                        let _ = live.send((*ev).clone());
                    }
                    ring.push_back(*ev);
                }
                Msg::Read(proxy, reply) => {
                    flush(&mut file);
                    let _ = reply.send(
                        ring.iter()
                            .filter(|e| proxy.as_deref().is_none_or(|p| e.proxy == p))
                            .cloned()
                            .collect(),
                    );
                }
                Msg::Clear(reply) => {
                    ring.clear();
                    let _ = reply.send(());
                }
            }
            next = rx.try_recv().ok();
        }
        flush(&mut file);
    }
    flush(&mut file);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::time::Duration;

    fn record(log: &EventLog, i: u64, params: &serde_json::Value) {
        log.record("p", i, None, "f", "k", params.clone());
    }

    #[tokio::test]
    async fn readers_see_every_event_recorded_before_them() {
        let log = EventLog::new(5);
        for i in 0..7 {
            record(&log, i, &serde_json::Value::Null);
        }
        let ids: Vec<u64> = log
            .events(None)
            .await
            .iter()
            .map(|e| e.connection)
            .collect();
        assert_eq!(ids, [2, 3, 4, 5, 6], "the ring keeps the last 5");
        assert_eq!(log.count(), 7);
        assert!(log.events(Some("other")).await.is_empty());
        log.clear().await;
        assert!(log.events(None).await.is_empty());
        record(&log, 9, &serde_json::Value::Null);
        assert_eq!(log.events(Some("p")).await.len(), 1);
        assert_eq!(log.count(), 8);
    }

    #[tokio::test]
    async fn subscribers_see_events_recorded_after_they_came() {
        let log = EventLog::new(5);
        record(&log, 1, &serde_json::Value::Null);
        // Once read back, event 1 has gone past the writer: the subscriber cannot see it.
        assert_eq!(log.events(None).await.len(), 1);
        let mut live = log.subscribe();
        record(&log, 2, &serde_json::Value::Null);
        record(&log, 3, &serde_json::Value::Null);
        let got = tokio::time::timeout(Duration::from_secs(10), async {
            [live.recv().await.unwrap(), live.recv().await.unwrap()]
        })
        .await
        .expect("the writer passes events on");
        assert_eq!(got.map(|e| e.connection), [2, 3]);
        assert!(live.try_recv().is_err(), "nothing else");
    }

    /// The file is a FIFO nobody reads yet: the writer blocks on it, `record` does not; the
    /// queue fills, later events are dropped and counted. Once the FIFO is read, the file and
    /// the ring hold exactly the events not dropped.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn record_never_waits_on_a_stuck_file() {
        let path = std::env::temp_dir().join(format!(
            "vaurien-events-{}-{:?}.fifo",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_file(&path);
        let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        // Opening either end of a FIFO waits for the other one.
        let p = path.clone();
        let reader = std::thread::spawn(move || std::fs::File::open(p).unwrap());
        let log = tokio::task::spawn_blocking({
            let p = path.to_str().unwrap().to_string();
            move || {
                let f = std::fs::OpenOptions::new().append(true).open(p).unwrap();
                EventLog::start(RING, 64, Some(f))
            }
        })
        .await
        .unwrap();
        let mut fifo = reader.join().unwrap();
        let _ = std::fs::remove_file(&path);

        // 2000 events of 1 KiB: far more than a pipe (64 KiB), the writer's buffer and the
        // queue hold.
        let params = serde_json::json!({ "pad": "x".repeat(1024) });
        let total = 2000;
        let log = std::sync::Arc::new(log);
        let l = log.clone();
        // Nothing reads the FIFO until this is done: a `record` that waited would never return.
        tokio::time::timeout(
            Duration::from_secs(30),
            tokio::task::spawn_blocking(move || {
                for i in 0..total {
                    record(&l, i, &params);
                }
            }),
        )
        .await
        .expect("record waited on the file")
        .unwrap();
        let log = std::sync::Arc::into_inner(log).unwrap();
        assert!(log.dropped() > 0, "the queue of 64 never filled");
        assert_eq!(log.count() + log.dropped(), total);

        // Read the FIFO to its end (the writer closes it when the log is dropped).
        let drain = std::thread::spawn(move || {
            let mut s = String::new();
            fifo.read_to_string(&mut s).unwrap();
            s
        });
        let ring = tokio::time::timeout(Duration::from_secs(30), log.events(None))
            .await
            .expect("the writer resumes once the FIFO is read");
        assert_eq!(ring.len() as u64, log.count());
        let count = log.count();
        drop(log);
        let text = drain.join().unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len() as u64, count);
        let in_file: Vec<u64> = lines
            .iter()
            .map(|v| v["connection"].as_u64().unwrap())
            .collect();
        let in_ring: Vec<u64> = ring.iter().map(|e| e.connection).collect();
        assert_eq!(in_file, in_ring);
    }
}
