//! `abort`: after the request reached the backend, the connection is shut down before any
//! answer: the client sees a reset (or an empty reply).

use std::sync::Arc;

use async_trait::async_trait;

use super::{Behavior, BehaviorError, Exchange, Flow, Kind, Origin};

pub struct Abort;

#[async_trait]
impl Behavior for Abort {
    async fn on_between_handle(&self, cx: &mut Exchange<'_>) -> Result<Flow, BehaviorError> {
        cx.client.reset();
        cx.backend.close();
        Ok(Flow::Close)
    }
}

pub(super) fn kind() -> Kind {
    Kind::new(
        "abort",
        "resets the connection after the request reached the backend",
        Origin::Vaurien,
        vec![],
        |_| Ok(Arc::new(Abort)),
    )
}
