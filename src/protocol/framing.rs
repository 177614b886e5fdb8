//! What the framed protocols (http, redis, memcache, smtp, mysql) share: the incremental
//! [`Framer`] interface that their pure parsers implement, the async helpers that drive a
//! framer over a [`Session`] — forward one message as it arrives ([`pump`]), hand a connection
//! over to raw forwarding both ways ([`relay`]), and run an exchange the backend started
//! ([`backend_started`]) — and the generic adapter: a protocol implements [`Framed`] (its
//! framers, its error reply, its exchange) and [`FramedProtocol`] makes it a [`Protocol`].
//!
//! When the exchange's hook rewrites messages ([`ExchangeHook::transforms`]), a message going
//! that way is read whole first ([`gather`]), given to the hook, and what it returns is
//! forwarded ([`super::forward_message`]); otherwise messages stream through as they arrive.
//!
//! Framing is "check, then parse, then advance": a framer looks at the bytes it was given,
//! says how many of them belong to the current message (they may be forwarded at once, so a
//! large body streams through without being buffered whole) and whether the message is
//! complete. "Not enough bytes yet" is not an error; only bytes that can never be valid are.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use rand::rngs::SmallRng;
use rand::SeedableRng;

use super::{
    after, before, between, forward_message, transform, CommonOptions, Mode, Protocol,
    ProtocolError, ProtocolKind, ProtocolOptions,
};
use crate::base::metrics::Metrics;
use crate::base::{ConnInfo, Direction, Side};
use crate::behavior::{ErrorReply, ExchangeHook, Framing, OptionSet, Options, Transforms};
use crate::io::peer::Peer;
use crate::link::{Link, Session};

/// How far a framer got in the bytes it was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Bytes at the front of the buffer that belong to the current message.
    pub consumed: usize,
    /// The current message is complete (it ends with the last consumed byte).
    pub done: bool,
}

impl Progress {
    pub const MORE: Progress = Progress {
        consumed: 0,
        done: false,
    };
}

/// Bytes that can never be a valid message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FrameError(pub String);

impl FrameError {
    pub fn new(msg: impl Into<String>) -> Self {
        FrameError(msg.into())
    }
}

/// An incremental parser of one message.
pub trait Framer {
    /// Looks at `buf` (the bytes not yet consumed) and consumes from its front as much of the
    /// current message as it can. When the result is not `done`, everything that could be
    /// consumed was: more bytes are needed to go on.
    fn advance(&mut self, buf: &[u8]) -> Result<Progress, FrameError>;
}

/// Runs a fresh framer over `buf`: the length of the first complete message, if there is one.
/// Bytes that can never be valid count as one message (the whole buffer), so that a behavior
/// answering a malformed request drops it rather than waiting for more.
pub fn complete_len<F: Framer>(mut framer: F, buf: &[u8]) -> Option<usize> {
    let mut at = 0;
    loop {
        match framer.advance(&buf[at..]) {
            Ok(p) => {
                at += p.consumed;
                if p.done {
                    return Some(at);
                }
                if p.consumed == 0 {
                    return None;
                }
            }
            Err(_) => return (!buf.is_empty()).then_some(buf.len()),
        }
    }
}

/// Longest line (or header block) a framer waits for before it calls the stream malformed.
pub const MAX_LINE: usize = 64 * 1024;

/// The position of the first `\n` in `buf`, if any (lines end with `\r\n`; a bare `\n` is
/// tolerated as the servers themselves do).
pub fn find_lf(buf: &[u8]) -> Option<usize> {
    buf.iter().position(|&b| b == b'\n')
}

/// The line at the front of `buf` without its end of line, and its length with it; `None` when
/// the line is not complete yet, an error when it grew past `max` without ending.
pub fn line(buf: &[u8], max: usize) -> Result<Option<(&[u8], usize)>, FrameError> {
    match find_lf(buf) {
        Some(i) => {
            let text = &buf[..i];
            let text = text.strip_suffix(b"\r").unwrap_or(text);
            Ok(Some((text, i + 1)))
        }
        None if buf.len() > max => Err(FrameError::new(format!("line longer than {max} bytes"))),
        None => Ok(None),
    }
}

/// A framing error as a protocol error, with the side it came from.
pub fn malformed(protocol: &'static str, from: Side, e: FrameError) -> ProtocolError {
    ProtocolError::Malformed {
        protocol,
        side: from.as_str(),
        message: e.0,
    }
}

