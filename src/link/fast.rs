//! The streaming fast path: when nothing can touch the bytes, both directions are forwarded
//! with no per-chunk work — `splice(2)` through a kernel pipe on Linux (zero-copy), a per-thread
//! scratch buffer elsewhere or when disabled. Half-close is passed on; a change of the active
//! faults stops the fast path at a chunk boundary so that the hooks take over.
//!
//! Both directions are one hand-polled future ([`Bidi`]) that waits through the sockets' own
//! readiness slots (`poll_read_ready`/`poll_write_ready`): no future per wait, and an idle
//! connection holds no pipe and no buffer, only a few words of state.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::Interest;
use tokio::sync::watch;

use crate::base::metrics::Metrics;
use crate::base::Direction;
use crate::io::busy_poll::BusyPoll;
use crate::io::peer::Peer;
#[cfg(target_os = "linux")]
use crate::io::splice;

/// How one direction of the fast path ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The source closed its side; the destination was half-closed (or, without half-close,
    /// the connection ends).
    Eof,
    /// The active faults changed: the hooks take over from here.
    Changed,
    /// The connection must end (error, idle timeout, kill).
    Abort,
}

/// Counts chunks so that an idle watchdog can tell when nothing moved for a whole period.
#[derive(Default)]
pub struct Activity(AtomicU64);

impl Activity {
    #[inline]
    pub fn tick(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
    /// Resolves once a whole `period` went by with no chunk in either direction (within an
    /// eighth of it: the count is looked at on that step, so that chunks cost no clock read).
    pub async fn idle(&self, period: Duration) {
        let step = (period / 8).max(Duration::from_millis(1));
        let mut last = self.get();
        let mut quiet = Duration::ZERO;
        while quiet < period {
            tokio::time::sleep(step).await;
            let now = self.get();
            if now == last {
                quiet += step;
            } else {
                quiet = Duration::ZERO;
                last = now;
            }
        }
    }
}

/// Forwards both directions until each ends (EOF, error) or the active faults change.
/// Returns the outcome of the upstream and the downstream direction. With `half_close`, an EOF
/// is passed on and the other direction goes on; without it (the original's tcp `keep_alive`
/// without `--stay-connected`), the first EOF ends both (the other direction's outcome is then
/// `Abort`), and nothing is shut down: the caller closes the sockets. A direction that is
/// already `over` (its EOF was passed on earlier) is not forwarded and ends as `Eof`.
#[allow(clippy::too_many_arguments)]
pub async fn forward_both(
    client: &Peer,
    backend: &Peer,
    zero_copy: bool,
    busy_poll: Duration,
    half_close: bool,
    changes: &mut watch::Receiver<u64>,
    activity: &Activity,
    metrics: &Metrics,
    over: (bool, bool),
) -> (Outcome, Outcome) {
    // The fast path reads on its own: the hooks' path that may follow peeks again.
    client.forget_drained();
    backend.forget_drained();
    let changed = changes.changed();
    tokio::pin!(changed);
    let half = |src, dst, dir, over: bool| {
        let mut h = Half::new(src, dst, dir);
        if over {
            h.state = State::Done(Outcome::Eof);
        }
        h
    };
    Bidi {
        up: half(client, backend, Direction::Upstream, over.0),
        down: half(backend, client, Direction::Downstream, over.1),
        zero_copy: zero_copy && cfg!(target_os = "linux"),
        half_close,
        changed: changed.as_mut(),
        stop: false,
        activity,
        metrics,
        spin: BusyPoll::new(busy_poll),
    }
    .await
}

/// Both directions of one connection.
struct Bidi<'a, F> {
    up: Half<'a>,
    down: Half<'a>,
    zero_copy: bool,
    /// An EOF is passed on and the other direction goes on (else the first EOF ends both).
    half_close: bool,
    /// Resolves when the active faults change (polled until then only).
    changed: Pin<&'a mut F>,
    /// The faults changed: each direction stops at its next chunk boundary.
    stop: bool,
    activity: &'a Activity,
    metrics: &'a Metrics,
    /// Busy polling: when to look for the next chunk instead of sleeping.
    spin: BusyPoll,
}

