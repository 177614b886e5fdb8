//! The fault event log under many concurrent connections while its file is stuck.

mod toxiproxy_support;

use std::collections::BTreeSet;
use std::io::Read;

use tokio::net::TcpStream;
use toxiproxy_support::*;
use vaurien::server::ServerConfig;

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
