//! Conformance of the Toxiproxy API: every endpoint and error of the reference, with a real
//! HTTP client against an in-process server.

mod toxiproxy_support;

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::net::TcpStream;
use toxiproxy_support::*;
use vaurien::proxy::ProxyConfig;
use vaurien::server::ServerConfig;

#[tokio::test]
async fn version_is_json_with_a_newline() {
    let (_s, api) = server().await;
    let r = api.get("/version").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.content_type, "application/json;charset=utf-8");
    assert_eq!(
        r.body,
        format!("{{\"version\": \"{}\"}}\n", vaurien::VERSION)
    );
    assert!(r.request_id.is_some());
}

#[tokio::test]
async fn proxy_lifecycle_and_exact_shapes() {
    let (_s, api) = server().await;
    let up = echo().await;
    assert_eq!(api.get("/proxies").await.body, "{}");
    let r = api
        .post(
            "/proxies",
            &format!(r#"{{"name":"one","listen":"127.0.0.1:0","upstream":"{up}"}}"#),
        )
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.content_type, "application/json");
    let listen = r.json()["listen"].as_str().unwrap().to_string();
    assert!(!listen.ends_with(":0"), "the bound port is shown: {listen}");
    assert_eq!(
        r.body,
        format!(
            r#"{{"name":"one","listen":"{listen}","upstream":"{up}","enabled":true,"toxics":[]}}"#
        )
    );
    // Traffic goes through.
    let mut c = TcpStream::connect(&listen).await.unwrap();
    assert_eq!(roundtrip(&mut c, b"hello").await, b"hello");
    // Get, list.
    assert_eq!(api.get("/proxies/one").await.body, r.body);
    assert_eq!(api.get("/proxies").await.json(), json!({"one": r.json()}));
    // Duplicate.
    let d = api
        .post(
            "/proxies",
            &format!(r#"{{"name":"one","upstream":"{up}"}}"#),
        )
        .await;
    assert_eq!(
        (d.status, d.body.as_str()),
        (409, "{\"error\":\"proxy already exists\",\"status\":409}\n")
    );
    assert_eq!(d.content_type, "text/plain; charset=utf-8");
    // Disable by PATCH: connections closed, new ones refused; listen keeps the address.
    let r = api.patch("/proxies/one", r#"{"enabled":false}"#).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["enabled"], json!(false));
    let (_, _) = within(read_all(&mut c)).await;
    assert!(TcpStream::connect(&listen).await.is_err());
    // Enable by POST (deprecated, still accepted), same address.
    let r = api.post("/proxies/one", r#"{"Enabled":true}"#).await;
    assert_eq!(r.json()["enabled"], json!(true));
    let mut c = TcpStream::connect(&listen).await.unwrap();
    assert_eq!(roundtrip(&mut c, b"again").await, b"again");
    // Sending back what was read does not restart it.
    let cur = api.get("/proxies/one").await.body;
    let r = api.post("/proxies/one", &cur).await;
    assert_eq!(r.body, cur);
    assert_eq!(roundtrip(&mut c, b"still").await, b"still");
    // Delete.
    let r = api.delete("/proxies/one").await;
    assert_eq!((r.status, r.body.as_str()), (204, ""));
    let r = api.get("/proxies/one").await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (404, "{\"error\":\"proxy not found\",\"status\":404}\n")
    );
    assert_eq!(api.delete("/proxies/one").await.status, 404);
    assert_eq!(api.patch("/proxies/one", "{}").await.status, 404);
}

#[tokio::test]
async fn create_errors_in_order() {
    let (_s, api) = server().await;
    let cases = [
        ("", 400, "bad request body: EOF"),
        ("{bad", 400, "bad request body: invalid character 'b' looking for beginning of object key string"),
        ("[]", 400, "bad request body: json: cannot unmarshal array into Go value of type proxy.Proxy"),
        (r#"{"name":1}"#, 400, "bad request body: json: cannot unmarshal number into Go struct field Proxy.name of type string"),
        (r#"{"upstream":"x:1"}"#, 400, "missing required field: name"),
        (r#"{"name":"a"}"#, 400, "missing required field: upstream"),
    ];
    for (body, status, msg) in cases {
        let r = api.post("/proxies", body).await;
        assert_eq!(r.status, status, "{body}");
        assert_eq!(r.json(), json!({"error": msg, "status": status}), "{body}");
        assert!(r.body.ends_with('\n'));
    }
    // Case-insensitive keys, unknown keys ignored, a disabled proxy shows listen as given.
    let r = api
        .post(
            "/proxies",
            r#"{"NAME":"b","Listen":"127.0.0.1:0","UpStream":"127.0.0.1:1","enabled":false,"extra":[1]}"#,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        r.body,
        r#"{"name":"b","listen":"127.0.0.1:0","upstream":"127.0.0.1:1","enabled":false,"toxics":[]}"#
    );
}

#[tokio::test]
async fn bind_failure_is_a_500_with_gos_text() {
    let (_s, api) = server().await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let r = api
        .post(
            "/proxies",
            &format!(r#"{{"name":"x","listen":"{addr}","upstream":"127.0.0.1:1"}}"#),
        )
        .await;
    assert_eq!(r.status, 500);
    assert_eq!(
        r.json()["error"],
        json!(format!("listen tcp {addr}: bind: address already in use"))
    );
    assert_eq!(
        api.get("/proxies/x").await.status,
        404,
        "nothing is left behind"
    );
}

#[tokio::test]
async fn toxics_crud_and_errors() {
    let (_s, api) = server().await;
    let up = echo().await;
    api.proxy("p", up).await;
    assert_eq!(api.get("/proxies/p/toxics").await.body, "[]");
    let r = api
        .post(
            "/proxies/p/toxics",
            r#"{"type":"latency","attributes":{"latency":10}}"#,
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body,
        r#"{"attributes":{"latency":10,"jitter":0},"name":"latency_downstream","type":"latency","stream":"downstream","toxicity":1}"#
    );
    // Stream echoed as given, toxicity kept as a float.
    let t = api
        .toxic(
            "p",
            r#"{"type":"bandwidth","stream":"UpStream","toxicity":0.5,"attributes":{"rate":100}}"#,
        )
        .await;
    assert_eq!(t["name"], json!("bandwidth_UpStream"));
    assert_eq!(t["stream"], json!("UpStream"));
    assert_eq!(t["toxicity"], json!(0.5));
    // Upstream toxics are listed first.
    let list = api.get("/proxies/p/toxics").await.json();
    assert_eq!(list[0]["name"], json!("bandwidth_UpStream"));
    assert_eq!(list[1]["name"], json!("latency_downstream"));
    assert_eq!(api.get("/proxies/p").await.json()["toxics"], list);
    let errors = [
        (r#"{"type":"latency","stream":"sideways"}"#, 400, "stream was invalid, can be either upstream or downstream"),
        (r#"{"type":"nope"}"#, 400, "invalid toxic type"),
        (r#"{}"#, 400, "invalid toxic type"),
        (r#"{"type":"latency"}"#, 409, "toxic already exists"),
        (r#"{"name":"bandwidth_UpStream","type":"noop"}"#, 409, "toxic already exists"),
        (r#"{"name":"l2","type":"latency","attributes":{"latency":1.5}}"#, 400,
         "bad request body: json: cannot unmarshal number 1.5 into Go struct field LatencyToxic.latency of type int64"),
        (r#"{"name":"l2","type":"latency","attributes":{"latency":"5"}}"#, 400,
         "bad request body: json: cannot unmarshal string into Go struct field LatencyToxic.latency of type int64"),
        (r#"{"name":"t","type":"latency","toxicity":"1"}"#, 400,
         "bad request body: json: cannot unmarshal string into Go struct field ToxicWrapper.toxicity of type float32"),
        ("", 400, "bad request body: EOF"),
    ];
    for (body, status, msg) in errors {
        let r = api.post("/proxies/p/toxics", body).await;
        assert_eq!(r.json(), json!({"error": msg, "status": status}), "{body}");
        assert_eq!(r.status, status);
    }
    // What Toxiproxy accepts and then hangs or crashes on is refused.
    for body in [
        r#"{"name":"a","type":"bandwidth","attributes":{"rate":0}}"#,
        r#"{"name":"a","type":"bandwidth","attributes":{"rate":-1}}"#,
        r#"{"name":"a","type":"latency","attributes":{"latency":-5}}"#,
        r#"{"name":"a","type":"slicer","attributes":{"average_size":10,"size_variation":20}}"#,
        r#"{"name":"a","type":"packet_loss","attributes":{"loss_rate":1.5}}"#,
        r#"{"name":"a","type":"limit_data","attributes":{"bytes":-1}}"#,
    ] {
        let r = api.post("/proxies/p/toxics", body).await;
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert!(
            r.json()["error"]
                .as_str()
                .unwrap()
                .starts_with("invalid attributes for"),
            "{}",
            r.body
        );
    }
    assert_eq!(api.post("/proxies/nope/toxics", "{}").await.status, 404);
    // Get one, update (PATCH merges attributes, POST too), toxicity.
    let r = api.get("/proxies/p/toxics/latency_downstream").await;
    assert_eq!(r.json()["attributes"], json!({"latency":10,"jitter":0}));
    let r = api
        .patch(
            "/proxies/p/toxics/latency_downstream",
            r#"{"attributes":{"jitter":3},"name":"ignored"}"#,
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["attributes"], json!({"latency":10,"jitter":3}));
    assert_eq!(r.json()["name"], json!("latency_downstream"));
    let r = api
        .post(
            "/proxies/p/toxics/latency_downstream",
            r#"{"toxicity":0.25}"#,
        )
        .await;
    assert_eq!(r.json()["toxicity"], json!(0.25));
    assert_eq!(r.json()["attributes"], json!({"latency":10,"jitter":3}));
    let r = api
        .patch(
            "/proxies/p/toxics/latency_downstream",
            r#"{"attributes":{"latency":-1}}"#,
        )
        .await;
    assert_eq!(r.status, 400);
    let r = api.get("/proxies/p/toxics/nope").await;
    assert_eq!(r.json(), json!({"error":"toxic not found","status":404}));
    assert_eq!(
        api.get("/proxies/nope/toxics/x").await.json()["error"],
        json!("proxy not found")
    );
    // Delete.
    let r = api.delete("/proxies/p/toxics/latency_downstream").await;
    assert_eq!((r.status, r.body.as_str()), (204, ""));
    assert_eq!(
        api.delete("/proxies/p/toxics/latency_downstream")
            .await
            .status,
        404
    );
    // Every toxic type of the reference is accepted with its attributes, all listed.
    for (ty, attrs) in [
        ("latency", json!({"latency":0,"jitter":0})),
        ("slow_close", json!({"delay":0})),
        ("timeout", json!({"timeout":0})),
        ("reset_peer", json!({"timeout":0})),
        (
            "slicer",
            json!({"average_size":0,"size_variation":0,"delay":0}),
        ),
        ("limit_data", json!({"bytes":0})),
        ("noop", json!({})),
        ("packet_loss", json!({"loss_rate":0,"correlation":0})),
    ] {
        let r = api
            .post(
                "/proxies/p/toxics",
                &format!(r#"{{"name":"all_{ty}","type":"{ty}"}}"#),
            )
            .await;
        assert_eq!(r.status, 200, "{ty}: {}", r.body);
        assert_eq!(r.json()["attributes"], attrs, "{ty}");
    }
}

#[tokio::test]
async fn populate_and_reset() {
    let (_s, api) = server().await;
    let up = echo().await;
    let r = api.post("/populate", "[]").await;
    assert_eq!((r.status, r.body.as_str()), (201, r#"{"proxies":[]}"#));
    let r = api.post("/populate", "{}").await;
    assert_eq!(r.status, 400);
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .starts_with("bad request body: json: cannot unmarshal object"));
    let r = api
        .post(
            "/populate",
            &format!(r#"[{{"name":"a","upstream":"{up}"}},{{"upstream":"{up}"}}]"#),
        )
        .await;
    // Populate errors are JSON with the proxies done, as Toxiproxy's (not `http.Error` text).
    assert_eq!(r.content_type, "application/json");
    assert_eq!(
        r.json(),
        json!({"error":"missing required field: name at proxy 2","status":400,"proxies":[]})
    );
    assert_eq!(api.get("/proxies").await.body, "{}", "nothing changed");
    // Two proxies, one with its toxics declared inline (a vaurien extra).
    let body = format!(
        r#"[{{"name":"a","listen":"127.0.0.1:0","upstream":"{up}"}},
            {{"name":"b","listen":"127.0.0.1:0","upstream":"{up}","enabled":false,
              "toxics":[{{"type":"latency","attributes":{{"latency":5}}}}]}}]"#
    );
    let r = api.post("/populate", &body).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let v = r.json();
    assert_eq!(v["proxies"][0]["name"], json!("a"));
    assert_eq!(v["proxies"][1]["enabled"], json!(false));
    assert_eq!(
        v["proxies"][1]["toxics"][0]["name"],
        json!("latency_downstream")
    );
    // Same listen and upstream: kept as it is (toxics added since survive).
    let a_listen = v["proxies"][0]["listen"].as_str().unwrap().to_string();
    api.toxic("a", r#"{"type":"noop"}"#).await;
    let again = format!(r#"[{{"name":"a","listen":"{a_listen}","upstream":"{up}"}}]"#);
    let r = api.post("/populate", &again).await;
    assert_eq!(r.json()["proxies"][0]["toxics"][0]["type"], json!("noop"));
    // Reset: everything enabled, every toxic gone.
    let r = api.post("/reset", "").await;
    assert_eq!((r.status, r.body.as_str()), (204, ""));
    let all = api.get("/proxies").await.json();
    for name in ["a", "b"] {
        assert_eq!(all[name]["enabled"], json!(true), "{name}");
        assert_eq!(all[name]["toxics"], json!([]), "{name}");
    }
    // A bind failure in populate: the error with the proxies done before it.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let r = api
        .post(
            "/populate",
            &format!(r#"[{{"name":"c","listen":"127.0.0.1:0","upstream":"{up}"}},{{"name":"d","listen":"{addr}","upstream":"{up}"}}]"#),
        )
        .await;
    assert_eq!(r.status, 500);
    assert_eq!(r.content_type, "application/json");
    let v = r.json();
    assert_eq!(v["status"], json!(500));
    assert_eq!(v["proxies"][0]["name"], json!("c"));
}

#[tokio::test]
async fn routing_rules() {
    let (_s, api) = server().await;
    let r = api.get("/nope").await;
    assert_eq!((r.status, r.body.as_str()), (404, "404 page not found\n"));
    assert!(r.request_id.is_none());
    let r = api.get("/proxies/").await;
    assert_eq!(r.status, 404, "no trailing-slash redirect");
    for (m, p) in [
        ("PUT", "/proxies"),
        ("GET", "/reset"),
        ("GET", "/populate"),
        ("DELETE", "/version"),
        ("PUT", "/proxies/x/toxics"),
    ] {
        let r = api.call(m, p, None).await;
        assert_eq!((r.status, r.body.as_str()), (405, ""), "{m} {p}");
    }
    let client = reqwest::Client::builder()
        .user_agent("Mozilla/5.0 (X11)")
        .build()
        .unwrap();
    let r = within(client.get(format!("{}/proxies", api.base)).send())
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert_eq!(r.text().await.unwrap(), "User agent not allowed\n");
}

#[tokio::test]
async fn metrics_and_events() {
    let (_s, api) = server().await;
    let up = echo().await;
    let listen = api.proxy("m", up).await;
    api.toxic("m", r#"{"type":"latency","attributes":{"latency":1}}"#)
        .await;
    let mut c = TcpStream::connect(listen).await.unwrap();
    assert_eq!(roundtrip(&mut c, b"12345").await, b"12345");
    let r = api.get("/metrics").await;
    assert_eq!(r.status, 200);
    let line = format!(
        r#"toxiproxy_proxy_received_bytes_total{{direction="upstream",listener="{listen}",proxy="m",upstream="{up}"}} 5"#
    );
    assert!(r.body.contains(&line), "{}", r.body);
    assert!(r.body.contains(&format!(
        r#"toxiproxy_proxy_sent_bytes_total{{direction="downstream",listener="{listen}",proxy="m",upstream="{up}"}} 5"#
    )));
    assert!(r.body.contains(r#"vaurien_connections_total{proxy="m"} 1"#));
    assert!(r
        .body
        .contains(r#"vaurien_faults_total{proxy="m",type="latency"} 1"#));
    let ev = api.get("/events?proxy=m").await.json();
    let ev = &ev[0];
    assert_eq!(ev["proxy"], json!("m"));
    assert_eq!(ev["fault"], json!("latency_downstream"));
    assert_eq!(ev["direction"], json!("downstream"));
    assert_eq!(ev["parameters"], json!({"jitter":0,"latency":1}));
    assert!(ev["connection"].as_u64().is_some());
    assert_eq!(api.delete("/events").await.status, 204);
    assert_eq!(api.get("/events").await.body, "[]");
}

#[tokio::test]
async fn the_command_lines_proxy_is_one_of_them() {
    let up = echo().await;
    let s = server_with(ServerConfig {
        proxy: Some(ProxyConfig {
            listen: "127.0.0.1:0".into(),
            backend: up.to_string(),
            ..ProxyConfig::default()
        }),
        ..ServerConfig::default()
    })
    .await;
    let api = Api::new(s.api_addr().unwrap());
    let v = api.get("/proxies").await.json();
    assert_eq!(v["vaurien"]["upstream"], json!(up.to_string()));
    assert_eq!(v["vaurien"]["enabled"], json!(true));
    // /behavior and /proxies see one world.
    api.toxic("vaurien", r#"{"type":"noop"}"#).await;
    assert_eq!(s.main_proxy().unwrap().shared.toxics().len(), 1);
}

#[tokio::test]
async fn removing_a_toxic_under_load_returns_promptly() {
    let (_s, api) = server().await;
    let up = echo().await;
    let listen = api.proxy("load", up).await;
    api.toxic("load", r#"{"type":"latency","attributes":{"latency":50}}"#)
        .await;
    api.toxic(
        "load",
        r#"{"type":"bandwidth","stream":"upstream","attributes":{"rate":50}}"#,
    )
    .await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let Ok(mut c) = TcpStream::connect(listen).await else {
                return;
            };
            let msg = vec![7u8; 20_000];
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = tokio::time::timeout(Duration::from_secs(5), roundtrip(&mut c, &msg)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t0 = Instant::now();
    assert_eq!(
        api.delete("/proxies/load/toxics/latency_downstream")
            .await
            .status,
        204
    );
    assert_eq!(
        api.delete("/proxies/load/toxics/bandwidth_upstream")
            .await
            .status,
        204
    );
    assert_eq!(api.post("/reset", "").await.status, 204);
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(api.delete("/proxies/load").await.status, 204);
    for t in tasks {
        let _ = within(t).await;
    }
}

#[tokio::test]
async fn populate_failures_leave_the_table_as_toxiproxy_does() {
    let (_s, api) = server().await;
    let up = echo().await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = taken.local_addr().unwrap();
    // A new proxy that cannot bind is not added.
    let r = api
        .post(
            "/populate",
            &format!(r#"[{{"name":"new","listen":"{busy}","upstream":"{up}"}}]"#),
        )
        .await;
    assert_eq!(r.status, 500, "{}", r.body);
    assert_eq!(api.get("/proxies/new").await.status, 404);
    // A replacement that cannot bind leaves the old proxy in place, stopped.
    let r = api
        .post(
            "/populate",
            &format!(r#"[{{"name":"rep","listen":"127.0.0.1:0","upstream":"{up}"}}]"#),
        )
        .await;
    let old_listen = r.json()["proxies"][0]["listen"]
        .as_str()
        .unwrap()
        .to_string();
    let r = api
        .post(
            "/populate",
            &format!(r#"[{{"name":"rep","listen":"{busy}","upstream":"{up}"}}]"#),
        )
        .await;
    assert_eq!(r.status, 500, "{}", r.body);
    let rep = api.get("/proxies/rep").await.json();
    assert_eq!(rep["listen"], json!(old_listen));
    assert_eq!(rep["enabled"], json!(false));
    // So /reset can start everything again.
    let r = api.post("/reset", "").await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(api.get("/proxies/rep").await.json()["enabled"], json!(true));
    // A listen address that is not HOST:PORT fails as Go's net.Listen does: a 500.
    let r = api
        .post(
            "/populate",
            &format!(r#"[{{"name":"bad","listen":"foo","upstream":"{up}"}}]"#),
        )
        .await;
    assert_eq!(r.status, 500);
    assert_eq!(
        r.json()["error"],
        json!("listen tcp: address foo: missing port in address")
    );
}

#[tokio::test]
async fn less_common_errors_in_gos_order_and_words() {
    let (_s, api) = server().await;
    let up = echo().await;
    let r = api
        .post(
            "/proxies",
            &format!(r#"{{"name":"l","listen":"foo","upstream":"{up}"}}"#),
        )
        .await;
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (
            500,
            json!("listen tcp: address foo: missing port in address")
        )
    );
    assert_eq!(api.get("/proxies/l").await.status, 404);
    api.proxy("p", up).await;
    // An empty stream is a bad stream (absent or null means downstream).
    let r = api
        .post(
            "/proxies/p/toxics",
            r#"{"name":"e","type":"latency","stream":""}"#,
        )
        .await;
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (
            400,
            json!("stream was invalid, can be either upstream or downstream")
        )
    );
    let r = api
        .post(
            "/proxies/p/toxics",
            r#"{"name":"n","type":"latency","stream":null}"#,
        )
        .await;
    assert_eq!(
        (r.status, r.json()["stream"].clone()),
        (200, json!("downstream"))
    );
    // The duplicate check comes before the attributes are decoded.
    let r = api
        .post(
            "/proxies/p/toxics",
            r#"{"name":"n","type":"latency","attributes":{"latency":"x"}}"#,
        )
        .await;
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (409, json!("toxic already exists"))
    );
    // What follows the JSON value is left unread, as Go's decoder does.
    let r = api
        .post(
            "/proxies/p/toxics",
            r#"{"name":"t","type":"noop"} trailing"#,
        )
        .await;
    assert_eq!((r.status, r.json()["name"].clone()), (200, json!("t")));
    let r = api
        .post(
            "/populate",
            &format!(r#"[{{"name":"q","upstream":"{up}"}}] x"#),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    // The browser block is a matched route: it carries the request id.
    let client = reqwest::Client::builder()
        .user_agent("Mozilla/5.0 (X11)")
        .build()
        .unwrap();
    let r = within(client.get(format!("{}/proxies", api.base)).send())
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert!(r.headers().contains_key("x-toxiproxy-request-id"));
}

/// What chaostoolkit-toxiproxy 0.3.1 sends (chaostoxi/toxiproxyapi.py: bodies as
/// `requests.post(url, json=...)` encodes them) and what it reads from the answers; the whole
/// experiment runs in scripts/test_chaos.sh.
#[tokio::test]
async fn the_requests_of_chaostoolkit_toxiproxy() {
    let (_s, api) = server().await;
    let up = echo().await;
    // create_proxy: it takes the port after the last ':' of `listen`, and wants digits.
    let create = |name: &str, enabled: bool| {
        format!(
            r#"{{"name": "{name}", "listen": "127.0.0.1:0", "upstream": "{up}", "enabled": {enabled}}}"#
        )
    };
    let r = api.post("/proxies", &create("redis", true)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let listen = r.json()["listen"].as_str().unwrap().to_string();
    let port: u16 = listen.rsplit(':').next().unwrap().parse().unwrap();
    assert_ne!(port, 0);
    // A proxy made disabled shows the port it asked for, digits too.
    let r = api.post("/proxies", &create("later", false)).await;
    assert_eq!(
        (r.status, r.json()["listen"].clone()),
        (201, json!("127.0.0.1:0"))
    );
    // create_toxic: stream and toxicity always sent; attributes null when none are given.
    for (body, attributes) in [
        (
            r#"{"name": "latency_downstream", "type": "latency", "stream": "downstream", "toxicity": 1.0, "attributes": {"latency": 50, "jitter": 5}}"#,
            json!({"latency": 50, "jitter": 5}),
        ),
        (
            r#"{"name": "bandwidth_downstream", "type": "bandwidth", "stream": "downstream", "toxicity": 1.0, "attributes": {"rate": 100}}"#,
            json!({"rate": 100}),
        ),
        (
            r#"{"name": "plain", "type": "slow_close", "stream": "downstream", "toxicity": 1.0, "attributes": null}"#,
            json!({"delay": 0}),
        ),
    ] {
        let t = api.toxic("redis", body).await;
        assert_eq!(t["attributes"], attributes, "{body}");
        assert_eq!(t["toxicity"], json!(1), "Go prints the float 1.0 as 1");
    }
    // get_proxy_attribute reads a key of GET /proxies/{name}.
    let p = api.get("/proxies/redis").await.json();
    let names: Vec<&str> = p["toxics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["latency_downstream", "bandwidth_downstream", "plain"]
    );
    // disable_proxy / enable_proxy: POST /proxies/{name} with `enabled` alone; it takes the
    // port of `listen` from the answer again. Disabled, nothing accepts; enabled, the same port.
    let r = api.post("/proxies/redis", r#"{"enabled": false}"#).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (r.json()["enabled"].clone(), r.json()["listen"].clone()),
        (json!(false), json!(listen))
    );
    assert!(TcpStream::connect(&listen).await.is_err());
    assert_eq!(
        api.get("/proxies/redis").await.json()["enabled"],
        json!(false)
    );
    let r = api.post("/proxies/redis", r#"{"enabled": true}"#).await;
    assert_eq!(
        (r.json()["enabled"].clone(), r.json()["listen"].clone()),
        (json!(true), json!(listen))
    );
    // modify_proxy with `upstream` alone keeps the rest.
    let r = api
        .post("/proxies/redis", &format!(r#"{{"upstream": "{up}"}}"#))
        .await;
    assert_eq!(
        (r.json()["enabled"].clone(), r.json()["listen"].clone()),
        (json!(true), json!(listen))
    );
    // delete_toxic returns `response.ok`: 204 for a toxic there, 404 for one that is not.
    let r = api.delete("/proxies/redis/toxics/plain").await;
    assert_eq!(r.status, 204);
    assert_eq!(api.delete("/proxies/redis/toxics/plain").await.status, 404);
    // reset: POST /reset without a body removes the toxics and enables every proxy.
    let r = api.call("POST", "/reset", None).await;
    assert_eq!(r.status, 204, "{}", r.body);
    let p = api.get("/proxies/redis").await.json();
    assert_eq!(
        (p["toxics"].clone(), p["enabled"].clone()),
        (json!([]), json!(true))
    );
    let mut c = TcpStream::connect(&listen).await.unwrap();
    assert_eq!(roundtrip(&mut c, b"PING").await, b"PING");
    assert_eq!(
        api.get("/proxies/later").await.json()["enabled"],
        json!(true)
    );
    // delete_proxy, then proxy_exist: a 404 reads as "does not exist".
    assert_eq!(api.delete("/proxies/redis").await.status, 204);
    assert_eq!(api.get("/proxies/redis").await.status, 404);
}
