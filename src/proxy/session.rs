//! The per-connection context that protocols drive: both peers, their read buffers, and the
//! toxic chains of both directions.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use rand::rngs::SmallRng;
use rand::Rng;

use super::busy_poll::BusyPoll;
use super::timer::Timer;
use super::{Faults, Toxic};
use crate::behavior::{Behavior, ChunkCx, ConnInfo, Direction, Exchange, LinkState, Piece};
use crate::metrics::Metrics;
use crate::protocol::Protocol;
use crate::proxy::peer::Peer;

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
    /// The hooks' view of the exchange.
    pub fn exchange<'s>(
        &'s mut self,
        protocol: &'s dyn Protocol,
        to_backend: bool,
    ) -> Exchange<'s> {
        Exchange {
            protocol,
            conn: self.conn,
            to_backend,
            client: self.client,
            backend: self.backend,
            pending: if to_backend {
                &mut *self.client_buf
            } else {
                &mut *self.backend_buf
            },
            rng: &mut *self.rng,
            inject: &mut self.inject,
        }
    }

    /// Reads more from the client (`from_client`) or the backend into its buffer, waiting at
    /// most `--timeout`. Returns 0 at EOF.
    pub async fn fill(&mut self, from_client: bool, max: usize) -> io::Result<usize> {
        let (peer, buf) = if from_client {
            (self.client, &mut *self.client_buf)
        } else {
            (self.backend, &mut *self.backend_buf)
        };
        if !self.spin.enabled(self.metrics) {
            return peer.read_buf_timeout(buf, max, self.conn.timeout).await;
        }
        let n = match peer.spin_read(buf, max, self.spin).await? {
            Some(n) => n,
            None => peer.read_buf_timeout(buf, max, self.conn.timeout).await?,
        };
        self.spin.chunk_moved(Instant::now());
        Ok(n)
    }

    /// Forwards `data` to the backend (`to_backend`) or the client, through the toxics of that
    /// direction. Returns false when a toxic closed the connection.
    pub async fn forward(&mut self, to_backend: bool, data: &[u8]) -> io::Result<bool> {
        let (dest, link) = if to_backend {
            (self.backend, &mut self.links.up)
        } else {
            (self.client, &mut self.links.down)
        };
        let dir = Direction::from_to_backend(to_backend);
        self.metrics.add_bytes(dir, data.len());
        let injected = (self.inject && !to_backend && !data.is_empty()).then(|| {
            self.inject = false;
            inject_random(data, self.rng)
        });
        if link.is_empty() {
            let out = injected.as_deref().unwrap_or(data);
            dest.write_all(out).await?;
            self.metrics.add_sent(dir, out.len());
            return Ok(true);
        }
        let data = injected.unwrap_or_else(|| Bytes::copy_from_slice(data));
        let src = if to_backend {
            self.client
        } else {
            self.backend
        };
        let before = link.written;
        let r = link
            .run(
                self.conn,
                dir,
                data,
                Instant::now(),
                false,
                dest,
                src,
                self.rng,
            )
            .await;
        self.metrics.add_sent(dir, (link.written - before) as usize);
        r
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

/// The toxic chains of both directions of one connection.
#[derive(Default)]
pub struct Links {
    pub up: Link,
    pub down: Link,
}

impl Links {
    /// Brings both chains up to date with the proxy's faults (after an API change). Returns
    /// the toxics that started to apply (for the event log).
    pub fn refresh(&mut self, faults: &Faults, conn: u64, rng: &mut SmallRng) -> Vec<Arc<Toxic>> {
        let mut started = self.up.refresh(faults, Direction::Upstream, conn, rng);
        started.extend(self.down.refresh(faults, Direction::Downstream, conn, rng));
        started
    }
}

/// The toxics of one direction of one connection, with their per-link state.
#[derive(Default)]
pub struct Link {
    generation: Option<u64>,
    /// `(toxic id, instance)` of the toxics whose toxicity roll passed, in order.
    active: Vec<(u64, Arc<dyn Behavior>)>,
    /// A toxic picked from the `--behavior` mix for the current exchange only (after `active`).
    pub extra: Option<(u64, Arc<dyn Behavior>)>,
    state: LinkState,
    /// Bytes written by `run` so far (the sent-bytes metric).
    pub written: u64,
    /// The writer of a pipelined link (streaming path): chunks whose chain is only latency
    /// toxics are queued with their due time instead of being written in `run`.
    pub pipe: Option<PipeTx>,
    /// Every active toxic is a latency (or noop): chunks may be pipelined.
    latency_only: bool,
    /// Sleeps until a piece is due (to the microsecond; made on first use).
    timer: Timer,
    /// The pieces of the chunk being run (kept between chunks for its allocation).
    pieces: Vec<Piece>,
}

/// The sending side of a pipelined link: the queue and how many chunks in it are not yet
/// written.
pub struct PipeTx {
    tx: tokio::sync::mpsc::Sender<Piped>,
    queued: Arc<AtomicUsize>,
}

/// The writer's side of a pipelined link.
pub struct PipeRx {
    rx: tokio::sync::mpsc::Receiver<Piped>,
    queued: Arc<AtomicUsize>,
}

/// A queue between a pipelined link and its writer, `depth` chunks deep.
pub fn pipe_channel(depth: usize) -> (PipeTx, PipeRx) {
    let (tx, rx) = tokio::sync::mpsc::channel(depth);
    let queued = Arc::new(AtomicUsize::new(0));
    (
        PipeTx {
            tx,
            queued: queued.clone(),
        },
        PipeRx { rx, queued },
    )
}

impl PipeTx {
    /// Nothing queued is left to write.
    fn drained(&self) -> bool {
        self.queued.load(Ordering::Acquire) == 0
    }
}

/// What a pipelined link hands its writer.
pub enum Piped {
    /// Write these bytes at that time.
    Data(Instant, Bytes),
    /// Answer once everything queued before was written.
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// Writes what a pipelined link queued, each chunk at its due time, so that reading goes on
/// while earlier chunks wait their latency (Toxiproxy's latency toxic). On a write error both
/// sides are closed.
pub async fn pipe_writer(
    mut pipe: PipeRx,
    dest: &Peer,
    src: &Peer,
    dir: Direction,
    metrics: &Metrics,
) {
    let mut timer = Timer::default();
    while let Some(item) = pipe.rx.recv().await {
        match item {
            Piped::Data(due, data) => {
                timer.sleep_until(due).await;
                if dest.write_all(&data).await.is_err() {
                    dest.close();
                    src.close();
                    return;
                }
                pipe.queued.fetch_sub(1, Ordering::Release);
                metrics.add_sent(dir, data.len());
            }
            Piped::Flush(done) => {
                let _ = done.send(());
            }
        }
    }
}

impl Link {
    /// No toxic to run and nothing queued: chunks may be written as they are.
    pub fn is_empty(&self) -> bool {
        self.active.is_empty() && self.extra.is_none() && self.drained()
    }

    /// Everything queued for the writer was written.
    pub fn drained(&self) -> bool {
        self.pipe.as_ref().is_none_or(PipeTx::drained)
    }

    /// Waits until everything queued for the writer was written.
    pub async fn flush(&mut self) -> io::Result<()> {
        let Some(pipe) = &self.pipe else {
            return Ok(());
        };
        if pipe.drained() {
            return Ok(());
        }
        let (done, wait) = tokio::sync::oneshot::channel();
        if pipe.tx.send(Piped::Flush(done)).await.is_err() || wait.await.is_err() {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        Ok(())
    }

    /// Re-rolls toxicity when the chain changed; per connection and direction, as Toxiproxy.
    /// A toxic with a `count` is rolled only on the connections it admits.
    pub fn refresh(
        &mut self,
        faults: &Faults,
        dir: Direction,
        conn: u64,
        rng: &mut SmallRng,
    ) -> Vec<Arc<Toxic>> {
        let mut started = Vec::new();
        if self.generation == Some(faults.generation) {
            return started;
        }
        self.generation = Some(faults.generation);
        let before: Vec<u64> = self.active.iter().map(|(id, _)| *id).collect();
        self.active.clear();
        self.latency_only = true;
        for t in faults.toxics.iter().filter(|t| t.stream == dir) {
            if !t.behavior.has_chunk_hook() {
                continue;
            }
            // A toxic already rolled in on this link keeps its roll until it changes.
            let keep = before.contains(&t.id);
            if keep || (t.admits(conn) && (t.toxicity >= 1.0 || rng.random::<f32>() < t.toxicity)) {
                self.active.push((t.id, t.behavior.clone()));
                self.latency_only &= t.kind == "latency" || t.kind == "noop";
                if !keep {
                    started.push(t.clone());
                }
            }
        }
        started
    }

    /// Runs one chunk (or the EOF event) through the chain and writes what comes out to `dest`
    /// (`src` is the side it came from: a reset resets both). Returns false when a toxic closed
    /// the connection.
    #[allow(clippy::too_many_arguments)]
    pub async fn run(
        &mut self,
        conn: &ConnInfo,
        direction: Direction,
        data: Bytes,
        arrived: Instant,
        eof: bool,
        dest: &Peer,
        src: &Peer,
        rng: &mut SmallRng,
    ) -> io::Result<bool> {
        let pipelined = self.pipe.is_some() && self.latency_only && self.extra.is_none() && !eof;
        if !pipelined {
            // Whatever was queued goes out first: order is kept when the chain changes.
            self.flush().await?;
        }
        let mut pieces = std::mem::take(&mut self.pieces);
        pieces.clear();
        if !eof {
            pieces.push(Piece { at: arrived, data });
        }
        let mut close = false;
        let mut reset = false;
        let mut arrived_at = arrived;
        for (id, toxic) in self.active.iter().chain(self.extra.iter()) {
            self.state.current = *id;
            let mut cx = ChunkCx {
                conn,
                direction,
                arrived: arrived_at,
                pieces: &mut pieces,
                eof,
                link: &mut self.state,
                rng,
                close: false,
                reset: false,
            };
            if let Err(e) = toxic.on_chunk(&mut cx).await {
                tracing::warn!(conn = conn.id, error = %e, "toxic failed; closing");
                cx.close = true;
            }
            close |= cx.close;
            reset |= cx.reset;
            arrived_at = cx.arrived;
            if close || reset {
                break;
            }
        }
        if pipelined {
            // Latency only: each piece is due at its time; reading goes on meanwhile. A piece
            // already due with nothing queued before it is written here, without a trip
            // through the writer.
            let pipe = self.pipe.as_ref().expect("pipelined");
            for p in pieces.drain(..) {
                if p.data.is_empty() {
                    continue;
                }
                if pipe.drained() && p.at <= Instant::now() {
                    dest.write_all(&p.data).await?;
                    self.written += p.data.len() as u64;
                    continue;
                }
                pipe.queued.fetch_add(1, Ordering::AcqRel);
                if pipe.tx.send(Piped::Data(p.at, p.data)).await.is_err() {
                    return Err(io::ErrorKind::BrokenPipe.into());
                }
            }
            self.pieces = pieces;
            return Ok(true);
        }
        for p in pieces.drain(..) {
            self.timer.sleep_until(p.at).await;
            if !p.data.is_empty() {
                dest.write_all(&p.data).await?;
                self.written += p.data.len() as u64;
            }
        }
        self.pieces = pieces;
        if reset {
            // Toxiproxy sets SO_LINGER 0 on both sockets: both sides see a reset.
            dest.reset();
            src.reset();
        } else if close {
            dest.close();
        }
        Ok(!(close || reset))
    }
}
