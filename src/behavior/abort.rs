//! `abort`: after the request reached the backend, the connection is shut down before any
//! answer: the client sees a reset (or an empty reply).

use async_trait::async_trait;

use crate::base::Side;

use super::{BehaviorError, Exchange, ExchangeHook, Fault, Flow, Kind, NoOptions, Origin};

pub struct Abort;

#[async_trait]
impl ExchangeHook for Abort {
    async fn on_between_handle(&self, cx: &mut Exchange<'_>) -> Result<Flow, BehaviorError> {
        cx.wire.reset(Side::Client);
        cx.wire.close(Side::Backend);
        Ok(Flow::Close)
    }
}

pub(super) fn kind() -> Kind {
    Kind::typed(
        "abort",
        "resets the connection after the request reached the backend",
        Origin::Vaurien,
        |_: NoOptions| Ok(Fault::hook(Abort)),
    )
}
