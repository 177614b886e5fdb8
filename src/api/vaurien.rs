//! The original Vaurien's control routes: `/behavior`, `/behaviors`, `/backend`. They act on
//! the command line's proxy, or on any proxy named by `?proxy=NAME` (a vaurien extra: proxies
//! made through the Toxiproxy routes have a behavior mix too).

use actix_web::{web, HttpResponse};
use futures::StreamExt;
use serde_json::{json, Map, Value};

use super::error::vaurien_error;
use crate::behavior::{registry, MixError, MixSpec, Options};
use crate::proxy::{Proxy, ProxyError};
use crate::server::Server;

/// Most bytes a request body may have.
pub const MAX_BODY: usize = 1 << 20;

pub fn routes(cfg: &mut web::ServiceConfig) {
    use super::toxiproxy::method_not_allowed;
    cfg.service(
        web::resource("/behavior")
            .route(web::get().to(get_behavior))
            .route(web::head().to(get_behavior))
            .route(web::put().to(put_behavior))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/behaviors")
            .route(web::get().to(list_behaviors))
            .route(web::head().to(list_behaviors))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/backend")
            .route(web::get().to(get_backend))
            .route(web::head().to(get_backend))
            .route(web::put().to(put_backend))
            .default_service(web::to(method_not_allowed)),
    );
}

