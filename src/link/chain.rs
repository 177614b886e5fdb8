//! The toxic chains of both directions of one connection, and the one place where forwarded,
//! injected or replaced bytes are written to a socket ([`Link::send`]): the active toxics run
//! there and the sent-bytes counters are kept there.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::Rng;

use super::toxic::{Faults, Toxic};
use crate::base::metrics::Metrics;
use crate::base::timer::Timer;
use crate::base::{ConnInfo, Direction};
use crate::behavior::{ChunkCx, ChunkToxic, LinkState, Piece};
use crate::io::peer::Peer;

/// The toxic chains of both directions of one connection.
#[derive(Default)]
pub struct Links {
    pub up: Link,
    pub down: Link,
}

impl Links {
    /// The chain of direction `dir`.
    pub fn get_mut(&mut self, dir: Direction) -> &mut Link {
        match dir {
            Direction::Upstream => &mut self.up,
            Direction::Downstream => &mut self.down,
        }
    }

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
    active: Vec<(u64, Arc<dyn ChunkToxic>)>,
    /// A toxic picked from the `--behavior` mix for the current exchange only (after `active`).
    pub extra: Option<(u64, Arc<dyn ChunkToxic>)>,
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

/// Most bytes a pipelined link holds for its writer: what keeps a connection's memory bounded
/// when its destination stops reading under a `latency` toxic (the reader then waits, and
/// backpressure reaches the source). 512 KiB carries 100 MB/s through a 5 ms latency.
pub const MAX_QUEUED_BYTES: usize = 512 * 1024;

/// The sending side of a pipelined link: the queue, how many chunks in it are not yet
/// written, and the byte budget of the queue.
pub struct PipeTx {
    tx: tokio::sync::mpsc::Sender<Piped>,
    queued: Arc<AtomicUsize>,
    budget: Arc<tokio::sync::Semaphore>,
}

/// The writer's side of a pipelined link.
pub struct PipeRx {
    rx: tokio::sync::mpsc::Receiver<Piped>,
    queued: Arc<AtomicUsize>,
    budget: Arc<tokio::sync::Semaphore>,
}

/// A queue between a pipelined link and its writer, at most `depth` chunks and
/// [`MAX_QUEUED_BYTES`] deep.
pub fn pipe_channel(depth: usize) -> (PipeTx, PipeRx) {
    let (tx, rx) = tokio::sync::mpsc::channel(depth);
    let queued = Arc::new(AtomicUsize::new(0));
    let budget = Arc::new(tokio::sync::Semaphore::new(MAX_QUEUED_BYTES));
    (
        PipeTx {
            tx,
            queued: queued.clone(),
            budget: budget.clone(),
        },
        PipeRx { rx, queued, budget },
    )
}

/// The share of the byte budget a chunk of `len` bytes takes (a chunk larger than the whole
/// budget takes all of it, and so waits for an empty queue).
fn permits(len: usize) -> u32 {
    len.clamp(1, MAX_QUEUED_BYTES) as u32
}

impl PipeTx {
    /// Nothing queued is left to write.
    fn drained(&self) -> bool {
        self.queued.load(Ordering::Acquire) == 0
    }
}

/// What a pipelined link hands its writer.
pub enum Piped {
    /// Write these bytes at that time (they hold their share of the byte budget).
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
                    // A reader waiting for budget learns that nothing will be written.
                    pipe.budget.close();
                    return;
                }
                pipe.queued.fetch_sub(1, Ordering::Release);
                pipe.budget.add_permits(permits(data.len()) as usize);
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
            let Some(toxic) = t.fault.as_toxic() else {
                continue;
            };
            // A toxic already rolled in on this link keeps its roll until it changes.
            let keep = before.contains(&t.id);
            if keep || (t.admits(conn) && (t.toxicity >= 1.0 || rng.random::<f32>() < t.toxicity)) {
                self.active.push((t.id, toxic.clone()));
                self.latency_only &= toxic.only_delays();
                if !keep {
                    started.push(t.clone());
                }
            }
        }
        started
    }

    /// Sends `data` to `dest` (`src` is the side it came from): the one path by which bytes
    /// reach a socket outside the zero-copy fast path. With no toxic to run it is one write;
    /// else the chunk runs through the chain. The sent-bytes counter of `dir` counts what was
    /// written. Returns false when a toxic closed the connection.
    #[allow(clippy::too_many_arguments)]
    pub async fn send(
        &mut self,
        conn: &ConnInfo,
        dir: Direction,
        data: &[u8],
        dest: &Peer,
        src: &Peer,
        rng: &mut SmallRng,
        metrics: &Metrics,
    ) -> io::Result<bool> {
        if self.is_empty() {
            dest.write_all(data).await?;
            metrics.add_sent(dir, data.len());
            return Ok(true);
        }
        self.send_bytes(
            conn,
            dir,
            Bytes::copy_from_slice(data),
            Instant::now(),
            false,
            dest,
            src,
            rng,
            metrics,
        )
        .await
    }

    /// [`Link::send`] of a chunk already in a `Bytes` (or of the end of the stream, `eof`),
    /// read from its source at `arrived`.
    #[allow(clippy::too_many_arguments)]
    pub async fn send_bytes(
        &mut self,
        conn: &ConnInfo,
        dir: Direction,
        data: Bytes,
        arrived: Instant,
        eof: bool,
        dest: &Peer,
        src: &Peer,
        rng: &mut SmallRng,
        metrics: &Metrics,
    ) -> io::Result<bool> {
        let before = self.written;
        let r = self
            .run(conn, dir, data, arrived, eof, dest, src, rng)
            .await;
        metrics.add_sent(dir, (self.written - before) as usize);
        r
    }

    /// Runs one chunk (or the EOF event) through the chain and writes what comes out to `dest`
    /// (`src` is the side it came from: a reset resets both). Returns false when a toxic closed
    /// the connection.
    #[allow(clippy::too_many_arguments)]
    async fn run(
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
                // Backpressure: the queue holds at most MAX_QUEUED_BYTES.
                match pipe.budget.acquire_many(permits(p.data.len())).await {
                    Ok(taken) => taken.forget(),
                    Err(_) => return Err(io::ErrorKind::BrokenPipe.into()),
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
