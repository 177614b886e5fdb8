//! The protocols over real loopback sockets, against tiny fake backends written here (framing
//! edge cases a real server rarely shows: replies split at odd places, pipelining, chunked
//! bodies with trailers, binary values holding CRLF, noreply), and a bounded deterministic
//! random test that feeds random and truncated bytes to every framer (the in-`cargo test`
//! guard that the fuzz targets under `fuzz/` extend).

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use vaurien::protocol::framing::Framer;
use vaurien::protocol::{http, memcache, mysql, redis, smtp};
use vaurien::proxy::{Proxy, ProxyConfig, Settings};

/// A fake backend: for each accepted connection and each step, reads until the step's request
/// bytes arrived (checking them), then writes each piece of its reply with a pause between
/// them; then keeps reading until EOF. A proxy forwards one request at a time, so pipelined
/// requests are separate steps.
async fn fake_backend(steps: Vec<(Vec<u8>, Vec<Vec<u8>>)>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let steps = steps.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                for (expect, reply) in steps {
                    while got.len() < expect.len() {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => got.extend_from_slice(&buf[..n]),
                        }
                    }
                    let rest = got.split_off(expect.len());
                    assert_eq!(
                        got, expect,
                        "the backend got other bytes than the client sent"
                    );
                    got = rest;
                    for piece in reply {
                        s.write_all(&piece).await.unwrap();
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// One step whose reply is written in pieces of `size` bytes.
fn step(expect: &[u8], reply: &[u8], size: usize) -> (Vec<u8>, Vec<Vec<u8>>) {
    (
        expect.to_vec(),
        reply.chunks(size.max(1)).map(|c| c.to_vec()).collect(),
    )
}

async fn start_proxy(
    backend: &str,
    protocol: &str,
    stay: bool,
    options: &[(&str, bool)],
) -> (std::sync::Arc<Proxy>, String) {
    let behavior = ProxyConfig::default().behavior;
    start_proxy_with(backend, protocol, stay, options, &behavior).await
}

/// [`start_proxy`] with a `--behavior` mix.
async fn start_proxy_with(
    backend: &str,
    protocol: &str,
    stay: bool,
    options: &[(&str, bool)],
    behavior: &str,
) -> (std::sync::Arc<Proxy>, String) {
    let mut cfg = ProxyConfig {
        listen: "127.0.0.1:0".into(),
        backend: backend.into(),
        protocol: protocol.into(),
        behavior: behavior.into(),
        settings: Settings {
            timeout: Duration::from_secs(5),
            stay_connected: stay,
            ..Settings::default()
        },
        ..ProxyConfig::default()
    };
    for (name, value) in options {
        cfg.protocol_options
            .set(name, vaurien::behavior::Value::Bool(*value));
    }
    let proxy = Proxy::start(&cfg).await.expect("proxy starts");
    let addr = proxy.local_addr().await.expect("listening").to_string();
    (proxy, addr)
}

/// Sends `request` and reads until `want.len()` bytes came back (or EOF, or 5 s).
async fn round_trip(addr: &str, pieces: &[&[u8]], want_len: usize) -> Vec<u8> {
    let mut c = TcpStream::connect(addr).await.unwrap();
    for p in pieces {
        c.write_all(p).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while out.len() < want_len {
        match tokio::time::timeout_at(deadline, c.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
    out
}

#[tokio::test]
async fn redis_pipelined_binary_commands_and_split_replies() {
    let commands: [&[u8]; 3] = [
        b"*3\r\n$3\r\nSET\r\n$5\r\nk\r\n\r\n\r\n$4\r\n\r\n\r\n\r\n",
        b"*2\r\n$3\r\nGET\r\n$5\r\nk\r\n\r\n\r\n",
        b"HELLO 3\r\n",
    ];
    let replies: [&[u8]; 3] = [
        b"+OK\r\n",
        b"$4\r\n\r\n\r\n\r\n",
        b"%2\r\n$6\r\nserver\r\n$5\r\nredis\r\n$5\r\nmodes\r\n*2\r\n_\r\n|1\r\n+a\r\n:1\r\n,1.5\r\n",
    ];
    // The backend writes each reply cut at odd places.
    let steps = (0..3)
        .map(|i| step(commands[i], replies[i], 3 + 4 * i))
        .collect();
    let backend = fake_backend(steps).await;
    let (_p, addr) = start_proxy(&backend, "redis", true, &[]).await;
    let request = commands.concat();
    let all = replies.concat();
    let got = round_trip(
        &addr,
        &[&request[..10], &request[10..30], &request[30..]],
        all.len(),
    )
    .await;
    assert_eq!(got, all);
}

#[tokio::test]
async fn http_chunked_trailers_split_reads_byte_exact() {
    let request = b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nab\r\n\r\n0\r\nX-T: 1\r\n\r\n".to_vec();
    let response = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5;x=y\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 42\r\n\r\n".to_vec();
    let backend = fake_backend(vec![step(&request, &response, 7)]).await;
    // The fake backend checks the bytes as the client sent them: Host left alone.
    let (_p, addr) =
        start_proxy(&backend, "http", false, &[("overwrite_host_header", false)]).await;
    let got = round_trip(
        &addr,
        &[&request[..20], &request[20..60], &request[60..]],
        response.len() + 100,
    )
    .await;
    assert_eq!(got, response);
}

#[tokio::test]
async fn http_pipelined_requests_each_answered_in_order() {
    let requests = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nHEAD /b HTTP/1.1\r\nHost: x\r\n\r\nGET /c HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
    let responses: Vec<Vec<u8>> = vec![
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na".to_vec(),
        // A HEAD response announces a length but has no body.
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n".to_vec(),
        b"HTTP/1.1 204 No Content\r\n\r\n".to_vec(),
    ];
    let all = responses.concat();
    let heads: [&[u8]; 3] = [
        b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n",
        b"HEAD /b HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /c HTTP/1.1\r\nHost: x\r\n\r\n",
    ];
    let steps = (0..3).map(|i| step(heads[i], &responses[i], 5)).collect();
    let backend = fake_backend(steps).await;
    let (_p, addr) = start_proxy(
        &backend,
        "http",
        false,
        &[
            ("keep_alive", true),
            ("reuse_socket", true),
            ("overwrite_host_header", false),
        ],
    )
    .await;
    let got = round_trip(&addr, &[&requests], all.len()).await;
    assert_eq!(got, all);
}

#[tokio::test]
async fn memcache_noreply_and_data_in_pieces() {
    let request = b"set a 0 0 4 noreply\r\na\r\nb\r\nget a\r\n".to_vec();
    let reply = b"VALUE a 0 4\r\na\r\nb\r\nEND\r\n".to_vec();
    let backend = fake_backend(vec![step(&request, &reply, 9)]).await;
    let (_p, addr) = start_proxy(&backend, "memcache", true, &[]).await;
    let got = round_trip(
        &addr,
        &[&request[..15], &request[15..22], &request[22..]],
        reply.len(),
    )
    .await;
    assert_eq!(got, reply);
}

#[tokio::test]
async fn malformed_stream_closes_only_its_connection() {
    let request = b"*1\r\n$4\r\nPING\r\n".to_vec();
    let backend = fake_backend(vec![step(&request, b"+PONG\r\n", 3)]).await;
    let (_p, addr) = start_proxy(&backend, "redis", true, &[]).await;
    // Garbage: the proxy closes that connection (EOF, no hang)...
    let got = round_trip(&addr, &[b"*1\r\n$zz\r\n"], 1).await;
    assert!(got.is_empty());
    // ...and serves the others.
    assert_eq!(round_trip(&addr, &[&request], 7).await, b"+PONG\r\n");
}

/// A protocol, its options, its exchanges (request, reply) and the backend's greeting.
type RewriteCase<'a> = (
    &'a str,
    Vec<(&'a str, bool)>,
    Vec<(&'a [u8], &'a [u8])>,
    &'a [u8],
);

/// Every protocol hands each whole message to a rewriting hook, both ways (greetings
/// included), and sends what it returns: the backend gets the rewritten requests, the client
/// the rewritten answers, whatever the pieces they came in.
#[tokio::test]
async fn every_protocol_sends_what_a_rewriting_hook_returns() {
    let hook = common::rewriter("test_upper", |m| m.to_ascii_uppercase());
    let mysql_greeting = b"\x05\x00\x00\x00hello".to_vec();
    let cases: Vec<RewriteCase> = vec![
        (
            "tcp",
            vec![("keep_alive", true)],
            vec![(b"some bytes", b"more bytes")],
            b"",
        ),
        (
            "http",
            vec![("overwrite_host_header", false)],
            vec![(
                b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
            )],
            b"",
        ),
        (
            "redis",
            vec![],
            vec![
                (b"*2\r\n$3\r\nget\r\n$1\r\nk\r\n", b"$5\r\nvalue\r\n"),
                (b"*1\r\n$4\r\nping\r\n", b"+pong\r\n"),
            ],
            b"",
        ),
        (
            "memcache",
            vec![],
            vec![(b"get k\r\n", b"VALUE k 0 1\r\nv\r\nEND\r\n")],
            b"",
        ),
        (
            "smtp",
            vec![],
            vec![(b"helo me\r\n", b"250 ok\r\n")],
            b"220 hi\r\n",
        ),
        (
            "mysql",
            vec![],
            vec![(
                b"\x09\x00\x00\x00\x03select 1",
                b"\x07\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00",
            )],
            &mysql_greeting,
        ),
    ];
    for (protocol, options, exchanges, greeting) in cases {
        let before = hook.seen.load(Ordering::Relaxed);
        let mut steps = Vec::new();
        if !greeting.is_empty() {
            steps.push((Vec::new(), vec![greeting.to_vec()]));
        }
        let (mut request, mut want) = (Vec::new(), Vec::new());
        for (req, reply) in &exchanges {
            steps.push(step(&req.to_ascii_uppercase(), reply, 4));
            request.extend_from_slice(req);
            want.extend_from_slice(&reply.to_ascii_uppercase());
        }
        let backend = fake_backend(steps).await;
        let (_p, addr) =
            start_proxy_with(&backend, protocol, true, &options, "100:test_upper").await;
        let talk = async {
            let mut c = TcpStream::connect(&addr).await.unwrap();
            // A client waits for the greeting before it speaks.
            let mut got = vec![0u8; greeting.len()];
            c.read_exact(&mut got).await.unwrap();
            assert_eq!(
                got,
                greeting.to_ascii_uppercase(),
                "{protocol}: the greeting"
            );
            c.write_all(&request[..3]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
            c.write_all(&request[3..]).await.unwrap();
            let mut got = vec![0u8; want.len()];
            c.read_exact(&mut got).await.unwrap();
            got
        };
        let got = tokio::time::timeout(Duration::from_secs(10), talk)
            .await
            .expect("within 10 s");
        assert_eq!(
            got, want,
            "{protocol}: the client gets the rewritten answers"
        );
        let seen = hook.seen.load(Ordering::Relaxed) - before;
        assert!(
            seen >= request.len(),
            "{protocol}: the hook saw {seen} bytes"
        );
    }
}

/// xorshift64*: a small deterministic generator, so the random test needs no crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Feeds `input` to a fresh framer in random pieces, as a connection would (consumed bytes are
/// dropped, the rest is kept and more appended). Checks the framer's promises: it never
/// consumes more than it was given, and where it says a message is complete, feeding the same
/// bytes whole agrees.
fn feed<F: Framer>(make: &dyn Fn() -> F, input: &[u8], rng: &mut Rng) {
    let mut framer = make();
    let mut pending: Vec<u8> = Vec::new();
    let mut at = 0;
    let mut total = 0;
    while at < input.len() {
        let n = 1 + rng.below(64);
        let end = (at + n).min(input.len());
        pending.extend_from_slice(&input[at..end]);
        at = end;
        loop {
            match framer.advance(&pending) {
                Ok(p) => {
                    assert!(p.consumed <= pending.len());
                    pending.drain(..p.consumed);
                    total += p.consumed;
                    if p.done {
                        // The same bytes given whole must give the same length.
                        let mut whole = make();
                        let mut t = 0;
                        loop {
                            let q = whole.advance(&input[t..]).expect("whole agrees");
                            t += q.consumed;
                            if q.done || q.consumed == 0 {
                                break;
                            }
                        }
                        assert_eq!(t, total, "split and whole framing disagree");
                        return;
                    }
                    if p.consumed == 0 {
                        break;
                    }
                }
                Err(_) => return,
            }
        }
    }
}

fn mutate(sample: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut v = sample.to_vec();
    match rng.below(5) {
        0 => v.truncate(rng.below(v.len() + 1)),
        1 => {
            for _ in 0..1 + rng.below(4) {
                if !v.is_empty() {
                    let i = rng.below(v.len());
                    v[i] = rng.next() as u8;
                }
            }
        }
        2 => {
            let i = rng.below(v.len() + 1);
            let junk: Vec<u8> = (0..rng.below(16))
                .map(|_| b"\r\n0123456789$*:+-VALUE END"[rng.below(26)])
                .collect();
            v.splice(i..i, junk);
        }
        3 => v = (0..rng.below(200)).map(|_| rng.next() as u8).collect(),
        _ => {}
    }
    v
}

#[test]
fn random_and_truncated_bytes_never_panic_any_framer() {
    let samples: &[&[u8]] = &[
        b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\n\r\n\r\n\r\n",
        b"%2\r\n+a\r\n*2\r\n:1\r\n$-1\r\n+b\r\n|1\r\n+t\r\n:1\r\n>2\r\n+x\r\n_\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;e\r\nabc\r\n0\r\nT: 1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        b"set k 0 0 5 noreply\r\nab\r\nc\r\n",
        b"VALUE k 0 2 9\r\nhi\r\nSTAT x 1\r\nEND\r\n",
        b"250-a\r\n250-b\r\n250 c\r\nBDAT 3 LAST\r\nabc\r\n.\r\n",
        b"\x01\x00\x00\x01\x02\x05\x00\x00\x02\x03def\x05\x00\x00\x03\xfe\x00\x00\x02\x00\x02\x00\x00\x04\x011\x05\x00\x00\x05\xfe\x00\x00\x02\x00",
    ];
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    for round in 0..3000 {
        let sample = samples[round % samples.len()];
        let input = mutate(sample, &mut rng);
        feed(&redis::RequestFramer::new, &input, &mut rng);
        feed(&redis::RespFramer::new, &input, &mut rng);
        feed(&http::MessageFramer::request, &input, &mut rng);
        feed(&http::MessageFramer::response, &input, &mut rng);
        feed(
            &|| http::BodyFramer::new(http::BodyKind::Chunked),
            &input,
            &mut rng,
        );
        feed(&memcache::RequestFramer::new, &input, &mut rng);
        for kind in [
            memcache::Reply::Line,
            memcache::Reply::Values,
            memcache::Reply::Stats,
            memcache::Reply::Meta,
        ] {
            feed(&|| memcache::ReplyFramer::new(kind), &input, &mut rng);
        }
        feed(&smtp::CommandFramer::new, &input, &mut rng);
        feed(&smtp::ReplyFramer::new, &input, &mut rng);
        feed(&smtp::DataFramer::new, &input, &mut rng);
        feed(&mysql::PacketFramer::new, &input, &mut rng);
        for cmd in [0x03u8, 0x16, 0x04, 0x09, 0x1c, 0x0e] {
            feed(&|| mysql::ResponseFramer::new(cmd), &input, &mut rng);
        }
        // The whole-buffer helpers the behaviors use.
        let _ = redis::request_len(&input);
        let _ = http::request_len(&input);
        let _ = memcache::request_len(&input);
        let _ = smtp::reply_len(&input);
        let _ = mysql::packet_len(&input);
    }
}
