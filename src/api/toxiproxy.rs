//! Toxiproxy's routes, as its clients see them: the same paths, status codes, JSON shapes and
//! key order, and error bodies (see docs/toxiproxy.md for where vaurien differs and why).
//!
//! Request bodies are read the way Go's `encoding/json` reads them into Toxiproxy's structs:
//! keys match case-insensitively, unknown keys are ignored, `null` leaves a field unset, a
//! wrong JSON type or a fraction for an integer is an error, and errors read like Go's.

// Handlers' helpers fail with the response itself: built once per refused request, cold path.
#![allow(clippy::result_large_err)]

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use rand::Rng;
use serde_json::{json, Map, Value};

use super::error::toxiproxy_error;
use crate::behavior::{registry, BehaviorError, Kind, OptionKind, Options, Value as OptValue};
use crate::proxy::{Limits, Proxy, ProxyError, Toxic};
use crate::server::{CollectionError, ProxySpec, Server, ToxicSpec};
use std::time::Duration;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/proxies")
            .route(web::get().to(list_proxies))
            .route(web::post().to(create_proxy))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/populate")
            .route(web::post().to(populate))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/reset")
            .route(web::post().to(reset))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/version")
            .route(web::get().to(version))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/metrics")
            .route(web::get().to(metrics))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/events")
            .route(web::get().to(events))
            .route(web::delete().to(clear_events))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/proxies/{proxy}")
            .route(web::get().to(get_proxy))
            .route(web::post().to(update_proxy))
            .route(web::patch().to(update_proxy))
            .route(web::delete().to(delete_proxy))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/proxies/{proxy}/toxics")
            .route(web::get().to(list_toxics))
            .route(web::post().to(create_toxic))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/proxies/{proxy}/toxics/{toxic}")
            .route(web::get().to(get_toxic))
            .route(web::post().to(update_toxic))
            .route(web::patch().to(update_toxic))
            .route(web::delete().to(delete_toxic))
            .default_service(web::to(method_not_allowed)),
    );
}

/// Unknown path: Go's mux answers `404 page not found` in text.
pub async fn not_found() -> HttpResponse {
    HttpResponse::NotFound()
        .insert_header(("Content-Type", "text/plain; charset=utf-8"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .body("404 page not found\n")
}

/// Known path, wrong method: Go's mux answers 405 with an empty body.
/// A known path with a wrong method: 405 with an empty body (as Go's mux answers).
pub async fn method_not_allowed() -> HttpResponse {
    HttpResponse::MethodNotAllowed().finish()
}

/// What every matched route does around its handler: browsers are refused (same-origin
/// protection, as Toxiproxy 2.1.2+), and each answer carries a request id. A browser's
/// same-origin request (the page at `/ui`) is served: it says so with `Sec-Fetch-Site:
/// same-origin`, or, from browsers that do not send that header, with an `Origin`, which the
/// API's guard (guard.rs) has already checked is the API's own.
pub(super) fn refuse_browser(req: &HttpRequest) -> Option<HttpResponse> {
    let text = |name| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let same_origin = match req.headers().get("sec-fetch-site") {
        Some(site) => site.as_bytes().eq_ignore_ascii_case(b"same-origin"),
        None => req.headers().contains_key(header::ORIGIN),
    };
    (text(header::USER_AGENT).starts_with("Mozilla/") && !same_origin).then(|| {
        HttpResponse::Forbidden()
            .insert_header(("Content-Type", "text/plain; charset=utf-8"))
            .insert_header(("X-Content-Type-Options", "nosniff"))
            .body("User agent not allowed\n")
    })
}

fn with_id(mut resp: HttpResponse) -> HttpResponse {
    let id: u128 = rand::rng().random();
    if let Ok(v) = header::HeaderValue::from_str(&format!("{id:032x}")) {
        resp.headers_mut()
            .insert(header::HeaderName::from_static("x-toxiproxy-request-id"), v);
    }
    resp
}

/// Runs a handler body with the guard and the request id.
macro_rules! matched {
    ($req:expr, $body:expr) => {{
        if let Some(r) = refuse_browser(&$req) {
            return with_id(r);
        }
        with_id($body)
    }};
}

fn ok_json(status: u16, v: &Value) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap_or_default())
        .insert_header(("Content-Type", "application/json"))
        .body(v.to_string())
}