impl<F: Future> Future for Bidi<'_, F> {
    type Output = (Outcome, Outcome);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if !this.stop && this.changed.as_mut().poll(cx).is_ready() {
            this.stop = true;
        }
        let env = Env {
            zero_copy: this.zero_copy,
            half_close: this.half_close,
            stop: this.stop,
            activity: this.activity,
            metrics: this.metrics,
        };
        // Bounded, so that a connection that keeps finding chunks still lets others run.
        for _ in 0..64 {
            let before = this.activity.get();
            let up = this.up.poll(cx, &env);
            let down = this.down.poll(cx, &env);
            if let (Poll::Ready(u), Poll::Ready(d)) = (up, down) {
                return Poll::Ready((u, d));
            }
            if !this.half_close {
                let over =
                    |p: &Poll<Outcome>| matches!(p, Poll::Ready(Outcome::Eof | Outcome::Abort));
                if over(&up) || over(&down) {
                    let or_abort = |p: Poll<Outcome>| match p {
                        Poll::Ready(o) => o,
                        Poll::Pending => Outcome::Abort,
                    };
                    return Poll::Ready((or_abort(up), or_abort(down)));
                }
            }
            // A connection that carries bulk data needs no help with latency, and with more
            // connections open the runtime has other work (checked before reading the clock).
            if !this.spin.enabled(this.metrics) || this.stop || this.up.bulk || this.down.bulk {
                return Poll::Pending;
            }
            let now = Instant::now();
            if this.activity.get() != before {
                this.spin.chunk_moved(now);
            }
            if !this.spin.open(now) {
                return Poll::Pending;
            }
            // Look for the next chunk ourselves: the runtime only learns of it once it polls
            // for events, which it does when it runs out of tasks.
            let seen = this.activity.get();
            let up = this.up.spin(&env);
            let down = this.down.spin(&env);
            if up.is_ready() || down.is_ready() {
                continue;
            }
            if this.activity.get() == seen {
                // Nothing yet: let the other threads of the machine run (the client or the
                // server may share this core), then come back after the runtime's other tasks.
                std::thread::yield_now();
                break;
            }
            this.spin.chunk_moved(Instant::now());
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// What both directions share while polled.
struct Env<'a> {
    zero_copy: bool,
    half_close: bool,
    stop: bool,
    activity: &'a Activity,
    metrics: &'a Metrics,
}

/// One direction: waiting for its source, or writing what it read.
struct Half<'a> {
    src: &'a Peer,
    dst: &'a Peer,
    dir: Direction,
    state: State,
    /// A read filled the whole scratch buffer: this direction carries bulk data and moves
    /// on to `splice` (zero-copy). Small messages stay on the copy path, which needs one
    /// system call less per chunk.
    bulk: bool,
}

enum State {
    /// Waiting for the source (nothing in flight).
    Reading,
    /// `left` of the `total` bytes read are in the pipe, to be written.
    #[cfg(target_os = "linux")]
    Piped {
        pipe: splice::Pipe,
        left: usize,
        total: usize,
    },
    /// What the destination could not take at once (copy path).
    Buffered {
        rest: Vec<u8>,
        off: usize,
    },
    Done(Outcome),
}

impl<'a> Half<'a> {
    fn new(src: &'a Peer, dst: &'a Peer, dir: Direction) -> Self {
        Half {
            src,
            dst,
            dir,
            state: State::Reading,
            bulk: false,
        }
    }

    fn poll(&mut self, cx: &mut Context<'_>, env: &Env<'_>) -> Poll<Outcome> {
        if let State::Done(o) = self.state {
            return Poll::Ready(o); // polled again while the other direction goes on
        }
        let r = self.step(cx, env);
        self.settle(r, env)
    }

    /// Looks for the next chunk itself (a read that does not wait for the runtime to report
    /// the socket readable): the busy-poll window of [`Bidi`]. Pending when nothing came.
    fn spin(&mut self, env: &Env<'_>) -> Poll<Outcome> {
        if !matches!(self.state, State::Reading) || self.bulk || env.stop {
            return Poll::Pending;
        }
        let r = match self.copy(env, true) {
            Ok(None) => Poll::Pending,
            Ok(Some(o)) => Poll::Ready(Ok(o)),
            Err(e) => Poll::Ready(Err(e)),
        };
        self.settle(r, env)
    }

