//! `latency` (Toxiproxy): each chunk is held until `latency ± jitter` ms after it entered the
//! proxy; time already spent in earlier toxics counts, and several latency toxics add up.
//! `latency` 0 with no jitter touches nothing: connections stay on the fast path.

use std::time::Duration;

use async_trait::async_trait;
use rand::Rng;

use super::{options, BehaviorError, ChunkCx, ChunkToxic, Fault, Kind, Origin};

pub struct Latency {
    latency: i64,
    jitter: i64,
}

impl Latency {
    /// This chunk's delay: `latency` plus a uniform draw in `[-jitter, +jitter]`, to the
    /// microsecond (Toxiproxy draws whole milliseconds in `[-jitter, +jitter)`, whose mean is
    /// half a millisecond short), never below 0.
    /// Huge values saturate (at most a year: "forever" for a test) instead of overflowing to
    /// no delay at all.
    fn delay(&self, rng: &mut rand::rngs::SmallRng) -> Duration {
        const MAX_US: i64 = 365 * 24 * 3600 * 1_000_000;
        let mut us = self.latency.saturating_mul(1000);
        if self.jitter > 0 {
            let j = self.jitter.saturating_mul(1000);
            us = us.saturating_add(rng.random_range(-j..=j));
        }
        Duration::from_micros(us.clamp(0, MAX_US) as u64)
    }
}

#[async_trait]
impl ChunkToxic for Latency {
    async fn on_chunk(&self, cx: &mut ChunkCx<'_>) -> Result<(), BehaviorError> {
        if cx.eof || cx.pieces.is_empty() {
            return Ok(());
        }
        // As Toxiproxy: the chunk's timestamp moves on by the delay, so a later latency toxic
        // counts from there and the delays add up. A piece already due later (a slicer's
        // later slices) keeps its time.
        let target = cx.arrived + self.delay(cx.rng);
        cx.arrived = target;
        for p in cx.pieces.iter_mut() {
            p.at = p.at.max(target);
        }
        Ok(())
    }
    fn only_delays(&self) -> bool {
        true
    }
}

options! {
    /// `latency`'s options.
    pub struct LatencyOptions {
        /// delay in milliseconds
        latency: i64 = 0,
        /// random variation in milliseconds, ±
        jitter: i64 = 0,
    }
}

pub(super) fn kind() -> Kind {
    Kind::typed(
        "latency",
        "holds each chunk `latency` ms (± `jitter`) after it entered the proxy (Toxiproxy)",
        Origin::Toxic,
        |LatencyOptions { latency, jitter }| {
            super::non_negative("latency", &[("latency", latency), ("jitter", jitter)])?;
            if latency == 0 && jitter == 0 {
                return Ok(Fault::Pass);
            }
            Ok(Fault::toxic(Latency { latency, jitter }))
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::behavior::OptionSet;
    use rand::SeedableRng;

    #[test]
    fn jitter_is_uniform_over_the_whole_range_to_the_microsecond() {
        let l = Latency {
            latency: 5,
            jitter: 2,
        };
        let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
        let xs: Vec<f64> = (0..20_000)
            .map(|_| l.delay(&mut rng).as_secs_f64() * 1000.0)
            .collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        assert!((mean - 5.0).abs() < 0.05, "mean {mean}");
        assert!(xs.iter().all(|x| (3.0..=7.0).contains(x)));
        // Uniform: each quarter of the range holds about a quarter of the draws.
        for q in 0..4 {
            let lo = 3.0 + q as f64;
            let share =
                xs.iter().filter(|x| **x >= lo && **x < lo + 1.0).count() as f64 / xs.len() as f64;
            assert!((share - 0.25).abs() < 0.02, "quarter {q}: {share}");
        }
        // Fractions of a millisecond are drawn too.
        assert!(xs.iter().any(|x| x.fract() != 0.0));
    }

    #[test]
    fn huge_values_saturate_instead_of_overflowing_to_no_delay() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
        let day = Duration::from_secs(24 * 3600);
        for (latency, jitter) in [(i64::MAX, 0), (i64::MAX, i64::MAX), (i64::MAX / 1000, 5)] {
            let l = Latency { latency, jitter };
            for _ in 0..100 {
                let d = l.delay(&mut rng);
                assert!(
                    d >= day && d <= Duration::from_secs(366 * 24 * 3600),
                    "{latency} {jitter}: {d:?}"
                );
            }
        }
    }

    #[test]
    fn zero_latency_touches_nothing() {
        let build = |latency: i64, jitter: i64| {
            let o = LatencyOptions { latency, jitter };
            kind().build(&o.to_options()).unwrap()
        };
        assert!(build(0, 0).is_passthrough());
        assert!(build(0, 1).as_toxic().is_some());
    }
}