/// Reads more from one side into its buffer: with `--timeout`, or without a time limit when
/// `wait` is set (a blocking command whose answer may take long). Returns 0 at EOF.
pub async fn read_more(
    s: &mut Session<'_>,
    from: Side,
    max: usize,
    wait: bool,
) -> io::Result<usize> {
    if wait {
        let peer = s.peer(from);
        peer.read_buf(s.buf(from), max).await
    } else {
        s.fill(from, max).await
    }
}

/// How [`pump`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pumped {
    /// The message went through whole.
    Done,
    /// The source closed first (`nothing`: before any byte of the message).
    Eof { nothing: bool },
    /// A toxic closed the connection while forwarding.
    Closed,
}

/// The generic adapter of the framed protocols: the shape of an exchange the client starts —
/// the `before` hook, the request forwarded as its framer delimits it, the `between` hook, then
/// the answer (one or more messages) and the `after` hook. A message that does not complete
/// ends the exchange (after the `after` hook) and the connection.
pub struct FramedExchange<'a> {
    pub framing: &'a dyn Framing,
    /// For logs.
    pub name: &'static str,
    /// The size of one read.
    pub max: usize,
    pub hook: Option<&'a dyn ExchangeHook>,
    /// The directions whose messages the hook rewrites (read whole, then transformed).
    pub transforms: Transforms,
}

impl FramedExchange<'_> {
    /// `before`, the request, `between`. `Some(keep)` when the exchange ended there.
    pub async fn request<F: Framer>(
        &self,
        s: &mut Session<'_>,
        framer: &mut F,
    ) -> Result<Option<bool>, ProtocolError> {
        if let Some(keep) = self.before(s).await? {
            return Ok(Some(keep));
        }
        if !self.message(s, Side::Client, framer, false).await? {
            return Ok(Some(false));
        }
        if !self.between(s).await? {
            self.after(s).await?;
            return Ok(Some(false));
        }
        Ok(None)
    }

    /// The `before` hook; `Some(keep)` when the exchange must not go on.
    pub async fn before(&self, s: &mut Session<'_>) -> Result<Option<bool>, ProtocolError> {
        before(s, self.framing, Direction::Upstream, self.hook).await
    }

    /// The `between` hook; false when the exchange must stop (and the connection close).
    pub async fn between(&self, s: &mut Session<'_>) -> Result<bool, ProtocolError> {
        between(s, self.framing, Direction::Upstream, self.hook).await
    }

    /// Forwards one message from `from` (see [`pump`]); false, after the `after` hook, when it
    /// did not complete.
    pub async fn message<F: Framer>(
        &self,
        s: &mut Session<'_>,
        from: Side,
        framer: &mut F,
        wait: bool,
    ) -> Result<bool, ProtocolError> {
        let done = if self.transforms.has(from.outgoing()) {
            self.whole(s, from, framer, 0, wait).await?
        } else {
            pump(s, self.name, from, framer, self.max, wait).await? == Pumped::Done
        };
        if done {
            return Ok(true);
        }
        self.after(s).await?;
        Ok(false)
    }

    /// Reads one message from `from` whole (`framer` starts at byte `start` of the buffer:
    /// a head already parsed), then forwards it through the hook's transform. False when it
    /// did not complete (what came of it is forwarded as it is) or a toxic closed the
    /// connection.
    pub async fn whole<F: Framer>(
        &self,
        s: &mut Session<'_>,
        from: Side,
        framer: &mut F,
        start: usize,
        wait: bool,
    ) -> Result<bool, ProtocolError> {
        let g = gather(s, self.name, from, framer, start, self.max, wait).await?;
        let msg = s.buf(from).split_to(g.len);
        if !g.complete {
            if !msg.is_empty() {
                s.forward(from.outgoing(), &msg).await?;
            }
            return Ok(false);
        }
        self.forward(s, from.outgoing(), &msg).await
    }

    /// Forwards one whole message going in `dir`, through the hook's transform when it
    /// rewrites that direction. False when a toxic closed the connection.
    pub async fn forward(
        &self,
        s: &mut Session<'_>,
        dir: Direction,
        msg: &[u8],
    ) -> Result<bool, ProtocolError> {
        let out = self.transform(s, dir, msg).await?;
        Ok(s.forward_or(dir, msg, out.as_deref()).await?)
    }

    /// What the hook makes of one whole message going in `dir` (`None`: unchanged, or the
    /// hook does not rewrite that direction).
    pub async fn transform(
        &self,
        s: &mut Session<'_>,
        dir: Direction,
        msg: &[u8],
    ) -> Result<Option<Bytes>, ProtocolError> {
        let hook = self.hook.filter(|_| self.transforms.has(dir));
        transform(s, self.framing, Direction::Upstream, hook, dir, msg).await
    }

    /// The `after` hook; false when the connection must close.
    pub async fn after(&self, s: &mut Session<'_>) -> Result<bool, ProtocolError> {
        after(s, self.framing, Direction::Upstream, self.hook).await
    }

    /// Hands the connection over to raw forwarding both ways (after the `after` hook).
    pub async fn relay(&self, s: &mut Session<'_>) -> Result<bool, ProtocolError> {
        relay(s, self.max).await?;
        self.after(s).await?;
        Ok(false)
    }
}

