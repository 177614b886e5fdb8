//! `bandwidth` (Toxiproxy): limits each connection-direction to `rate` KB/s (1 KB = 1000 bytes,
//! so `rate` is bytes per millisecond). A chunk larger than `rate * 100` bytes goes out in
//! 100 ms slices; the rest after the time its size takes at that rate.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{Behavior, BehaviorError, ChunkCx, Kind, OptionSpec, Origin, Piece};

pub struct Bandwidth {
    /// Bytes per millisecond, > 0.
    rate: u64,
}

#[async_trait]
impl Behavior for Bandwidth {
    async fn on_chunk(&self, cx: &mut ChunkCx<'_>) -> Result<(), BehaviorError> {
        if cx.pieces.is_empty() {
            return Ok(());
        }
        let slice = (self.rate * 100) as usize;
        let mut out = Vec::with_capacity(cx.pieces.len());
        for p in cx.pieces.drain(..) {
            let mut data = p.data;
            let mut pause = p.pause;
            while data.len() > slice {
                out.push(Piece {
                    pause: pause + Duration::from_millis(100),
                    data: data.split_to(slice),
                });
                pause = Duration::ZERO;
            }
            let micros = data.len() as u64 * 1000 / self.rate;
            out.push(Piece {
                pause: pause + Duration::from_micros(micros),
                data,
            });
        }
        *cx.pieces = out;
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
        "bandwidth",
        "limits the rate of each direction of a connection to `rate` KB/s (Toxiproxy)",
        Origin::Toxic,
        vec![OptionSpec::int(
            "rate",
            0,
            "KB per second (1 KB = 1000 bytes), more than 0",
        )],
        |o| {
            let rate = o.int("rate");
            if rate <= 0 {
                // Toxiproxy stalls on 0 and panics on a negative rate.
                return Err(super::bad(
                    "bandwidth",
                    format!("rate must be more than 0, not {rate}"),
                ));
            }
            Ok(Arc::new(Bandwidth { rate: rate as u64 }))
        },
    )
}
