//! The toxics' effects, with real sockets through a proxy created over the Toxiproxy API.
//! Timing is checked only as generous lower bounds.

mod toxiproxy_support;

use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use toxiproxy_support::*;
use vaurien::proxy::ProxyConfig;
use vaurien::server::ServerConfig;

#[tokio::test]
async fn latency_holds_each_direction_and_stacks() {
    let (_s, api) = server().await;
    let listen = api.proxy("p", echo().await).await;
    let mut c = TcpStream::connect(listen).await.unwrap();
    roundtrip(&mut c, b"warm").await;
    api.toxic("p", r#"{"type":"latency","attributes":{"latency":150}}"#)
        .await;
    api.toxic(
        "p",
        r#"{"name":"up","type":"latency","stream":"upstream","attributes":{"latency":100}}"#,
    )
    .await;
    let t = Instant::now();
    assert_eq!(roundtrip(&mut c, b"ping").await, b"ping");
    assert!(
        t.elapsed() >= Duration::from_millis(250),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(api.delete("/proxies/p/toxics/up").await.status, 204);
    assert_eq!(
        api.delete("/proxies/p/toxics/latency_downstream")
            .await
            .status,
        204
    );
    eprintln!("{}", api.get("/proxies/p").await.body);
    let t = Instant::now();
    roundtrip(&mut c, b"fast").await;
    assert!(
        t.elapsed() < Duration::from_millis(250),
        "{:?}",
        t.elapsed()
    );
}

/// `data` through a `bandwidth` toxic of `rate` KB/s arrives whole, in order, and takes at
/// least `at_least_ms`.
async fn bandwidth_delivers(rate: u32, data: Vec<u8>, at_least_ms: u64) {
    let (_s, api) = server().await;
    let listen = api.proxy("p", source(data.clone()).await).await;
    api.toxic(
        "p",
        &format!(r#"{{"type":"bandwidth","attributes":{{"rate":{rate}}}}}"#),
    )
    .await;
    let t = Instant::now();
    let mut c = TcpStream::connect(listen).await.unwrap();
    let (got, err) = within(read_all(&mut c)).await;
    assert!(err.is_none());
    assert_eq!(got, data);
    assert!(
        t.elapsed() >= Duration::from_millis(at_least_ms),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn bandwidth_limits_the_rate() {
    // 100 KB/s: 50 KB takes about 500 ms.
    bandwidth_delivers(100, vec![1u8; 50_000], 400).await;
}

#[tokio::test]
async fn limit_data_forwards_exactly_then_closes() {
    let (_s, api) = server().await;
    let data: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
    let listen = api.proxy("p", source(data.clone()).await).await;
    api.toxic("p", r#"{"type":"limit_data","attributes":{"bytes":1234}}"#)
        .await;
    let mut c = TcpStream::connect(listen).await.unwrap();
    let (got, _) = within(read_all(&mut c)).await;
    assert_eq!(got, data[..1234]);
}

#[tokio::test]
async fn reset_peer_sends_a_tcp_reset() {
    let (_s, api) = server().await;
    let listen = api.proxy("p", echo().await).await;
    api.toxic("p", r#"{"type":"reset_peer","attributes":{"timeout":50}}"#)
        .await;
    let mut c = TcpStream::connect(listen).await.unwrap();
    c.write_all(b"hello").await.unwrap();
    let (got, err) = within(read_all(&mut c)).await;
    assert!(got.is_empty());
    let err = err.expect("a reset, not a clean end");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
}

#[tokio::test]
async fn timeout_swallows_and_closes_after_t() {
    let (_s, api) = server().await;
    let listen = api.proxy("p", echo().await).await;
    api.toxic("p", r#"{"type":"timeout","attributes":{"timeout":300}}"#)
        .await;
    let t = Instant::now();
    let mut c = TcpStream::connect(listen).await.unwrap();
    c.write_all(b"lost").await.unwrap();
    let (got, _) = within(read_all(&mut c)).await;
    assert!(got.is_empty());
    assert!(
        t.elapsed() >= Duration::from_millis(280),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn removing_a_timeout_toxic_closes_the_connections_it_held() {
    let (_s, api) = server().await;
    let listen = api.proxy("p", echo().await).await;
    api.toxic("p", r#"{"type":"timeout","attributes":{"timeout":0}}"#)
        .await;
    let mut c = TcpStream::connect(listen).await.unwrap();
    c.write_all(b"held").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        api.delete("/proxies/p/toxics/timeout_downstream")
            .await
            .status,
        204
    );
    let (got, _) = within(read_all(&mut c)).await;
    assert!(got.is_empty());
    // New connections work again.
    let mut c = TcpStream::connect(listen).await.unwrap();
    assert_eq!(roundtrip(&mut c, b"ok").await, b"ok");
}

#[tokio::test]
async fn slicer_is_byte_exact_and_slow_close_delays_the_end() {
    let (_s, api) = server().await;
    let data: Vec<u8> = (0..20_000u32).map(|i| (i * 7) as u8).collect();
    let listen = api.proxy("p", source(data.clone()).await).await;
    api.toxic(
        "p",
        r#"{"type":"slicer","attributes":{"average_size":100,"size_variation":50,"delay":10}}"#,
    )
    .await;
    api.toxic("p", r#"{"type":"slow_close","attributes":{"delay":300}}"#)
        .await;
    let t = Instant::now();
    let mut c = TcpStream::connect(listen).await.unwrap();
    let (got, err) = within(read_all(&mut c)).await;
    assert!(err.is_none());
    assert_eq!(got, data);
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );
}

/// The chunks an echo sends back through a packet_loss toxic, for a seed.
async fn survivors(seed: u64) -> Vec<u8> {
    let s = server_with(ServerConfig {
        seed: Some(seed),
        ..ServerConfig::default()
    })
    .await;
    let api = Api::new(s.api_addr().unwrap());
    let listen = api.proxy("p", echo().await).await;
    api.toxic(
        "p",
        r#"{"type":"packet_loss","stream":"upstream","attributes":{"loss_rate":0.5}}"#,
    )
    .await;
    let mut c = TcpStream::connect(listen).await.unwrap();
    let mut out = Vec::new();
    for i in 0..40u8 {
        c.write_all(&[i]).await.unwrap();
        // One byte per chunk: wait for it to come back or to be lost.
        let mut b = [0u8; 1];
        if let Ok(Ok(1)) = tokio::time::timeout(
            Duration::from_millis(100),
            tokio::io::AsyncReadExt::read(&mut c, &mut b),
        )
        .await
        {
            out.push(b[0]);
        }
    }
    out
}

#[tokio::test]
async fn packet_loss_drops_chunks_reproducibly_with_a_seed() {
    let a = survivors(42).await;
    let b = survivors(42).await;
    assert_eq!(a, b, "same seed, same drops");
    assert!(a.len() > 5 && a.len() < 35, "{}", a.len());
}

#[tokio::test]
async fn a_toxic_in_a_behavior_mix_and_a_behavior_as_a_toxic() {
    // `--behavior 100:latency --behavior-latency-latency 200` on the command line's proxy.
    let up = echo().await;
    let mut options = std::collections::BTreeMap::new();
    let mut o = vaurien::behavior::Options::default();
    o.set("latency", vaurien::behavior::Value::Int(200));
    options.insert("latency".to_string(), o);
    let s = server_with(ServerConfig {
        proxy: Some(ProxyConfig {
            listen: "127.0.0.1:0".into(),
            backend: up.to_string(),
            behavior: "100:latency".into(),
            behavior_options: options,
            ..ProxyConfig::default()
        }),
        ..ServerConfig::default()
    })
    .await;
    let listen = s.main_proxy().unwrap().local_addr().await.unwrap();
    let t = Instant::now();
    let mut c = TcpStream::connect(listen).await.unwrap();
    c.write_all(b"hi").await.unwrap();
    let mut b = [0u8; 2];
    within(tokio::io::AsyncReadExt::read_exact(&mut c, &mut b))
        .await
        .unwrap();
    assert_eq!(&b, b"hi");
    assert!(
        t.elapsed() >= Duration::from_millis(190),
        "{:?}",
        t.elapsed()
    );

    // A vaurien behavior (`delay`) added as a toxic through the Toxiproxy API.
    let (_s2, api) = server().await;
    let listen = api.proxy("p", echo().await).await;
    let t = api
        .toxic("p", r#"{"type":"delay","attributes":{"sleep":0.2}}"#)
        .await;
    assert_eq!(t["attributes"]["sleep"], serde_json::json!(0.2));
    let mut c = TcpStream::connect(listen).await.unwrap();
    let t = Instant::now();
    assert_eq!(roundtrip(&mut c, b"slow").await, b"slow");
    assert!(
        t.elapsed() >= Duration::from_millis(190),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn toxics_declared_with_the_proxy_apply_to_the_first_connection() {
    let (_s, api) = server().await;
    let up = echo().await;
    let r = api
        .post(
            "/proxies",
            &format!(
                r#"{{"name":"p","listen":"127.0.0.1:0","upstream":"{up}",
                    "toxics":[{{"type":"latency","attributes":{{"latency":200}}}}]}}"#
            ),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let listen = r.json()["listen"].as_str().unwrap().to_string();
    let mut c = TcpStream::connect(listen).await.unwrap();
    let t = Instant::now();
    roundtrip(&mut c, b"x").await;
    assert!(
        t.elapsed() >= Duration::from_millis(190),
        "{:?}",
        t.elapsed()
    );
}

// -- Faults limited in count or time (vaurien extras: `count`, `expires_ms`) ----------------

#[tokio::test]
async fn count_limits_a_toxic_to_the_first_connections() {
    let (_s, api) = server().await;
    let data: Vec<u8> = (0..5_000u32).map(|i| i as u8).collect();
    let listen = api.proxy("p", source(data.clone()).await).await;
    let t = api
        .toxic(
            "p",
            r#"{"name":"cut","type":"limit_data","count":2,"attributes":{"bytes":10}}"#,
        )
        .await;
    assert_eq!(t["count"], 2);
    assert!(t.get("expires_ms").is_none(), "{t}");
    assert_eq!(t["attributes"], serde_json::json!({"bytes":10}));
    for i in 0..2 {
        let mut c = TcpStream::connect(listen).await.unwrap();
        let (got, _) = within(read_all(&mut c)).await;
        assert_eq!(got, data[..10], "connection {i}");
    }
    // The budget is spent: later connections pass untouched, the toxic stays listed.
    for _ in 0..2 {
        let mut c = TcpStream::connect(listen).await.unwrap();
        let (got, _) = within(read_all(&mut c)).await;
        assert_eq!(got, data);
    }
    assert_eq!(api.get("/proxies/p/toxics/cut").await.json()["count"], 2);
    // An update keeps the limits (and the budget spent).
    let r = api
        .patch("/proxies/p/toxics/cut", r#"{"attributes":{"bytes":20}}"#)
        .await;
    assert_eq!(r.json()["count"], 2);
    let mut c = TcpStream::connect(listen).await.unwrap();
    assert_eq!(within(read_all(&mut c)).await.0, data);
}

#[tokio::test]
async fn count_on_a_timeout_toxic_closes_only_the_admitted_connections() {
    let (_s, api) = server().await;
    let listen = api.proxy("p", echo().await).await;
    api.toxic(
        "p",
        r#"{"type":"timeout","count":1,"attributes":{"timeout":200}}"#,
    )
    .await;
    let mut first = TcpStream::connect(listen).await.unwrap();
    first.write_all(b"lost").await.unwrap();
    let (got, _) = within(read_all(&mut first)).await;
    assert!(got.is_empty());
    let mut second = TcpStream::connect(listen).await.unwrap();
    assert_eq!(roundtrip(&mut second, b"ping").await, b"ping");
    tokio::time::sleep(Duration::from_millis(400)).await;
    // Still open after the timeout: the toxic does not hold this connection.
    assert_eq!(roundtrip(&mut second, b"pong").await, b"pong");
}

#[tokio::test]
async fn count_on_a_per_exchange_behavior_counts_exchanges() {
    let (_s, api) = server().await;
    let listen = api.proxy("p", echo().await).await;
    api.toxic("p", r#"{"type":"abort","count":2}"#).await;
    for _ in 0..2 {
        let mut c = TcpStream::connect(listen).await.unwrap();
        c.write_all(b"x").await.unwrap();
        let (got, _) = within(read_all(&mut c)).await;
        assert!(got.is_empty());
    }
    let mut c = TcpStream::connect(listen).await.unwrap();
    assert_eq!(roundtrip(&mut c, b"back").await, b"back");
}

#[tokio::test]
async fn expires_ms_removes_the_toxic_as_a_delete_would() {
    let (_s, api) = server().await;
    let listen = api.proxy("p", echo().await).await;
    let added = Instant::now();
    let t = api
        .toxic(
            "p",
            r#"{"name":"slow","type":"latency","expires_ms":400,"attributes":{"latency":150}}"#,
        )
        .await;
    assert_eq!(t["expires_ms"], 400);
    assert!(t.get("count").is_none(), "{t}");
    // A held connection (timeout 0 = never closes) is closed when its toxic expires.
    api.toxic(
        "p",
        r#"{"name":"hold","type":"timeout","stream":"upstream","expires_ms":400,"attributes":{"timeout":0}}"#,
    )
    .await;
    let mut held = TcpStream::connect(listen).await.unwrap();
    held.write_all(b"lost").await.unwrap();
    let (got, _) = within(read_all(&mut held)).await;
    assert!(got.is_empty());
    assert!(added.elapsed() >= Duration::from_millis(400));
    within(async {
        while api.get("/proxies/p/toxics").await.body != "[]" {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let mut c = TcpStream::connect(listen).await.unwrap();
    assert_eq!(roundtrip(&mut c, b"ping").await, b"ping");
    // The name is free again; a new toxic of that name is not removed by the old timer.
    api.toxic("p", r#"{"name":"slow","type":"noop"}"#).await;
    assert_eq!(api.get("/proxies/p/toxics/slow").await.status, 200);
}

#[tokio::test]
async fn expires_is_per_toxic_not_per_name() {
    let (_s, api) = server().await;
    let _ = api.proxy("p", echo().await).await;
    api.toxic("p", r#"{"name":"n","type":"noop","expires_ms":300}"#)
        .await;
    assert_eq!(api.delete("/proxies/p/toxics/n").await.status, 204);
    api.toxic("p", r#"{"name":"n","type":"noop"}"#).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(api.get("/proxies/p/toxics/n").await.status, 200);
}

#[tokio::test]
async fn limits_are_checked() {
    let (_s, api) = server().await;
    let _ = api.proxy("p", echo().await).await;
    for (body, status, msg) in [
        (r#"{"type":"noop","count":0}"#, 400, "invalid count: must be more than 0"),
        (r#"{"type":"noop","expires_ms":-5}"#, 400, "invalid expires_ms: must be more than 0"),
        (
            r#"{"type":"noop","count":1.5}"#,
            400,
            "bad request body: json: cannot unmarshal number 1.5 into Go struct field ToxicWrapper.count of type int64",
        ),
        (
            r#"{"type":"noop","expires_ms":"1"}"#,
            400,
            "bad request body: json: cannot unmarshal string into Go struct field ToxicWrapper.expires_ms of type int64",
        ),
    ] {
        let r = api.post("/proxies/p/toxics", body).await;
        assert_eq!(r.status, status, "{body}: {}", r.body);
        assert_eq!(r.json()["error"], msg, "{body}");
    }
    assert_eq!(api.get("/proxies/p/toxics").await.body, "[]");
}

#[tokio::test]
async fn limits_in_populate_and_with_the_proxy() {
    let (_s, api) = server().await;
    let up = echo().await;
    let r = api
        .post(
            "/populate",
            &format!(
                r#"[{{"name":"p","listen":"127.0.0.1:0","upstream":"{up}","toxics":[{{"type":"noop","count":3,"expires_ms":60000}}]}}]"#
            ),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let t = &r.json()["proxies"][0]["toxics"][0];
    assert_eq!(
        (t["count"].clone(), t["expires_ms"].clone()),
        (3.into(), 60000.into())
    );
}

// -- Pipelined latency --------------------------------------------------------------------

#[tokio::test]
async fn latency_is_pipelined_reading_goes_on_while_chunks_wait() {
    let (_s, api) = server().await;
    // 1 MB: well over 50 reads; unpipelined, each would wait 100 ms in turn (5 s or more).
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let listen = api.proxy("p", source(data.clone()).await).await;
    api.toxic("p", r#"{"type":"latency","attributes":{"latency":100}}"#)
        .await;
    let t = Instant::now();
    let mut c = TcpStream::connect(listen).await.unwrap();
    let (got, err) = within(read_all(&mut c)).await;
    let took = t.elapsed();
    assert!(err.is_none());
    assert_eq!(got.len(), data.len());
    assert!(got == data, "bytes reordered or changed");
    assert!(took >= Duration::from_millis(100), "{took:?}");
    assert!(
        took < Duration::from_millis(3000),
        "not pipelined: {took:?}"
    );
}

#[tokio::test]
async fn pipelined_chunks_keep_their_order_when_the_chain_changes() {
    let (_s, api) = server().await;
    let listen = api.proxy("p", echo().await).await;
    let mut c = TcpStream::connect(listen).await.unwrap();
    roundtrip(&mut c, b"warm").await;
    api.toxic(
        "p",
        r#"{"name":"lat","type":"latency","attributes":{"latency":300}}"#,
    )
    .await;
    let t = Instant::now();
    c.write_all(b"first;").await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(api.delete("/proxies/p/toxics/lat").await.status, 204);
    c.write_all(b"second;").await.unwrap();
    let mut got = vec![0u8; 13];
    within(tokio::io::AsyncReadExt::read_exact(&mut c, &mut got))
        .await
        .unwrap();
    assert_eq!(got, b"first;second;");
    assert!(t.elapsed() >= Duration::from_millis(300));
    // Then a limit_data toxic (not pipelined) after a latency one: order kept as well.
    api.toxic(
        "p",
        r#"{"name":"lat","type":"latency","attributes":{"latency":200}}"#,
    )
    .await;
    c.write_all(b"third;").await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    api.toxic(
        "p",
        r#"{"name":"cap","type":"limit_data","attributes":{"bytes":1000}}"#,
    )
    .await;
    c.write_all(b"fourth;").await.unwrap();
    let mut got = vec![0u8; 13];
    within(tokio::io::AsyncReadExt::read_exact(&mut c, &mut got))
        .await
        .unwrap();
    assert_eq!(got, b"third;fourth;");
}

// -- Fidelity: schedules, no sleep where nothing is due, back to the fast path ------------

/// Exchanges run through the hooks so far (the fast path counts none).
fn exchanges(s: &vaurien::server::Server, proxy: &str) -> u64 {
    s.proxy(proxy)
        .unwrap()
        .shared
        .metrics
        .exchanges_total
        .load(std::sync::atomic::Ordering::Relaxed)
}

#[tokio::test]
async fn bandwidth_follows_its_schedule_and_keeps_every_byte_in_order() {
    let (_s, api) = server().await;
    // 5 MB at 20 MB/s: at least 0.25 s (one sleep per chunk, rounded up, took 4× that).
    let data: Vec<u8> = (0..5_000_000u32)
        .map(|i| (i.wrapping_mul(7) >> 3) as u8)
        .collect();
    let listen = api.proxy("p", source(data.clone()).await).await;
    api.toxic("p", r#"{"type":"bandwidth","attributes":{"rate":20000}}"#)
        .await;
    let t = Instant::now();
    let mut c = TcpStream::connect(listen).await.unwrap();
    let (got, err) = within(read_all(&mut c)).await;
    let took = t.elapsed();
    assert!(err.is_none());
    assert_eq!(got.len(), data.len());
    assert!(got == data, "bytes changed or reordered");
    assert!(took >= Duration::from_millis(200), "{took:?}");
}

#[tokio::test]
async fn a_low_rate_splits_chunks_and_still_delivers_them_whole() {
    // 10 KB/s: 1000-byte slices, 100 ms each; 3000 bytes take at least 0.3 s.
    let data: Vec<u8> = (0..3000u32).map(|i| (i % 253) as u8).collect();
    bandwidth_delivers(10, data, 250).await;
}

#[tokio::test]
async fn zero_latency_keeps_the_fast_path() {
    let (s, api) = server().await;
    let listen = api.proxy("p", echo().await).await;
    let mut c = TcpStream::connect(listen).await.unwrap();
    roundtrip(&mut c, b"warm").await;
    api.toxic(
        "p",
        r#"{"name":"z","type":"latency","attributes":{"latency":0}}"#,
    )
    .await;
    roundtrip(&mut c, b"settle").await;
    let before = exchanges(&s, "p");
    for i in 0..50u32 {
        let msg = format!("message {i}");
        assert_eq!(roundtrip(&mut c, msg.as_bytes()).await, msg.as_bytes());
    }
    assert_eq!(exchanges(&s, "p"), before, "a 0 ms latency ran the hooks");
    // A new connection too.
    let mut c2 = TcpStream::connect(listen).await.unwrap();
    assert_eq!(roundtrip(&mut c2, b"new").await, b"new");
    assert_eq!(exchanges(&s, "p"), before);
}

#[tokio::test]
async fn a_removed_toxic_gives_the_connection_back_to_the_fast_path() {
    let (s, api) = server().await;
    let listen = api.proxy("p", echo().await).await;
    let mut c = TcpStream::connect(listen).await.unwrap();
    roundtrip(&mut c, b"warm").await;
    for toxic in [
        r#"{"name":"t","type":"latency","attributes":{"latency":30}}"#,
        r#"{"name":"t","type":"bandwidth","attributes":{"rate":1000}}"#,
        r#"{"name":"t","type":"slicer","attributes":{"average_size":1000,"delay":100}}"#,
        r#"{"name":"t","type":"latency","stream":"upstream","attributes":{"latency":30}}"#,
    ] {
        api.toxic("p", toxic).await;
        let t = Instant::now();
        let big: Vec<u8> = (0..200_000u32).map(|i| (i % 241) as u8).collect();
        assert!(roundtrip(&mut c, &big).await == big, "{toxic}");
        if toxic.contains("latency") {
            assert!(t.elapsed() >= Duration::from_millis(30), "{toxic}");
        }
        assert_eq!(api.delete("/proxies/p/toxics/t").await.status, 204);
        // The next chunks may still go through the hooks once (the change is seen at a
        // chunk boundary); after that, none.
        roundtrip(&mut c, b"settle").await;
        let before = exchanges(&s, "p");
        for i in 0..50u32 {
            let msg = format!("after {i} ");
            assert_eq!(roundtrip(&mut c, msg.as_bytes()).await, msg.as_bytes());
        }
        let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 239) as u8).collect();
        assert!(roundtrip(&mut c, &big).await == big, "after {toxic}");
        assert_eq!(exchanges(&s, "p"), before, "hooks still run after {toxic}");
    }
    // Half-close still goes through: the echo server sees EOF and closes.
    c.shutdown().await.unwrap();
    let (rest, err) = within(read_all(&mut c)).await;
    assert!(err.is_none() && rest.is_empty());
}

#[tokio::test]
async fn toxics_added_and_removed_under_traffic_lose_and_reorder_nothing() {
    let (_s, api) = server().await;
    let listen = api.proxy("p", echo().await).await;
    let c = TcpStream::connect(listen).await.unwrap();
    let (mut r, mut w) = c.into_split();
    let data: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(31) >> 2) as u8)
        .collect();
    let sent = data.clone();
    let writer = tokio::spawn(async move {
        for part in sent.chunks(7919) {
            w.write_all(part).await.unwrap();
            tokio::task::yield_now().await;
        }
        w.shutdown().await.unwrap();
    });
    let flip = async {
        let toxics = [
            r#"{"name":"a","type":"latency","attributes":{"latency":2,"jitter":1}}"#,
            r#"{"name":"a","type":"bandwidth","stream":"upstream","attributes":{"rate":50000}}"#,
            r#"{"name":"a","type":"latency","attributes":{"latency":0}}"#,
            r#"{"name":"a","type":"slicer","attributes":{"average_size":500,"delay":10}}"#,
        ];
        for i in 0..24 {
            api.toxic("p", toxics[i % toxics.len()]).await;
            tokio::time::sleep(Duration::from_millis(15)).await;
            assert_eq!(api.delete("/proxies/p/toxics/a").await.status, 204);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let read = async {
        let mut got = Vec::with_capacity(data.len());
        let mut buf = vec![0u8; 65536];
        loop {
            let n = tokio::io::AsyncReadExt::read(&mut r, &mut buf)
                .await
                .unwrap();
            if n == 0 {
                return got;
            }
            got.extend_from_slice(&buf[..n]);
        }
    };
    let (got, ()) = within(async { tokio::join!(read, flip) }).await;
    writer.await.unwrap();
    assert_eq!(got.len(), data.len());
    assert!(got == data, "bytes changed or reordered");
}

#[tokio::test]
async fn slicer_slices_follow_their_schedule() {
    let (_s, api) = server().await;
    let data: Vec<u8> = (0..4000u32).map(|i| (i % 256) as u8).collect();
    let listen = api.proxy("p", source(data.clone()).await).await;
    // 64 slices of 62-63 bytes, 2 ms apart: at least 126 ms from the first to the last.
    api.toxic(
        "p",
        r#"{"type":"slicer","attributes":{"average_size":100,"delay":2000}}"#,
    )
    .await;
    let mut c = TcpStream::connect(listen).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    let mut first = None;
    loop {
        let n = within(tokio::io::AsyncReadExt::read(&mut c, &mut buf))
            .await
            .unwrap();
        if n == 0 {
            break;
        }
        first.get_or_insert_with(Instant::now);
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, data);
    let span = first.unwrap().elapsed();
    assert!(span >= Duration::from_millis(120), "{span:?}");
}
