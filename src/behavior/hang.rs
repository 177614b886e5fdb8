//! `hang`: reads what the client sends and never answers; the connection is closed after
//! `--timeout`.

use async_trait::async_trait;

use crate::base::Side;

use super::{BehaviorError, Exchange, ExchangeHook, Fault, Flow, Kind, NoOptions, Origin};

pub struct Hang;

#[async_trait]
impl ExchangeHook for Hang {
    async fn on_before_handle(&self, cx: &mut Exchange<'_>) -> Result<Flow, BehaviorError> {
        // Reads (and drops) what the client sends until it leaves or --timeout passes.
        let deadline = tokio::time::Instant::now() + cx.conn.timeout;
        loop {
            cx.wire.buffer(Side::Client).clear();
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                break;
            }
            match cx.wire.read_more(Side::Client, 4096, Some(left)).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        cx.wire.buffer(Side::Client).clear();
        Ok(Flow::Close)
    }
}

pub(super) fn kind() -> Kind {
    Kind::typed(
        "hang",
        "reads the request and never answers (closed after --timeout)",
        Origin::Vaurien,
        |_: NoOptions| Ok(Fault::hook(Hang)),
    )
}
