//! What a protocol drives during an exchange: both peers, their read buffers and the toxic
//! chains of both directions. Faults see it only as a [`Wire`]: every byte they send goes
//! through [`Link::send`], as forwarded bytes do.

use std::io;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use rand::rngs::SmallRng;
use rand::Rng;

use super::chain::Links;
use crate::base::metrics::Metrics;
use crate::base::{ConnInfo, Direction, Side};
use crate::behavior::{Exchange, Framing, Later, PeerInfo, Wire};
use crate::io::busy_poll::BusyPoll;
use crate::io::peer::Peer;

/// One exchange's view of a connection, handed to a protocol.
pub struct Session<'a> {
    pub conn: &'a ConnInfo,
    pub client: &'a Peer,
    pub backend: &'a Peer,
    /// Read from the client, not yet consumed.
    pub client_buf: &'a mut BytesMut,
    /// Read from the backend, not yet consumed.
    pub backend_buf: &'a mut BytesMut,
    pub rng: &'a mut SmallRng,
    /// Set by the `error` behavior's `inject`: the answer gets random bytes in its middle.
    pub inject: bool,
    /// Toxic chains, one per direction.
    pub links: &'a mut Links,
    pub metrics: &'a Metrics,
    /// True on the streaming path (each direction runs on its own; one chunk per exchange).
    pub streaming: bool,
    /// Busy polling of the reads ([`Session::fill`]).
    pub spin: &'a mut BusyPoll,
    /// What the protocol remembers of this connection from one exchange to the next (mysql:
    /// whether the client and server agreed on `CLIENT_DEPRECATE_EOF`); 0 at first.
    pub memory: &'a mut u64,
    /// The hooks of the direction's last exchange, still running (streaming only; see
    /// [`ExchangeHook::on_between_then_later`](crate::behavior::ExchangeHook)): the
    /// connection settles them before the direction's next step.
    pub later: &'a mut Option<Box<dyn Later>>,
}

impl<'a> Session<'a> {
    /// The hooks' view of the exchange going in direction `dir`.
    pub fn exchange<'s>(&'s mut self, framing: &'s dyn Framing, dir: Direction) -> Exchange<'s> {
        let conn = self.conn;
        Exchange {
            framing,
            conn,
            direction: dir,
            wire: self,
        }
    }

    /// The peer on `side`.
    pub fn peer(&self, side: Side) -> &'a Peer {
        match side {
            Side::Client => self.client,
            Side::Backend => self.backend,
        }
    }

    /// The read buffer of `side`.
    pub fn buf(&mut self, side: Side) -> &mut BytesMut {
        match side {
            Side::Client => self.client_buf,
            Side::Backend => self.backend_buf,
        }
    }

    /// Reads more from `side` into its buffer, waiting at most `--timeout`. Returns 0 at EOF.
    ///
    /// While it waits for the backend, it watches the client: a client that leaves while its
    /// answer is awaited must not hold the connection until `--timeout` (a year for a proxy
    /// made through the Toxiproxy API), as when its request was lost (`packet_loss`,
    /// `limit_data`) and the backend stays silent. Its EOF reaches the backend as a
    /// half-close (which a server answers, then closes on); its reset ends the connection.
    pub async fn fill(&mut self, side: Side, max: usize) -> io::Result<usize> {
        let peer = self.peer(side);
        let timeout = self.conn.timeout;
        let buf = match side {
            Side::Client => &mut *self.client_buf,
            Side::Backend => &mut *self.backend_buf,
        };
        let watch = (side == Side::Backend && !self.streaming).then_some(self.client);
        if !self.spin.enabled(self.metrics) {
            return read_watching(peer, buf, max, timeout, watch).await;
        }
        let n = match peer.spin_read(buf, max, self.spin).await? {
            Some(n) => n,
            None => read_watching(peer, buf, max, timeout, watch).await?,
        };
        self.spin.chunk_moved(Instant::now());
        Ok(n)
    }

    /// Forwards `data`, read from the source of `dir`, to its destination through the link of
    /// that direction (counted as received, then as sent). Returns false when a toxic closed
    /// the connection.
    pub async fn forward(&mut self, dir: Direction, data: &[u8]) -> io::Result<bool> {
        self.metrics.add_bytes(dir, data.len());
        let injected =
            (self.inject && dir == Direction::Downstream && !data.is_empty()).then(|| {
                self.inject = false;
                inject_random(data, self.rng)
            });
        match injected {
            Some(bytes) => self.send(dir, &bytes).await,
            None => self.send(dir, data).await,
        }
    }

    /// [`Session::forward`] of a chunk the caller owns. A large chunk goes through toxics as it
    /// is, with no copy (its buffer stays with the link until written); a small one is copied,
    /// so that a queued chunk never holds a read buffer much larger than itself (the latency
    /// queue's budget counts bytes). With no toxic it is written from where it is. A chunk not
    /// kept is given back, for the next read to reuse.
    pub async fn forward_chunk(
        &mut self,
        dir: Direction,
        chunk: BytesMut,
    ) -> io::Result<(bool, Option<BytesMut>)> {
        let injects = self.inject && dir == Direction::Downstream;
        if injects || chunk.len() < NO_COPY || self.links.get_mut(dir).is_empty() {
            let open = self.forward(dir, &chunk).await?;
            return Ok((open, Some(chunk)));
        }
        self.metrics.add_bytes(dir, chunk.len());
        let (dest, src) = (self.peer(dir.dest()), self.peer(dir.source()));
        let open = self
            .links
            .get_mut(dir)
            .send_bytes(
                self.conn,
                dir,
                chunk.freeze(),
                Instant::now(),
                false,
                dest,
                src,
                self.rng,
                self.metrics,
            )
            .await?;
        Ok((open, None))
    }

    /// Forwards `msg`, read from the source of `dir`, or what a hook made of it: `rewritten`
    /// goes out in its place (nothing when it is empty), through the same link; `msg` is
    /// counted as received either way.
    pub async fn forward_or(
        &mut self,
        dir: Direction,
        msg: &[u8],
        rewritten: Option<&[u8]>,
    ) -> io::Result<bool> {
        let Some(data) = rewritten else {
            return self.forward(dir, msg).await;
        };
        self.metrics.add_bytes(dir, msg.len());
        if data.is_empty() {
            return Ok(true);
        }
        self.send(dir, data).await
    }

    /// Sends bytes that were not read from a peer (a fault's reply) in direction `dir`,
    /// through its link.
    pub async fn send(&mut self, dir: Direction, data: &[u8]) -> io::Result<bool> {
        let (dest, src) = (self.peer(dir.dest()), self.peer(dir.source()));
        let link = self.links.get_mut(dir);
        link.send(self.conn, dir, data, dest, src, self.rng, self.metrics)
            .await
    }
}

