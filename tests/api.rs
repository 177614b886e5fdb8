//! The original Vaurien's control API: every route, JSON shape, status code and error body.

mod common;

use common::*;
use serde_json::json;

async fn started() -> Running {
    let backend = echo_server().await;
    vaurien(backend).behavior("20:delay").http().start().await
}

fn error_body(name: &str, description: &str) -> serde_json::Value {
    json!({"status": "error", "errors": [{"location": "body", "name": name, "description": description}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behavior_routes() {
    within(async {
        let v = started().await;
        let a = v.api();
        // The mix given at start, as given.
        assert_eq!(
            json(a, "GET", "/behavior", None).await,
            (200, json!({"behavior": "20:delay"}))
        );
        assert_eq!(
            json(
                a,
                "PUT",
                "/behavior",
                Some(r#"{"name": "delay", "sleep": 2}"#)
            )
            .await,
            (200, json!({"status": "ok"}))
        );
        assert_eq!(
            json(a, "GET", "/behavior", None).await,
            (200, json!({"behavior": "delay"}))
        );
        // A mix is accepted as a name, so that with_behavior can restore what was active.
        assert_eq!(
            json(
                a,
                "PUT",
                "/behavior",
                Some(r#"{"name": "50:delay,10:error"}"#)
            )
            .await
            .0,
            200
        );
        assert_eq!(
            json(a, "GET", "/behavior", None).await.1["behavior"],
            "50:delay,10:error"
        );
        let (st, body) = json(a, "GET", "/behaviors", None).await;
        assert_eq!(st, 200);
        let names: Vec<&str> = body["behaviors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        for b in [
            "abort",
            "blackout",
            "delay",
            "dummy",
            "error",
            "hang",
            "transient",
        ] {
            assert!(names.contains(&b), "{b} missing from {names:?}");
        }
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        // A known path with another method: 405, not a 404 or a 500.
        for (method, path) in [
            ("POST", "/behavior"),
            ("DELETE", "/behaviors"),
            ("POST", "/backend"),
        ] {
            let (st, _, _) = http(a, method, path, Some(b"{}")).await;
            assert_eq!(st, 405, "{method} {path}");
        }
        v.stop().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behavior_errors() {
    within(async {
        let v = started().await;
        let a = v.api();
        let cases: &[(&str, serde_json::Value)] = &[
            (
                r#"{"name": "nope"}"#,
                error_body("name", "the 'nope' behavior does not exist"),
            ),
            (
                "not json",
                error_body("", "the value is not a valid json object"),
            ),
            (
                "[1, 2]",
                error_body("", "the value is not a valid json object"),
            ),
            ("", error_body("", "the value is not a valid json object")),
            (
                r#"{"sleep": 1}"#,
                error_body("", "the value should contain a \"name\" key"),
            ),
            (
                r#"{"name": 3}"#,
                error_body("name", "the '3' behavior does not exist"),
            ),
            (
                r#"{"name": null}"#,
                error_body("name", "the 'None' behavior does not exist"),
            ),
            (
                r#"{"name": ""}"#,
                error_body("name", "the '' behavior does not exist"),
            ),
            // A value a behavior refuses: the error lists the behavior's options.
            (
                r#"{"name": "bandwidth", "rate": 0}"#,
                error_body(
                    "name",
                    "behavior 'bandwidth': rate must be more than 0, not 0 \
                     (the options of bandwidth: rate (int))",
                ),
            ),
        ];
        for (body, expected) in cases {
            let (st, got) = json(a, "PUT", "/behavior", Some(body)).await;
            assert_eq!(st, 400, "{body}");
            assert_eq!(&got, expected, "{body}");
        }
        // Options the original took without an error (a bad value, an unknown key, null) are
        // left out with a warning; the behavior is set (tests_compat/test_api.py, options/*).
        for body in [
            r#"{"name": "delay", "sleep": "soon"}"#,
            r#"{"name": "delay", "slep": 1}"#,
            r#"{"name": "delay", "sleep": null}"#,
        ] {
            let (st, got) = json(a, "PUT", "/behavior", Some(body)).await;
            assert_eq!(st, 200, "{body}: {got}");
            assert_eq!(
                json(a, "GET", "/behavior", None).await.1["behavior"],
                "delay"
            );
        }
        let (st, _) = json(a, "PUT", "/behavior", Some(r#"{"name": "20:delay"}"#)).await;
        assert_eq!(st, 200);
        let (st, got) = json(
            a,
            "PUT",
            "/behavior",
            Some(r#"{"name": "60:delay,60:error"}"#),
        )
        .await;
        assert_eq!(st, 400);
        assert!(
            got["errors"][0]["description"]
                .as_str()
                .unwrap()
                .contains("100 or less"),
            "{got}"
        );
        assert_eq!(
            json(a, "GET", "/behavior", None).await.1["behavior"],
            "20:delay"
        );
        // A body over 1 MiB: a 4xx with the same shape, never a 500.
        let big = format!(r#"{{"name": "delay", "x": "{}"}}"#, "a".repeat(1 << 20));
        let (st, _, body) = http(a, "PUT", "/behavior", Some(big.as_bytes())).await;
        assert_eq!(st, 400);
        let got: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(got["status"], "error");
        v.stop().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_routes() {
    within(async {
        let v = started().await;
        let a = v.api();
        let (st, body) = json(a, "GET", "/backend", None).await;
        assert_eq!(st, 200);
        assert!(body["backend"].as_str().unwrap().starts_with("127.0.0.1:"));
        let other = echo_server().await;
        assert_eq!(
            json(
                a,
                "PUT",
                "/backend",
                Some(&format!(r#"{{"backend": "{other}"}}"#))
            )
            .await,
            (200, json!({"status": "ok"}))
        );
        assert_eq!(
            json(a, "GET", "/backend", None).await.1["backend"],
            other.to_string()
        );
        let mut s = v.connect().await;
        assert_eq!(roundtrip(&mut s, b"x").await.unwrap(), b"x");
        // Errors: invalid JSON is a 400 (the original answered 500), and so is a bad address.
        assert_eq!(
            json(a, "PUT", "/backend", Some("{oops")).await,
            (400, error_body("", "the value is not a valid json object"))
        );
        let (st, got) = json(a, "PUT", "/backend", Some(r#"{"backend": "nocolon"}"#)).await;
        assert_eq!(st, 400);
        assert_eq!(got["errors"][0]["name"], "backend");
        let (st, _) = json(a, "PUT", "/backend", Some(r#"{}"#)).await;
        assert_eq!(st, 400);
        v.stop().await;
    })
    .await
}
