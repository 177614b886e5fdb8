//! The accept loop: a connection slot is taken before `accept()` (back-pressure by
//! construction), accept errors such as EMFILE are retried with a backoff.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{connection, resolve, ProxyError, ProxyShared};

/// Binds `addr` (the first address it resolves to) with the given backlog.
pub async fn bind(addr: &str, backlog: u32) -> Result<TcpListener, ProxyError> {
    let mut last = None;
    for sa in resolve(addr).await? {
        let sock = if sa.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        };
        let r = sock.and_then(|s| {
            s.set_reuseaddr(true)?;
            s.bind(sa)?;
            s.listen(backlog.max(1))
        });
        match r {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
    }
    Err(ProxyError::Bind {
        addr: addr.to_string(),
        source: last.unwrap_or_else(|| std::io::Error::other("no address")),
    })
}

pub async fn accept_loop(
    listener: TcpListener,
    shared: Arc<ProxyShared>,
    stop: CancellationToken,
    kill: CancellationToken,
    tracker: TaskTracker,
) {
    let slots = Arc::new(Semaphore::new(shared.settings.max_connections));
    let mut backoff = Duration::from_millis(5);
    loop {
        let permit = tokio::select! {
            _ = stop.cancelled() => return,
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, addr)) => {
                backoff = Duration::from_millis(5);
                let shared = shared.clone();
                let kill = kill.clone();
                match shared.faults.load().mix.home() {
                    None => {
                        tracker.spawn(async move {
                            connection::serve(shared, stream, addr, kill).await;
                            drop(permit);
                        });
                    }
                    // The mix's behavior has a runtime of its own (a Python behavior's lane):
                    // the socket moves to that runtime's reactor, and the connection runs
                    // there.
                    Some(home) => {
                        let moved = stream.into_std();
                        home.spawn(tracker.track_future(async move {
                            match moved.and_then(tokio::net::TcpStream::from_std) {
                                Ok(stream) => connection::serve(shared, stream, addr, kill).await,
                                Err(e) => tracing::warn!(
                                    error = %e,
                                    "cannot move the connection from {addr} to its behavior's threads"
                                ),
                            }
                            drop(permit);
                        }));
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed; retrying in {backoff:?}");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}
