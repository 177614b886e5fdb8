//! `hang`: reads what the client sends and never answers; the connection is closed after
//! `--timeout`.

use std::sync::Arc;

use async_trait::async_trait;

use super::{Behavior, BehaviorError, Exchange, Flow, Kind, Origin};

pub struct Hang;

#[async_trait]
impl Behavior for Hang {
    async fn on_before_handle(&self, cx: &mut Exchange<'_>) -> Result<Flow, BehaviorError> {
        let client = cx.client;
        let deadline = tokio::time::Instant::now() + cx.conn.timeout;
        let mut sink = [0u8; 4096];
        cx.pending.clear();
        loop {
            match tokio::time::timeout_at(deadline, client.read(&mut sink)).await {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
                Ok(Ok(_)) => {}
            }
        }
        Ok(Flow::Close)
    }
}

pub(super) fn kind() -> Kind {
    Kind::new(
        "hang",
        "reads the request and never answers (closed after --timeout)",
        Origin::Vaurien,
        vec![],
        |_| Ok(Arc::new(Hang)),
    )
}
