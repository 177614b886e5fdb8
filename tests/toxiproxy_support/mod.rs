//! Helpers of the Toxiproxy tests: an in-process server, an HTTP client and small backends.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use vaurien::server::{Server, ServerConfig};

/// Every test step is bounded.
pub const LIMIT: Duration = Duration::from_secs(20);

pub async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(LIMIT, f).await.expect("timed out")
}

pub async fn server_with(cfg: ServerConfig) -> Arc<Server> {
    vaurien::api::launch(ServerConfig {
        http: Some("127.0.0.1:0".into()),
        ..cfg
    })
    .await
    .expect("server starts")
}

pub async fn server() -> (Arc<Server>, Api) {
    let s = server_with(ServerConfig::default()).await;
    let api = Api::new(s.api_addr().unwrap());
    (s, api)
}

/// A response: status, content type, request id header, body.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub content_type: String,
    pub request_id: Option<String>,
    pub body: String,
}

impl Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

pub struct Api {
    pub base: String,
    client: reqwest::Client,
}

impl Api {
    pub fn new(addr: SocketAddr) -> Self {
        Api {
            base: format!("http://{addr}"),
            client: reqwest::Client::builder()
                .user_agent("vaurien-tests")
                .build()
                .unwrap(),
        }
    }
    pub async fn call(&self, method: &str, path: &str, body: Option<&str>) -> Resp {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut rb = self.client.request(m, format!("{}{}", self.base, path));
        if let Some(b) = body {
            rb = rb.body(b.to_string());
        }
        let r = within(rb.send()).await.expect("request");
        let status = r.status().as_u16();
        let h = |n: &str| r.headers().get(n).map(|v| v.to_str().unwrap().to_string());
        let content_type = h("content-type").unwrap_or_default();
        let request_id = h("x-toxiproxy-request-id");
        let body = within(r.text()).await.unwrap();
        Resp {
            status,
            content_type,
            request_id,
            body,
        }
    }
    pub async fn get(&self, path: &str) -> Resp {
        self.call("GET", path, None).await
    }
    pub async fn post(&self, path: &str, body: &str) -> Resp {
        self.call("POST", path, Some(body)).await
    }
    pub async fn patch(&self, path: &str, body: &str) -> Resp {
        self.call("PATCH", path, Some(body)).await
    }
    pub async fn delete(&self, path: &str) -> Resp {
        self.call("DELETE", path, None).await
    }
    /// Creates a proxy to `upstream` on an ephemeral port; returns its bound address.
    pub async fn proxy(&self, name: &str, upstream: SocketAddr) -> SocketAddr {
        let r = self
            .post(
                "/proxies",
                &format!(r#"{{"name":"{name}","listen":"127.0.0.1:0","upstream":"{upstream}"}}"#),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        r.json()["listen"].as_str().unwrap().parse().unwrap()
    }
    pub async fn toxic(&self, proxy: &str, body: &str) -> serde_json::Value {
        let r = self.post(&format!("/proxies/{proxy}/toxics"), body).await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()
    }
}

/// A backend that echoes everything back, until the client closes.
pub async fn echo() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    addr
}

/// A backend that sends `data` to each client, then closes.
pub async fn source(data: Vec<u8>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let data = Arc::new(data);
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let d = data.clone();
            tokio::spawn(async move {
                let _ = s.write_all(&d).await;
                let _ = s.shutdown().await;
                let mut sink = Vec::new();
                let _ = s.read_to_end(&mut sink).await;
            });
        }
    });
    addr
}

/// Sends `msg` and reads exactly its length back.
pub async fn roundtrip(s: &mut TcpStream, msg: &[u8]) -> Vec<u8> {
    s.write_all(msg).await.unwrap();
    let mut buf = vec![0u8; msg.len()];
    within(s.read_exact(&mut buf)).await.unwrap();
    buf
}

/// Reads until EOF or an error; returns what came and the error, if any.
pub async fn read_all(s: &mut TcpStream) -> (Vec<u8>, Option<std::io::Error>) {
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf).await {
            Ok(0) => return (out, None),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => return (out, Some(e)),
        }
    }
}
