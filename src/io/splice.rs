//! The fast path's only `unsafe`: the `pipe2`, `fcntl`, `splice`, `recv` and `close` system
//! calls (and `geteuid` in its tests).

use std::cell::RefCell;
use std::io;
use std::os::fd::RawFd;

/// Bytes moved by one splice call, and the capacity asked for each pipe (the default
/// `fs.pipe-max-size`). A bigger pipe moves what queued up while the proxy waited in one
/// call pair instead of several, and wakes the receiver once: on one iperf3 stream 1 MiB
/// cost 0.28–0.39 CPU s/GB against 0.40–0.56 with 256 KiB (alternating runs, same machine).
/// Only the pipe's slot array is allocated up front; its pages are the sockets' own.
pub const CHUNK: usize = 1024 * 1024;

/// Empty pipes kept per worker thread. A pipe is held only while a chunk is in flight, so
/// a few cover a thread's reuse; the bound keeps pooled capacity (which the kernel counts
/// against the user's `fs.pipe-user-pages-soft`, 64 MiB by default, shared with every
/// other program of that user) at 8 MiB per thread.
pub const POOL_MAX: usize = 8;

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

/// Gives an empty pipe back to this thread's pool (at most [`POOL_MAX`] kept).
pub fn give(p: Pipe) {
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.len() < POOL_MAX {
            pool.push(p);
        }
    });
}

/// Pipes in this thread's pool.
#[cfg(test)]
pub fn pooled() -> usize {
    POOL.with(|p| p.borrow().len())
}

/// The capacity of a pipe, bytes.
#[cfg(test)]
pub fn capacity(p: &Pipe) -> usize {
    // SAFETY: fcntl on a descriptor the pipe owns, no argument.
    unsafe { libc::fcntl(p.w, libc::F_GETPIPE_SZ) as usize }
}

/// Reads at most `max` bytes from a socket into the spare capacity of `buf` (no zeroing
/// first), and extends `buf` by what was read.
pub fn recv_into(fd: RawFd, buf: &mut bytes::BytesMut, max: usize) -> io::Result<usize> {
    let spare = buf.spare_capacity_mut();
    let len = spare.len().min(max);
    // SAFETY: recv writes at most `len` bytes into memory we own (the spare capacity of
    // `buf`); MSG_DONTWAIT keeps it from blocking.
    let n = unsafe {
        libc::recv(
            fd,
            spare.as_mut_ptr() as *mut libc::c_void,
            len,
            libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel initialised exactly the `n` bytes it reported, right after the
    // current length, and `n <= len <= spare capacity`.
    unsafe { buf.set_len(buf.len() + n as usize) };
    Ok(n as usize)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_keeps_at_most_pool_max_pipes_and_reuses_them() {
        let pipes: Vec<Pipe> = (0..POOL_MAX + 4).map(|_| take().unwrap()).collect();
        let last_kept = pipes[POOL_MAX - 1].w;
        assert_eq!(pooled(), 0);
        for p in pipes {
            give(p);
        }
        assert_eq!(pooled(), POOL_MAX, "the extra pipes are closed, not kept");
        let again = take().unwrap();
        assert_eq!(
            pooled(),
            POOL_MAX - 1,
            "a pooled pipe is taken before a new one"
        );
        assert_eq!(again.w, last_kept, "the last pipe kept comes out first");
    }

    #[test]
    fn a_new_pipe_holds_a_whole_chunk() {
        while POOL.with(|p| p.borrow_mut().pop()).is_some() {}
        let p = take().unwrap();
        let cap = capacity(&p);
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            assert_eq!(cap, CHUNK, "root may always grow a pipe");
        } else {
            // An unprivileged user over fs.pipe-user-pages-soft keeps the default size.
            assert!(cap >= 4096, "{cap}");
        }
    }
}
