//! `slow_close` (Toxiproxy): the end of the stream reaches the other side `delay` ms late.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::{options, BehaviorError, ChunkCx, ChunkToxic, Fault, Kind, Origin, Piece};

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

options! {
    /// `slow_close`'s options.
    pub struct SlowCloseOptions {
        /// milliseconds
        delay: i64 = 0,
    }
}

pub(super) fn kind() -> Kind {
    Kind::typed(
        "slow_close",
        "delays the end of the stream by `delay` ms (Toxiproxy)",
        Origin::Toxic,
        |SlowCloseOptions { delay }| {
            super::non_negative("slow_close", &[("delay", delay)])?;
            Ok(Fault::toxic(SlowClose {
                delay: Duration::from_millis(delay as u64),
            }))
        },
    )
}