fn no_content() -> HttpResponse {
    HttpResponse::NoContent().finish()
}

// ---------------------------------------------------------------------------------------------
// Decoding as Go does

/// Why a body was refused: the `bad request body: ...` message part.
struct BadBody(String);

/// Parses a body as JSON; the error reads like Go's decoder's.
fn decode(body: &[u8]) -> Result<Value, BadBody> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(BadBody("EOF".into()));
    }
    // Go's `json.Decoder.Decode` reads one value and leaves what follows it unread.
    let mut values = serde_json::Deserializer::from_slice(body).into_iter::<Value>();
    match values.next() {
        Some(Ok(v)) => Ok(v),
        Some(Err(e)) => Err(BadBody(go_syntax_error(body, &e))),
        None => Err(BadBody("EOF".into())),
    }
}

fn go_syntax_error(body: &[u8], e: &serde_json::Error) -> String {
    if e.is_eof() {
        return "unexpected EOF".into();
    }
    // The offending character, found from serde's line and column.
    let text = String::from_utf8_lossy(body);
    let c = text
        .lines()
        .nth(e.line().saturating_sub(1))
        .and_then(|l| l.chars().nth(e.column().saturating_sub(1)));
    match c {
        Some(c) => {
            let what = if e.to_string().contains("key must be a string") {
                "looking for beginning of object key string"
            } else if e.to_string().contains("trailing characters") {
                "after top-level value"
            } else {
                "looking for beginning of value"
            };
            format!("invalid character '{c}' {what}")
        }
        None => e.to_string(),
    }
}

/// Go's name for the JSON type of a value in `cannot unmarshal X into ...`.
fn go_kind(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(_) => "bool".into(),
        Value::Number(n) => format!("number {n}"),
        Value::String(_) => "string".into(),
        Value::Array(_) => "array".into(),
        Value::Object(_) => "object".into(),
    }
}

fn type_error(v: &Value, field: &str, go_type: &str) -> BadBody {
    let kind = match v {
        Value::Number(_) if go_type != "int64" => "number".to_string(),
        other => go_kind(other),
    };
    BadBody(format!(
        "json: cannot unmarshal {kind} into Go struct field {field} of type {go_type}"
    ))
}

/// A field of an object, its key matched case-insensitively (an exact match wins); `null`
/// counts as absent.
fn field<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    let v = obj.get(name).or_else(|| {
        obj.iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
            .next_back()
    })?;
    (!v.is_null()).then_some(v)
}

fn string_field(obj: &Map<String, Value>, name: &str, st: &str) -> Result<Option<String>, BadBody> {
    match field(obj, name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(type_error(v, &format!("{st}.{name}"), "string")),
    }
}

fn bool_field(obj: &Map<String, Value>, name: &str, st: &str) -> Result<Option<bool>, BadBody> {
    match field(obj, name) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => Err(type_error(v, &format!("{st}.{name}"), "bool")),
    }
}

fn f32_field(obj: &Map<String, Value>, name: &str, st: &str) -> Result<Option<f32>, BadBody> {
    match field(obj, name) {
        None => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64().map(|f| f as f32)),
        Some(v) => Err(type_error(v, &format!("{st}.{name}"), "float32")),
    }
}

/// A positive integer field (`count`, `expires_ms`): Go's decode error for a wrong JSON type,
/// a 400 naming the field for 0 or less.
fn positive_field(obj: &Map<String, Value>, name: &str) -> Result<Option<u64>, HttpResponse> {
    match field(obj, name) {
        None => Ok(None),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(i) if i > 0 => Ok(Some(i as u64)),
            Some(_) => Err(toxiproxy_error(
                400,
                &format!("invalid {name}: must be more than 0"),
            )),
            None => Err(bad_body(type_error(
                &Value::Number(n.clone()),
                &format!("ToxicWrapper.{name}"),
                "int64",
            ))),
        },
        Some(v) => Err(bad_body(type_error(
            v,
            &format!("ToxicWrapper.{name}"),
            "int64",
        ))),
    }
}

