//! `tcp`: reads what one side sent and forwards it. Without `keep_alive` (the original's
//! default) only the first read of the client is forwarded, then the backend's answer is
//! relayed until the backend closes or `--timeout` expires, and the connection closes. With
//! `keep_alive`, both directions stream and each chunk in either direction is one exchange;
//! without `--stay-connected` the first EOF from either side (or `--timeout` without traffic)
//! ends the connection, as the original's loop did, and a backend the client left may be
//! reused (`reuse_socket`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;

use super::{
    after, before, between, between_then_after, forward_message, CommonOptions, Framing, Mode,
    Protocol, ProtocolError, ProtocolKind, ProtocolOptions,
};
use crate::base::{Direction, Side};
use crate::behavior::{ExchangeHook, NoOptions, Options, Transforms};
use crate::link::Session;

pub struct Tcp {
    options: Options,
    common: CommonOptions,
    buffer: usize,
    /// The warning that a client's data after its first read is dropped was logged (once per
    /// proxy: each proxy builds its own protocol).
    warned_dropped: AtomicBool,
}

pub(crate) fn kind() -> ProtocolKind {
    ProtocolKind::typed(
        "tcp",
        "raw TCP: each read is forwarded as it comes",
        |o: ProtocolOptions<NoOptions>| Ok(Arc::new(Tcp::new(o)) as Arc<dyn Protocol>),
    )
}

impl Tcp {
    pub fn new(o: ProtocolOptions<NoOptions>) -> Self {
        Tcp {
            options: o.by_name,
            buffer: o.common.read_size(),
            common: o.common,
            warned_dropped: AtomicBool::new(false),
        }
    }
}

impl Framing for Tcp {
    fn options(&self) -> &Options {
        &self.options
    }

    fn name(&self) -> &str {
        "tcp"
    }
}

#[async_trait]
impl Protocol for Tcp {
    fn common(&self) -> &CommonOptions {
        &self.common
    }

    fn mode(&self, stay_connected: bool) -> Mode {
        if self.common.keep_alive {
            Mode::Streaming
        } else {
            Mode::Exchanges {
                stay: stay_connected,
                drain: false,
            }
        }
    }

    async fn handle(
        &self,
        s: &mut Session<'_>,
        dir: Direction,
        hook: Option<&dyn ExchangeHook>,
    ) -> Result<bool, ProtocolError> {
        if let Some(keep) = before(s, self, dir, hook).await? {
            return Ok(keep);
        }
        let from = dir.source();
        if s.buf(from).is_empty() && s.fill(from, self.read_size(s, hook)).await? == 0 {
            after(s, self, dir, hook).await?;
            return Ok(false);
        }
        let rewrites = hook.map_or(Transforms::NONE, |h| h.transforms());
        let chunk = s.buf(from).split();
        let open = self.forward(s, dir, dir, rewrites, hook, chunk).await?;
        if !open {
            return Ok(false);
        }
        if s.streaming {
            // Streaming (keep_alive): nothing else happens in this exchange.
            return between_then_after(s, self, dir, hook).await;
        }
        if !between(s, self, dir, hook).await? {
            after(s, self, dir, hook).await?;
            return Ok(false);
        }
        // Without keep_alive: relay the answer until the other side closes or goes quiet for
        // --timeout, then the connection closes.
        let back = dir.reverse();
        loop {
            match s.fill(back.source(), self.buffer).await {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => break,
                Err(e) => return Err(e.into()),
            }
            let chunk = s.buf(back.source()).split();
            let open = self.forward(s, dir, back, rewrites, hook, chunk).await?;
            self.warn_if_dropped(s);
            if !open {
                break;
            }
        }
        self.warn_if_dropped(s);
        after(s, self, dir, hook).await?;
        Ok(false)
    }
}

/// The read size of a streaming connection that no exchange hook sees: only toxics act on its
/// chunks, and where a chunk ends means nothing to them, so reads are larger than Toxiproxy's
/// (32 KiB). With 8124-byte reads a `bandwidth` toxic could not carry 1 GB/s on one connection
/// here (bench/fidelity.py: 679 MB/s); with 128 KiB reads and no copy it delivers it (0.987).
/// Memory: a read buffer's pages are resident once a read filled them (at most this much per
/// direction of a connection under toxics).
const STREAM_READ: usize = 128 << 10;

impl Tcp {
    /// Forwards one chunk going in `chunk_dir` (in the exchange going in `dir`), through the
    /// hook's transform when it rewrites that direction: each read is one message.
    async fn forward(
        &self,
        s: &mut Session<'_>,
        dir: Direction,
        chunk_dir: Direction,
        rewrites: Transforms,
        hook: Option<&dyn ExchangeHook>,
        chunk: bytes::BytesMut,
    ) -> Result<bool, ProtocolError> {
        let from = chunk_dir.source();
        if !rewrites.has(chunk_dir) {
            // Through toxics the chunk goes on without a copy; otherwise its buffer comes back
            // and is reused for the next read.
            let (open, back) = s.forward_chunk(chunk_dir, chunk).await?;
            if let Some(chunk) = back {
                reclaim(s, from, chunk);
            }
            return Ok(open);
        }
        let open = forward_message(s, self, dir, hook, chunk_dir, &chunk).await;
        reclaim(s, from, chunk);
        open
    }

    /// `buffer`, or [`STREAM_READ`] when larger and nothing sees the chunks: each chunk of a
    /// streaming connection is one exchange, so the hooks of a behavior see `buffer`-sized
    /// chunks, as in the original.
    fn read_size(&self, s: &Session<'_>, hook: Option<&dyn ExchangeHook>) -> usize {
        if s.streaming && hook.is_none() {
            self.buffer.max(STREAM_READ)
        } else {
            self.buffer
        }
    }

    /// Without keep_alive only the client's first read is forwarded (the original's default):
    /// a client that sends more (a second request on the same connection) waits for an answer
    /// that never comes. Said once per proxy, as a warning, since nothing else shows it.
    fn warn_if_dropped(&self, s: &Session<'_>) {
        if !self.warned_dropped.load(Ordering::Relaxed)
            && s.client.has_unread()
            && !self.warned_dropped.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                "tcp: a client sent more after its first request; without \
                 --protocol-tcp-keep-alive only the first read of each connection is forwarded \
                 (the original's default) and the rest is dropped: use \
                 --protocol-tcp-keep-alive (with --stay-connected to keep connections open) for \
                 clients that send several requests"
            );
        }
    }
}

/// Puts an emptied chunk back as the buffer of its side, keeping its allocation.
fn reclaim(s: &mut Session<'_>, side: Side, mut chunk: bytes::BytesMut) {
    chunk.clear();
    let buf = s.buf(side);
    if buf.is_empty() {
        buf.unsplit(chunk);
    }
}
