//! Connections to the backend: a pool of idle ones, used when a protocol reuses sockets
//! (`reuse_socket`: at most `pool_max_size` idle connections per backend, each usable for
//! `pool_timeout`), and new ones to the backend's address, resolved at most every
//! [`RESOLVE_TTL`].

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;

use tokio::net::TcpStream;

use super::{resolve, ProxyError};
use crate::base::Side;
use crate::io::peer::Peer;

/// How long the addresses a backend's host name resolved to are used before it is resolved
/// again (the address of `localhost` costs a `getaddrinfo` on a blocking thread otherwise, for
/// every connection: 30-40% more CPU per connection under connection churn).
pub const RESOLVE_TTL: Duration = Duration::from_secs(5);

pub struct Pool {
    max_size: usize,
    timeout: Duration,
    idle: Mutex<HashMap<String, VecDeque<(Instant, Peer)>>>,
    resolved: Resolver,
}

impl Pool {
    pub fn new(max_size: usize, timeout: Duration) -> Self {
        Pool {
            max_size,
            timeout,
            idle: Mutex::new(HashMap::new()),
            resolved: Resolver::new(RESOLVE_TTL),
        }
    }

    /// A pooled connection to `backend` that is still alive, if any.
    pub fn take(&self, backend: &str) -> Option<Peer> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let q = idle.get_mut(backend)?;
        while let Some((since, peer)) = q.pop_back() {
            if since.elapsed() < self.timeout && peer.is_reusable() {
                return Some(peer);
            }
        }
        None
    }

    /// Gives a backend connection back for reuse.
    pub fn put(&self, backend: &str, peer: Peer) {
        if self.max_size == 0 || !peer.is_reusable() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let q = idle.entry(backend.to_string()).or_default();
        q.retain(|(since, _)| since.elapsed() < self.timeout);
        if q.len() >= self.max_size {
            q.pop_front();
        }
        q.push_back((Instant::now(), peer));
    }

    /// A connection to `backend`: a pooled one when `reuse`, else a new one.
    pub async fn connect(
        &self,
        backend: &str,
        reuse: bool,
        timeout: Duration,
    ) -> Result<Peer, ProxyError> {
        if reuse {
            if let Some(p) = self.take(backend) {
                return Ok(p);
            }
        }
        let addrs = self.resolved.addrs(backend).await?;
        let mut last = None;
        for &a in addrs.iter() {
            match tokio::time::timeout(timeout, connect(a)).await {
                Ok(Ok(s)) => return Ok(Peer::new(s, Side::Backend, a)),
                Ok(Err(e)) => last = Some(e),
                Err(_) => {
                    last = Some(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "connect timed out",
                    ))
                }
            }
        }
        // The backend may have moved: the next connection resolves its name again.
        self.resolved.forget();
        Err(ProxyError::Connect {
            addr: backend.to_string(),
            source: last.unwrap_or_else(|| std::io::Error::other("no address")),
        })
    }

    /// Drops every idle connection.
    pub fn clear(&self) {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    pub fn idle_count(&self) -> usize {
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|q| q.len())
            .sum()
    }
}

/// The addresses of the last backend resolved, reused for `ttl` (read without a lock).
struct Resolver {
    ttl: Duration,
    last: ArcSwapOption<Resolved>,
}

struct Resolved {
    backend: String,
    at: Instant,
    addrs: Arc<Vec<SocketAddr>>,
}

impl Resolver {
    fn new(ttl: Duration) -> Self {
        Resolver {
            ttl,
            last: ArcSwapOption::empty(),
        }
    }

    async fn addrs(&self, backend: &str) -> Result<Arc<Vec<SocketAddr>>, ProxyError> {
        if let Some(r) = self.last.load().as_ref() {
            if r.backend == backend && r.at.elapsed() < self.ttl {
                return Ok(r.addrs.clone());
            }
        }
        let addrs = Arc::new(resolve(backend).await?);
        self.last.store(Some(Arc::new(Resolved {
            backend: backend.to_string(),
            at: Instant::now(),
            addrs: addrs.clone(),
        })));
        Ok(addrs)
    }

    fn forget(&self) {
        self.last.store(None);
    }
}

