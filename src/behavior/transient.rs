//! `transient`: behaves as `error` for the first `agitate` exchanges, then as `dummy`.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;

use super::error::Error;
use super::{Behavior, BehaviorError, Exchange, Flow, Kind, OptionSpec, Origin};

pub struct Transient {
    agitate: i64,
    error: Error,
    /// Exchanges failed so far, shared by every connection.
    failed: AtomicI64,
}

#[async_trait]
impl Behavior for Transient {
    async fn on_before_handle(&self, cx: &mut Exchange<'_>) -> Result<Flow, BehaviorError> {
        if self.failed.fetch_add(1, Ordering::Relaxed) >= self.agitate {
            return Ok(Flow::Continue);
        }
        self.error.on_before_handle(cx).await
    }
}

pub(super) fn kind() -> Kind {
    let mut options = vec![OptionSpec::int(
        "agitate",
        1,
        "number of exchanges that fail before the proxy behaves again",
    )];
    options.extend(super::error::options());
    Kind::new(
        "transient",
        "fails the first `agitate` exchanges, then recovers",
        Origin::Vaurien,
        options,
        |o| {
            Ok(Arc::new(Transient {
                agitate: o.int("agitate"),
                error: Error::new(o),
                failed: AtomicI64::new(0),
            }))
        },
    )
}