/// Forwards one message from `from` to the other side as it arrives, as `framer` delimits it.
/// Bytes after the message stay in the source's buffer.
pub async fn pump<F: Framer>(
    s: &mut Session<'_>,
    protocol: &'static str,
    from: Side,
    framer: &mut F,
    max: usize,
    wait: bool,
) -> Result<Pumped, ProtocolError> {
    let mut moved = false;
    loop {
        let buf = s.buf(from);
        let p = framer
            .advance(buf)
            .map_err(|e| malformed(protocol, from, e))?;
        if p.consumed > 0 {
            let chunk = buf.split_to(p.consumed);
            moved = true;
            if !s.forward(from.outgoing(), &chunk).await? {
                return Ok(Pumped::Closed);
            }
        }
        if p.done {
            return Ok(Pumped::Done);
        }
        if p.consumed == 0 && read_more(s, from, max, wait).await? == 0 {
            return Ok(Pumped::Eof {
                nothing: !moved && s.buf(from).is_empty(),
            });
        }
    }
}

/// Reads from one side until `framer` sees a complete message in its buffer (nothing is
/// consumed or forwarded); returns its length, or 0 at EOF. For small messages that must be
/// seen whole before deciding what to do with them (headers, status lines).
pub async fn peek_message<F: Framer>(
    s: &mut Session<'_>,
    protocol: &'static str,
    from: Side,
    mut framer: F,
    max: usize,
) -> Result<usize, ProtocolError> {
    let g = gather(s, protocol, from, &mut framer, 0, max, false).await?;
    Ok(if g.complete { g.len } else { 0 })
}

/// How far [`gather`] got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gathered {
    /// Bytes at the front of the buffer that belong to the message.
    pub len: usize,
    /// False when the source closed before the message was complete.
    pub complete: bool,
}

/// Reads from one side until `framer`, started at byte `start` of its buffer, sees the end of
/// the message; nothing is consumed or forwarded. For a message that must be seen whole
/// before it goes on (a rewriting hook's, a greeting).
pub async fn gather<F: Framer>(
    s: &mut Session<'_>,
    protocol: &'static str,
    from: Side,
    framer: &mut F,
    start: usize,
    max: usize,
    wait: bool,
) -> Result<Gathered, ProtocolError> {
    let mut at = start;
    loop {
        let buf = s.buf(from);
        let p = framer
            .advance(&buf[at.min(buf.len())..])
            .map_err(|e| malformed(protocol, from, e))?;
        at += p.consumed;
        if p.done {
            return Ok(Gathered {
                len: at,
                complete: true,
            });
        }
        if p.consumed == 0 && read_more(s, from, max, wait).await? == 0 {
            return Ok(Gathered {
                len: at,
                complete: false,
            });
        }
    }
}

