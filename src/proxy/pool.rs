//! A pool of idle backend connections, used when a protocol reuses sockets (`reuse_socket`):
//! at most `pool_max_size` idle connections per backend, each usable for `pool_timeout`.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

use super::peer::{Peer, Role};
use super::{resolve, ProxyError};

pub struct Pool {
    max_size: usize,
    timeout: Duration,
    idle: Mutex<HashMap<String, VecDeque<(Instant, Peer)>>>,
}

impl Pool {
    pub fn new(max_size: usize, timeout: Duration) -> Self {
        Pool {
            max_size,
            timeout,
            idle: Mutex::new(HashMap::new()),
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
        let addrs = resolve(backend).await?;
        let mut last = None;
        for a in addrs {
            match tokio::time::timeout(timeout, TcpStream::connect(a)).await {
                Ok(Ok(s)) => return Ok(Peer::new(s, Role::Backend, a)),
                Ok(Err(e)) => last = Some(e),
                Err(_) => {
                    last = Some(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "connect timed out",
                    ))
                }
            }
        }
        Err(ProxyError::Resolve {
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