fn object<'a>(v: &'a Value, go_type: &str) -> Result<&'a Map<String, Value>, BadBody> {
    v.as_object().ok_or_else(|| {
        BadBody(format!(
            "json: cannot unmarshal {} into Go value of type {go_type}",
            match v {
                Value::Number(_) => "number".to_string(),
                other => go_kind(other),
            }
        ))
    })
}

fn bad_body(e: BadBody) -> HttpResponse {
    toxiproxy_error(400, &format!("bad request body: {}", e.0))
}

/// Go's struct name for a toxic type (`latency` → `LatencyToxic`), for decode errors.
fn go_struct(kind: &str) -> String {
    let mut s: String = kind
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect();
    s.push_str("Toxic");
    s
}

/// Attributes from JSON over `base`: schema names matched case-insensitively, unknown keys
/// ignored, JSON types checked as Go would (an integer attribute refuses `1.5` and `"1"`).
fn attributes(kind: &Kind, base: &Options, v: Option<&Value>) -> Result<Options, BadBody> {
    let mut out = base.clone();
    let Some(v) = v else { return Ok(out) };
    let st = go_struct(&kind.name);
    let obj = match v {
        Value::Object(m) => m,
        other => {
            return Err(BadBody(format!(
                "json: cannot unmarshal {} into Go value of type toxics.{st}",
                match other {
                    Value::Number(_) => "number".to_string(),
                    o => go_kind(o),
                }
            )))
        }
    };
    for spec in &kind.options {
        let Some(v) = field(obj, &spec.name) else {
            continue;
        };
        let path = format!("{st}.{}", spec.name);
        let val = match (spec.kind, v) {
            (OptionKind::Int, Value::Number(n)) => match n.as_i64() {
                Some(i) => OptValue::Int(i),
                None => return Err(type_error(v, &path, "int64")),
            },
            (OptionKind::Int, _) => return Err(type_error(v, &path, "int64")),
            (OptionKind::Float, Value::Number(n)) => OptValue::Float(n.as_f64().unwrap_or(0.0)),
            (OptionKind::Float, _) => return Err(type_error(v, &path, "float64")),
            (OptionKind::Bool, Value::Bool(b)) => OptValue::Bool(*b),
            (OptionKind::Bool, _) => return Err(type_error(v, &path, "bool")),
            (OptionKind::Str, Value::String(s)) => OptValue::Str(s.clone()),
            (OptionKind::Str, _) => return Err(type_error(v, &path, "string")),
        };
        out.set(&spec.name, val);
    }
    Ok(out)
}

/// A number as Go prints it: whole numbers without a fraction.
fn go_number(f: f64) -> Value {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        json!(f as i64)
    } else {
        // Shortest text of the value as given (a float32 toxicity prints as `0.1`).
        serde_json::from_str(&f.to_string()).unwrap_or(Value::Null)
    }
}

// ---------------------------------------------------------------------------------------------
// JSON of the objects

