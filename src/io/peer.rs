//! One side of a proxied connection (the client or the backend).
//!
//! Every method takes `&self`, so the two directions of a connection can read one socket and
//! write the other at the same time without a lock: tokio's `TcpStream` allows concurrent
//! readiness waits and `try_read`/`try_write` through a shared reference.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use socket2::SockRef;
use tokio::io::Interest;
use tokio::net::TcpStream;

use super::busy_poll::BusyPoll;
use crate::base::{PeerInfo, Side};

#[derive(Debug)]
pub struct Peer {
    /// The socket; dropped with the peer.
    pub stream: TcpStream,
    pub side: Side,
    /// The remote address, for logs.
    pub addr: Option<SocketAddr>,
    /// Set once a behavior or the engine closed this side: the connection ends.
    closed: AtomicBool,
    /// The read side saw EOF.
    eof: AtomicBool,
    /// Our write side was shut down (a half-close passed on): never reusable.
    write_shut: AtomicBool,
    /// The last read was a short [`Peer::read_buf`], which drained the socket and cleared its
    /// readiness in the same step: readiness from then on means new data (or EOF), and
    /// [`Peer::readable`] needs no peek. Any other read clears it.
    drained: AtomicBool,
}

impl Peer {
    /// A peer at `addr` (known from `accept` or `connect`: no system call to ask for it).
    pub fn new(stream: TcpStream, side: Side, addr: SocketAddr) -> Self {
        let addr = Some(addr);
        let _ = stream.set_nodelay(true);
        Peer {
            stream,
            side,
            addr,
            closed: AtomicBool::new(false),
            eof: AtomicBool::new(false),
            write_shut: AtomicBool::new(false),
            drained: AtomicBool::new(false),
        }
    }

