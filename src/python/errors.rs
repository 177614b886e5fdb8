//! The one place where Rust errors become Python exceptions, and where an exception raised by
//! Python code called from the engine becomes a [`BehaviorError`] (after its traceback is logged).
//!
//! - configuration, parse, start-up and option errors → `ValueError` with the engine's message;
//! - socket errors in hooks → the `OSError` subclass Python's own sockets raise (`socket.timeout`,
//!   `BlockingIOError`, `ConnectionResetError`, ...);
//! - a socket used after its hook returned or its connection ended → `OSError(EBADF)`.

use std::io;

use pyo3::exceptions::{PyBlockingIOError, PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyType};

use crate::behavior::BehaviorError;

/// Anything the engine reports as a message (a parse error, a server that cannot start, a bad
/// option): `ValueError(message)`.
pub fn value_error(msg: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(msg.to_string())
}

/// A parse outcome of the CLI parser (start_proxy's `options`).
pub fn parse_error(e: crate::cli::ParseOutcome) -> PyErr {
    match e {
        crate::cli::ParseOutcome::Clap(e) => {
            // clap's rendering is multi-line ("error: ...\n\nUsage: ..."): keep the first line.
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("").trim();
            value_error(first.strip_prefix("error: ").unwrap_or(first))
        }
        crate::cli::ParseOutcome::Error(msg) => value_error(msg),
        crate::cli::ParseOutcome::Version => value_error(crate::VERSION),
    }
}

/// An i/o error met by a hook's socket, as Python's socket module would raise it.
pub fn io_error(py: Python<'_>, e: io::Error) -> PyErr {
    match e.kind() {
        io::ErrorKind::TimedOut => match socket_timeout(py) {
            Ok(ty) => PyErr::from_type(ty, "timed out"),
            Err(err) => err,
        },
        io::ErrorKind::WouldBlock => {
            PyBlockingIOError::new_err((libc::EAGAIN, "Resource temporarily unavailable"))
        }
        _ => {
            let errno = e.raw_os_error().unwrap_or(match e.kind() {
                io::ErrorKind::ConnectionReset => libc::ECONNRESET,
                io::ErrorKind::BrokenPipe => libc::EPIPE,
                io::ErrorKind::NotConnected => libc::ENOTCONN,
                io::ErrorKind::ConnectionAborted => libc::ECONNABORTED,
                _ => libc::EIO,
            });
            // OSError(errno, text) instantiates the matching subclass (ConnectionResetError, ...).
            PyOSError::new_err((errno, e.to_string()))
        }
    }
}

/// The socket's connection is gone: its hook returned, or the connection or proxy ended.
pub fn socket_gone() -> PyErr {
    PyOSError::new_err((
        libc::EBADF,
        "socket unusable: its hook has returned or its connection has ended",
    ))
}

fn socket_timeout(py: Python<'_>) -> PyResult<Bound<'_, PyType>> {
    Ok(py
        .import("socket")?
        .getattr("timeout")?
        .downcast_into::<PyType>()?)
}

/// An exception raised by a Python hook, protocol or plugin constructor: its traceback is logged
/// (logger `vaurien.python`) and it becomes the engine's error, which closes that connection.
pub fn hook_failed(py: Python<'_>, owner: &str, what: &str, err: PyErr) -> BehaviorError {
    let message = err.to_string();
    let logged = (|| -> PyResult<()> {
        let logger = py
            .import("logging")?
            .call_method1("getLogger", ("vaurien.python",))?;
        let kwargs = PyDict::new(py);
        let exc_info = (err.get_type(py), err.value(py).clone(), err.traceback(py));
        kwargs.set_item("exc_info", exc_info)?;
        logger.call_method(
            "error",
            ("%s.%s raised; closing the connection", owner, what),
            Some(&kwargs),
        )?;
        Ok(())
    })();
    if logged.is_err() {
        // Logging itself failed (interpreter going down): print it the plain way.
        err.print(py);
    }
    BehaviorError::Python {
        behavior: owner.to_string(),
        message: format!("{what} raised {message}"),
    }
}

/// An i/o error of a given kind, without a Python token at hand.
pub fn io_error_plain(kind: io::ErrorKind) -> PyErr {
    let errno = match kind {
        io::ErrorKind::NotConnected => libc::ENOTCONN,
        _ => libc::EIO,
    };
    PyOSError::new_err((errno, io::Error::from(kind).to_string()))
}

/// A Python hook that did something the engine cannot go on from (read a request and returned
/// True, returned something other than bytes): one error line naming the behavior, the hook
/// and what went wrong (logger `vaurien.python`, through the engine's log, so that it may be
/// said from the connection's task); that connection is closed.
pub fn hook_misused(owner: &str, what: &str, problem: &str) -> BehaviorError {
    tracing::error!(
        target: "vaurien::python",
        "behavior '{owner}': {what} {problem}; closing the connection"
    );
    BehaviorError::Python {
        behavior: owner.to_string(),
        message: format!("{what} {problem}"),
    }
}