/// A toxic: `attributes` (every field, in the type's order), `name`, `type`, `stream` (as
/// given), `toxicity`.
pub fn toxic_json(t: &Toxic) -> Value {
    let mut attrs = Map::new();
    let order: Vec<String> = registry()
        .get(&t.kind)
        .map(|k| k.options.iter().map(|o| o.name.clone()).collect())
        .unwrap_or_else(|_| t.attributes.0.keys().cloned().collect());
    for name in order {
        if let Some(v) = t.attributes.get(&name) {
            let j = match v {
                OptValue::Float(f) => go_number(*f),
                other => other.to_json(),
            };
            attrs.insert(name, j);
        }
    }
    let toxicity = {
        let f = t.toxicity;
        if f.fract() == 0.0 {
            json!(f as i64)
        } else {
            serde_json::from_str(&f.to_string()).unwrap_or(Value::Null)
        }
    };
    let mut m = Map::new();
    m.insert("attributes".into(), Value::Object(attrs));
    m.insert("name".into(), json!(t.name));
    m.insert("type".into(), json!(t.kind));
    m.insert("stream".into(), json!(t.stream_text));
    m.insert("toxicity".into(), toxicity);
    // vaurien extras, only when set.
    if let Some(d) = t.limits.expires {
        m.insert("expires_ms".into(), json!(d.as_millis() as u64));
    }
    if let Some(n) = t.limits.count {
        m.insert("count".into(), json!(n));
    }
    Value::Object(m)
}

/// A proxy: `name`, `listen` (the bound address while enabled), `upstream`, `enabled`,
/// `protocol` (only when not `tcp`) and `behavior` (the mix, only when it is not all `dummy`),
/// both vaurien extras, `toxics` (upstream ones first).
pub async fn proxy_json(p: &Proxy) -> Value {
    let bound = p.local_addr().await;
    let mut m = Map::new();
    m.insert("name".into(), json!(p.shared.name));
    m.insert(
        "listen".into(),
        json!(bound.map(|a| a.to_string()).unwrap_or_else(|| p.listen())),
    );
    m.insert("upstream".into(), json!(p.shared.backend()));
    m.insert("enabled".into(), json!(bound.is_some()));
    let protocol = p.shared.protocol.name();
    if protocol != "tcp" {
        m.insert("protocol".into(), json!(protocol));
    }
    let behavior = p.shared.behavior();
    let passthrough = crate::behavior::MixSpec::parse(&behavior, true)
        .is_ok_and(|s| s.names().iter().all(|n| n == "dummy"));
    if !passthrough {
        m.insert("behavior".into(), json!(behavior));
    }
    m.insert(
        "toxics".into(),
        Value::Array(p.shared.toxics().iter().map(|t| toxic_json(t)).collect()),
    );
    Value::Object(m)
}

// ---------------------------------------------------------------------------------------------
// Errors

fn proxy_error(e: &ProxyError) -> HttpResponse {
    match e {
        ProxyError::ToxicNotFound => toxiproxy_error(404, "toxic not found"),
        ProxyError::ToxicExists => toxiproxy_error(409, "toxic already exists"),
        ProxyError::Behavior(BehaviorError::Unknown { .. }) => {
            toxiproxy_error(400, "invalid toxic type")
        }
        ProxyError::Behavior(BehaviorError::BadOption { behavior, message }) => toxiproxy_error(
            400,
            &format!("invalid attributes for {behavior}: {message}"),
        ),
        ProxyError::Protocol(p) => toxiproxy_error(400, &p.to_string()),
        ProxyError::Address(_) | ProxyError::Port(..) => toxiproxy_error(400, &e.to_string()),
        ProxyError::Bind { addr, source } => {
            toxiproxy_error(500, &format!("listen tcp {addr}: bind: {}", go_io(source)))
        }
        ProxyError::Resolve { addr, source } => toxiproxy_error(
            500,
            &format!("listen tcp: lookup {addr}: {}", go_io(source)),
        ),
        other => toxiproxy_error(500, &other.to_string()),
    }
}

/// An OS error as Go prints it: `address already in use`.
fn go_io(e: &std::io::Error) -> String {
    let s = e.to_string();
    let s = match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    };
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().collect::<String>() + c.as_str(),
        None => s,
    }
}

fn collection_error(e: &CollectionError) -> HttpResponse {
    match e {
        CollectionError::NotFound => toxiproxy_error(404, "proxy not found"),
        CollectionError::Exists => toxiproxy_error(409, "proxy already exists"),
        CollectionError::Proxy(p) => proxy_error(p),
    }
}