    /// Reads what is available (at most `max` bytes) into `buf`; 0 means the peer closed.
    pub async fn read_buf(&self, buf: &mut BytesMut, max: usize) -> io::Result<usize> {
        if self.is_closed() {
            return Ok(0);
        }
        buf.reserve(max);
        loop {
            self.stream.readable().await?;
            match self.try_read_into(buf, max) {
                Ok(0) => {
                    self.drained.store(false, Ordering::Relaxed);
                    self.eof.store(true, Ordering::Relaxed);
                    return Ok(0);
                }
                Ok(n) => {
                    // Only `try_read_into` on Linux clears the readiness of a short read.
                    let cleared = cfg!(target_os = "linux") && n < max;
                    self.drained.store(cleared, Ordering::Relaxed);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Busy polling (see [`BusyPoll`]): reads what comes while `spin` stays open, without
    /// waiting for the runtime to report the socket readable. `None` when the window closed
    /// with nothing read: the caller then waits as usual.
    pub async fn spin_read(
        &self,
        buf: &mut BytesMut,
        max: usize,
        spin: &BusyPoll,
    ) -> io::Result<Option<usize>> {
        if self.is_closed() {
            return Ok(None);
        }
        buf.reserve(max);
        self.forget_drained();
        spin.look_for(|| self.look(buf, max)).await
    }

    /// [`Peer::spin_read`] on two peers at once, `a` first: which one brought something
    /// (true: `a`), or `None` when the window closed with nothing read.
    pub async fn spin_either(
        a: (&Peer, &mut BytesMut),
        b: (&Peer, &mut BytesMut),
        max: usize,
        spin: &BusyPoll,
    ) -> io::Result<Option<bool>> {
        if a.0.is_closed() || b.0.is_closed() {
            return Ok(None);
        }
        a.1.reserve(max);
        b.1.reserve(max);
        a.0.forget_drained();
        b.0.forget_drained();
        spin.look_for(|| {
            if a.0.look(a.1, max)?.is_some() {
                return Ok(Some(true));
            }
            Ok(b.0.look(b.1, max)?.map(|_| false))
        })
        .await
    }

    /// One read that does not ask the runtime whether the socket is readable: `None` when
    /// nothing was there (always, off Linux: busy polling is a Linux feature here).
    fn look(&self, buf: &mut BytesMut, max: usize) -> io::Result<Option<usize>> {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            match super::splice::recv_into(self.stream.as_raw_fd(), buf, max) {
                Ok(0) => {
                    self.eof.store(true, Ordering::Relaxed);
                    Ok(Some(0))
                }
                Ok(n) => Ok(Some(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
                Err(e) => Err(e),
            }
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = (buf, max);
            Ok(None)
        }
    }

    /// One read into `buf`. A short read means the socket was drained, so its readiness is
    /// cleared in the same step — with the readiness tick taken before the read, so that data
    /// arriving meanwhile raises it again — which saves the `EAGAIN` read of the next wait.
    #[cfg(target_os = "linux")]
    fn try_read_into(&self, buf: &mut BytesMut, max: usize) -> io::Result<usize> {
        use std::os::fd::AsRawFd;
        let fd = self.stream.as_raw_fd();
        let mut short = 0;
        let r = self.stream.try_io(Interest::READABLE, || {
            let n = super::splice::recv_into(fd, buf, max)?;
            if n > 0 && n < max {
                short = n;
                return Err(io::ErrorKind::WouldBlock.into());
            }
            Ok(n)
        });
        match r {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && short > 0 => Ok(short),
            r => r,
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn try_read_into(&self, buf: &mut BytesMut, max: usize) -> io::Result<usize> {
        let mut limited = (&mut *buf).limit(max);
        self.stream.try_read_buf(&mut limited)
    }

    /// `read_buf` with a time limit; an expired limit is an `io::ErrorKind::TimedOut` error.
    pub async fn read_buf_timeout(
        &self,
        buf: &mut BytesMut,
        max: usize,
        timeout: Duration,
    ) -> io::Result<usize> {
        match tokio::time::timeout(timeout, self.read_buf(buf, max)).await {
            Ok(r) => r,
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "read timed out")),
        }
    }

    /// Reads into a slice; 0 means the peer closed.
    pub async fn read(&self, out: &mut [u8]) -> io::Result<usize> {
        if self.is_closed() {
            return Ok(0);
        }
        self.forget_drained();
        loop {
            self.stream.readable().await?;
            match self.stream.try_read(out) {
                Ok(0) => {
                    self.eof.store(true, Ordering::Relaxed);
                    return Ok(0);
                }
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Writes all of `data`.
    pub async fn write_all(&self, mut data: &[u8]) -> io::Result<()> {
        if self.is_closed() {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "connection closed by a behavior",
            ));
        }
        while !data.is_empty() {
            self.stream.writable().await?;
            match self.stream.try_write(data) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => data = &data[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Waits until the socket has data or EOF, without reading. A peek, not a readiness wait:
    /// readiness can be stale, and the caller loads the active faults right after this (a toxic
    /// removed while the connection was idle must not apply to the next chunk). After a short
    /// [`Peer::read_buf`] the readiness was cleared with the read, so it is fresh: the wait is
    /// the runtime's alone, without the peek's system call (one per chunk on the toxics' path).
    pub async fn readable(&self) -> io::Result<()> {
        if self.drained.load(Ordering::Relaxed) {
            return self.stream.readable().await;
        }
        let mut probe = [0u8; 1];
        self.stream.peek(&mut probe).await.map(|_| ())
    }

    /// Reads that are not [`Peer::read_buf`]'s (the fast path, busy polling, a probe) leave
    /// the readiness as it was: [`Peer::readable`] peeks again.
    pub fn forget_drained(&self) {
        self.drained.store(false, Ordering::Relaxed);
    }

    /// Half-closes: the peer reads EOF, and we can still read what it sends.
    /// `shutdown(how)` as a socket hook asks it: 0 stops reading, 1 writing (half-close),
    /// 2 closes this side.
    pub fn shutdown_how(&self, how: i32) -> io::Result<()> {
        match how {
            0 => {
                let _ = SockRef::from(&self.stream).shutdown(std::net::Shutdown::Read);
                Ok(())
            }
            1 => self.shutdown_write(),
            2 => {
                self.close();
                Ok(())
            }
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "invalid shutdown mode",
            )),
        }
    }

    /// What a socket hook may know of this peer.
    pub fn info(&self) -> PeerInfo {
        use std::os::fd::AsRawFd;
        PeerInfo {
            fd: self.stream.as_raw_fd() as i64,
            addr: self.addr,
        }
    }

    pub fn shutdown_write(&self) -> io::Result<()> {
        self.write_shut.store(true, Ordering::Relaxed);
        match SockRef::from(&self.stream).shutdown(std::net::Shutdown::Write) {
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
            r => r,
        }
    }

    /// Closes both directions; the connection ends.
    pub fn close(&self) {
        // Once closed (or reset: no FIN must precede its RST), closing again does nothing.
        if self.closed.swap(true, Ordering::Relaxed) {
            return;
        }
        let _ = SockRef::from(&self.stream).shutdown(std::net::Shutdown::Both);
    }

    /// Closes with a TCP reset (SO_LINGER 0): the peer sees "connection reset".
    /// Once the connection was closed (a FIN went out), this does nothing: an RST after the
    /// FIN would turn the peer's clean end into an error (EPIPE on a connect still under way).
    pub fn reset(&self) {
        if self.closed.swap(true, Ordering::Relaxed) {
            return;
        }
        let _ = SockRef::from(&self.stream).set_linger(Some(Duration::ZERO));
        // The RST goes out when the socket is dropped; reading side is shut now so that
        // nothing more is read from it.
        let _ = SockRef::from(&self.stream).shutdown(std::net::Shutdown::Read);
    }

    pub fn set_linger_zero(&self) {
        let _ = SockRef::from(&self.stream).set_linger(Some(Duration::ZERO));
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    pub fn saw_eof(&self) -> bool {
        self.eof.load(Ordering::Relaxed)
    }

    /// Records an EOF read from this peer outside the `Peer` read functions (the fast path).
    pub fn mark_eof(&self) {
        self.eof.store(true, Ordering::Relaxed);
    }

    /// True when the peer sent bytes that were not read yet (a look, nothing is consumed).
    pub fn has_unread(&self) -> bool {
        let mut probe = [std::mem::MaybeUninit::<u8>::uninit(); 1];
        !self.is_closed() && matches!(SockRef::from(&self.stream).peek(&mut probe), Ok(n) if n > 0)
    }

    /// True when the socket is still usable for a new exchange: not closed nor half-closed,
    /// no EOF or error pending and no unread data (used before reusing a pooled backend connection).
    pub fn is_reusable(&self) -> bool {
        if self.is_closed() || self.saw_eof() || self.write_shut.load(Ordering::Relaxed) {
            return false;
        }
        self.forget_drained();
        let mut probe = [0u8; 1];
        matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}

#[cfg(not(target_os = "linux"))]
use bytes::BufMut;

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::time::Instant;

    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    use super::*;

    /// A connected pair on loopback: (the proxy's peer, the far end that writes to it).
    async fn pair() -> (Peer, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let far = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (near, addr) = l.accept().await.unwrap();
        (Peer::new(near, Side::Client, addr), far)
    }

    /// A window opened now (one chunk, no gap yet).
    fn open_window(window: Duration) -> BusyPoll {
        let mut spin = BusyPoll::new(window);
        spin.chunk_moved(Instant::now());
        spin
    }

    async fn within<F: std::future::Future>(f: F) -> F::Output {
        tokio::time::timeout(Duration::from_secs(10), f)
            .await
            .expect("test timed out")
    }

    #[tokio::test]
    async fn spin_read_takes_what_is_there_then_reports_an_empty_window_then_eof() {
        within(async {
            let (peer, mut far) = pair().await;
            far.write_all(b"hello").await.unwrap();
            let mut buf = BytesMut::new();
            // The bytes may need a moment to cross loopback: a 1 s window waits for them.
            let spin = open_window(Duration::from_secs(1));
            assert_eq!(peer.spin_read(&mut buf, 64, &spin).await.unwrap(), Some(5));
            assert_eq!(&buf[..], b"hello");
            // Nothing more comes: the window closes with nothing read.
            let spin = open_window(Duration::from_millis(5));
            assert_eq!(peer.spin_read(&mut buf, 64, &spin).await.unwrap(), None);
            assert!(!peer.saw_eof());
            drop(far);
            let spin = open_window(Duration::from_secs(1));
            assert_eq!(peer.spin_read(&mut buf, 64, &spin).await.unwrap(), Some(0));
            assert!(peer.saw_eof());
            assert_eq!(&buf[..], b"hello");
        })
        .await
    }

    #[tokio::test]
    async fn spin_either_says_which_side_spoke_and_a_shut_window_reads_nothing() {
        within(async {
            let (a, _far_a) = pair().await;
            let (b, mut far_b) = pair().await;
            let (mut buf_a, mut buf_b) = (BytesMut::new(), BytesMut::new());
            far_b.write_all(b"from b").await.unwrap();
            // A window that never opened (busy polling off) does not read.
            let off = BusyPoll::new(Duration::ZERO);
            let got = Peer::spin_either((&a, &mut buf_a), (&b, &mut buf_b), 64, &off).await;
            assert_eq!(got.unwrap(), None);
            assert!(buf_b.is_empty());
            let spin = open_window(Duration::from_secs(1));
            let got = Peer::spin_either((&a, &mut buf_a), (&b, &mut buf_b), 64, &spin).await;
            assert_eq!(got.unwrap(), Some(false));
            assert!(buf_a.is_empty());
            assert_eq!(&buf_b[..], b"from b");
        })
        .await
    }
}
