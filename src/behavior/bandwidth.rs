//! `bandwidth` (Toxiproxy): limits each connection-direction to `rate` KB/s (1 KB = 1000 bytes,
//! so `rate` is bytes per millisecond). A chunk larger than `rate * 100` bytes goes out in
//! 100 ms slices; each piece goes out once the time its bytes take at that rate has passed.
//!
//! Toxiproxy sleeps `size / rate` per chunk, after reading it: the time spent reading and
//! writing, and every late wake-up, add up, so it delivers less than the rate. Here the
//! pieces follow a schedule kept per link: a piece is due when the link's previous bytes are
//! due plus its own size at the rate, so lateness does not accumulate; a link that fell behind
//! (a late wake-up, a slow reader) catches up by up to [`CATCH_UP`], and one that was idle
//! starts again from when its next chunk arrives, never earlier than [`CATCH_UP`] before it.

use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{options, BehaviorError, ChunkCx, ChunkToxic, Fault, Kind, Origin, Piece};

/// How far behind its schedule a link may be and still catch up (a burst of at most this
/// long's worth of bytes after an idle spell).
pub const CATCH_UP: Duration = Duration::from_millis(10);

pub struct Bandwidth {
    /// Bytes per millisecond, > 0.
    rate: u64,
}

/// When the bytes a link already took are due.
struct Schedule {
    next: Instant,
}

impl Bandwidth {
    /// How long `len` bytes take at the rate (to the nanosecond).
    fn takes(&self, len: usize) -> Duration {
        Duration::from_nanos((len as u128 * 1_000_000 / self.rate as u128) as u64)
    }

    /// Gives each piece its due time on the link's schedule (`next`), which it moves on.
    fn schedule(&self, pieces: &mut [Piece], next: &mut Instant) {
        for p in pieces {
            let earliest = p.at.checked_sub(CATCH_UP).unwrap_or(p.at);
            let due = (*next).max(earliest) + self.takes(p.data.len());
            *next = due;
            p.at = p.at.max(due);
        }
    }
}

#[async_trait]
impl ChunkToxic for Bandwidth {
    async fn on_chunk(&self, cx: &mut ChunkCx<'_>) -> Result<(), BehaviorError> {
        if cx.pieces.is_empty() {
            return Ok(());
        }
        let slice = (self.rate * 100) as usize;
        if cx.pieces.iter().any(|p| p.data.len() > slice) {
            // Only at low rates (a chunk over 100 ms worth of bytes): split in 100 ms slices.
            let mut out = Vec::with_capacity(cx.pieces.len() + 4);
            for mut p in cx.pieces.drain(..) {
                while p.data.len() > slice {
                    out.push(Piece {
                        at: p.at,
                        data: p.data.split_to(slice),
                    });
                }
                out.push(p);
            }
            *cx.pieces = out;
        }
        let first = cx.pieces[0].at;
        let sched = cx.link.state(|| Schedule { next: first });
        self.schedule(cx.pieces, &mut sched.next);
        Ok(())
    }
}

options! {
    /// `bandwidth`'s options.
    pub struct BandwidthOptions {
        /// KB per second (1 KB = 1000 bytes), more than 0
        rate: i64 = 0,
    }
}

pub(super) fn kind() -> Kind {
    Kind::typed(
        "bandwidth",
        "limits the rate of each direction of a connection to `rate` KB/s (Toxiproxy)",
        Origin::Toxic,
        |BandwidthOptions { rate }| {
            if rate <= 0 {
                // Toxiproxy stalls on 0 and panics on a negative rate.
                return Err(super::bad(
                    "bandwidth",
                    format!("rate must be more than 0, not {rate}"),
                ));
            }
            Ok(Fault::toxic(Bandwidth { rate: rate as u64 }))
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn piece(at: Instant, len: usize) -> Piece {
        Piece {
            at,
            data: Bytes::from(vec![0u8; len]),
        }
    }

    #[test]
    fn due_times_follow_the_rate_without_drift() {
        // 20 MB/s (20000 KB/s), 8124-byte chunks read late each time: the schedule, not the
        // arrival, sets the due time while the link is behind by less than CATCH_UP.
        let bw = Bandwidth { rate: 20_000 };
        let t0 = Instant::now();
        let mut next = t0;
        let mut last = t0;
        for i in 0..1000u64 {
            // Each chunk arrives 50 µs after the previous one was due (a late wake-up).
            let arrived = last + Duration::from_micros(50) * (i > 0) as u32;
            let mut p = [piece(arrived, 8124)];
            bw.schedule(&mut p, &mut next);
            last = p[0].at;
        }
        let want = Duration::from_nanos(1000 * 8124 * 1_000_000 / 20_000);
        assert_eq!(last - t0, want);
    }

    #[test]
    fn an_idle_link_starts_again_from_its_next_chunk() {
        let bw = Bandwidth { rate: 1000 }; // 1 MB/s: 1000 bytes take 1 ms
        let t0 = Instant::now();
        let mut next = t0;
        let mut p = [piece(t0, 1000)];
        bw.schedule(&mut p, &mut next);
        assert_eq!(p[0].at, t0 + Duration::from_millis(1));
        // A second later: at most CATCH_UP of credit.
        let later = t0 + Duration::from_secs(1);
        let mut p = [piece(later, 20_000)];
        bw.schedule(&mut p, &mut next);
        assert_eq!(p[0].at, later + Duration::from_millis(20) - CATCH_UP);
    }
}
