//! Each built-in behavior's observable effect, mixes with a seed, and live changes.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ANSWER: &[u8] = b"the real answer from the backend";

/// One request/answer through a proxy with a one-shot backend: (answer, error, time taken).
async fn ask(v: &Running) -> (Vec<u8>, Option<std::io::Error>, Duration) {
    let t = Instant::now();
    let mut s = v.connect().await;
    let _ = s.write_all(b"question").await;
    let (got, err) = read_all(&mut s).await;
    (got, err, t.elapsed())
}

/// A one-shot backend that counts the requests it received.
async fn counting_backend() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let n = Arc::new(AtomicUsize::new(0));
    let n2 = n.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let n = n2.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                if let Ok(k) = s.read(&mut buf).await {
                    if k > 0 {
                        n.fetch_add(1, Ordering::SeqCst);
                        let _ = s.write_all(ANSWER).await;
                    }
                }
            });
        }
    });
    (addr, n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dummy_is_transparent() {
    within(async {
        let backend = oneshot_server(ANSWER.to_vec()).await;
        let v = vaurien(backend).start().await;
        let (got, err, _) = ask(&v).await;
        assert_eq!(got, ANSWER);
        assert!(err.is_none());
        v.stop().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delay_sleeps_before_or_after() {
    within(async {
        let backend = oneshot_server(ANSWER.to_vec()).await;
        for before in ["true", "false"] {
            let v = vaurien(backend)
                .behavior("100:delay")
                .option("delay", "sleep", "0.5")
                .option("delay", "before", before)
                .start()
                .await;
            let (got, _, took) = ask(&v).await;
            assert_eq!(got, ANSWER);
            assert!(
                took >= Duration::from_millis(500),
                "before={before}: {took:?}"
            );
            v.stop().await;
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_sends_1000_random_bytes_instead_of_the_answer_after_warmup() {
    within(async {
        let (backend, requests) = counting_backend().await;
        let v = vaurien(backend)
            .behavior("100:error")
            .option("error", "warmup", "2")
            .start()
            .await;
        for _ in 0..2 {
            assert_eq!(ask(&v).await.0, ANSWER);
        }
        let (got, _, _) = ask(&v).await;
        assert_eq!(got.len(), 1000);
        assert_ne!(&got[..ANSWER.len()], ANSWER);
        // The request still reached the backend.
        let t = Instant::now();
        while requests.load(Ordering::SeqCst) < 3 && t.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(requests.load(Ordering::SeqCst), 3);
        v.stop().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_inject_puts_100_random_bytes_in_the_middle_of_the_answer() {
    within(async {
        let backend = oneshot_server(ANSWER.to_vec()).await;
        let v = vaurien(backend)
            .behavior("100:error")
            .option("error", "inject", "true")
            .start()
            .await;
        let (got, _, _) = ask(&v).await;
        assert_eq!(got.len(), ANSWER.len() + 100);
        let mid = ANSWER.len() / 2;
        assert_eq!(&got[..mid], &ANSWER[..mid]);
        assert_eq!(&got[mid + 100..], &ANSWER[mid..]);
        v.stop().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hang_never_answers_and_closes_after_timeout() {
    within(async {
        let (backend, requests) = counting_backend().await;
        let v = vaurien(backend)
            .behavior("100:hang")
            .timeout(1.0)
            .start()
            .await;
        let (got, _, took) = ask(&v).await;
        assert!(got.is_empty());
        assert!(took >= Duration::from_millis(900), "{took:?}");
        assert_eq!(requests.load(Ordering::SeqCst), 0);
        v.stop().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blackout_closes_at_once_and_nothing_reaches_the_backend() {
    within(async {
        let (backend, requests) = counting_backend().await;
        let v = vaurien(backend).behavior("100:blackout").start().await;
        let (got, _, took) = ask(&v).await;
        assert!(got.is_empty());
        assert!(took < Duration::from_secs(3), "{took:?}");
        assert_eq!(requests.load(Ordering::SeqCst), 0);
        v.stop().await;
    })
    .await
}

/// A backend that greets first, as SMTP or MySQL, then keeps the connection open.
async fn greeting_backend() -> std::net::SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let _ = s.write_all(b"220 hello\r\n").await;
                let mut buf = [0u8; 64];
                while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blackout_on_a_greeting_ends_with_a_fin_and_no_reset_after_it() {
    // The greeting's exchange closes both sides (FIN). The client's direction then sees its
    // socket shut and ran `blackout` too, whose reset went out after the FIN: a client still
    // in connect() failed with EPIPE (and retried), one past it read an error after the EOF.
    within(async {
        let backend = greeting_backend().await;
        let v = vaurien(backend)
            .streaming()
            .behavior("100:blackout")
            .start()
            .await;
        for _ in 0..30 {
            let mut s = v.connect().await;
            let (got, err) = read_all(&mut s).await;
            assert!(got.is_empty(), "{got:?}");
            assert!(err.is_none(), "{err:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
            let mut buf = [0u8; 8];
            let after = s.read(&mut buf).await;
            assert!(matches!(after, Ok(0)), "after the EOF: {after:?}");
            assert!(s.take_error().unwrap().is_none());
        }
        v.stop().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_resets_after_the_request_reached_the_backend() {
    within(async {
        let (backend, requests) = counting_backend().await;
        let v = vaurien(backend).behavior("100:abort").start().await;
        let (got, err, _) = ask(&v).await;
        assert!(got.is_empty(), "{got:?}");
        if let Some(e) = err {
            assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(requests.load(Ordering::SeqCst), 1);
        v.stop().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_fails_the_first_agitate_exchanges_then_recovers() {
    within(async {
        let backend = oneshot_server(ANSWER.to_vec()).await;
        let v = vaurien(backend)
            .behavior("100:transient")
            .option("transient", "agitate", "3")
            .start()
            .await;
        let outcomes: Vec<bool> = {
            let mut v2 = Vec::new();
            for _ in 0..6 {
                v2.push(ask(&v).await.0 == ANSWER);
            }
            v2
        };
        assert_eq!(outcomes, [false, false, false, true, true, true]);
        v.stop().await;
    })
    .await
}

/// The outcomes of `n` sequential requests through a `50:error` mix with a seed.
async fn seeded_outcomes(seed: u64, n: usize) -> Vec<bool> {
    let backend = oneshot_server(ANSWER.to_vec()).await;
    let v = vaurien(backend)
        .behavior("50:error")
        .seed(seed)
        .start()
        .await;
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(ask(&v).await.0 == ANSWER);
    }
    v.stop().await;
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mix_follows_its_percentages_and_a_seed_reproduces_it() {
    within(async {
        let a = seeded_outcomes(42, 120).await;
        let b = seeded_outcomes(42, 120).await;
        let c = seeded_outcomes(43, 120).await;
        assert_eq!(a, b, "same seed, same sequence");
        assert_ne!(a, c, "another seed, another sequence");
        let ok = a.iter().filter(|x| **x).count();
        // 50% with 120 draws: far outside these bounds is a bug, not bad luck.
        assert!((30..=90).contains(&ok), "{ok} of 120 went through");
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_set_through_the_api_apply_to_new_exchanges() {
    within(async {
        let backend = oneshot_server(ANSWER.to_vec()).await;
        let v = vaurien(backend).http().start().await;
        let (st, body) = json(
            v.api(),
            "PUT",
            "/behavior",
            Some(r#"{"name": "delay", "sleep": "0.4"}"#),
        )
        .await;
        assert_eq!((st, body["status"].as_str()), (200, Some("ok")));
        let (_, _, took) = ask(&v).await;
        assert!(took >= Duration::from_millis(400), "{took:?}");
        // Back to the mix given at start, as `with_behavior` does.
        let (st, _) = json(
            v.api(),
            "PUT",
            "/behavior",
            Some(r#"{"name": "100:dummy"}"#),
        )
        .await;
        assert_eq!(st, 200);
        assert_eq!(
            json(v.api(), "GET", "/behavior", None).await.1["behavior"],
            "dummy"
        );
        let (got, _, _) = ask(&v).await;
        assert_eq!(got, ANSWER);
        v.stop().await;
    })
    .await
}