/// A `listen` that is not HOST:PORT fails in Go when the proxy starts, as a 500 in
/// `net.Listen`'s words (an `upstream` that is not HOST:PORT stays a 400: see docs/toxiproxy.md).
fn go_listen_error(e: &CollectionError, listen: Option<&str>) -> Option<String> {
    match e {
        CollectionError::Proxy(ProxyError::Address(a)) if Some(a.as_str()) == listen => {
            let why = if a.contains(':') {
                "invalid port"
            } else {
                "missing port in address"
            };
            Some(format!("listen tcp: address {a}: {why}"))
        }
        CollectionError::Proxy(ProxyError::Port(a, _)) if Some(a.as_str()) == listen => {
            Some(format!("listen tcp: address {a}: invalid port"))
        }
        _ => None,
    }
}

/// [`collection_error`], with a bad `listen` answered as Go does.
fn collection_error_at(e: &CollectionError, listen: Option<&str>) -> HttpResponse {
    match go_listen_error(e, listen) {
        Some(m) => toxiproxy_error(500, &m),
        None => collection_error(e),
    }
}

fn status_and_message(e: &CollectionError, listen: Option<&str>) -> (u16, String) {
    if let Some(m) = go_listen_error(e, listen) {
        return (500, m);
    }
    let resp = collection_error(e);
    let status = resp.status().as_u16();
    let msg = match e {
        CollectionError::Proxy(ProxyError::Bind { addr, source }) => {
            format!("listen tcp {addr}: bind: {}", go_io(source))
        }
        CollectionError::Proxy(ProxyError::Behavior(BehaviorError::Unknown { .. })) => {
            "invalid toxic type".into()
        }
        CollectionError::Proxy(ProxyError::Behavior(BehaviorError::BadOption {
            behavior,
            message,
        })) => format!("invalid attributes for {behavior}: {message}"),
        other => other.to_string(),
    };
    (status, msg)
}

// ---------------------------------------------------------------------------------------------
// Specs from bodies

/// A proxy declaration (`POST /proxies`, `/populate`, `-config`). `Err` carries the response.
fn proxy_spec(v: &Value, go_type: &str, at: Option<usize>) -> Result<ProxySpec, HttpResponse> {
    let obj = object(v, go_type).map_err(bad_body)?;
    let name = string_field(obj, "name", "Proxy").map_err(bad_body)?;
    let listen = string_field(obj, "listen", "Proxy").map_err(bad_body)?;
    let upstream = string_field(obj, "upstream", "Proxy").map_err(bad_body)?;
    let enabled = bool_field(obj, "enabled", "Proxy").map_err(bad_body)?;
    let protocol = string_field(obj, "protocol", "Proxy").map_err(bad_body)?;
    let suffix = at.map(|n| format!(" at proxy {n}")).unwrap_or_default();
    let name = name
        .filter(|s| !s.is_empty())
        .ok_or_else(|| toxiproxy_error(400, &format!("missing required field: name{suffix}")))?;
    let upstream = upstream.filter(|s| !s.is_empty()).ok_or_else(|| {
        toxiproxy_error(400, &format!("missing required field: upstream{suffix}"))
    })?;
    let mut toxics = Vec::new();
    let declares_toxics = field(obj, "toxics").is_some();
    if let Some(list) = field(obj, "toxics") {
        let Value::Array(items) = list else {
            return Err(bad_body(type_error(
                list,
                "Proxy.toxics",
                "[]toxics.ToxicWrapper",
            )));
        };
        for item in items {
            let spec = toxic_spec(item, &|name| {
                toxics.iter().any(|t: &ToxicSpec| t.name == name)
            })?;
            toxics.push(spec);
        }
    }
    Ok(ProxySpec {
        name,
        listen: listen.unwrap_or_default(),
        upstream,
        enabled: enabled.unwrap_or(true),
        protocol: protocol.unwrap_or_else(|| "tcp".into()),
        toxics,
        declares_toxics,
    })
}

