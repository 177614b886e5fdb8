//! `GET /metrics` read by a real Prometheus text parser, and the fault event log under many
//! concurrent connections while its file is stuck.

mod toxiproxy_support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use prometheus_parse::{Sample, Scrape, Value};
use tokio::net::TcpStream;
use toxiproxy_support::*;
use vaurien::server::ServerConfig;

/// The samples of one family, by their labels.
fn family<'a>(scrape: &'a Scrape, name: &str) -> Vec<&'a Sample> {
    scrape.samples.iter().filter(|s| s.metric == name).collect()
}

fn label_names(s: &Sample) -> BTreeSet<&str> {
    s.labels.keys().map(String::as_str).collect()
}

#[tokio::test]
async fn metrics_parse_as_prometheus_text_with_toxiproxys_names_and_labels() {
    let (s, api) = server().await;
    let up = echo().await;
    let listen = api.proxy("m", up).await;
    api.toxic("m", r#"{"type":"latency","attributes":{"latency":1}}"#)
        .await;
    let mut c = within(TcpStream::connect(listen)).await.unwrap();
    assert_eq!(roundtrip(&mut c, b"12345").await, b"12345");
    drop(c);

    let r = api.get("/metrics").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.content_type, "text/plain; version=0.0.4; charset=utf-8");
    let scrape = Scrape::parse(r.body.lines().map(|l| Ok(l.to_string()))).unwrap();

    // Toxiproxy's byte counters: one sample a direction, its four labels.
    for (name, dir) in [
        ("toxiproxy_proxy_received_bytes_total", "upstream"),
        ("toxiproxy_proxy_sent_bytes_total", "downstream"),
    ] {
        let samples = family(&scrape, name);
        assert_eq!(samples.len(), 2, "{name}: {}", r.body);
        assert!(scrape.docs.contains_key(name), "{name} has no HELP");
        for s in &samples {
            assert_eq!(
                label_names(s),
                BTreeSet::from(["direction", "listener", "proxy", "upstream"])
            );
            assert!(
                matches!(s.value, Value::Counter(_)),
                "{name}: {:?}",
                s.value
            );
            assert_eq!(s.labels.get("proxy"), Some("m"));
            assert_eq!(s.labels.get("listener"), Some(listen.to_string().as_str()));
            assert_eq!(s.labels.get("upstream"), Some(up.to_string().as_str()));
        }
        let by_dir: BTreeMap<&str, &Value> = samples
            .iter()
            .map(|s| (s.labels.get("direction").unwrap(), &s.value))
            .collect();
        assert_eq!(by_dir[dir], &Value::Counter(5.0), "{name}");
    }
    // vaurien's: `{proxy}`, counters but for the active connections.
    for (name, counter) in [
        ("vaurien_connections_total", true),
        ("vaurien_connections_active", false),
        ("vaurien_exchanges_total", true),
    ] {
        let samples = family(&scrape, name);
        assert_eq!(samples.len(), 1, "{name}: {}", r.body);
        assert_eq!(label_names(samples[0]), BTreeSet::from(["proxy"]));
        assert_eq!(samples[0].labels.get("proxy"), Some("m"));
        match samples[0].value {
            Value::Counter(_) => assert!(counter, "{name} is a gauge"),
            Value::Gauge(_) => assert!(!counter, "{name} is a counter"),
            ref v => panic!("{name}: {v:?}"),
        }
    }
    assert_eq!(
        family(&scrape, "vaurien_connections_total")[0].value,
        Value::Counter(1.0)
    );
    let faults = family(&scrape, "vaurien_faults_total");
    assert_eq!(faults.len(), 1, "{}", r.body);
    assert_eq!(label_names(faults[0]), BTreeSet::from(["proxy", "type"]));
    assert_eq!(faults[0].labels.get("type"), Some("latency"));
    assert_eq!(faults[0].value, Value::Counter(1.0));
    let dropped = family(&scrape, "vaurien_events_dropped_total");
    assert_eq!(dropped.len(), 1, "{}", r.body);
    assert_eq!(dropped[0].value, Value::Counter(0.0));
    assert_eq!(s.events.dropped(), 0);
}

/// Connections and events of the test below: ~150 bytes of JSON an event, so more than twice
/// what a pipe holds (64 KiB on Linux) plus the writer's buffer.
const CONNECTIONS: usize = 1000;
/// Clients at once.
const CLIENTS: usize = 25;

/// A FIFO as the events file, not read while the traffic runs: the writer is stuck on it once
/// the pipe is full. Every connection still completes (the data path never waits on the file)
/// and, once the FIFO is read, every fault is in the file and in `/events`, the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_of_many_concurrent_connections_is_logged_while_the_file_is_stuck() {
    let path = std::env::temp_dir().join(format!("vaurien-events-{}.fifo", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let cpath = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(cpath.as_ptr(), 0o600) }, 0);
    // Opening one end of a FIFO waits for the other: the reader opens from a thread.
    let reader = std::thread::spawn({
        let p = path.clone();
        move || std::fs::File::open(p).unwrap()
    });
    let server = server_with(ServerConfig {
        events_file: Some(path.to_str().unwrap().to_string()),
        ..ServerConfig::default()
    })
    .await;
    let mut fifo = reader.join().unwrap();
    let _ = std::fs::remove_file(&path);
    let api = Api::new(server.api_addr().unwrap());
    let up = echo().await;
    let listen = api.proxy("ev", up).await;
    api.toxic("ev", r#"{"type":"latency","attributes":{"latency":1}}"#)
        .await;

    // The traffic, with nothing reading the FIFO.
    let clients = (0..CLIENTS).map(|k| {
        tokio::spawn(async move {
            for i in 0..CONNECTIONS / CLIENTS {
                let mut c = TcpStream::connect(listen).await.unwrap();
                let msg = format!("{k}.{i}");
                assert_eq!(roundtrip(&mut c, msg.as_bytes()).await, msg.as_bytes());
            }
        })
    });
    for r in within(futures::future::join_all(clients)).await {
        r.unwrap();
    }

    // Now read the FIFO: one line an event, one event a connection.
    let drained = std::thread::spawn(move || {
        let mut text = Vec::new();
        let mut buf = vec![0u8; 65536];
        while text.iter().filter(|b| **b == b'\n').count() < CONNECTIONS {
            let n = fifo.read(&mut buf).unwrap();
            assert!(n > 0, "the events file ended early");
            text.extend_from_slice(&buf[..n]);
        }
        String::from_utf8(text).unwrap()
    });
    let listed = api.get("/events?proxy=ev").await.json();
    let listed = listed.as_array().unwrap();
    assert_eq!(server.events.dropped(), 0);
    assert_eq!(listed.len(), CONNECTIONS, "{:#?}", &listed[..3]);
    let text = within(tokio::task::spawn_blocking(move || drained.join().unwrap()))
        .await
        .unwrap();
    let in_file: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(text.len() > 2 * 65536, "{} bytes of events", text.len());
    assert_eq!(&in_file, listed, "the file and /events differ");
    let ids: BTreeSet<u64> = listed
        .iter()
        .map(|e| e["connection"].as_u64().unwrap())
        .collect();
    assert_eq!(ids.len(), CONNECTIONS, "one event a connection");
    assert!(listed
        .iter()
        .all(|e| e["kind"] == "latency" && e["proxy"] == "ev"));
}
