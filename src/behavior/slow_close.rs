//! `slow_close` (Toxiproxy): the end of the stream reaches the other side `delay` ms late.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::{BehaviorError, ChunkCx, ChunkToxic, Fault, Kind, OptionSpec, Origin, Piece};

pub struct SlowClose {
    delay: Duration,
}

#[async_trait]
impl ChunkToxic for SlowClose {
    async fn on_chunk(&self, cx: &mut ChunkCx<'_>) -> Result<(), BehaviorError> {
        if cx.eof {
            cx.pieces.push(Piece {
                at: cx.arrived + self.delay,
                data: Bytes::new(),
            });
        }
        Ok(())
    }
}

pub(super) fn kind() -> Kind {
    Kind::new(
        "slow_close",
        "delays the end of the stream by `delay` ms (Toxiproxy)",
        Origin::Toxic,
        vec![OptionSpec::int("delay", 0, "milliseconds")],
        |o| {
            let delay = o.int("delay");
            super::non_negative("slow_close", &[("delay", delay)])?;
            Ok(Fault::toxic(SlowClose {
                delay: Duration::from_millis(delay as u64),
            }))
        },
    )
}