/// The smallest chunk [`Session::forward_chunk`] passes on without a copy: a quarter of a
/// streaming read (128 KiB), so that a kept chunk holds at most four times its size.
const NO_COPY: usize = 32 << 10;

/// `read_buf_timeout` on `peer`; with `watch`, the other peer, whose leaving ends the wait:
/// its EOF (with nothing unread before it) is passed on to `peer` as a half-close once, and
/// the read goes on; its error ends the read. A watched peer that sent more (a pipelined
/// request) is left alone: that is for the next exchange to read.
async fn read_watching(
    peer: &Peer,
    buf: &mut BytesMut,
    max: usize,
    timeout: Duration,
    watch: Option<&Peer>,
) -> io::Result<usize> {
    let Some(other) = watch.filter(|o| !o.saw_eof() && !o.is_closed()) else {
        return peer.read_buf_timeout(buf, max, timeout).await;
    };
    let read = peer.read_buf_timeout(buf, max, timeout);
    tokio::pin!(read);
    let mut probe = [0u8; 1];
    tokio::select! {
        biased;
        r = &mut read => return r,
        left = other.stream.peek(&mut probe) => match left {
            Ok(0) => {
                other.mark_eof();
                let _ = peer.shutdown_write();
            }
            Ok(_) => {}
            Err(e) => return Err(e),
        },
    }
    read.await
}

#[async_trait]
impl Wire for Session<'_> {
    fn buffer(&mut self, side: Side) -> &mut BytesMut {
        self.buf(side)
    }

    async fn read_more(
        &mut self,
        side: Side,
        max: usize,
        timeout: Option<Duration>,
    ) -> io::Result<usize> {
        let peer = self.peer(side);
        let buf = self.buf(side);
        match timeout {
            Some(t) => peer.read_buf_timeout(buf, max, t).await,
            None => peer.read_buf(buf, max).await,
        }
    }

    async fn send(&mut self, to: Side, data: &[u8]) -> io::Result<bool> {
        Session::send(self, to.incoming(), data).await
    }

    fn close(&mut self, side: Side) {
        self.peer(side).close();
    }

    fn reset(&mut self, side: Side) {
        self.peer(side).reset();
    }

    fn shutdown(&mut self, side: Side, how: i32) -> io::Result<()> {
        self.peer(side).shutdown_how(how)
    }

    fn peer(&self, side: Side) -> PeerInfo {
        Session::peer(self, side).info()
    }

    fn rng(&mut self) -> &mut SmallRng {
        self.rng
    }

    fn inject_next_answer(&mut self) {
        self.inject = true;
    }
}

/// `data` with 100 random bytes in its middle (the `error` behavior's `inject`).
pub fn inject_random(data: &[u8], rng: &mut SmallRng) -> Bytes {
    let mid = data.len() / 2;
    let mut out = Vec::with_capacity(data.len() + 100);
    out.extend_from_slice(&data[..mid]);
    out.extend((0..100).map(|_| rng.random::<u8>()));
    out.extend_from_slice(&data[mid..]);
    out.into()
}
