//! `slicer` (Toxiproxy): splits each chunk into slices of about `average_size` bytes (±
//! `size_variation`), `delay` microseconds apart (slice i of a chunk is due `i * delay` after
//! its first).

use std::time::Duration;

use async_trait::async_trait;
use rand::rngs::SmallRng;
use rand::Rng;

use super::{options, BehaviorError, ChunkCx, ChunkToxic, Fault, Kind, Origin, Piece};

pub struct Slicer {
    average: usize,
    variation: usize,
    delay: Duration,
}

impl Slicer {
    /// Toxiproxy's recursive halving, with the middle kept strictly inside the range (its
    /// version panics when the variation moves it out).
    fn cuts(&self, start: usize, end: usize, rng: &mut SmallRng, out: &mut Vec<usize>) {
        if end - start <= self.average.max(1) {
            out.push(end);
            return;
        }
        let mut mid = (start + (end - start) / 2) as i64;
        if self.variation > 0 {
            let v = self.variation as i64;
            mid += rng.random_range(-v..v);
        }
        let mid = mid.clamp(start as i64 + 1, end as i64 - 1) as usize;
        self.cuts(start, mid, rng, out);
        self.cuts(mid, end, rng, out);
    }
}

#[async_trait]
impl ChunkToxic for Slicer {
    async fn on_chunk(&self, cx: &mut ChunkCx<'_>) -> Result<(), BehaviorError> {
        if cx.pieces.is_empty() {
            return Ok(());
        }
        let mut out = Vec::new();
        for p in cx.pieces.drain(..) {
            let mut ends = Vec::new();
            self.cuts(0, p.data.len(), cx.rng, &mut ends);
            // Slice i is due `i * delay` after the first: a schedule, so that write times and
            // late wake-ups do not add up over the slices.
            let mut from = 0;
            for (i, to) in ends.into_iter().enumerate() {
                out.push(Piece {
                    at: p.at + self.delay * i as u32,
                    data: p.data.slice(from..to),
                });
                from = to;
            }
        }
        *cx.pieces = out;
        Ok(())
    }
}

options! {
    /// `slicer`'s options.
    pub struct SlicerOptions {
        /// bytes per slice on average
        average_size: i64 = 0,
        /// bytes of variation, at most average_size
        size_variation: i64 = 0,
        /// microseconds between slices
        delay: i64 = 0,
    }
}

pub(super) fn kind() -> Kind {
    Kind::typed(
        "slicer",
        "slices each chunk into pieces of about `average_size` bytes, `delay` µs apart (Toxiproxy)",
        Origin::Toxic,
        |o: SlicerOptions| {
            let (average, variation, delay) = (o.average_size, o.size_variation, o.delay);
            super::non_negative(
                "slicer",
                &[
                    ("average_size", average),
                    ("size_variation", variation),
                    ("delay", delay),
                ],
            )?;
            if variation > average {
                return Err(super::bad(
                    "slicer",
                    format!("size_variation ({variation}) must not be more than average_size ({average})"),
                ));
            }
            Ok(Fault::toxic(Slicer {
                average: average as usize,
                variation: variation as usize,
                delay: Duration::from_micros(delay as u64),
            }))
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn slices_cover_the_chunk_in_order() {
        let s = Slicer {
            average: 10,
            variation: 10,
            delay: Duration::ZERO,
        };
        let mut rng = SmallRng::seed_from_u64(7);
        for len in [0usize, 1, 9, 10, 11, 100, 1000] {
            let mut ends = Vec::new();
            s.cuts(0, len, &mut rng, &mut ends);
            assert_eq!(*ends.last().unwrap(), len);
            assert!(ends.windows(2).all(|w| w[0] < w[1]), "{ends:?}");
        }
    }
}
