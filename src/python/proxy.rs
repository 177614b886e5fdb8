//! In-process servers for Python: `start_proxy`/`stop_proxy` and the `vaurien` console script.
//!
//! Every server runs on one background tokio runtime owned by this module. A Python thread that
//! waits for it (start, stop, the console script's wait for Ctrl-C) does so with the GIL
//! released. `start` parses its arguments with the CLI's own parser, so `options` are the very
//! flags of the command line.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use pyo3::exceptions::{PyKeyboardInterrupt, PySystemExit};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::{errors, log, pool};
use crate::base::changes;
use crate::cli::{self, ParseOutcome};
use crate::config::Resolved;
use crate::server::Server;

/// How long in-flight exchanges may finish when `stop_proxy` is called (the original killed
/// its subprocess at once; a short grace keeps `stop_proxy` quick).
const STOP_GRACE: Duration = Duration::from_millis(250);

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("vaurien")
            .build()
            .expect("cannot start the tokio runtime")
    })
}

fn servers() -> &'static Mutex<BTreeMap<u64, Arc<Server>>> {
    static SERVERS: OnceLock<Mutex<BTreeMap<u64, Arc<Server>>>> = OnceLock::new();
    SERVERS.get_or_init(|| Mutex::new(BTreeMap::new()))
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn server(id: u64) -> PyResult<Arc<Server>> {
    servers()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&id)
        .cloned()
        .ok_or_else(|| errors::value_error("Not found"))
}

/// Parses `vaurien ARGS` (ini plugins are loaded by the parser through [`load_plugin`]).
fn parse(args: Vec<String>) -> Result<Resolved, ParseOutcome> {
    let mut argv = Vec::with_capacity(args.len() + 1);
    argv.push("vaurien".to_string());
    argv.extend(args);
    cli::parse(argv)
}

/// Starts a server on the background runtime and waits (GIL released) until its proxy and
/// control API accept connections, at most `wait`.
fn launch(
    py: Python<'_>,
    resolved: Resolved,
    wait: Duration,
    grace: Option<Duration>,
) -> PyResult<Arc<Server>> {
    let mut cfg = resolved.server.clone();
    if let Some(g) = grace {
        cfg.grace = g;
    }
    let statsd = resolved.statsd.clone();
    let mut handle = runtime().spawn(async move {
        let server = crate::api::launch(cfg).await?;
        if let Some(st) = statsd {
            crate::telemetry::statsd::spawn(server.clone(), st);
        }
        Ok::<_, crate::server::ServerError>(server)
    });
    let r =
        py.detach(|| runtime().block_on(async { tokio::time::timeout(wait, &mut handle).await }));
    match r {
        Ok(Ok(Ok(server))) => Ok(server),
        Ok(Ok(Err(e))) => Err(errors::value_error(e)),
        Ok(Err(join)) => Err(errors::value_error(format!(
            "the proxy failed to start: {join}"
        ))),
        Err(_) => {
            // Too slow: whatever starts later is stopped at once.
            runtime().spawn(async move {
                if let Ok(Ok(s)) = handle.await {
                    s.shutdown().await;
                }
            });
            Err(errors::value_error(format!(
                "the proxy did not accept connections within {:.1}s",
                wait.as_secs_f64()
            )))
        }
    }
}

/// `start(args, warmup)`: runs `vaurien ARGS` in this process; returns its id once the proxy
/// (and the control API with `--http`) accept connections, after at most `warmup` seconds.
#[pyfunction]
#[pyo3(signature = (args, warmup = 2.0))]
pub fn start(py: Python<'_>, args: Vec<String>, warmup: f64) -> PyResult<u64> {
    let resolved = parse(args).map_err(errors::parse_error)?;
    log::set_level(&resolved.log_level).map_err(errors::value_error)?;
    for w in &resolved.warnings {
        tracing::warn!("{w}");
    }
    let wait = Duration::from_secs_f64(if warmup.is_finite() {
        warmup.max(1.0)
    } else {
        3600.0
    });
    let server = launch(py, resolved, wait, Some(STOP_GRACE))?;
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    servers()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(id, server);
    Ok(id)
}