/// A toxic declaration, checked in Toxiproxy's order: stream, default name, type, duplicate
/// name (`taken`: 409), attributes.
fn toxic_spec(v: &Value, taken: &dyn Fn(&str) -> bool) -> Result<ToxicSpec, HttpResponse> {
    let obj = object(v, "toxics.ToxicWrapper").map_err(bad_body)?;
    let name = string_field(obj, "name", "ToxicWrapper").map_err(bad_body)?;
    let kind = string_field(obj, "type", "ToxicWrapper").map_err(bad_body)?;
    let stream = string_field(obj, "stream", "ToxicWrapper").map_err(bad_body)?;
    let toxicity = f32_field(obj, "toxicity", "ToxicWrapper").map_err(bad_body)?;
    // Absent (or null) is "downstream"; an empty string is a bad stream, as in Go.
    let stream = stream.unwrap_or_else(|| "downstream".into());
    if crate::base::Direction::parse(&stream).is_none() {
        return Err(toxiproxy_error(
            400,
            "stream was invalid, can be either upstream or downstream",
        ));
    }
    let kind_name = kind.unwrap_or_default();
    let name = name
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("{kind_name}_{stream}"));
    let kind = registry()
        .get(&kind_name)
        .map_err(|_| toxiproxy_error(400, "invalid toxic type"))?;
    if taken(&name) {
        return Err(toxiproxy_error(409, "toxic already exists"));
    }
    let attributes = attributes(
        &kind,
        &Options::defaults(&kind.options),
        field(obj, "attributes"),
    )
    .map_err(bad_body)?;
    // Built once here so that a refused value is a 400 before anything changes.
    kind.build(&attributes)
        .map_err(|e| proxy_error(&ProxyError::Behavior(e)))?;
    let limits = Limits {
        expires: positive_field(obj, "expires_ms")?.map(Duration::from_millis),
        count: positive_field(obj, "count")?,
    };
    Ok(ToxicSpec {
        name,
        kind: kind_name,
        stream,
        toxicity: toxicity.unwrap_or(1.0),
        attributes,
        limits,
    })
}

/// The `-config` file and `/populate` bodies: a JSON array of proxies, all checked first.
pub fn populate_specs(body: &[u8]) -> Result<Vec<ProxySpec>, HttpResponse> {
    let v = decode(body).map_err(bad_body)?;
    let Value::Array(items) = &v else {
        return Err(bad_body(BadBody(format!(
            "json: cannot unmarshal {} into Go value of type []proxy.Proxy",
            match &v {
                Value::Number(_) => "number".to_string(),
                o => go_kind(o),
            }
        ))));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| proxy_spec(item, "proxy.Proxy", Some(i + 1)))
        .collect()
}

/// The `error` message of an error response (for `-config` errors on stderr).
pub async fn error_text(resp: HttpResponse) -> String {
    let body = actix_web::body::to_bytes(resp.into_body())
        .await
        .unwrap_or_default();
    serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_string())
}

// ---------------------------------------------------------------------------------------------
// Handlers

fn find_proxy(server: &Server, name: &str) -> Result<std::sync::Arc<Proxy>, HttpResponse> {
    server
        .proxy(name)
        .ok_or_else(|| toxiproxy_error(404, "proxy not found"))
}

async fn list_proxies(req: HttpRequest, server: web::Data<Server>) -> HttpResponse {
    matched!(req, {
        let mut m = Map::new();
        for p in server.all_proxies() {
            m.insert(p.shared.name.clone(), proxy_json(&p).await);
        }
        ok_json(200, &Value::Object(m))
    })
}

async fn create_proxy(
    req: HttpRequest,
    server: web::Data<Server>,
    body: web::Bytes,
) -> HttpResponse {
    matched!(req, {
        match decode(&body)
            .map_err(bad_body)
            .and_then(|v| proxy_spec(&v, "proxy.Proxy", None))
        {
            Err(r) => r,
            Ok(spec) => match server.create_proxy(&spec).await {
                Ok(p) => ok_json(201, &proxy_json(&p).await),
                Err(e) => collection_error_at(&e, Some(&spec.listen)),
            },
        }
    })
}

