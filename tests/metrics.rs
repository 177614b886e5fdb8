//! statsd output of the `vaurien` binary, received by a real UDP listener on loopback: exact
//! counts with the default sample rate, client-side sampling below 1.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, wait_port, Killed};

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

/// A `vaurien` proxy in front of an echo backend, sending statsd to a UDP socket of the test.
struct WithStatsd {
    _guard: Killed,
    port: u16,
    udp: UdpSocket,
}

fn vaurien_with_statsd(extra: &[&str]) -> WithStatsd {
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_millis(200)))
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
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_port(port, &mut child);
    WithStatsd {
        _guard: Killed(child),
        port,
        udp,
    }
}

/// One request and its echo through the proxy; returns the bytes sent.
fn exchange(port: u16, i: usize) -> u64 {
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let msg = format!("hello {i}");
    c.write_all(msg.as_bytes()).unwrap();
    let mut got = vec![0u8; msg.len()];
    c.read_exact(&mut got).unwrap();
    assert_eq!(got, msg.as_bytes());
    msg.len() as u64
}

/// One statsd line: `<key>:<delta>|c` or `<key>:<delta>|c|@<rate>`.
#[derive(Debug)]
struct Line {
    key: String,
    delta: u64,
    rate: Option<String>,
}

/// What arrived so far.
#[derive(Default, Debug)]
struct Received {
    lines: Vec<Line>,
}

impl Received {
    /// Reads one datagram, if one comes within the socket's timeout.
    fn recv(&mut self, udp: &UdpSocket) {
        let mut buf = [0u8; 65536];
        let Ok(n) = udp.recv(&mut buf) else { return };
        assert!(n <= 1400, "datagram of {n} bytes");
        for line in std::str::from_utf8(&buf[..n]).unwrap().lines() {
            let (key, rest) = line.split_once(':').expect(line);
            let mut parts = rest.split('|');
            let delta: u64 = parts.next().unwrap().parse().expect(line);
            assert_eq!(parts.next(), Some("c"), "{line}");
            let rate = parts
                .next()
                .map(|r| r.strip_prefix('@').expect(line).to_string());
            assert_eq!(parts.next(), None, "{line}");
            assert!(delta > 0, "{line}");
            self.lines.push(Line {
                key: key.to_string(),
                delta,
                rate,
            });
        }
    }

    /// Reads until `done` holds; fails after `limit`.
    fn until(&mut self, udp: &UdpSocket, limit: Duration, done: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + limit;
        while !done(self) {
            assert!(Instant::now() < deadline, "statsd incomplete: {self:#?}");
            self.recv(udp);
        }
    }

    /// Sum of the deltas of `key`.
    fn total(&self, key: &str) -> u64 {
        self.lines
            .iter()
            .filter(|l| l.key == key)
            .map(|l| l.delta)
            .sum()
    }

    /// The original's per-connection counters `vtest.tcp.<id>.<counter>`: their deltas by
    /// connection id.
    fn per_connection(&self, counter: &str) -> BTreeMap<u64, Vec<u64>> {
        let mut out: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
        for l in &self.lines {
            let parts: Vec<&str> = l.key.split('.').collect();
            if let ["vtest", "tcp", id, c] = parts[..] {
                let id: u64 = id.parse().unwrap_or_else(|_| panic!("{l:?}"));
                if c == counter {
                    out.entry(id).or_default().push(l.delta);
                }
            }
        }
        out
    }
}