/// Reads a body of at most `MAX_BODY` bytes.
pub async fn read_body(mut payload: web::Payload) -> Result<web::BytesMut, String> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| format!("cannot read the body: {e}"))?;
        if body.len() + chunk.len() > MAX_BODY {
            return Err(format!("the body is larger than {MAX_BODY} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The body as a JSON object, or the original's error.
async fn json_object(payload: web::Payload) -> Result<Map<String, Value>, HttpResponse> {
    let body = read_body(payload)
        .await
        .map_err(|e| vaurien_error("", &e))?;
    match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(vaurien_error("", "the value is not a valid json object")),
    }
}

/// `?proxy=NAME`: the proxy a call acts on, when not the command line's.
#[derive(serde::Deserialize)]
struct Which {
    proxy: Option<String>,
}

fn main_proxy(server: &Server, which: &Which) -> Result<std::sync::Arc<Proxy>, HttpResponse> {
    if let Some(name) = &which.proxy {
        return server
            .proxy(name)
            .ok_or_else(|| vaurien_error("proxy", &format!("no proxy named '{name}'")));
    }
    server.main_proxy().ok_or_else(|| {
        vaurien_error(
            "",
            "no proxy was started with --proxy; name one with ?proxy=NAME",
        )
    })
}

async fn get_behavior(server: web::Data<Server>, which: web::Query<Which>) -> HttpResponse {
    match main_proxy(&server, &which) {
        Ok(p) => HttpResponse::Ok().json(json!({"behavior": p.shared.behavior()})),
        Err(e) => e,
    }
}

async fn put_behavior(
    server: web::Data<Server>,
    which: web::Query<Which>,
    payload: web::Payload,
) -> HttpResponse {
    let proxy = match main_proxy(&server, &which) {
        Ok(p) => p,
        Err(e) => return e,
    };
    let mut obj = match json_object(payload).await {
        Ok(o) => o,
        Err(e) => return e,
    };
    let name = match obj.remove("name") {
        Some(Value::String(s)) => s,
        // The original looked the value up as it was (`None`, `1`...): not a behavior.
        Some(v) => {
            let shown = match &v {
                Value::Null => "None".to_string(),
                Value::Bool(true) => "True".to_string(),
                Value::Bool(false) => "False".to_string(),
                Value::Number(n) => n.to_string(),
                _ => return vaurien_error("name", "the \"name\" key must be a string"),
            };
            return vaurien_error("name", &format!("the '{shown}' behavior does not exist"));
        }
        None => return vaurien_error("", "the value should contain a \"name\" key"),
    };
    let obj = usable_options(&name, obj);
    match proxy.shared.set_behavior(&name, Some(&obj)) {
        Ok(()) => HttpResponse::Ok().json(json!({"status": "ok"})),
        Err(ProxyError::Mix(MixError::Unknown { name, .. })) => {
            vaurien_error("name", &format!("the '{name}' behavior does not exist"))
        }
        Err(ProxyError::Behavior(crate::behavior::BehaviorError::Unknown { name, .. })) => {
            vaurien_error("name", &format!("the '{name}' behavior does not exist"))
        }
        Err(ProxyError::Behavior(crate::behavior::BehaviorError::BadOption {
            behavior,
            message,
        })) => vaurien_error(&behavior, &format!("{message} ({})", options_of(&behavior))),
        // A behavior that cannot be built (a Python class whose constructor raises): its
        // message, so that the client's ValueError says why.
        Err(ProxyError::Mix(MixError::Build(message))) => vaurien_error("name", &message),
        // An option value a behavior refuses: said with the options it takes.
        Err(ProxyError::Mix(MixError::Option { behavior, message })) => vaurien_error(
            "name",
            &format!(
                "behavior '{behavior}': {message} ({})",
                options_of(&behavior)
            ),
        ),
        Err(ProxyError::Mix(_)) if !name.contains(':') => {
            vaurien_error("name", &format!("the '{name}' behavior does not exist"))
        }
        Err(e) => vaurien_error("name", &e.to_string()),
    }
}

/// What the behaviors of `name` (a behavior or a mix) take, for an error or a warning about one
/// of their options: `the options of delay: sleep (float), before (bool)`.
fn options_of(name: &str) -> String {
    let names = match MixSpec::parse(name, true) {
        Ok(spec) => spec.names(),
        Err(_) => vec![name.to_string()],
    };
    let mut out = Vec::new();
    for n in names {
        let Ok(kind) = registry().get(&n) else {
            continue;
        };
        let list: Vec<String> = kind
            .options
            .iter()
            .map(|o| format!("{} ({})", o.name, o.kind.as_str()))
            .collect();
        out.push(if list.is_empty() {
            format!("{n} takes no option")
        } else {
            format!("the options of {n}: {}", list.join(", "))
        });
    }
    out.join("; ")
}

/// The options of a `PUT /behavior` body that apply: the original took any key and value
/// (an option of another behavior, an unknown key, a value of the wrong type, `null`) without
/// an error. Those are left out here, each with a warning in the log, and the rest applies.
fn usable_options(name: &str, obj: Map<String, Value>) -> Map<String, Value> {
    let Ok(spec) = MixSpec::parse(name, true) else {
        return obj;
    };
    let kinds: Vec<_> = spec
        .names()
        .iter()
        .filter_map(|n| registry().get(n).ok())
        .collect();
    let mut out = Map::new();
    for (k, v) in obj {
        let option = k.replace('-', "_");
        let owners: Vec<_> = kinds
            .iter()
            .filter(|kd| kd.options.iter().any(|o| o.name == option))
            .collect();
        let why = if owners.is_empty() {
            Some(format!("not an option of {name} ({})", options_of(name)))
        } else if v.is_null() {
            Some("null".to_string())
        } else {
            let single: Map<String, Value> = [(k.clone(), v.clone())].into_iter().collect();
            owners
                .iter()
                .find_map(|kd| {
                    kd.options_from_json(&Options::default(), &single, &[])
                        .err()
                })
                .map(|e| e.to_string())
        };
        match why {
            Some(why) => {
                tracing::warn!("PUT /behavior {name}: option '{k}' = {v} is ignored: {why}")
            }
            None => {
                out.insert(k, v);
            }
        }
    }
    out
}

async fn list_behaviors() -> HttpResponse {
    HttpResponse::Ok().json(json!({"behaviors": registry().names()}))
}

async fn get_backend(server: web::Data<Server>, which: web::Query<Which>) -> HttpResponse {
    match main_proxy(&server, &which) {
        Ok(p) => HttpResponse::Ok().json(json!({"backend": p.shared.backend()})),
        Err(e) => e,
    }
}

async fn put_backend(
    server: web::Data<Server>,
    which: web::Query<Which>,
    payload: web::Payload,
) -> HttpResponse {
    let proxy = match main_proxy(&server, &which) {
        Ok(p) => p,
        Err(e) => return e,
    };
    let obj = match json_object(payload).await {
        Ok(o) => o,
        Err(e) => return e,
    };
    let backend = match obj.get("backend") {
        Some(Value::String(s)) => s.clone(),
        Some(_) => return vaurien_error("backend", "the \"backend\" key must be a string"),
        None => return vaurien_error("", "the value should contain a \"backend\" key"),
    };
    match proxy.shared.set_backend(&backend) {
        Ok(()) => HttpResponse::Ok().json(json!({"status": "ok"})),
        Err(e) => vaurien_error("backend", &e.to_string()),
    }
}