async fn get_proxy(
    req: HttpRequest,
    server: web::Data<Server>,
    path: web::Path<String>,
) -> HttpResponse {
    matched!(req, {
        match find_proxy(&server, &path) {
            Ok(p) => ok_json(200, &proxy_json(&p).await),
            Err(r) => r,
        }
    })
}

async fn update_proxy(
    req: HttpRequest,
    server: web::Data<Server>,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    matched!(req, {
        let parsed = (|| {
            let v = decode(&body)?;
            let obj = object(&v, "proxy.Proxy")?;
            Ok::<_, BadBody>((
                string_field(obj, "listen", "Proxy")?,
                string_field(obj, "upstream", "Proxy")?,
                bool_field(obj, "enabled", "Proxy")?,
            ))
        })();
        match find_proxy(&server, &path) {
            Err(r) => r,
            Ok(_) => match parsed {
                Err(e) => bad_body(e),
                Ok((listen, upstream, enabled)) => {
                    let asked = listen.clone();
                    match server.update_proxy(&path, listen, upstream, enabled).await {
                        Ok(p) => ok_json(200, &proxy_json(&p).await),
                        Err(e) => collection_error_at(&e, asked.as_deref()),
                    }
                }
            },
        }
    })
}

async fn delete_proxy(
    req: HttpRequest,
    server: web::Data<Server>,
    path: web::Path<String>,
) -> HttpResponse {
    matched!(req, {
        match server.delete_proxy(&path).await {
            Ok(()) => no_content(),
            Err(e) => collection_error(&e),
        }
    })
}

async fn populate(req: HttpRequest, server: web::Data<Server>, body: web::Bytes) -> HttpResponse {
    matched!(req, {
        match populate_specs(&body) {
            // As every populate error in Toxiproxy: JSON, with the (no) proxies done.
            Err(r) => {
                let status = r.status().as_u16();
                let message = error_text(r).await;
                ok_json(
                    status,
                    &json!({"error": message, "status": status, "proxies": []}),
                )
            }
            Ok(specs) => match server.populate(&specs).await {
                Ok(done) => {
                    let mut list = Vec::new();
                    for p in &done {
                        list.push(proxy_json(p).await);
                    }
                    // `[]`, not Toxiproxy's `null`, for an empty input: clients iterate it.
                    ok_json(201, &json!({ "proxies": list }))
                }
                Err((e, done)) => {
                    // The entry that failed is the one after those done.
                    let listen = specs.get(done.len()).map(|s| s.listen.as_str());
                    let (status, message) = status_and_message(&e, listen);
                    let mut list = Vec::new();
                    for p in &done {
                        list.push(proxy_json(p).await);
                    }
                    ok_json(
                        status,
                        &json!({"error": message, "status": status, "proxies": list}),
                    )
                }
            },
        }
    })
}

async fn reset(req: HttpRequest, server: web::Data<Server>) -> HttpResponse {
    matched!(req, {
        match server.reset().await {
            Ok(()) => no_content(),
            Err(e) => proxy_error(&e),
        }
    })
}

async fn version(req: HttpRequest) -> HttpResponse {
    matched!(req, {
        HttpResponse::Ok()
            .insert_header(("Content-Type", "application/json;charset=utf-8"))
            .body(format!("{{\"version\": \"{}\"}}\n", crate::VERSION))
    })
}

async fn metrics(req: HttpRequest, server: web::Data<Server>) -> HttpResponse {
    matched!(req, {
        HttpResponse::Ok()
            .insert_header(("Content-Type", crate::telemetry::CONTENT_TYPE))
            .body(crate::telemetry::prometheus(&server).await)
    })
}

#[derive(serde::Deserialize)]
struct EventsQuery {
    proxy: Option<String>,
}

async fn events(
    req: HttpRequest,
    server: web::Data<Server>,
    q: web::Query<EventsQuery>,
) -> HttpResponse {
    matched!(req, {
        let list = server.events.events(q.proxy.as_deref()).await;
        ok_json(200, &serde_json::to_value(list).unwrap_or(Value::Null))
    })
}

