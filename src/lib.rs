//! vaurien: a chaos TCP proxy.
//!
//! Layout (one module per concept; this file holds no logic):
//! - [`cli`]: the `vaurien` command (clap), one flag per option of every behavior and protocol;
//! - [`config`]: ini files and the merge of flags, file and defaults into one configuration;
//! - [`proxy`]: the engine — listener, connection, session, pipe (zero-copy path), pool;
//! - [`protocol`]: framing of exchanges, one file per protocol, and their registry;
//! - [`behavior`]: faults (vaurien behaviors and Toxiproxy toxics), one file each, one registry;
//! - [`api`]: the control server (actix-web): the original's routes and Toxiproxy's;
//! - [`metrics`]: counters and the log of faults applied;
//! - [`registry`]: the name → kind map behind both registries;
//! - [`toxiserver`]: the `toxiproxy-server` command (Toxiproxy's flags over the same server);
//! - [`server`]: a whole vaurien process (proxies + control server + shutdown), used by the
//!   CLI, the tests and Python alike;
//! - `python` (feature `python`): the PyO3 module `vaurien._vaurien`.

pub mod api;
pub mod behavior;
pub mod cli;
pub mod config;
pub mod metrics;
pub mod protocol;
pub mod proxy;
pub mod registry;
pub mod server;
pub mod toxiserver;

#[cfg(feature = "python")]
pub mod python;

/// The version reported by `--version` and the APIs.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
