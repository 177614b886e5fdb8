//! `timeout` (Toxiproxy): the data of the link is discarded, and the connection is closed
//! `timeout` ms after the toxic started on it (0: never). Removing the toxic closes the
//! connections it held. The closing is done by the engine's connection watch (see
//! [`ChunkToxic::closes_after`](super::ChunkToxic::closes_after)), so that it happens even when no data moves.

use std::time::Duration;

use async_trait::async_trait;

use super::{options, BehaviorError, ChunkCx, ChunkToxic, Fault, Kind, Origin};

pub struct Timeout {
    timeout: Duration,
}

#[async_trait]
impl ChunkToxic for Timeout {
    async fn on_chunk(&self, cx: &mut ChunkCx<'_>) -> Result<(), BehaviorError> {
        cx.pieces.clear();
        if cx.eof {
            // As Toxiproxy: the end of the input closes the connection.
            cx.close = true;
        }
        Ok(())
    }
    fn closes_after(&self) -> Option<Duration> {
        (!self.timeout.is_zero()).then_some(self.timeout)
    }
    fn closes_on_removal(&self) -> bool {
        true
    }
}

options! {
    /// `timeout`'s options.
    pub struct TimeoutOptions {
        /// milliseconds; 0 keeps the connection open
        timeout: i64 = 0,
    }
}

pub(super) fn kind() -> Kind {
    Kind::typed(
        "timeout",
        "swallows the data and closes the connection after `timeout` ms; 0: never (Toxiproxy)",
        Origin::Toxic,
        |TimeoutOptions { timeout }| {
            super::non_negative("timeout", &[("timeout", timeout)])?;
            Ok(Fault::toxic(Timeout {
                timeout: Duration::from_millis(timeout as u64),
            }))
        },
    )
}
