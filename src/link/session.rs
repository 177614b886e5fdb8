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
use crate::behavior::{Exchange, Framing, PeerInfo, Wire};
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
    pub async fn fill(&mut self, side: Side, max: usize) -> io::Result<usize> {
        let peer = self.peer(side);
        let timeout = self.conn.timeout;
        let buf = match side {
            Side::Client => &mut *self.client_buf,
            Side::Backend => &mut *self.backend_buf,
        };
        if !self.spin.enabled(self.metrics) {
            return peer.read_buf_timeout(buf, max, timeout).await;
        }
        let n = match peer.spin_read(buf, max, self.spin).await? {
            Some(n) => n,
            None => peer.read_buf_timeout(buf, max, timeout).await?,
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

    /// Sends bytes that were not read from a peer (a fault's reply) in direction `dir`,
    /// through its link.
    pub async fn send(&mut self, dir: Direction, data: &[u8]) -> io::Result<bool> {
        let (dest, src) = (self.peer(dir.dest()), self.peer(dir.source()));
        let link = self.links.get_mut(dir);
        link.send(self.conn, dir, data, dest, src, self.rng, self.metrics)
            .await
    }
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
