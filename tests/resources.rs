//! Connections are let go: a client that leaves while its request's answer is awaited does not
//! hold the connection (its two sockets, its task) until `--timeout`, which a proxy made
//! through the Toxiproxy API does not have. The soak found it (scripts/soak.sh): a `memcache`
//! proxy with `packet_loss` upstream lost requests, memcached stayed silent, and every such
//! connection stayed open for good after its client had gone.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use common::{vaurien, within, Running};

/// A backend that reads requests and never answers (the request was lost on the way); it
/// reports each connection's end (EOF or error) on the channel and then closes it.
async fn silent_backend() -> (std::net::SocketAddr, mpsc::UnboundedReceiver<&'static str>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let end = loop {
                    match s.read(&mut buf).await {
                        Ok(0) => break "eof",
                        Ok(_) => {}
                        Err(_) => break "error",
                    }
                };
                let _ = tx.send(end);
            });
        }
    });
    (addr, rx)
}

/// A proxy as the Toxiproxy API makes them: --stay-connected, no idle timeout.
async fn toxiproxy_like(protocol: &str, backend: std::net::SocketAddr) -> Running {
    vaurien(backend)
        .protocol(protocol)
        .stay_connected()
        .timeout(365.0 * 24.0 * 3600.0)
        .start()
        .await
}

fn active(v: &Running) -> u64 {
    v.server
        .main_proxy()
        .unwrap()
        .shared
        .metrics
        .connections_active
        .load(Ordering::Relaxed)
}

async fn until_no_connection(v: &Running) {
    let start = Instant::now();
    while active(v) != 0 {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the proxy still holds {} connection(s)",
            active(v)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A client sends `request` through a Toxiproxy-like `protocol` proxy to a backend that never
/// answers, then closes (or resets): the backend sees the connection end, and the proxy holds
/// no connection any more.
async fn client_leaves(protocol: &str, request: &[u8], reset: bool) {
    let (backend, mut ends) = silent_backend().await;
    let v = toxiproxy_like(protocol, backend).await;
    let mut c = TcpStream::connect(v.addr).await.unwrap();
    c.write_all(request).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        active(&v),
        1,
        "{protocol}: the exchange waits for its answer"
    );
    if reset {
        socket2::SockRef::from(&c)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
    }
    drop(c); // the client gives up
    let end = tokio::time::timeout(Duration::from_secs(5), ends.recv())
        .await
        .unwrap_or_else(|_| panic!("{protocol}: the client's leaving reaches the backend"));
    if !reset {
        assert_eq!(end, Some("eof"), "{protocol}: passed on as a close");
    }
    until_no_connection(&v).await;
    v.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_closes_while_its_answer_is_awaited_is_let_go() {
    within(async {
        client_leaves("memcache", b"get k\r\n", false).await;
        client_leaves("redis", b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", false).await;
        client_leaves("http", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", false).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_resets_while_its_answer_is_awaited_is_let_go() {
    within(client_leaves("memcache", b"get k\r\n", true)).await;
}

/// A client that half-closes after its request still gets the answer: the half-close is
/// passed on, and a backend that answers before it closes is relayed whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_half_closes_after_its_request_still_gets_the_answer() {
    within(async {
        // Answers only once it has seen the client's EOF, then closes.
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let backend = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
                    let _ = s.write_all(b"END\r\n").await;
                });
            }
        });
        let v = toxiproxy_like("memcache", backend).await;
        let mut c = TcpStream::connect(v.addr).await.unwrap();
        c.write_all(b"get k\r\n").await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        c.shutdown().await.unwrap();
        let mut got = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut got))
            .await
            .expect("the answer comes and the connection ends")
            .unwrap();
        assert_eq!(got, b"END\r\n");
        until_no_connection(&v).await;
        v.stop().await;
    })
    .await;
}
