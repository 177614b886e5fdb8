//! `error`: after `warmup` exchanges, answers with an error. With http, a random 50x response
//! (as the original); with the other protocols, as the original documents, the request reaches
//! the backend and 1000 random bytes replace the answer, or with `inject` 100 random bytes are
//! inserted in the middle of the real answer. With `protocol_reply`, a protocol that has an
//! error answer of its own (redis `-ERR`, memcache `SERVER_ERROR`, a MySQL ERR packet, an SMTP
//! 451) answers the request with it instead, and the connection goes on.

use std::sync::atomic::{AtomicI64, Ordering};

use async_trait::async_trait;
use rand::Rng;

use crate::base::Side;

use super::{options, BehaviorError, Exchange, ExchangeHook, Fault, Flow, Kind, Origin};

pub struct Error {
    inject: bool,
    /// Answer with the protocol's own error reply (always so for http).
    protocol_reply: bool,
    warmup: i64,
    /// Exchanges seen so far, shared by every connection of the proxy.
    seen: AtomicI64,
}

impl Error {
    pub fn new(o: &ErrorOptions) -> Self {
        Error {
            inject: o.inject,
            protocol_reply: o.protocol_reply,
            warmup: o.warmup,
            seen: AtomicI64::new(0),
        }
    }

    fn warming_up(&self) -> bool {
        self.seen.fetch_add(1, Ordering::Relaxed) < self.warmup
    }

    /// Answers the exchange with an error (no warmup check).
    pub async fn fail(&self, cx: &mut Exchange<'_>) -> Result<Flow, BehaviorError> {
        let own_reply = self.protocol_reply || cx.framing.errors_in_kind();
        let dir = cx.direction;
        if let Some(reply) = own_reply
            .then(|| cx.framing.error_reply(cx.wire.rng(), dir))
            .flatten()
        {
            // Read the whole request so that the connection stays in step, then answer it.
            if dir.is_upstream() {
                let n = cx.read_message().await?;
                if n == 0 {
                    return Ok(Flow::Close);
                }
                let _ = cx.pending().split_to(n);
            }
            if !cx.wire.send(Side::Client, &reply.bytes).await? {
                return Ok(Flow::Close);
            }
            if reply.close {
                cx.wire.close(Side::Client);
                return Ok(Flow::Close);
            }
            return Ok(Flow::Skip);
        }
        if self.inject {
            cx.wire.inject_next_answer();
            return Ok(Flow::Continue);
        }
        let garbage: Vec<u8> = (0..1000).map(|_| cx.rng().random::<u8>()).collect();
        if dir.is_upstream() {
            // The request reaches the backend; the client gets garbage instead of the answer.
            let n = cx.read_message().await?;
            if n == 0 {
                return Ok(Flow::Close);
            }
            let request = cx.pending().split_to(n);
            if cx.wire.send(Side::Backend, &request).await? {
                cx.wire.send(Side::Client, &garbage).await?;
            }
            Ok(Flow::Close)
        } else {
            // An answer from the backend: replaced by garbage.
            let n = cx.read_message().await?;
            let _ = cx.pending().split_to(n);
            if !cx.wire.send(Side::Client, &garbage).await? {
                return Ok(Flow::Close);
            }
            Ok(Flow::Skip)
        }
    }
}

#[async_trait]
impl ExchangeHook for Error {
    async fn on_before_handle(&self, cx: &mut Exchange<'_>) -> Result<Flow, BehaviorError> {
        if self.warming_up() {
            return Ok(Flow::Continue);
        }
        self.fail(cx).await
    }
}

options! {
    /// `error`'s options (`transient` has them too).
    pub struct ErrorOptions {
        /// inject 100 random bytes in the middle of the answer instead of replacing it
        inject: bool = false,
        /// number of exchanges served normally first
        warmup: i64 = 0,
        /// answer with the protocol's own error (redis -ERR, memcache SERVER_ERROR, MySQL ERR,
        /// SMTP 451) instead of random bytes
        protocol_reply: bool = false,
    }
}

/// The original took a negative count and counted as if it were 0: so does vaurien, saying so.
pub(super) fn warn_negative(behavior: &str, values: &[(&str, i64)]) {
    for (name, v) in values.iter().filter(|(_, v)| *v < 0) {
        tracing::warn!(
            "{behavior}: {name} {v} is negative; counted as 0 \
             (--behavior-{behavior}-{}, a count of 0 or more)",
            name.replace('_', "-")
        );
    }
}

pub(super) fn kind() -> Kind {
    Kind::typed(
        "error",
        "answers with errors (protocol errors, or random bytes)",
        Origin::Vaurien,
        |o: ErrorOptions| {
            warn_negative("error", &[("warmup", o.warmup)]);
            Ok(Fault::hook(Error::new(&o)))
        },
    )
}
