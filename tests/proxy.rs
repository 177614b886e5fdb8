//! The engine: byte-exact forwarding, streaming with half-close, the zero-copy and ordinary
//! paths, the tcp protocol's exchange semantics, backends that are down, the pool, shutdown.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_is_byte_exact_both_ways_with_half_close() {
    within(async {
        let backend = echo_server().await;
        for zero_copy in [true, false] {
            let v = vaurien(backend)
                .streaming()
                .zero_copy(zero_copy)
                .start()
                .await;
            let data = payload(8 << 20, 1);
            let mut s = v.connect().await;
            // The echo only ends after our half-close reaches it through the proxy, and we
            // only see EOF after its half-close came back: half-close passes both ways.
            let got = roundtrip(&mut s, &data).await.unwrap();
            assert_eq!(got.len(), data.len(), "zero_copy={zero_copy}");
            assert_eq!(sha256(&got), sha256(&data), "zero_copy={zero_copy}");
            v.stop().await;
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_copy_and_ordinary_paths_give_identical_bytes() {
    within(async {
        let backend = echo_server().await;
        let data = payload(3 << 20, 7);
        let mut results = Vec::new();
        for zero_copy in [true, false] {
            let v = vaurien(backend)
                .streaming()
                .zero_copy(zero_copy)
                .start()
                .await;
            let mut s = v.connect().await;
            results.push(roundtrip(&mut s, &data).await.unwrap());
            v.stop().await;
        }
        assert_eq!(results[0], results[1]);
        assert_eq!(results[0], data);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_polling_is_byte_exact_for_small_messages_and_bulk() {
    within(async {
        let backend = echo_server().await;
        let v = vaurien(backend)
            .streaming()
            .busy_poll(Duration::from_micros(200))
            .start()
            .await;
        let mut s = v.connect().await;
        // Request and answer, 500 times, sizes 1..=3000: every chunk goes through the
        // busy-poll window (the proxy has one connection).
        let data = payload(3000 * 500, 11);
        let mut off = 0;
        for i in 0..500usize {
            let n = 1 + (i * 7919) % 3000;
            let msg = &data[off..off + n];
            off += n;
            s.write_all(msg).await.unwrap();
            let mut back = vec![0u8; n];
            s.read_exact(&mut back).await.unwrap();
            assert_eq!(back, msg, "message {i}");
        }
        // Then bulk and a half-close, on the same connection.
        let bulk = payload(4 << 20, 12);
        let got = roundtrip(&mut s, &bulk).await.unwrap();
        assert_eq!(sha256(&got), sha256(&bulk));
        v.stop().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_polling_of_a_framed_protocol_keeps_every_reply_whole_and_in_order() {
    within(async {
        // A line server: each inline command `<text>\r\n` is answered `+<text>\r\n`.
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let backend = l.local_addr().unwrap();
        tokio::spawn(async move {
            use tokio::io::AsyncBufReadExt;
            let (s, _) = l.accept().await.unwrap();
            let (r, mut w) = s.into_split();
            let mut lines = tokio::io::BufReader::new(r).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                w.write_all(format!("+{line}\r\n").as_bytes())
                    .await
                    .unwrap();
            }
        });
        let v = vaurien(backend)
            .protocol("redis")
            .stay_connected()
            .busy_poll(Duration::from_micros(500))
            .start()
            .await;
        let mut s = v.connect().await;
        // 500 commands of 1..=2000 bytes, one at a time: both waits of each exchange (the
        // command, then its reply) go through the busy-poll window (one connection).
        let alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789";
        for i in 0..500usize {
            let n = 1 + (i * 7919) % 2000;
            let text: Vec<u8> = (0..n)
                .map(|k| alphabet[(i + k * 31) % alphabet.len()])
                .collect();
            let mut cmd = text.clone();
            cmd.extend_from_slice(b"\r\n");
            s.write_all(&cmd).await.unwrap();
            let mut back = vec![0u8; n + 3];
            s.read_exact(&mut back).await.unwrap();
            assert_eq!(back[0], b'+', "reply {i}");
            assert_eq!(&back[1..=n], &text[..], "reply {i}");
            assert_eq!(&back[n + 1..], b"\r\n", "reply {i}");
        }
        v.stop().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_close_keeps_the_other_direction_flowing() {
    within(async {
        // The backend reads everything until EOF, then answers with a large body.
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let backend = l.local_addr().unwrap();
        let answer = payload(2 << 20, 3);
        let a2 = answer.clone();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut req = Vec::new();
            s.read_to_end(&mut req).await.unwrap();
            assert_eq!(req, b"the whole request");
            s.write_all(&a2).await.unwrap();
        });
        let v = vaurien(backend).streaming().start().await;
        let mut s = v.connect().await;
        let got = roundtrip(&mut s, b"the whole request").await.unwrap();
        assert_eq!(sha256(&got), sha256(&answer));
        v.stop().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_half_closes_first_still_gets_all_data_and_eof() {
    within(async {
        // The backend speaks first and half-closes, then reads until the client's EOF: that
        // last EOF reaches it when the proxy closes the connection (both ways are over).
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let backend = l.local_addr().unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    s.write_all(b"banner").await.unwrap();
                    s.shutdown().await.unwrap();
                    let mut got = Vec::new();
                    s.read_to_end(&mut got).await.unwrap();
                    let _ = tx.send(got);
                });
            }
        });
        for zero_copy in [true, false] {
            let v = vaurien(backend)
                .streaming()
                .zero_copy(zero_copy)
                .start()
                .await;
            let mut s = v.connect().await;
            let mut banner = Vec::new();
            s.read_to_end(&mut banner).await.unwrap();
            assert_eq!(banner, b"banner", "zero_copy={zero_copy}");
            let data = payload(1 << 20, 9);
            s.write_all(&data).await.unwrap();
            s.shutdown().await.unwrap();
            let got = rx.recv().await.unwrap();
            assert_eq!(got.len(), data.len(), "zero_copy={zero_copy}");
            assert_eq!(sha256(&got), sha256(&data), "zero_copy={zero_copy}");
            v.stop().await;
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_connections_at_once_stay_separate() {
    within(async {
        let backend = echo_server().await;
        let v = vaurien(backend).streaming().start().await;
        let addr = v.addr;
        let tasks: Vec<_> = (0..64u64)
            .map(|i| {
                tokio::spawn(async move {
                    let data = payload(64 * 1024 + i as usize, i);
                    let mut s = TcpStream::connect(addr).await.unwrap();
                    let got = roundtrip(&mut s, &data).await.unwrap();
                    assert_eq!(got, data, "connection {i}");
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        v.stop().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_without_keep_alive_forwards_the_first_read_and_relays_until_close() {
    within(async {
        // A one-shot backend: answers the first read and closes.
        let backend = oneshot_server(b"answer".to_vec()).await;
        let v = vaurien(backend).start().await;
        let mut s = v.connect().await;
        s.write_all(b"question").await.unwrap();
        let (got, _) = read_all(&mut s).await;
        assert_eq!(got, b"answer");
        v.stop().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_without_keep_alive_forwards_at_most_buffer_bytes_of_the_first_read() {
    within(async {
        // The backend answers with how many bytes it got before the proxy stopped sending.
        let counter = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let backend = counter.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut c, _)) = counter.accept().await {
                tokio::spawn(async move {
                    let mut got = 0;
                    let mut buf = [0u8; 65536];
                    // Whatever arrives within 300 ms of the first byte.
                    let first = c.read(&mut buf).await.unwrap_or(0);
                    got += first;
                    let until = tokio::time::Instant::now() + Duration::from_millis(300);
                    while let Ok(Ok(n)) = tokio::time::timeout_at(until, c.read(&mut buf)).await {
                        if n == 0 {
                            break;
                        }
                        got += n;
                    }
                    let _ = c.write_all(got.to_string().as_bytes()).await;
                });
            }
        });
        let data = payload(20_000, 3);
        for (buffer, want) in [(None, 8124), (Some(100), 100)] {
            let mut b = vaurien(backend);
            if let Some(n) = buffer {
                b = b.protocol_option("buffer", vaurien::behavior::Value::Int(n));
            }
            let v = b.timeout(1.0).start().await;
            let mut s = v.connect().await;
            s.write_all(&data).await.unwrap();
            let (got, _) = read_all(&mut s).await;
            assert_eq!(
                String::from_utf8_lossy(&got),
                want.to_string(),
                "buffer={buffer:?}"
            );
            v.stop().await;
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_without_keep_alive_closes_after_timeout_when_the_backend_stays() {
    within(async {
        let backend = reply_server(|req| [b"re:".as_slice(), req].concat()).await;
        let v = vaurien(backend).timeout(1.0).start().await;
        let mut s = v.connect().await;
        let t = Instant::now();
        s.write_all(b"ping").await.unwrap();
        let (got, _) = read_all(&mut s).await;
        assert_eq!(got, b"re:ping");
        assert!(
            t.elapsed() >= Duration::from_millis(900),
            "{:?}",
            t.elapsed()
        );
        v.stop().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stay_connected_keep_alive_serves_many_exchanges_on_one_connection() {
    within(async {
        let backend = reply_server(|req| [b"re:".as_slice(), req].concat()).await;
        // A behavior that is not dummy, so that the hooks' path (not the zero-copy one) runs.
        let v = vaurien(backend)
            .streaming()
            .behavior("100:delay")
            .option("delay", "sleep", "0")
            .start()
            .await;
        let mut s = v.connect().await;
        for i in 0..20 {
            let msg = format!("msg{i}");
            s.write_all(msg.as_bytes()).await.unwrap();
            let mut buf = vec![0u8; 3 + msg.len()];
            s.read_exact(&mut buf).await.unwrap();
            assert_eq!(buf, format!("re:{msg}").as_bytes());
        }
        v.stop().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_is_down_closes_that_client_only() {
    within(async {
        let dead = dead_port().await;
        let v = vaurien(dead).streaming().http().start().await;
        let mut s = v.connect().await;
        let (got, _) = read_all(&mut s).await;
        assert!(got.is_empty());
        // The proxy still serves: point it at a live backend through the API.
        let live = echo_server().await;
        let (st, _) = json(
            v.api(),
            "PUT",
            "/backend",
            Some(&format!("{{\"backend\": \"{live}\"}}")),
        )
        .await;
        assert_eq!(st, 200);
        let mut s = v.connect().await;
        assert_eq!(roundtrip(&mut s, b"alive").await.unwrap(), b"alive");
        v.stop().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_host_names_and_ipv6_work() {
    within(async {
        let backend = echo_server().await;
        let mut b = vaurien(backend).streaming();
        b.cfg.backend = format!("localhost:{}", backend.port());
        let v = b.start().await;
        let mut s = v.connect().await;
        assert_eq!(roundtrip(&mut s, b"by name").await.unwrap(), b"by name");
        v.stop().await;
        // IPv6 listen address (skipped when the machine has no ::1).
        if std::net::TcpListener::bind("[::1]:0").is_ok() {
            let mut b = vaurien(backend).streaming();
            b.cfg.listen = "[::1]:0".into();
            let v = b.start().await;
            assert!(v.addr.is_ipv6());
            let mut s = v.connect().await;
            assert_eq!(roundtrip(&mut s, b"v6").await.unwrap(), b"v6");
            v.stop().await;
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_behavior_live_takes_a_streaming_connection_off_the_fast_path() {
    within(async {
        let backend = reply_server(|req| req.to_vec()).await;
        let v = vaurien(backend).streaming().http().start().await;
        let mut s = v.connect().await;
        s.write_all(b"one").await.unwrap();
        let mut buf = [0u8; 3];
        s.read_exact(&mut buf).await.unwrap();
        // Now every chunk is delayed by 0.3 s in each direction.
        let (st, _) = json(
            v.api(),
            "PUT",
            "/behavior",
            Some(r#"{"name": "delay", "sleep": 0.3}"#),
        )
        .await;
        assert_eq!(st, 200);
        let t = Instant::now();
        s.write_all(b"two").await.unwrap();
        s.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"two");
        assert!(
            t.elapsed() >= Duration::from_millis(550),
            "{:?}",
            t.elapsed()
        );
        v.stop().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reuse_socket_pools_backend_connections() {
    within(async {
        // Count the backend's accepted connections.
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let backend = l.local_addr().unwrap();
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let acc = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                acc.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        // keep_alive without --stay-connected: the conversation ends when the client leaves
        // (its EOF ends the connection, as the original), and the backend connection goes
        // back to the pool for the next client.
        let v = vaurien(backend)
            .protocol_option("keep_alive", vaurien::behavior::Value::Bool(true))
            .protocol_option("reuse_socket", vaurien::behavior::Value::Bool(true))
            .start()
            .await;
        for i in 0..5 {
            let mut s = v.connect().await;
            let msg = format!("hello{i}");
            s.write_all(msg.as_bytes()).await.unwrap();
            let mut buf = vec![0u8; msg.len()];
            s.read_exact(&mut buf).await.unwrap();
            assert_eq!(buf, msg.as_bytes());
            s.shutdown().await.unwrap();
            let (rest, _) = read_all(&mut s).await;
            assert!(rest.is_empty());
        }
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
        v.stop().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_exchanges_in_flight_finish_and_stops_accepting() {
    within(async {
        let backend = reply_server(|req| req.to_vec()).await;
        let v = vaurien(backend)
            .streaming()
            .behavior("100:delay")
            .option("delay", "sleep", "0.5")
            .start()
            .await;
        let addr = v.addr;
        let mut s = v.connect().await;
        s.write_all(b"in flight").await.unwrap();
        let server = v.server.clone();
        let stopping = tokio::spawn(async move { server.shutdown().await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        // No new connections are accepted while stopping.
        assert!(TcpStream::connect(addr).await.is_err());
        // The exchange in flight still completes (0.5 s delay each way, 3 s grace).
        let mut buf = [0u8; 9];
        let r = s.read_exact(&mut buf).await;
        assert!(r.is_ok(), "{r:?}");
        assert_eq!(&buf, b"in flight");
        stopping.await.unwrap();
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_messages_on_the_fast_path_never_stall() {
    within(async {
        // Many small request/answer rounds, then a bulk burst on the same connection: the copy
        // path (short reads clear readiness), then the switch to splice, then small again.
        let backend = reply_server(|req| req.to_vec()).await;
        for zero_copy in [true, false] {
            let v = vaurien(backend)
                .streaming()
                .zero_copy(zero_copy)
                .start()
                .await;
            let mut s = v.connect().await;
            for i in 0..2000u32 {
                let msg = i.to_be_bytes();
                s.write_all(&msg).await.unwrap();
                let mut buf = [0u8; 4];
                s.read_exact(&mut buf).await.unwrap();
                assert_eq!(buf, msg, "round {i}, zero_copy={zero_copy}");
            }
            let bulk = payload(1 << 20, 9);
            let (mut r, mut w) = s.split();
            let send = async { w.write_all(&bulk).await.unwrap() };
            let mut got = vec![0u8; bulk.len()];
            let recv = async { r.read_exact(&mut got).await.unwrap() };
            tokio::join!(send, recv);
            assert_eq!(sha256(&got), sha256(&bulk));
            for i in 0..200u32 {
                let msg = i.to_le_bytes();
                s.write_all(&msg).await.unwrap();
                let mut buf = [0u8; 4];
                s.read_exact(&mut buf).await.unwrap();
                assert_eq!(buf, msg);
            }
            v.stop().await;
        }
    })
    .await
}
