//! `reset_peer` (Toxiproxy): on the first chunk (or the end of the stream), waits `timeout` ms,
//! then closes the connection with a TCP reset (SO_LINGER 0) on both sides.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{Behavior, BehaviorError, ChunkCx, Kind, OptionSpec, Origin};

pub struct ResetPeer {
    timeout: Duration,
}

#[async_trait]
impl Behavior for ResetPeer {
    async fn on_chunk(&self, cx: &mut ChunkCx<'_>) -> Result<(), BehaviorError> {
        cx.pieces.clear();
        tokio::time::sleep(self.timeout).await;
        cx.reset = true;
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
        "reset_peer",
        "resets the connection (TCP RST) `timeout` ms after data arrives (Toxiproxy)",
        Origin::Toxic,
        vec![OptionSpec::int("timeout", 0, "milliseconds")],
        |o| {
            let timeout = o.int("timeout");
            super::non_negative("reset_peer", &[("timeout", timeout)])?;
            Ok(Arc::new(ResetPeer {
                timeout: Duration::from_millis(timeout as u64),
            }))
        },
    )
}
