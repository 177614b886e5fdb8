//! `reset_peer` (Toxiproxy): on the first chunk (or the end of the stream), waits `timeout` ms,
//! then closes the connection with a TCP reset (SO_LINGER 0) on both sides.

use std::time::Duration;

use async_trait::async_trait;

use super::{options, BehaviorError, ChunkCx, ChunkToxic, Fault, Kind, Origin};

pub struct ResetPeer {
    timeout: Duration,
}

#[async_trait]
impl ChunkToxic for ResetPeer {
    async fn on_chunk(&self, cx: &mut ChunkCx<'_>) -> Result<(), BehaviorError> {
        cx.pieces.clear();
        tokio::time::sleep(self.timeout).await;
        cx.reset = true;
        Ok(())
    }
}

options! {
    /// `reset_peer`'s options.
    pub struct ResetPeerOptions {
        /// milliseconds
        timeout: i64 = 0,
    }
}

pub(super) fn kind() -> Kind {
    Kind::typed(
        "reset_peer",
        "resets the connection (TCP RST) `timeout` ms after data arrives (Toxiproxy)",
        Origin::Toxic,
        |ResetPeerOptions { timeout }| {
            super::non_negative("reset_peer", &[("timeout", timeout)])?;
            Ok(Fault::toxic(ResetPeer {
                timeout: Duration::from_millis(timeout as u64),
            }))
        },
    )
}