    /// Ends the direction when `r` says it is over.
    fn settle(&mut self, r: Poll<io::Result<Outcome>>, env: &Env<'_>) -> Poll<Outcome> {
        match r {
            Poll::Ready(Ok(o)) => {
                if o == Outcome::Eof {
                    self.src.mark_eof();
                    // When the destination's own EOF came already, both ways are over and the
                    // connection closes both sockets next; nothing is left unread, so that
                    // close sends the same FIN as a shutdown would: spare the call.
                    if env.half_close && !self.dst.saw_eof() {
                        let _ = self.dst.shutdown_write();
                    }
                }
                self.state = State::Done(o);
                Poll::Ready(o)
            }
            Poll::Ready(Err(e)) => {
                tracing::debug!(error = %e, dir = %self.dir, "connection ended");
                // Both sockets shut: the other direction ends at once too.
                self.src.close();
                self.dst.close();
                self.state = State::Done(Outcome::Abort);
                Poll::Ready(Outcome::Abort)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn step(&mut self, cx: &mut Context<'_>, env: &Env<'_>) -> Poll<io::Result<Outcome>> {
        loop {
            match &mut self.state {
                State::Done(o) => return Poll::Ready(Ok(*o)),
                State::Reading => {
                    if env.stop {
                        return Poll::Ready(Ok(Outcome::Changed));
                    }
                    std::task::ready!(self.src.stream.poll_read_ready(cx))?;
                    if env.zero_copy && self.bulk {
                        #[cfg(target_os = "linux")]
                        if let Some(o) = self.splice_in(env)? {
                            return Poll::Ready(Ok(o));
                        }
                    } else if let Some(o) = self.copy(env, false)? {
                        return Poll::Ready(Ok(o));
                    }
                }
                #[cfg(target_os = "linux")]
                State::Piped { pipe, left, total } => {
                    std::task::ready!(self.dst.stream.poll_write_ready(cx))?;
                    use std::os::fd::AsRawFd;
                    let dst_fd = self.dst.stream.as_raw_fd();
                    let (r, want) = (pipe.r, *left);
                    match self
                        .dst
                        .stream
                        .try_io(Interest::WRITABLE, || splice::splice(r, dst_fd, want))
                    {
                        Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                        Ok(m) => {
                            *left -= m;
                            if *left == 0 {
                                env.metrics.add_sent(self.dir, *total);
                                let State::Piped { pipe, .. } =
                                    std::mem::replace(&mut self.state, State::Reading)
                                else {
                                    unreachable!("matched above")
                                };
                                splice::give(pipe);
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        // The pipe may still hold bytes: dropped (closed), not reused.
                        Err(e) => return Poll::Ready(Err(e)),
                    }
                }
                State::Buffered { rest, off } => {
                    std::task::ready!(self.dst.stream.poll_write_ready(cx))?;
                    match self.dst.stream.try_write(&rest[*off..]) {
                        Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                        Ok(m) => {
                            *off += m;
                            if *off == rest.len() {
                                env.metrics.add_sent(self.dir, rest.len());
                                self.state = State::Reading;
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(e) => return Poll::Ready(Err(e)),
                    }
                }
            }
        }
    }

    /// Moves what the source has into a pipe. `Some` when the direction ended.
    #[cfg(target_os = "linux")]
    fn splice_in(&mut self, env: &Env<'_>) -> io::Result<Option<Outcome>> {
        use std::os::fd::AsRawFd;
        let src_fd = self.src.stream.as_raw_fd();
        // A pipe is held only while bytes are in flight, so idle connections hold none.
        let pipe = splice::take()?;
        let w = pipe.w;
        match self.src.stream.try_io(Interest::READABLE, || {
            splice::splice(src_fd, w, splice::CHUNK)
        }) {
            Ok(0) => {
                splice::give(pipe);
                Ok(Some(Outcome::Eof))
            }
            Ok(n) => {
                env.activity.tick();
                env.metrics.add_bytes(self.dir, n);
                self.state = State::Piped {
                    pipe,
                    left: n,
                    total: n,
                };
                Ok(None)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                splice::give(pipe);
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Reads into this thread's scratch buffer and writes at once; only what the destination
    /// cannot take right now is kept aside. `Some` when the direction ended.
    ///
    /// A short read means the socket was drained: its readiness is cleared in the same step
    /// (with the readiness tick taken before the read, so data that arrives meanwhile raises a
    /// new edge), which saves the `EAGAIN` read a plain loop would make for every chunk.
    fn copy(&mut self, env: &Env<'_>, force: bool) -> io::Result<Option<Outcome>> {
        use std::io::{Read, Write};
        let (src, dst) = (self.src, self.dst);
        let step = SCRATCH.with(|cell| -> io::Result<Option<(usize, usize, Vec<u8>)>> {
            let mut buf = cell.borrow_mut();
            let mut short = 0usize;
            let mut read = || {
                let n = (&*socket2::SockRef::from(&src.stream)).read(&mut buf[..])?;
                if n > 0 && n < buf.len() {
                    short = n;
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                Ok(n)
            };
            let r = if force {
                read()
            } else {
                src.stream.try_io(Interest::READABLE, read)
            };
            let n = match r {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && short > 0 => short,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) => return Err(e),
            };
            if n == 0 {
                return Ok(Some((0, 0, Vec::new())));
            }
            let sent = match (&*socket2::SockRef::from(&dst.stream)).write(&buf[..n]) {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                Err(e) => return Err(e),
            };
            Ok(Some((n, sent, buf[sent..n].to_vec())))
        })?;
        match step {
            None => Ok(None),
            Some((0, _, _)) => Ok(Some(Outcome::Eof)),
            Some((n, sent, rest)) => {
                if n == SCRATCH_SIZE {
                    self.bulk = true;
                }
                env.activity.tick();
                env.metrics.add_bytes(self.dir, n);
                if rest.is_empty() {
                    env.metrics.add_sent(self.dir, n);
                } else {
                    if sent > 0 {
                        env.metrics.add_sent(self.dir, sent);
                    }
                    self.state = State::Buffered { rest, off: 0 };
                }
                Ok(None)
            }
        }
    }
}

/// Size of the per-thread scratch buffer of the copy path.
const SCRATCH_SIZE: usize = 64 * 1024;

thread_local! {
    static SCRATCH: std::cell::RefCell<Box<[u8]>> =
        std::cell::RefCell::new(vec![0u8; SCRATCH_SIZE].into_boxed_slice());
}
