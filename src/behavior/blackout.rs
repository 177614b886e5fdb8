//! `blackout`: closes the client connection at once.

use std::sync::Arc;

use async_trait::async_trait;

use super::{Behavior, BehaviorError, Exchange, Flow, Kind, Origin};

pub struct Blackout;

#[async_trait]
impl Behavior for Blackout {
    async fn on_before_handle(&self, cx: &mut Exchange<'_>) -> Result<Flow, BehaviorError> {
        cx.client.close();
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
