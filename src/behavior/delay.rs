//! `delay`: sleeps before the exchange, or after it when `before` is false. With smtp and mysql
//! (which the original ran as tcp, one exchange per read in each direction) it also sleeps
//! between the request and the answer, so that a round trip takes twice the sleep, as there.

use async_trait::async_trait;

use super::{
    options, sleep_secs, BehaviorError, Exchange, ExchangeHook, Fault, Flow, Kind, Origin,
};

pub struct Delay {
    sleep: f64,
    before: bool,
}

#[async_trait]
impl ExchangeHook for Delay {
    async fn on_before_handle(&self, _cx: &mut Exchange<'_>) -> Result<Flow, BehaviorError> {
        if self.before {
            sleep_secs(self.sleep).await;
        }
        Ok(Flow::Continue)
    }
    async fn on_between_handle(&self, cx: &mut Exchange<'_>) -> Result<Flow, BehaviorError> {
        if cx.framing.hooks_each_direction() {
            sleep_secs(self.sleep).await;
        }
        Ok(Flow::Continue)
    }
    async fn on_after_handle(&self, _cx: &mut Exchange<'_>) -> Result<Flow, BehaviorError> {
        if !self.before {
            sleep_secs(self.sleep).await;
        }
        Ok(Flow::Continue)
    }
}

options! {
    /// `delay`'s options.
    pub struct DelayOptions {
        /// delay in seconds
        sleep: f64 = 1.0,
        /// delay before the exchange (else after)
        before: bool = true,
    }
}

pub(super) fn kind() -> Kind {
    Kind::typed(
        "delay",
        "adds a delay before or after each exchange",
        Origin::Vaurien,
        |DelayOptions { sleep, before }| {
            if sleep < 0.0 {
                return Err(BehaviorError::BadOption {
                    behavior: "delay".into(),
                    message: format!("sleep must be 0 or more, not {sleep}"),
                });
            }
            Ok(Fault::hook(Delay { sleep, before }))
        },
    )
}