/// Connects to `addr` without a trip through the event loop when it can: on loopback the
/// handshake is usually over when `connect()` returns `EINPROGRESS`, so the socket is checked
/// at once (`getpeername`) and only a connection still under way waits for writability.
async fn connect(addr: SocketAddr) -> std::io::Result<TcpStream> {
    use socket2::{Domain, Socket, Type};
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM.nonblocking(), None)?;
    let pending = match sock.connect(&addr.into()) {
        Ok(()) => false,
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => sock.peer_addr().is_err(),
        Err(e) => return Err(e),
    };
    let stream = TcpStream::from_std(std::net::TcpStream::from(sock))?;
    if pending {
        stream.writable().await?;
        if let Some(e) = stream.take_error()? {
            return Err(e);
        }
        // writable without an error, but not connected: refused or reset on the way
        stream.peer_addr()?;
    }
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::{connect, Resolver};
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn a_host_name_is_resolved_once_per_ttl_and_again_when_forgotten() {
        let r = Resolver::new(Duration::from_millis(300));
        let a = r.addrs("localhost:6379").await.expect("localhost resolves");
        assert!(
            a.iter().all(|x| x.ip().is_loopback() && x.port() == 6379),
            "{a:?}"
        );
        let b = r.addrs("localhost:6379").await.unwrap();
        assert!(
            Arc::ptr_eq(&a, &b),
            "within the ttl: the same addresses, not resolved again"
        );
        let other = r.addrs("127.0.0.1:6380").await.unwrap();
        assert_eq!(other.as_slice(), &["127.0.0.1:6380".parse().unwrap()]);
        let c = r.addrs("localhost:6379").await.unwrap();
        assert!(
            !Arc::ptr_eq(&a, &c),
            "another backend came between: resolved again"
        );
        r.forget();
        let d = r.addrs("localhost:6379").await.unwrap();
        assert!(!Arc::ptr_eq(&c, &d), "forgotten: resolved again");
        tokio::time::sleep(Duration::from_millis(400)).await;
        let e = r.addrs("localhost:6379").await.unwrap();
        assert!(!Arc::ptr_eq(&d, &e), "after the ttl: resolved again");
    }

    /// A listening socket on a free loopback port with the shortest accept queue.
    fn listener() -> std::net::TcpListener {
        use socket2::{Domain, Socket, Type};
        let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        s.bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
        s.listen(1).unwrap();
        s.into()
    }

    #[tokio::test]
    async fn connects_at_once_to_a_listening_port() {
        let l = listener();
        let addr = l.local_addr().unwrap();
        let s = tokio::time::timeout(Duration::from_secs(5), connect(addr))
            .await
            .expect("in time")
            .expect("connected");
        assert_eq!(s.peer_addr().unwrap(), addr);
        let (_, from) = l.accept().unwrap();
        assert_eq!(from, s.local_addr().unwrap());
    }

    #[tokio::test]
    async fn a_closed_port_is_an_error() {
        let addr = listener().local_addr().unwrap(); // dropped: nothing listens there
        let r = tokio::time::timeout(Duration::from_secs(5), connect(addr))
            .await
            .expect("in time");
        assert_eq!(
            r.expect_err("refused").kind(),
            std::io::ErrorKind::ConnectionRefused
        );
    }

    /// A backend whose accept queue is full drops the SYN: the connection is still under
    /// way when `connect()` returns, and completes when the queue drains (SYN retransmitted).
    #[tokio::test]
    async fn a_handshake_that_completes_late_still_connects() {
        let l = listener();
        let addr = l.local_addr().unwrap();
        let mut held = Vec::new();
        let started = loop {
            assert!(held.len() < 16, "the accept queue never filled");
            let mut pending = Box::pin(connect(addr));
            match tokio::time::timeout(Duration::from_millis(300), pending.as_mut()).await {
                Ok(s) => held.push(s.expect("connected while the queue has room")),
                Err(_) => break pending,
            }
        };
        let pending = started;
        l.set_nonblocking(true).unwrap();
        while l.accept().is_ok() {} // drain the queue: the retransmitted SYN gets in
        let s = tokio::time::timeout(Duration::from_secs(10), pending)
            .await
            .expect("connected after the SYN was retransmitted")
            .expect("connected");
        assert_eq!(s.peer_addr().unwrap(), addr);
    }
}
