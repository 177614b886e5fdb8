//! `reset_peer` (Toxiproxy): on the first chunk (or the end of the stream), waits `timeout` ms,
//! then closes the connection with a TCP reset (SO_LINGER 0) on both sides.

use std::time::Duration;

use async_trait::async_trait;

use super::{BehaviorError, ChunkCx, ChunkToxic, Fault, Kind, OptionSpec, Origin};

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

pub(super) fn kind() -> Kind {
    Kind::new(
        "reset_peer",
        "resets the connection (TCP RST) `timeout` ms after data arrives (Toxiproxy)",
        Origin::Toxic,
        vec![OptionSpec::int("timeout", 0, "milliseconds")],
        |o| {
            let timeout = o.int("timeout");
            super::non_negative("reset_peer", &[("timeout", timeout)])?;
            Ok(Fault::toxic(ResetPeer {
                timeout: Duration::from_millis(timeout as u64),
            }))
        },
    )
}