/// `stop(id)`: stops that server; its ports are free when this returns. `ValueError('Not
/// found')` for an unknown id.
#[pyfunction]
pub fn stop(py: Python<'_>, id: u64) -> PyResult<()> {
    let server = servers()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&id)
        .ok_or_else(|| errors::value_error("Not found"))?;
    py.detach(|| runtime().block_on(server.shutdown()));
    log::flush(py);
    Ok(())
}

/// Stops every server started by `start`.
#[pyfunction]
pub fn stop_all(py: Python<'_>) {
    let all: Vec<Arc<Server>> =
        std::mem::take(&mut *servers().lock().unwrap_or_else(|e| e.into_inner()))
            .into_values()
            .collect();
    py.detach(|| {
        runtime().block_on(futures::future::join_all(all.iter().map(|s| s.shutdown())));
    });
    log::flush(py);
}

/// The ids of the running servers.
#[pyfunction]
pub fn running() -> Vec<u64> {
    servers()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .keys()
        .copied()
        .collect()
}

/// `(proxy address, control API address)` of a server, as bound (port 0 resolved).
#[pyfunction]
pub fn addresses(py: Python<'_>, id: u64) -> PyResult<(Option<String>, Option<String>)> {
    let server = server(id)?;
    let proxy = py.detach(|| {
        runtime().block_on(async {
            match server.main_proxy() {
                Some(p) => p.local_addr().await,
                None => None,
            }
        })
    });
    Ok((
        proxy.map(|a| a.to_string()),
        server.api_addr().map(|a| a.to_string()),
    ))
}

/// Sets the behavior of a server's proxy directly (as `PUT /behavior` does).
#[pyfunction]
#[pyo3(signature = (id, name, options = None))]
pub fn set_behavior(id: u64, name: &str, options: Option<&Bound<'_, PyDict>>) -> PyResult<()> {
    let server = server(id)?;
    let proxy = server
        .main_proxy()
        .ok_or_else(|| errors::value_error("this server has no proxy"))?;
    let mut map = serde_json::Map::new();
    if let Some(d) = options {
        for (k, v) in d.iter() {
            let key: String = k.extract()?;
            let value = if let Ok(b) = v.extract::<bool>() {
                serde_json::Value::Bool(b)
            } else if let Ok(i) = v.extract::<i64>() {
                serde_json::Value::from(i)
            } else if let Ok(f) = v.extract::<f64>() {
                serde_json::Value::from(f)
            } else {
                serde_json::Value::String(v.str()?.to_string())
            };
            map.insert(key, value);
        }
    }
    changes::by_sync("Python", || proxy.shared.set_behavior(name, Some(&map)))
        .map_err(errors::value_error)
}

/// The active behavior mix of a server's proxy (as `GET /behavior`).
#[pyfunction]
pub fn get_behavior(id: u64) -> PyResult<String> {
    let server = server(id)?;
    server
        .main_proxy()
        .map(|p| p.shared.behavior())
        .ok_or_else(|| errors::value_error("this server has no proxy"))
}

/// Checks command-line arguments without starting anything; `ValueError` with the message.
#[pyfunction]
pub fn check_args(args: Vec<String>) -> PyResult<()> {
    parse(args).map(|_| ()).map_err(errors::parse_error)
}

/// The answers of the `error` behavior with the http protocol, for every proxy of this
/// process: whole HTTP responses, one picked at random each time (`vaurien.behaviors.error`
/// sets them from its `_ERRORS` table); `None` restores the built-in ones.
#[pyfunction]
#[pyo3(signature = (responses))]
pub fn set_http_errors(responses: Option<Vec<Vec<u8>>>) {
    crate::protocol::http::set_error_responses(responses);
}

