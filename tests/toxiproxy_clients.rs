//! Real third-party Toxiproxy clients drive vaurien: `toxiproxy_rust` (blocking) and
//! `noxious-client` (async). Each creates proxies, adds and removes toxics, disables and
//! resets, and the traffic through the proxy shows the effect.

mod toxiproxy_support;

use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use toxiproxy_support::*;

#[tokio::test]
async fn toxiproxy_rust_client() {
    let (s, _api) = server().await;
    let up = echo().await;
    let api_addr = s.api_addr().unwrap();
    // A fixed free port: this client populates with the listen address it is given.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let l2 = listen.clone();
    within(tokio::task::spawn_blocking(move || {
        let client = toxiproxy_rust::client::Client::new(api_addr);
        assert!(client.is_running());
        assert!(client.version().unwrap().contains(vaurien::VERSION));
        let proxies = client
            .populate(vec![toxiproxy_rust::proxy::ProxyPack::new(
                "rs".into(),
                l2,
                up.to_string(),
            )])
            .unwrap();
        assert_eq!(proxies.len(), 1);
        let p = client.find_proxy("rs").unwrap();
        p.with_latency("downstream".into(), 200, 0, 1.0);
        assert_eq!(p.toxics().unwrap().len(), 1);
    }))
    .await
    .unwrap();
    let mut c = TcpStream::connect(&listen).await.unwrap();
    let t = Instant::now();
    roundtrip(&mut c, b"rust").await;
    assert!(t.elapsed() >= Duration::from_millis(190));
    within(tokio::task::spawn_blocking(move || {
        let client = toxiproxy_rust::client::Client::new(api_addr);
        let p = client.find_proxy("rs").unwrap();
        p.delete_all_toxics().unwrap();
        p.disable().unwrap();
        assert!(std::net::TcpStream::connect(listen.as_str()).is_err());
        client.reset().unwrap();
        assert!(std::net::TcpStream::connect(listen.as_str()).is_ok());
        assert!(client
            .find_proxy("rs")
            .unwrap()
            .toxics()
            .unwrap()
            .is_empty());
        client.find_proxy("rs").unwrap().delete().unwrap();
        assert!(client.all().unwrap().is_empty());
    }))
    .await
    .unwrap();
}

#[tokio::test]
async fn noxious_client() {
    use noxious_client::{Client, StreamDirection, Toxic, ToxicKind};
    let (s, _api) = server().await;
    let up = echo().await;
    let client = Client::new(&format!("http://{}", s.api_addr().unwrap()));
    let mut p = within(client.create_proxy("nx", "127.0.0.1:0", &up.to_string()))
        .await
        .unwrap();
    // This client keeps the address it sent; the bound one is read back.
    let listen = within(client.proxy("nx"))
        .await
        .unwrap()
        .config
        .listen
        .clone();
    within(p.add_toxic(&Toxic {
        kind: ToxicKind::Latency {
            latency: 200,
            jitter: 0,
        },
        name: "lat".into(),
        toxicity: 1.0,
        direction: StreamDirection::Upstream,
    }))
    .await
    .unwrap();
    let mut c = TcpStream::connect(&listen).await.unwrap();
    let t = Instant::now();
    roundtrip(&mut c, b"nox").await;
    assert!(t.elapsed() >= Duration::from_millis(190));
    assert_eq!(within(p.toxics()).await.unwrap().len(), 1);
    within(p.remove_toxic("lat")).await.unwrap();
    let t = Instant::now();
    roundtrip(&mut c, b"fast").await;
    assert!(t.elapsed() < Duration::from_millis(190));
    within(p.disable()).await.unwrap();
    assert!(TcpStream::connect(&listen).await.is_err());
    within(client.reset_state()).await.unwrap();
    assert!(TcpStream::connect(&listen).await.is_ok());
    let all = within(client.proxies()).await.unwrap();
    assert!(all["nx"].is_enabled());
}