/// Sample rate 1: every count arrives, exactly once, without `|@`.
#[test]
fn statsd_counters_reach_a_udp_listener_exactly() {
    let v = vaurien_with_statsd(&[]);
    let mut got = Received::default();
    // First connections until one's own counter arrives: from then on the sender has asked
    // connections for their start and end.
    let mut bytes = 0;
    let mut first = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    while got.per_connection("start").is_empty() {
        assert!(Instant::now() < deadline, "no per-connection counter");
        bytes += exchange(v.port, 0);
        first += 1;
        got.until(&v.udp, Duration::from_secs(20), |r| {
            r.total("vtest.vaurien.start") > first
        });
    }
    let seen: BTreeSet<u64> = got.per_connection("start").into_keys().collect();
    const N: usize = 100;
    for i in 1..=N {
        bytes += exchange(v.port, i);
    }
    // Accepted: wait_port's probe, the first ones, N.
    let conns = 1 + first + N as u64;
    got.until(&v.udp, Duration::from_secs(30), |r| {
        r.total("vtest.vaurien.end") >= conns
            && r.per_connection("end").len() >= seen.len() + N
            && r.total("vtest.vaurien.to_client") >= bytes
    });
    // Another tick or more: nothing more may come.
    let settle = Instant::now() + Duration::from_millis(2500);
    while Instant::now() < settle {
        got.recv(&v.udp);
    }
    assert!(got.lines.iter().all(|l| l.rate.is_none()), "{got:#?}");
    for key in ["vtest.vaurien.start", "vtest.vaurien.end"] {
        assert_eq!(got.total(key), conns, "{key}");
    }
    // The probe exchanged nothing.
    assert_eq!(got.total("vtest.vaurien.exchanges"), conns - 1);
    assert_eq!(got.total("vtest.vaurien.to_backend"), bytes);
    assert_eq!(got.total("vtest.vaurien.to_client"), bytes);
    // Per connection: start and end once each, one exchange to the backend (none for the
    // probe, whose start and end may predate the sender's request).
    let starts = got.per_connection("start");
    let new: BTreeSet<u64> = starts
        .keys()
        .filter(|id| !seen.contains(id))
        .copied()
        .collect();
    assert_eq!(new.len(), N, "{starts:?}");
    for counter in ["start", "end", "to_backend"] {
        let per = got.per_connection(counter);
        assert!(per.values().all(|d| d == &[1]), "{counter}: {per:?}");
        assert!(
            per.keys().all(|id| starts.contains_key(id)),
            "{counter}: {per:?}"
        );
        assert!(
            new.iter().all(|id| per.contains_key(id)),
            "{counter}: {per:?}"
        );
    }
    assert_eq!(got.per_connection("end").len(), starts.len());
}

/// Sample rate 0.25: each send happens with probability 1/4 and says `|@0.25`.
///
/// Of N = 300 connections, the number S of `start` lines sent is Binomial(300, 0.25), mean
/// 75. Chernoff bounds: P(S >= 150) <= exp(-300 KL(0.5 || 0.25)) ~ 2e-19 and
/// P(S <= 20) <= exp(-300 KL(0.067 || 0.25)) ~ 8e-16: the bounds below fail by chance with
/// probability under 1e-15 (an unsampled sender sends all 300).
#[test]
fn statsd_samples_at_the_configured_rate() {
    let v = vaurien_with_statsd(&["--statsd-sample-rate", "0.25"]);
    // The sender asks connections for their start and end at its first tick, at start.
    std::thread::sleep(Duration::from_millis(1200));
    const N: usize = 300;
    for i in 0..N {
        exchange(v.port, i);
    }
    let mut got = Received::default();
    let traffic_end = Instant::now();
    // At least two ticks after the traffic, and enough lines.
    got.until(&v.udp, Duration::from_secs(30), |r| {
        traffic_end.elapsed() > Duration::from_secs(3) && r.per_connection("start").len() >= 20
    });
    assert!(
        got.lines.iter().all(|l| l.rate.as_deref() == Some("0.25")),
        "{got:#?}"
    );
    let starts = got.per_connection("start");
    assert!(starts.values().all(|d| d == &[1]), "{starts:?}");
    assert!(
        starts.len() < N / 2,
        "{} of {N} start counters sent: not sampled",
        starts.len()
    );
}