async fn clear_events(req: HttpRequest, server: web::Data<Server>) -> HttpResponse {
    matched!(req, {
        server.events.clear().await;
        no_content()
    })
}

async fn list_toxics(
    req: HttpRequest,
    server: web::Data<Server>,
    path: web::Path<String>,
) -> HttpResponse {
    matched!(req, {
        match find_proxy(&server, &path) {
            Ok(p) => ok_json(
                200,
                &Value::Array(p.shared.toxics().iter().map(|t| toxic_json(t)).collect()),
            ),
            Err(r) => r,
        }
    })
}

async fn create_toxic(
    req: HttpRequest,
    server: web::Data<Server>,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    matched!(req, {
        let p = match find_proxy(&server, &path) {
            Ok(p) => p,
            Err(r) => return with_id(r),
        };
        let taken = |name: &str| p.shared.toxics().iter().any(|t| t.name == name);
        let spec = match decode(&body)
            .map_err(bad_body)
            .and_then(|v| toxic_spec(&v, &taken))
        {
            Ok(s) => s,
            Err(r) => return with_id(r),
        };
        match p.shared.add_toxic(
            &spec.name,
            &spec.kind,
            &spec.stream,
            spec.toxicity,
            spec.attributes,
            spec.limits,
        ) {
            Ok(t) => ok_json(200, &toxic_json(&t)),
            Err(e) => proxy_error(&e),
        }
    })
}

fn find_toxic(p: &Proxy, name: &str) -> Result<std::sync::Arc<Toxic>, HttpResponse> {
    p.shared
        .toxics()
        .into_iter()
        .find(|t| t.name == name)
        .ok_or_else(|| toxiproxy_error(404, "toxic not found"))
}

async fn get_toxic(
    req: HttpRequest,
    server: web::Data<Server>,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    matched!(req, {
        let (proxy, toxic) = path.into_inner();
        match find_proxy(&server, &proxy).and_then(|p| find_toxic(&p, &toxic)) {
            Ok(t) => ok_json(200, &toxic_json(&t)),
            Err(r) => r,
        }
    })
}

async fn update_toxic(
    req: HttpRequest,
    server: web::Data<Server>,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> HttpResponse {
    matched!(req, {
        let (proxy, toxic) = path.into_inner();
        let (p, cur) = match find_proxy(&server, &proxy)
            .and_then(|p| find_toxic(&p, &toxic).map(|t| (p, t)))
        {
            Ok(x) => x,
            Err(r) => return with_id(r),
        };
        let kind = match registry().get(&cur.kind) {
            Ok(k) => k,
            Err(_) => return with_id(toxiproxy_error(400, "invalid toxic type")),
        };
        let parsed = (|| {
            let v = decode(&body)?;
            let obj = object(&v, "toxics.ToxicWrapper")?;
            let toxicity = f32_field(obj, "toxicity", "ToxicWrapper")?;
            let attrs = attributes(&kind, &cur.attributes, field(obj, "attributes"))?;
            Ok::<_, BadBody>((attrs, toxicity))
        })();
        let (attrs, toxicity) = match parsed {
            Ok(x) => x,
            Err(e) => return with_id(bad_body(e)),
        };
        let obj: Map<String, Value> = match attrs.to_json() {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        match p.shared.update_toxic(&toxic, Some(&obj), toxicity) {
            Ok(t) => ok_json(200, &toxic_json(&t)),
            Err(e) => proxy_error(&e),
        }
    })
}

async fn delete_toxic(
    req: HttpRequest,
    server: web::Data<Server>,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    matched!(req, {
        let (proxy, toxic) = path.into_inner();
        match find_proxy(&server, &proxy) {
            Ok(p) => match p.shared.remove_toxic(&toxic) {
                Ok(()) => no_content(),
                Err(e) => proxy_error(&e),
            },
            Err(r) => r,
        }
    })
}
