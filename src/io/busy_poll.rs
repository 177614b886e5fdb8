//! Busy polling: after a chunk moved, look for the next one instead of sleeping until the
//! runtime reports a socket readable — for a client talking to its server one request at a
//! time, each hop of a round trip then skips a wake-up. Used by the streaming fast path
//! (`pipe`) and by the framed protocols' reads (`session`, `connection`).

use std::io;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::base::metrics::Metrics;

/// Busy polling stops when more connections than this are open: then there is other work.
pub const BUSY_POLL_CONNS: u64 = 2;

/// Busy polling only while chunks come at most this far apart on average: a wake-up costs
/// about 10-20 µs, a fair share of such a gap, and a small one of a longer gap.
pub const DENSE_GAP: Duration = Duration::from_micros(100);

/// Busy polling of one connection: for up to `window` after a chunk moved, while the proxy
/// has at most [`BUSY_POLL_CONNS`] connections and this connection's chunks follow each
/// other closely, the connection looks for the next chunk itself instead of letting its task
/// sleep until the runtime reports a socket readable. A request and its answer with one
/// client then skip their wake-ups, at the price of a busy core while that traffic flows
/// (measured in docs/benchmarks.md).
#[derive(Debug)]
pub struct BusyPoll {
    /// The longest look after a chunk (zero: busy polling off).
    window: Duration,
    /// Until when to keep looking.
    until: Option<Instant>,
    /// When the last chunk moved (in either direction), while busy polling is possible.
    last_chunk: Option<Instant>,
    /// Moving average of the time between two chunks. Busy polling only pays while it is
    /// short (at most [`DENSE_GAP`]): a connection whose chunks come further apart would
    /// keep a core busy for a small saving, so it sleeps between chunks instead.
    gap: Duration,
}

impl BusyPoll {
    pub fn new(window: Duration) -> Self {
        BusyPoll {
            window,
            until: None,
            last_chunk: None,
            gap: Duration::ZERO,
        }
    }

    /// A chunk moved at `now`: learn the gap since the last one and open (or not) the
    /// window.
    pub fn chunk_moved(&mut self, now: Instant) {
        if let Some(last) = self.last_chunk {
            // A long pause counts as four dense gaps: one stray pause does not stop busy
            // polling, two in a row do, and a few dense chunks bring it back.
            let g = now.saturating_duration_since(last).min(DENSE_GAP * 4);
            // gap += (g - gap) / 8
            self.gap = (self.gap * 7 + g) / 8;
        }
        self.last_chunk = Some(now);
        self.until = (self.gap <= DENSE_GAP).then(|| now + self.window);
    }

    /// Whether busy polling can apply now: on, and the proxy has at most
    /// [`BUSY_POLL_CONNS`] connections (checked before reading the clock).
    pub fn enabled(&self, metrics: &Metrics) -> bool {
        !self.window.is_zero()
            && metrics.connections_active.load(Ordering::Relaxed) <= BUSY_POLL_CONNS
    }

    /// Whether to keep looking at `now`.
    pub fn open(&self, now: Instant) -> bool {
        self.until.is_some_and(|t| now < t)
    }

    /// Calls `look` until it finds something or the window closes (`None`), yielding the CPU
    /// to the machine's other threads and the runtime's other tasks between two looks.
    pub async fn look_for<T>(
        &self,
        mut look: impl FnMut() -> io::Result<Option<T>>,
    ) -> io::Result<Option<T>> {
        while self.open(Instant::now()) {
            if let Some(found) = look()? {
                return Ok(Some(found));
            }
            std::thread::yield_now();
            tokio::task::yield_now().await;
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_micros(1000);

    /// Feeds chunks `gaps` apart (µs) from `t`; returns the time of the last one.
    fn feed(bp: &mut BusyPoll, mut t: Instant, gaps: &[u64]) -> Instant {
        for &g in gaps {
            t += Duration::from_micros(g);
            bp.chunk_moved(t);
        }
        t
    }

    #[test]
    fn dense_chunks_open_the_window_for_its_whole_length() {
        let mut bp = BusyPoll::new(WINDOW);
        let t = feed(&mut bp, Instant::now(), &[30; 20]);
        assert!(bp.open(t));
        assert!(bp.open(t + Duration::from_micros(999)));
        assert!(!bp.open(t + WINDOW));
    }

    #[test]
    fn sparse_chunks_sleep_between_chunks() {
        let mut bp = BusyPoll::new(WINDOW);
        // A request every 300 µs answered in 30 µs: 165 µs apart on average.
        let t = feed(&mut bp, Instant::now(), &[30, 300].repeat(20));
        assert!(!bp.open(t), "gap {:?}", bp.gap);
        let t = feed(&mut bp, t, &[5000; 5]);
        assert!(!bp.open(t), "gap {:?}", bp.gap);
    }

    #[test]
    fn one_stray_pause_keeps_busy_polling_two_stop_it_dense_traffic_brings_it_back() {
        let mut bp = BusyPoll::new(WINDOW);
        let t = feed(&mut bp, Instant::now(), &[30; 20]);
        let t = feed(&mut bp, t, &[50_000]);
        assert!(bp.open(t), "one pause: gap {:?}", bp.gap);
        let t = feed(&mut bp, t, &[50_000]);
        assert!(!bp.open(t), "two pauses: gap {:?}", bp.gap);
        let t = feed(&mut bp, t, &[30; 4]);
        assert!(bp.open(t), "dense again: gap {:?}", bp.gap);
    }

    #[test]
    fn a_zero_window_never_opens() {
        let mut bp = BusyPoll::new(Duration::ZERO);
        let t = feed(&mut bp, Instant::now(), &[10; 10]);
        assert!(!bp.open(t));
    }
}
