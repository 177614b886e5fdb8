//! `limit_data` (Toxiproxy): forwards at most `bytes` bytes in this direction of a connection
//! (the last chunk truncated), then closes the connection. The count is kept per link and
//! survives updates of the toxic.

use async_trait::async_trait;

use super::{options, BehaviorError, ChunkCx, ChunkToxic, Fault, Kind, Origin};

pub struct LimitData {
    bytes: u64,
}

/// Bytes forwarded so far on this link.
struct Sent(u64);

#[async_trait]
impl ChunkToxic for LimitData {
    async fn on_chunk(&self, cx: &mut ChunkCx<'_>) -> Result<(), BehaviorError> {
        let sent = cx.link.state(|| Sent(0));
        let mut keep = 0;
        for p in cx.pieces.iter_mut() {
            let room = self.bytes.saturating_sub(sent.0) as usize;
            if p.data.len() > room {
                p.data.truncate(room);
            }
            sent.0 += p.data.len() as u64;
            keep += 1;
            if sent.0 >= self.bytes {
                break;
            }
        }
        cx.pieces.truncate(keep);
        if sent.0 >= self.bytes {
            cx.close = true;
        }
        Ok(())
    }
}

options! {
    /// `limit_data`'s options.
    pub struct LimitDataOptions {
        /// bytes forwarded before the connection is closed
        bytes: i64 = 0,
    }
}

pub(super) fn kind() -> Kind {
    Kind::typed(
        "limit_data",
        "closes the connection once `bytes` bytes went through in this direction (Toxiproxy)",
        Origin::Toxic,
        |LimitDataOptions { bytes }| {
            super::non_negative("limit_data", &[("bytes", bytes)])?;
            Ok(Fault::toxic(LimitData {
                bytes: bytes as u64,
            }))
        },
    )
}
