//! The streaming fast path: when nothing can touch the bytes, both directions are forwarded
//! with no per-chunk work — `splice(2)` through a kernel pipe on Linux (zero-copy), a plain
//! reused buffer elsewhere or when disabled. Half-close is passed on; a change of the active
//! faults stops the fast path at a chunk boundary so that the hooks take over.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;

use super::peer::Peer;
use crate::behavior::Direction;
use crate::metrics::Metrics;

/// How one direction of the fast path ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The source closed its side; the destination was half-closed.
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
    /// Resolves once a whole `period` went by with no chunk in either direction.
    pub async fn idle(&self, period: Duration) {
        let mut last = self.get();
        loop {
            tokio::time::sleep(period).await;
            let now = self.get();
            if now == last {
                return;
            }
            last = now;
        }
    }
}

/// Forwards one direction until EOF, error or a change of faults.
pub async fn forward(
    src: &Peer,
    dst: &Peer,
    dir: Direction,
    zero_copy: bool,
    changes: &mut watch::Receiver<u64>,
    activity: &Activity,
    metrics: &Metrics,
) -> Outcome {
    let r = if zero_copy {
        forward_splice(src, dst, dir, changes, activity, metrics).await
    } else {
        forward_copy(src, dst, dir, changes, activity, metrics).await
    };
    match r {
        Ok(Outcome::Eof) => {
            let _ = dst.shutdown_write();
            Outcome::Eof
        }
        Ok(o) => o,
        Err(e) => {
            tracing::debug!(error = %e, %dir, "connection ended");
            Outcome::Abort
        }
    }
}

/// Waits for `src` to be readable or for a change of faults.
async fn ready_or_changed(src: &Peer, changes: &mut watch::Receiver<u64>) -> io::Result<bool> {
    tokio::select! {
        biased;
        r = changes.changed() => Ok(r.is_ok()),
        r = src.stream.readable() => r.map(|_| false),
    }
}

async fn forward_copy(
    src: &Peer,
    dst: &Peer,
    dir: Direction,
    changes: &mut watch::Receiver<u64>,
    activity: &Activity,
    metrics: &Metrics,
) -> io::Result<Outcome> {
    loop {
        if ready_or_changed(src, changes).await? {
            return Ok(Outcome::Changed);
        }
        // Read into this thread's scratch buffer and write at once: an idle connection holds
        // no buffer. Only what the destination cannot take right now is copied aside.
        let step = SCRATCH.with(|cell| -> io::Result<Option<(usize, Vec<u8>)>> {
            let mut buf = cell.borrow_mut();
            let n = match src.stream.try_read(&mut buf[..]) {
                Ok(0) => return Ok(Some((0, Vec::new()))),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) => return Err(e),
            };
            let sent = match dst.stream.try_write(&buf[..n]) {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                Err(e) => return Err(e),
            };
            Ok(Some((n, buf[sent..n].to_vec())))
        })?;
        let Some((n, rest)) = step else { continue };
        if n == 0 {
            return Ok(Outcome::Eof);
        }
        activity.tick();
        metrics.add_bytes(dir, n);
        if !rest.is_empty() {
            dst.write_all(&rest).await?;
        }
        metrics.add_sent(dir, n);
    }
}

/// Size of the per-thread scratch buffer of the copy path.
const SCRATCH_SIZE: usize = 64 * 1024;

thread_local! {
    static SCRATCH: std::cell::RefCell<Box<[u8]>> =
        std::cell::RefCell::new(vec![0u8; SCRATCH_SIZE].into_boxed_slice());
}