/// The `vaurien` console script: the CLI's parser, messages and exit statuses, served in this
/// process so that Python plugins work. Waits for Ctrl-C (or SIGTERM, which `vaurien.run` turns
/// into KeyboardInterrupt) on the Python side, then stops in order and returns 0.
#[pyfunction]
pub fn cli_main(py: Python<'_>, argv: Vec<String>) -> PyResult<i32> {
    let resolved = match cli::parse(argv) {
        Ok(r) => r,
        Err(ParseOutcome::Clap(e)) => return Ok(crate::cli::report_clap(&e)),
        Err(ParseOutcome::Version) => {
            crate::cli::print_line(format_args!("{}", crate::VERSION));
            return Ok(0);
        }
        Err(ParseOutcome::Error(msg)) => {
            crate::cli::eprint_line(format_args!("vaurien: error: {msg}"));
            return Ok(2);
        }
    };
    if let Err(e) = py.import("vaurien.run")?.call_method1(
        "_configure_logging",
        (&resolved.log_level, &resolved.log_output),
    ) {
        crate::cli::eprint_line(format_args!("vaurien: error: {}", e.value(py)));
        return Ok(2);
    }
    log::set_level(&resolved.log_level).map_err(errors::value_error)?;
    for w in &resolved.warnings {
        tracing::warn!("{w}");
    }
    if let Some(p) = &resolved.server.proxy {
        if p.settings.sync {
            tracing::info!(
                "--sync: backend sockets are asynchronous in this engine; the flag only \
                 keeps old command lines working"
            );
        }
    }
    let server = match launch(py, resolved, Duration::from_secs(60), None) {
        Ok(s) => s,
        Err(e) => {
            crate::cli::eprint_line(format_args!("vaurien: error: {}", e.value(py)));
            return Ok(2);
        }
    };
    if let Some(p) = server.main_proxy() {
        let addr = py.detach(|| runtime().block_on(p.local_addr()));
        tracing::info!(
            proxy = %addr.map(|a| a.to_string()).unwrap_or_default(),
            backend = %p.shared.backend(),
            protocol = p.shared.protocol.name(),
            behavior = %p.shared.behavior(),
            "vaurien is running"
        );
    }
    if let Some(a) = server.api_addr() {
        tracing::info!(addr = %a, "control API listening");
    }
    let outcome = loop {
        py.detach(|| std::thread::sleep(Duration::from_millis(100)));
        if let Err(e) = py.check_signals() {
            break e;
        }
    };
    tracing::info!("stopping: no new connections; exchanges in flight may finish");
    py.detach(|| runtime().block_on(server.shutdown()));
    if outcome.is_instance_of::<PyKeyboardInterrupt>(py)
        || outcome.is_instance_of::<PySystemExit>(py)
    {
        Ok(0)
    } else {
        Err(outcome)
    }
}

/// Called at interpreter exit (`atexit`): stops every server, then no thread of ours calls into
/// Python again.
#[pyfunction]
pub fn finalize(py: Python<'_>) {
    stop_all(py);
    pool::FINALIZING.store(true, Ordering::Release);
}

/// The CLI's hook for `callable = pkg.mod.Class` in `[behavior:NAME]` / `[protocol:NAME]`
/// sections: imports the class and registers it under NAME (`vaurien.util._load_plugin`).
pub fn load_plugin(
    owner: crate::settings::Owner,
    name: &str,
    callable: &str,
    dir: Option<&std::path::Path>,
) -> Result<(), String> {
    let kind = owner.as_str();
    let dir = dir.map(|d| {
        if d.as_os_str().is_empty() {
            ".".to_string()
        } else {
            d.to_string_lossy().into_owned()
        }
    });
    Python::attach(|py| {
        py.import("vaurien.util")
            .and_then(|m| m.call_method1("_load_plugin", (kind, name, callable, dir)))
            .map(|_| ())
            .map_err(|e| format!("[{kind}:{name}] callable = {callable}: {}", e.value(py)))
    })
}
