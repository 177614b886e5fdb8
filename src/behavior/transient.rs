//! `transient`: behaves as `error` for the first `agitate` exchanges, then as `dummy` (error's
//! `warmup` counts on the same counter, as in the original).

use std::sync::atomic::{AtomicI64, Ordering};

use async_trait::async_trait;

use super::error::{Error, ErrorOptions};
use super::{options, BehaviorError, Exchange, ExchangeHook, Fault, Flow, Kind, Origin};

pub struct Transient {
    agitate: i64,
    warmup: i64,
    error: Error,
    /// The original's one counter (`current`), shared by every connection: `agitate` and
    /// error's `warmup` both count on it, so with a warmup the first `agitate` calls still
    /// include the warmup ones (warmup >= agitate: never fails).
    current: AtomicI64,
}

#[async_trait]
impl ExchangeHook for Transient {
    async fn on_before_handle(&self, cx: &mut Exchange<'_>) -> Result<Flow, BehaviorError> {
        let c = self.current.fetch_add(1, Ordering::Relaxed);
        if c >= self.agitate {
            return Ok(Flow::Continue);
        }
        if c + 1 < self.warmup {
            // error's warmup, on the same counter.
            self.current.fetch_add(1, Ordering::Relaxed);
            return Ok(Flow::Continue);
        }
        self.error.fail(cx).await
    }
}

options! {
    /// `transient`'s options: its own, then `error`'s.
    pub struct TransientOptions {
        /// number of exchanges that fail before the proxy behaves again
        agitate: i64 = 1,
        ..error: ErrorOptions,
    }
}

pub(super) fn kind() -> Kind {
    Kind::typed(
        "transient",
        "fails the first `agitate` exchanges, then recovers",
        Origin::Vaurien,
        |o: TransientOptions| {
            super::error::warn_negative(
                "transient",
                &[("agitate", o.agitate), ("warmup", o.error.warmup)],
            );
            Ok(Fault::hook(Transient {
                agitate: o.agitate,
                warmup: o.error.warmup,
                error: Error::new(&o.error),
                current: AtomicI64::new(0),
            }))
        },
    )
}
