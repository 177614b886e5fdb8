//! The Python module `vaurien._vaurien` (feature `python`; the plain binary never links
//! libpython).
//!
//! Layout:
//! - [`proxy`]: `start`/`stop` of in-process servers on one background tokio runtime, and the
//!   `vaurien` console script (`cli_main`), waiting on the Python side so that Ctrl-C works;
//! - [`behavior`]: Python behavior classes adapted to the engine's [`crate::behavior::ExchangeHook`];
//! - [`protocol`]: Python protocol classes adapted to [`crate::protocol::Protocol`];
//! - [`socket`]: the socket-like objects handed to Python hooks, and the requests they send to
//!   the connection's task, which performs them on the real sockets;
//! - [`lane`]: the threads that carry the connections of proxies with a Python behavior and
//!   call its hooks in place (a runtime of their own: never the engine's workers);
//! - [`pool`]: the threads Python hooks run on when not in place (never a tokio worker);
//! - [`log`]: `tracing` events to Python's `logging`;
//! - [`errors`]: the one place where Rust errors become Python exceptions (and back);
//! - [`settings`]: the command's settings table ([`crate::settings`]) as Python sees it.
//!
//! Python runs on threads of its own that hold the GIL only while Python code runs: every wait
//! on a socket or on the runtime happens with the GIL released.

mod behavior;
mod errors;
mod lane;
mod log;
mod pool;
mod protocol;
mod proxy;
mod settings;
mod socket;

use pyo3::prelude::*;

/// The extension module. The Python package `vaurien` re-exports what users need.
#[pymodule]
fn _vaurien(m: &Bound<'_, PyModule>) -> PyResult<()> {
    log::install();
    crate::cli::set_plugin_loader(proxy::load_plugin);
    m.add("__version__", crate::VERSION)?;
    m.add_function(wrap_pyfunction!(proxy::start, m)?)?;
    m.add_function(wrap_pyfunction!(proxy::stop, m)?)?;
    m.add_function(wrap_pyfunction!(proxy::stop_all, m)?)?;
    m.add_function(wrap_pyfunction!(proxy::running, m)?)?;
    m.add_function(wrap_pyfunction!(proxy::addresses, m)?)?;
    m.add_function(wrap_pyfunction!(proxy::set_behavior, m)?)?;
    m.add_function(wrap_pyfunction!(proxy::get_behavior, m)?)?;
    m.add_function(wrap_pyfunction!(proxy::cli_main, m)?)?;
    m.add_function(wrap_pyfunction!(proxy::check_args, m)?)?;
    m.add_function(wrap_pyfunction!(proxy::finalize, m)?)?;
    m.add_function(wrap_pyfunction!(proxy::set_http_errors, m)?)?;
    m.add_function(wrap_pyfunction!(behavior::register_behavior, m)?)?;
    m.add_function(wrap_pyfunction!(behavior::behavior_kinds, m)?)?;
    m.add_function(wrap_pyfunction!(protocol::register_protocol, m)?)?;
    m.add_function(wrap_pyfunction!(protocol::protocol_kinds, m)?)?;
    m.add_function(wrap_pyfunction!(log::set_log_level, m)?)?;
    m.add_function(wrap_pyfunction!(settings::settings, m)?)?;
    m.add_class::<socket::Socket>()?;
    m.add_class::<socket::ProtocolView>()?;
    m.add_class::<socket::BetweenHook>()?;
    Ok(())
}
