//! `latency` (Toxiproxy): each chunk is held until `latency ± jitter` ms after it entered the
//! proxy; time already spent in earlier toxics counts, and several latency toxics add up.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rand::Rng;

use super::{Behavior, BehaviorError, ChunkCx, Kind, OptionSpec, Origin};

pub struct Latency {
    latency: i64,
    jitter: i64,
}

impl Latency {
    /// This chunk's delay in ms: `latency` plus a uniform draw in `[-jitter, +jitter)`.
    fn delay_ms(&self, rng: &mut rand::rngs::SmallRng) -> i64 {
        let mut d = self.latency;
        if self.jitter > 0 {
            d += rng.random_range(-self.jitter..self.jitter);
        }
        d.max(0)
    }
}

#[async_trait]
impl Behavior for Latency {
    async fn on_chunk(&self, cx: &mut ChunkCx<'_>) -> Result<(), BehaviorError> {
        if cx.eof || cx.pieces.is_empty() {
            return Ok(());
        }
        let delay = Duration::from_millis(self.delay_ms(cx.rng) as u64);
        // As Toxiproxy: the chunk's timestamp moves on by the delay, so a later latency toxic
        // counts from there and the delays add up.
        let target = cx.arrived + delay;
        cx.arrived = target;
        let wait = target.saturating_duration_since(Instant::now());
        let first = &mut cx.pieces[0];
        first.pause = first.pause.max(wait);
        Ok(())
    }
    fn has_chunk_hook(&self) -> bool {
        true
    }
    fn has_exchange_hooks(&self) -> bool {
        false
    }
}

pub(super) fn kind() -> Kind {
    Kind::new(
        "latency",
        "holds each chunk `latency` ms (± `jitter`) after it entered the proxy (Toxiproxy)",
        Origin::Toxic,
        vec![
            OptionSpec::int("latency", 0, "delay in milliseconds"),
            OptionSpec::int("jitter", 0, "random variation in milliseconds, ±"),
        ],
        |o| {
            let (latency, jitter) = (o.int("latency"), o.int("jitter"));
            super::non_negative("latency", &[("latency", latency), ("jitter", jitter)])?;
            Ok(Arc::new(Latency { latency, jitter }))
        },
    )
}