/// An exchange started by the backend (a greeting, a push, a message nobody asked for): the
/// whole message is read first, then the `before` hook runs; when a behavior answered in its
/// place (or closed), the message is dropped, else it is forwarded to the client.
/// Returns whether the connection may go on.
pub async fn backend_started<F: Framer>(
    s: &mut Session<'_>,
    framing: &dyn Framing,
    name: &'static str,
    framer: F,
    max: usize,
    hook: Option<&dyn ExchangeHook>,
) -> Result<bool, ProtocolError> {
    let n = peek_message(s, name, Side::Backend, framer, max).await?;
    if n == 0 {
        return Ok(false);
    }
    if let Some(keep) = before(s, framing, Direction::Downstream, hook).await? {
        let drop = n.min(s.backend_buf.len());
        let _ = s.backend_buf.split_to(drop);
        return Ok(keep);
    }
    let n = n.min(s.backend_buf.len());
    let msg = s.backend_buf.split_to(n);
    let rewrites = hook.filter(|h| h.transforms().down);
    if !forward_message(
        s,
        framing,
        Direction::Downstream,
        rewrites,
        Direction::Downstream,
        &msg,
    )
    .await?
    {
        return Ok(false);
    }
    super::after(s, framing, Direction::Downstream, hook).await
}

/// What a framed protocol has of its own; [`FramedProtocol`] does the rest (its options, its
/// [`Framing`] for the faults, the exchanges the backend starts, and the hooks around the
/// request of those the client starts: see [`FramedExchange`]).
pub trait Framed: Send + Sync + 'static {
    /// Its name in the registry, in logs and in messages.
    const NAME: &'static str;
    /// One line of help.
    const HELP: &'static str;
    /// Its own options (after the common ones).
    type Options: OptionSet;
    /// Frames a message the backend sends that no request asked for (a greeting, a push, an
    /// error before it closes): an exchange of its own, see [`backend_started`].
    type Unasked: Framer + Default + Send;

    fn new(common: &CommonOptions, own: Self::Options) -> Self;
    /// How connections run (see [`Protocol::mode`]). By default, as the original ran smtp,
    /// mysql and memcache: a conversation goes on after each exchange, whatever
    /// `--stay-connected` (until the client leaves, or stays quiet for `--timeout` without
    /// `--stay-connected`).
    fn mode(&self, stay_connected: bool) -> Mode {
        let _ = stay_connected;
        Mode::Exchanges {
            stay: true,
            drain: false,
        }
    }
    /// See [`Framing::frame_len`].
    fn frame_len(&self, buf: &[u8], dir: Direction) -> Option<usize>;
    /// See [`Framing::error_reply`].
    fn error_reply(&self, rng: &mut SmallRng, dir: Direction) -> Option<ErrorReply>;
    /// See [`Framing::errors_in_kind`].
    fn errors_in_kind(&self) -> bool {
        false
    }
    /// See [`Framing::hooks_each_direction`].
    fn hooks_each_direction(&self) -> bool {
        false
    }
    /// An exchange the client starts: its request and its answer, the hooks around them run
    /// through `x`. Returns whether the connection may go on.
    fn exchange(
        &self,
        x: &FramedExchange<'_>,
        s: &mut Session<'_>,
    ) -> impl Future<Output = Result<bool, ProtocolError>> + Send;
}

/// The generic adapter: a [`Framed`] protocol as a [`Protocol`].
pub struct FramedProtocol<P> {
    protocol: P,
    common: CommonOptions,
    /// Every option by name (for [`Framing::options`]).
    options: Options,
    /// The size of one read.
    max: usize,
}

/// The registry entry of a framed protocol.
pub fn kind<P: Framed>() -> ProtocolKind {
    ProtocolKind::typed(P::NAME, P::HELP, |o: ProtocolOptions<P::Options>| {
        Ok(Arc::new(FramedProtocol {
            protocol: P::new(&o.common, o.own),
            max: o.common.read_size(),
            common: o.common,
            options: o.by_name,
        }) as Arc<dyn Protocol>)
    })
}

impl<P: Framed> Framing for FramedProtocol<P> {
    fn name(&self) -> &str {
        P::NAME
    }
    fn options(&self) -> &Options {
        &self.options
    }
    fn frame_len(&self, buf: &[u8], dir: Direction) -> Option<usize> {
        self.protocol.frame_len(buf, dir)
    }
    fn error_reply(&self, rng: &mut SmallRng, dir: Direction) -> Option<ErrorReply> {
        self.protocol.error_reply(rng, dir)
    }
    fn errors_in_kind(&self) -> bool {
        self.protocol.errors_in_kind()
    }
    fn hooks_each_direction(&self) -> bool {
        self.protocol.hooks_each_direction()
    }
}

