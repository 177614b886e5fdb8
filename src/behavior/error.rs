//! `error`: after `warmup` exchanges, answers with an error. With a protocol that has an error
//! answer (http 50x, redis `-ERR`, memcache `SERVER_ERROR`, a MySQL ERR packet, an SMTP 4xx/5xx)
//! the request is read and answered with it; otherwise 1000 random bytes replace the answer,
//! or with `inject` 100 random bytes are inserted in the middle of the real answer.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use rand::Rng;

use super::{Behavior, BehaviorError, Exchange, Flow, Kind, OptionSpec, Options, Origin};

pub struct Error {
    inject: bool,
    warmup: i64,
    /// Exchanges seen so far, shared by every connection of the proxy.
    seen: AtomicI64,
}

impl Error {
    pub fn new(o: &Options) -> Self {
        Error {
            inject: o.bool("inject"),
            warmup: o.int("warmup"),
            seen: AtomicI64::new(0),
        }
    }

    fn warming_up(&self) -> bool {
        self.seen.fetch_add(1, Ordering::Relaxed) < self.warmup
    }

    /// Answers the exchange with an error (no warmup check).
    pub async fn fail(&self, cx: &mut Exchange<'_>) -> Result<Flow, BehaviorError> {
        if let Some(reply) = cx.protocol.error_reply(cx.rng) {
            // Read the whole request so that the connection stays in step, then answer it.
            if cx.to_backend {
                let n = cx.read_message().await?;
                if n == 0 {
                    return Ok(Flow::Close);
                }
                let _ = cx.pending.split_to(n);
            }
            cx.client.write_all(&reply.bytes).await?;
            if reply.close {
                cx.client.close();
                return Ok(Flow::Close);
            }
            return Ok(Flow::Skip);
        }
        if self.inject {
            *cx.inject = true;
            return Ok(Flow::Continue);
        }
        let garbage: Vec<u8> = (0..1000).map(|_| cx.rng.random::<u8>()).collect();
        if cx.to_backend {
            // The request reaches the backend; the client gets garbage instead of the answer.
            let n = cx.read_message().await?;
            if n == 0 {
                return Ok(Flow::Close);
            }
            let request = cx.pending.split_to(n);
            cx.backend.write_all(&request).await?;
            cx.client.write_all(&garbage).await?;
            Ok(Flow::Close)
        } else {
            // An answer from the backend: replaced by garbage.
            let n = cx.read_message().await?;
            let _ = cx.pending.split_to(n);
            cx.client.write_all(&garbage).await?;
            Ok(Flow::Skip)
        }
    }
}

#[async_trait]
impl Behavior for Error {
    async fn on_before_handle(&self, cx: &mut Exchange<'_>) -> Result<Flow, BehaviorError> {
        if self.warming_up() {
            return Ok(Flow::Continue);
        }
        self.fail(cx).await
    }
}

pub(super) fn options() -> Vec<OptionSpec> {
    vec![
        OptionSpec::bool(
            "inject",
            false,
            "inject 100 random bytes in the middle of the answer instead of replacing it",
        ),
        OptionSpec::int("warmup", 0, "number of exchanges served normally first"),
    ]
}

pub(super) fn kind() -> Kind {
    Kind::new(
        "error",
        "answers with errors (protocol errors, or random bytes)",
        Origin::Vaurien,
        options(),
        |o| Ok(Arc::new(Error::new(o))),
    )
}
