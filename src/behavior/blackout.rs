//! `blackout`: closes the client connection at once. As the original (which closed the client
//! socket with the request unread), the client sees a reset; on an exchange the backend starts
//! (a greeting), the backend connection is closed and the client's ends with a FIN.

use async_trait::async_trait;

use crate::base::Side;

use super::{BehaviorError, Exchange, ExchangeHook, Fault, Flow, Kind, NoOptions, Origin};

pub struct Blackout;

#[async_trait]
impl ExchangeHook for Blackout {
    async fn on_before_handle(&self, cx: &mut Exchange<'_>) -> Result<Flow, BehaviorError> {
        if cx.direction.is_upstream() {
            cx.wire.reset(Side::Client);
        } else {
            cx.wire.close(Side::Backend);
            cx.wire.close(Side::Client);
        }
        Ok(Flow::Close)
    }
}

pub(super) fn kind() -> Kind {
    Kind::typed(
        "blackout",
        "closes the client connection at once",
        Origin::Vaurien,
        |_: NoOptions| Ok(Fault::hook(Blackout)),
    )
}