#[async_trait]
impl<P: Framed> Protocol for FramedProtocol<P> {
    fn common(&self) -> &CommonOptions {
        &self.common
    }

    fn mode(&self, stay_connected: bool) -> Mode {
        self.protocol.mode(stay_connected)
    }

    async fn handle(
        &self,
        s: &mut Session<'_>,
        dir: Direction,
        hook: Option<&dyn ExchangeHook>,
    ) -> Result<bool, ProtocolError> {
        if !dir.is_upstream() {
            let framer = P::Unasked::default();
            return backend_started(s, self, P::NAME, framer, self.max, hook).await;
        }
        let x = FramedExchange {
            framing: self,
            name: P::NAME,
            max: self.max,
            hook,
            transforms: hook.map_or(Transforms::NONE, |h| h.transforms()),
        };
        self.protocol.exchange(&x, s).await
    }
}

/// A framer that takes whatever is there as one message (unsolicited bytes).
#[derive(Default)]
pub struct Chunk;

impl Framer for Chunk {
    fn advance(&mut self, buf: &[u8]) -> Result<Progress, FrameError> {
        Ok(if buf.is_empty() {
            Progress::MORE
        } else {
            Progress {
                consumed: buf.len(),
                done: true,
            }
        })
    }
}

/// Hands the connection over to raw forwarding in both directions (WebSocket after a `101`,
/// redis pub/sub and MONITOR, SMTP after STARTTLS) until both sides are done. What is already
/// buffered on either side goes first; a half-close is passed on; no `--timeout` applies (such
/// connections may rightly stay quiet for long). Every chunk goes through its direction's link
/// ([`Link::send`]): toxics and counters apply as anywhere else.
pub async fn relay(s: &mut Session<'_>, max: usize) -> Result<(), ProtocolError> {
    let max = max.max(1);
    let mut down_rng = SmallRng::seed_from_u64(rand::RngCore::next_u64(s.rng));
    let conn = s.conn;
    let metrics = s.metrics;
    let (client, backend) = (s.client, s.backend);
    let up = one_way(
        conn,
        metrics,
        client,
        backend,
        &mut *s.client_buf,
        &mut s.links.up,
        Direction::Upstream,
        &mut *s.rng,
        max,
    );
    let down = one_way(
        conn,
        metrics,
        backend,
        client,
        &mut *s.backend_buf,
        &mut s.links.down,
        Direction::Downstream,
        &mut down_rng,
        max,
    );
    let (a, b) = tokio::join!(up, down);
    a?;
    b?;
    Ok(())
}

/// One direction of [`relay`]. On an error both sides are closed, so that the other direction
/// ends too.
#[allow(clippy::too_many_arguments)]
async fn one_way(
    conn: &ConnInfo,
    metrics: &Metrics,
    src: &Peer,
    dst: &Peer,
    buf: &mut BytesMut,
    link: &mut Link,
    dir: Direction,
    rng: &mut SmallRng,
    max: usize,
) -> io::Result<()> {
    let r: io::Result<()> = async {
        loop {
            if buf.is_empty() && src.read_buf(buf, max).await? == 0 {
                if !link.is_empty() {
                    // The toxics see the end of the stream (slow_close), then it is passed on.
                    let _ = link
                        .send_bytes(
                            conn,
                            dir,
                            Bytes::new(),
                            Instant::now(),
                            true,
                            dst,
                            src,
                            rng,
                            metrics,
                        )
                        .await;
                }
                let _ = dst.shutdown_write();
                return Ok(());
            }
            let chunk = buf.split();
            metrics.add_bytes(dir, chunk.len());
            if !link.send(conn, dir, &chunk, dst, src, rng, metrics).await? {
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "closed by a toxic",
                ));
            }
        }
    }
    .await;
    if r.is_err() {
        src.close();
        dst.close();
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        assert_eq!(line(b"abc", 10).unwrap(), None);
        assert_eq!(line(b"abc\r\nx", 10).unwrap(), Some((&b"abc"[..], 5)));
        assert_eq!(line(b"abc\nx", 10).unwrap(), Some((&b"abc"[..], 4)));
        assert!(line(b"abcdefghijkl", 10).is_err());
    }

    #[test]
    fn chunk_takes_everything() {
        assert_eq!(complete_len(Chunk, b""), None);
        assert_eq!(complete_len(Chunk, b"abc"), Some(3));
    }
}
