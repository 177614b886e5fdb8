#![no_main]
//! The control API's request bodies, both dialects, through the real routes in process (the
//! actix-web App the API serves, driven by actix's test utilities, over a server with one
//! proxy). The first byte picks the request, the second a toxic type, the rest is the body:
//!
//! 0 `PUT /behavior`, 1 `PUT /backend` (the original's routes);
//! 2 `POST /proxies/vaurien/toxics` (create a toxic), 3 `POST /proxies/vaurien/toxics/t` (update
//! toxic `t`, of the picked type), 4 `POST /proxies/absent` (the update body is read, then 404);
//! 5 `/populate`'s and `-config`'s body, 6 `POST /proxies`'s body (both read with
//! `populate_specs`: a route that creates proxies would bind the addresses the fuzzer names).
//!
//! Whatever the body, the API answers (no panic) and never with a 5xx.
use actix_web::{test, web, App};
use libfuzzer_sys::fuzz_target;
use vaurien::api::{toxiproxy, vaurien as routes};
use vaurien::proxy::{Limits, ProxyConfig};
use vaurien::server::{Server, ServerConfig};

/// Toxic types for the update route.
const TOXICS: [&str; 9] = [
    "latency",
    "bandwidth",
    "slicer",
    "slow_close",
    "timeout",
    "reset_peer",
    "limit_data",
    "noop",
    "packet_loss",
];

/// One request against a fresh server: nothing one input changes is seen by the next.
async fn one(route: u8, toxic: &str, body: Vec<u8>) {
    let cfg = ServerConfig {
        proxy: Some(ProxyConfig {
            listen: "127.0.0.1:0".into(),
            backend: "127.0.0.1:9".into(),
            behavior: "50:delay,50:dummy".into(),
            ..ProxyConfig::default()
        }),
        ..ServerConfig::default()
    };
    let server = Server::start(cfg)
        .await
        .expect("a proxy on loopback starts");
    let main = server.main_proxy().expect("the main proxy");
    let (method, uri) = match route {
        0 => ("PUT", "/behavior"),
        1 => ("PUT", "/backend"),
        2 => ("POST", "/proxies/vaurien/toxics"),
        3 => {
            let attributes = vaurien::behavior::Options::default();
            if main
                .shared
                .add_toxic("t", toxic, "downstream", 1.0, attributes, Limits::default())
                .is_err()
            {
                return;
            }
            ("POST", "/proxies/vaurien/toxics/t")
        }
        4 => ("POST", "/proxies/absent"),
        5 => {
            let _ = toxiproxy::populate_specs(&body);
            return;
        }
        _ => {
            let mut one = b"[".to_vec();
            one.extend_from_slice(&body);
            one.push(b']');
            let _ = toxiproxy::populate_specs(&one);
            return;
        }
    };
    let app = test::init_service(
        App::new()
            .app_data(web::Data::from(server.clone()))
            .configure(routes::routes)
            .configure(toxiproxy::routes),
    )
    .await;
    let req = test::TestRequest::default()
        .method(method.parse().expect("a method"))
        .uri(uri)
        .set_payload(body)
        .to_request();
    let resp = test::call_service(&app, req).await;
    assert!(
        !resp.status().is_server_error(),
        "{method} {uri}: {}",
        resp.status()
    );
    server.shutdown().await;
}

fuzz_target!(|raw: &[u8]| {
    let [route, toxic, body @ ..] = raw else {
        return;
    };
    let toxic = TOXICS[*toxic as usize % TOXICS.len()];
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, one(route % 7, toxic, body.to_vec()));
});