#[cfg(target_os = "linux")]
async fn forward_splice(
    src: &Peer,
    dst: &Peer,
    dir: Direction,
    changes: &mut watch::Receiver<u64>,
    activity: &Activity,
    metrics: &Metrics,
) -> io::Result<Outcome> {
    use std::os::fd::AsRawFd;
    use tokio::io::Interest;

    let src_fd = src.stream.as_raw_fd();
    let dst_fd = dst.stream.as_raw_fd();
    loop {
        if ready_or_changed(src, changes).await? {
            return Ok(Outcome::Changed);
        }
        // A pipe is held only while bytes are in flight, so idle connections hold none.
        let pipe = splice::take()?;
        let n = match src.stream.try_io(Interest::READABLE, || {
            splice::splice(src_fd, pipe.w, splice::CHUNK)
        }) {
            Ok(0) => {
                splice::give(pipe);
                return Ok(Outcome::Eof);
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                splice::give(pipe);
                continue;
            }
            Err(e) => return Err(e),
        };
        activity.tick();
        metrics.add_bytes(dir, n);
        let mut left = n;
        while left > 0 {
            dst.stream.writable().await?;
            match dst
                .stream
                .try_io(Interest::WRITABLE, || splice::splice(pipe.r, dst_fd, left))
            {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(m) => left -= m,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                // The pipe may still hold bytes: it is dropped (closed), not reused.
                Err(e) => return Err(e),
            }
        }
        metrics.add_sent(dir, n);
        splice::give(pipe);
    }
}

#[cfg(not(target_os = "linux"))]
async fn forward_splice(
    src: &Peer,
    dst: &Peer,
    dir: Direction,
    changes: &mut watch::Receiver<u64>,
    activity: &Activity,
    metrics: &Metrics,
) -> io::Result<Outcome> {
    forward_copy(src, dst, dir, changes, activity, metrics).await
}

/// The only `unsafe` of the crate: the `pipe2`, `fcntl`, `splice` and `close` system calls.
#[cfg(target_os = "linux")]
mod splice {
    use std::cell::RefCell;
    use std::io;
    use std::os::fd::RawFd;

    /// Bytes moved by one splice call.
    pub const CHUNK: usize = 256 * 1024;

    /// A kernel pipe used as the splice buffer; closed on drop.
    pub struct Pipe {
        pub r: RawFd,
        pub w: RawFd,
    }

    impl Drop for Pipe {
        fn drop(&mut self) {
            // SAFETY: both descriptors were returned by pipe2 and are owned by this value
            // alone; they are closed exactly once, here.
            unsafe {
                libc::close(self.r);
                libc::close(self.w);
            }
        }
    }

    thread_local! {
        /// Empty pipes ready for reuse on this worker thread (no lock on the data path).
        static POOL: RefCell<Vec<Pipe>> = const { RefCell::new(Vec::new()) };
    }

    /// An empty pipe from this thread's pool, or a new one.
    pub fn take() -> io::Result<Pipe> {
        if let Some(p) = POOL.with(|p| p.borrow_mut().pop()) {
            return Ok(p);
        }
        let mut fds = [0 as RawFd; 2];
        // SAFETY: pipe2 writes two descriptors into the array we own.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } < 0 {
            return Err(io::Error::last_os_error());
        }
        let p = Pipe {
            r: fds[0],
            w: fds[1],
        };
        // A bigger pipe moves more per call; failure (limits) only costs speed.
        // SAFETY: fcntl on a descriptor we own, with an integer argument.
        unsafe { libc::fcntl(p.w, libc::F_SETPIPE_SZ, CHUNK as libc::c_int) };
        Ok(p)
    }

    /// Gives an empty pipe back to this thread's pool (at most 64 kept).
    pub fn give(p: Pipe) {
        POOL.with(|pool| {
            let mut pool = pool.borrow_mut();
            if pool.len() < 64 {
                pool.push(p);
            }
        });
    }

    /// One non-blocking splice of at most `len` bytes.
    pub fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
        // SAFETY: splice only reads and writes the kernel objects behind the descriptors;
        // null offsets are allowed for sockets and pipes; no user memory is passed.
        let n = unsafe {
            libc::splice(
                from,
                std::ptr::null_mut(),
                to,
                std::ptr::null_mut(),
                len,
                libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
            )
        };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }
}
