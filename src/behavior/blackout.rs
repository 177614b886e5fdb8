//! `blackout`: closes the client connection at once. As the original (which closed the client
//! socket with the request unread), the client sees a reset; on an exchange the backend starts
//! (a greeting), the backend connection is closed and the client's ends with a FIN.

use std::sync::Arc;

use async_trait::async_trait;

use super::{Behavior, BehaviorError, Exchange, Flow, Kind, Origin};

pub struct Blackout;

#[async_trait]
impl Behavior for Blackout {
    async fn on_before_handle(&self, cx: &mut Exchange<'_>) -> Result<Flow, BehaviorError> {
        if cx.to_backend {
            cx.client.reset();
        } else {
            cx.backend.close();
            cx.client.close();
        }
        Ok(Flow::Close)
    }
}

pub(super) fn kind() -> Kind {
    Kind::new(
        "blackout",
        "closes the client connection at once",
        Origin::Vaurien,
        vec![],
        |_| Ok(Arc::new(Blackout)),
    )
}
