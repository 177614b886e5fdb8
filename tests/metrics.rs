//! statsd output of the `vaurien` binary, received by a real UDP listener on loopback.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills the child when the test ends, passed or not.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An echo backend: answers each connection's first read, then closes.
fn echo_backend() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            std::thread::spawn(move || {
                s.set_read_timeout(Some(Duration::from_secs(10))).ok();
                let mut buf = [0u8; 1024];
                if let Ok(n) = s.read(&mut buf) {
                    let _ = s.write_all(&buf[..n]);
                }
            });
        }
    });
    port
}

fn wait_port(port: u16, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Some(st) = child.try_wait().unwrap() {
            panic!("vaurien exited with {st}");
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("nothing listens on {port}");
}

#[test]
fn statsd_counters_reach_a_udp_listener() {
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let statsd_port = udp.local_addr().unwrap().port();
    let backend = echo_backend();
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_vaurien"))
        .args([
            "--proxy",
            &format!("127.0.0.1:{port}"),
            "--backend",
            &format!("127.0.0.1:{backend}"),
            "--statsd",
            "--statsd-host",
            "127.0.0.1",
            "--statsd-port",
            &statsd_port.to_string(),
            "--statsd-prefix",
            "vtest",
            "--log-level",
            "error",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_port(port, &mut child);
    let _guard = Guard(child);
    // Let the sender's first tick pass so that it asked for per-connection events.
    std::thread::sleep(Duration::from_millis(1200));
    for i in 0..3 {
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let msg = format!("hello {i}");
        c.write_all(msg.as_bytes()).unwrap();
        let mut got = vec![0u8; msg.len()];
        c.read_exact(&mut got).unwrap();
        assert_eq!(got, msg.as_bytes());
    }

    // Sum what arrives until the counters add up (or the time limit).
    let mut totals: BTreeMap<String, u64> = BTreeMap::new();
    let mut per_conn: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut lines_seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let done = |totals: &BTreeMap<String, u64>, per_conn: &BTreeMap<String, BTreeSet<String>>| {
        let full = per_conn
            .values()
            .filter(|k| {
                ["start", "end", "to_backend"]
                    .iter()
                    .all(|c| k.contains(*c))
            })
            .count();
        totals.get("vtest.vaurien.start").copied().unwrap_or(0) >= 3
            && totals.get("vtest.vaurien.end").copied().unwrap_or(0) >= 3
            && totals.get("vtest.vaurien.to_backend").copied().unwrap_or(0) >= 21
            && full >= 3
    };
    while !done(&totals, &per_conn) {
        assert!(
            Instant::now() < deadline,
            "statsd counters incomplete: {totals:?} {per_conn:?}\n{lines_seen:#?}"
        );
        let mut buf = [0u8; 65536];
        let Ok(n) = udp.recv(&mut buf) else { continue };
        let text = String::from_utf8(buf[..n].to_vec()).unwrap();
        assert!(n <= 1400, "datagram of {n} bytes");
        for line in text.lines() {
            lines_seen.push(line.to_string());
            // <key>:<delta>|c
            let (key, rest) = line.split_once(':').expect(line);
            let (delta, kind) = rest.split_once('|').expect(line);
            assert_eq!(kind, "c", "{line}");
            let delta: u64 = delta.parse().expect(line);
            assert!(delta > 0, "{line}");
            *totals.entry(key.to_string()).or_default() += delta;
            // The original's per-connection counters: <prefix>.<protocol>.<id>.<counter>
            // (a request/response is one exchange started by the client: `to_backend`).
            let parts: Vec<&str> = key.split('.').collect();
            if parts.len() == 4 && parts[0] == "vtest" && parts[1] == "tcp" {
                assert!(parts[2].parse::<u64>().is_ok(), "{line}");
                per_conn
                    .entry(parts[2].to_string())
                    .or_default()
                    .insert(parts[3].to_string());
            }
        }
    }
    // Byte counters follow the traffic: "hello N" is 7 bytes each way.
    assert!(totals["vtest.vaurien.to_client"] >= 21, "{totals:?}");
}
