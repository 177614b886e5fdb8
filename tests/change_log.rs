//! Every change made through the control API is logged at info level: what changed, on which
//! proxy, and who asked (the API client's address).

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[tokio::test]
async fn api_changes_are_logged_with_what_which_proxy_and_who() {
    common::within(async {
        let backend = common::echo_server().await;
        let (pp, ap) = (common::free_port(), common::free_port());
        let mut child = Command::new(env!("CARGO_BIN_EXE_vaurien"))
            .args(["--proxy", &format!("127.0.0.1:{pp}")])
            .args(["--backend", &backend.to_string()])
            .args([
                "--http",
                "--http-host",
                "127.0.0.1",
                "--http-port",
                &ap.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let api: std::net::SocketAddr = ([127, 0, 0, 1], ap).into();
        let deadline = Instant::now() + Duration::from_secs(15);
        while tokio::net::TcpStream::connect(api).await.is_err() {
            assert!(Instant::now() < deadline, "the API listens");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let calls: [(&str, &str, Option<&str>); 3] = [
            (
                "PUT",
                "/behavior",
                Some(r#"{"name": "delay", "sleep": 0.25}"#),
            ),
            (
                "POST",
                "/proxies/vaurien/toxics",
                Some(r#"{"name": "slow", "type": "latency", "attributes": {"latency": 5}}"#),
            ),
            ("DELETE", "/proxies/vaurien/toxics/slow", None),
        ];
        for (method, path, body) in calls {
            let (status, _, resp) = common::http(api, method, path, body.map(str::as_bytes)).await;
            assert!(
                status < 300,
                "{method} {path}: {}",
                String::from_utf8_lossy(&resp)
            );
        }
        let wanted = [
            "behavior set to delay",
            "toxic slow (latency) added",
            "toxic slow removed",
        ];
        let mut seen = Vec::new();
        let until = Instant::now() + Duration::from_secs(10);
        while seen.len() < wanted.len() && Instant::now() < until {
            if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
                if let Some(w) = wanted.iter().find(|w| line.contains(**w)) {
                    assert!(line.contains("INFO"), "an info line: {line}");
                    assert!(line.contains("proxy=vaurien"), "names the proxy: {line}");
                    assert!(
                        line.contains("API client 127.0.0.1:"),
                        "names who asked: {line}"
                    );
                    seen.push(*w);
                }
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(seen, wanted, "one line per change, in order");
    })
    .await;
}
