//! `packet_loss` (Toxiproxy main, PR 739): drops whole chunks with probability `loss_rate`,
//! plus `correlation` right after a drop. Draws come from the connection's generator, so
//! `--seed` makes them reproducible.

use async_trait::async_trait;
use rand::Rng;

use super::{options, BehaviorError, ChunkCx, ChunkToxic, Fault, Kind, Origin};

pub struct PacketLoss {
    loss_rate: f64,
    correlation: f64,
}

/// Whether the previous chunk of this link was dropped.
struct LastDropped(bool);

#[async_trait]
impl ChunkToxic for PacketLoss {
    async fn on_chunk(&self, cx: &mut ChunkCx<'_>) -> Result<(), BehaviorError> {
        if cx.eof || cx.pieces.is_empty() {
            return Ok(());
        }
        let p = {
            let last = cx.link.state(|| LastDropped(false));
            let extra = if last.0 { self.correlation } else { 0.0 };
            (self.loss_rate + extra).min(1.0)
        };
        let drop = cx.rng.random::<f64>() < p;
        cx.link.state(|| LastDropped(false)).0 = drop;
        if drop {
            cx.pieces.clear();
        }
        Ok(())
    }
}

options! {
    /// `packet_loss`'s options.
    pub struct PacketLossOptions {
        /// probability of dropping a chunk, 0 to 1
        loss_rate: f64 = 0.0,
        /// added to the probability after a drop, 0 to 1
        correlation: f64 = 0.0,
    }
}

pub(super) fn kind() -> Kind {
    Kind::typed(
        "packet_loss",
        "drops whole chunks with probability `loss_rate` (Toxiproxy)",
        Origin::Toxic,
        |PacketLossOptions {
             loss_rate,
             correlation,
         }| {
            for (name, v) in [("loss_rate", loss_rate), ("correlation", correlation)] {
                if !(0.0..=1.0).contains(&v) {
                    return Err(super::bad(
                        "packet_loss",
                        format!("{name} must be between 0 and 1, not {v}"),
                    ));
                }
            }
            Ok(Fault::toxic(PacketLoss {
                loss_rate,
                correlation,
            }))
        },
    )
}
