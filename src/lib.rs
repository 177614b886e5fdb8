//! vaurien: a chaos TCP proxy.
//!
//! Layers, lowest first; each module uses only the ones above it in this list (see
//! `ARCHITECTURE.md`, checked by `module_cycles.py` in CI):
//! - [`base`](crate::base): directions and sides, options, the name → kind registry, counters,
//!   the fault event log, the precise timer;
//! - `io`: socket I/O — one side of a connection, `splice(2)` pipes, busy polling;
//! - [`behavior`]: faults (vaurien behaviors and Toxiproxy toxics), one file each, one
//!   registry; they see a connection only through a narrow interface (`Wire`);
//! - `link`: the toxic chains of a connection and the one path every forwarded, injected or
//!   replaced byte takes to a socket (toxics, then counters);
//! - [`protocol`]: framing of exchanges, one file per protocol, and their registry;
//! - [`proxy`]: the engine — listener, connection, pool, the active faults of a proxy;
//! - [`server`]: a whole vaurien process (proxies + event log + shutdown), no control plane;
//! - the faces: [`api`] (the control server, actix-web: the original's routes and
//!   Toxiproxy's), `telemetry` (Prometheus and statsd), [`settings`] (each flag of the
//!   `vaurien` command and `[vaurien]` key declared once: clap, the ini keys, the defaults and
//!   the Python API read that table), [`config`] (ini files and the merge of flags, file and
//!   defaults), [`cli`] (the `vaurien` command, which composes the server and the API), [`toxiserver`] (the `toxiproxy-server` command) and `python` (feature
//!   `python`: the PyO3 module `vaurien._vaurien`).

pub(crate) mod base;
pub(crate) mod io;

pub mod behavior;
pub(crate) mod link;
pub mod protocol;
pub mod proxy;
pub mod server;

pub mod api;
pub mod cli;
pub mod config;
pub mod settings;
pub(crate) mod telemetry;
pub mod toxiserver;

#[cfg(feature = "python")]
pub mod python;

/// The version reported by `--version` and the APIs.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
