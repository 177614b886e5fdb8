//! Python protocol classes as engine protocols.
//!
//! A class registered with `Protocol.register(cls)` (Python) becomes a [`ProtocolKind`] whose
//! schema is the common options plus the class's own. Per exchange the engine runs the
//! behavior's `before` hook, then the class's `_handle(source, dest, to_backend,
//! on_between_handle)` on a Python thread (its socket requests served here, on the connection's
//! task; what it sends goes through the toxics like any forwarded byte), then the `after` hook.

use std::sync::Arc;

use async_trait::async_trait;
use pyo3::prelude::*;

use super::behavior::{self as pyb, Call, Instance, Plugin, PyOptionSpec, Step};
use super::errors;
use super::socket::{self, Conduit, PeerInfo, Request, Side};
use crate::behavior::{Behavior, Options};
use crate::protocol::{self, after, before, between, Mode, Protocol, ProtocolError, ProtocolKind};
use crate::proxy::session::Session;

pub struct PyProtocol {
    instance: Arc<Instance>,
}

impl PyProtocol {
    /// Performs one socket request of `_handle` on the session.
    async fn serve(
        &self,
        req: Request,
        s: &mut Session<'_>,
        to_backend: bool,
        behavior: &dyn Behavior,
    ) {
        // The peer on `side`, and whether it is the backend.
        let is_backend = |side: Side| (side == Side::Dest) == to_backend;
        match req {
            Request::Recv {
                side,
                max,
                timeout,
                reply,
            } => {
                let (peer, buf) = if is_backend(side) {
                    (s.backend, &mut *s.backend_buf)
                } else {
                    (s.client, &mut *s.client_buf)
                };
                let _ = reply.send(socket::recv_from(peer, buf, max, timeout).await);
            }
            Request::Send { side, data, reply } => {
                let r = s.forward(is_backend(side), &data).await.map(|_| ());
                let _ = reply.send(r);
            }
            Request::Close { side, reply } => {
                if is_backend(side) {
                    s.backend
                } else {
                    s.client
                }
                .close();
                let _ = reply.send(());
            }
            Request::Shutdown { side, how, reply } => {
                let peer = if is_backend(side) {
                    s.backend
                } else {
                    s.client
                };
                let _ = reply.send(socket::shutdown(peer, how));
            }
            Request::Between { reply } => {
                let r = between(s, self, to_backend, behavior)
                    .await
                    .map_err(|e| e.to_string());
                let _ = reply.send(r);
            }
        }
    }
}

#[async_trait]
impl Protocol for PyProtocol {
    fn name(&self) -> &str {
        &self.instance.plugin.name
    }

    fn options(&self) -> &Options {
        &self.instance.options
    }

    fn mode(&self, stay_connected: bool) -> Mode {
        Mode::Exchanges {
            stay: stay_connected,
            drain: false,
        }
    }

    async fn handle(
        &self,
        s: &mut Session<'_>,
        to_backend: bool,
        behavior: &dyn Behavior,
    ) -> Result<bool, ProtocolError> {
        if let Some(keep) = before(s, self, to_backend, behavior).await? {
            return Ok(keep);
        }
        let (src, dst) = if to_backend {
            (s.client, s.backend)
        } else {
            (s.backend, s.client)
        };
        let (conduit, first) = Conduit::new();
        let call = Call {
            instance: self.instance.clone(),
            protocol: self.instance.views.get(self.name(), self.options()),
            to_backend,
            source: PeerInfo::of(src),
            dest: PeerInfo::of(dst),
            timeout: s.conn.timeout,
            conduit,
        };
        let mut pending = pyb::submit(call, "_handle", None, true, first);
        let outcome = loop {
            match pending.step().await {
                Step::Request(request) => self.serve(request, s, to_backend, behavior).await,
                Step::Done(result) => break result?,
            }
        };
        if outcome.close_source {
            src.close();
        }
        if outcome.close_dest {
            dst.close();
        }
        let after_ok = after(s, self, to_backend, behavior).await?;
        Ok(outcome.keep && after_ok && !src.is_closed() && !dst.is_closed())
    }
}

/// Registers (or replaces) a Python protocol class under `name`. `options` are the class's own
/// (the common `reuse_socket`, `buffer`, `keep_alive` are always there).
#[pyfunction]
#[pyo3(signature = (name, help, options, cls))]
pub fn register_protocol(
    name: String,
    help: String,
    options: Vec<PyOptionSpec<'_>>,
    cls: Py<PyAny>,
) -> PyResult<()> {
    if name.is_empty() || name.contains([',', ':', ' ']) {
        return Err(errors::value_error(format!(
            "a protocol name must be a non-empty word, not {name:?}"
        )));
    }
    let common: Vec<String> = protocol::common_options()
        .into_iter()
        .map(|o| o.name)
        .collect();
    let extra: Vec<_> = pyb::schema(&name, options)?
        .into_iter()
        .filter(|o| !common.contains(&o.name))
        .collect();
    let plugin = Arc::new(Plugin {
        name: name.clone(),
        class: cls,
        hooks: [true; 3],
    });
    protocol::registry().register(ProtocolKind::new(&name, &help, extra, move |o| {
        Ok(Arc::new(PyProtocol {
            instance: Arc::new(Instance::new(plugin.clone(), o.clone())),
        }) as Arc<dyn Protocol>)
    }));
    Ok(())
}

/// Every registered protocol: `(name, help, origin, options)`.
#[pyfunction]
pub fn protocol_kinds(py: Python<'_>) -> PyResult<Vec<pyb::KindInfo<'_>>> {
    protocol::registry()
        .kinds()
        .iter()
        .map(|k| pyb::kind_info(py, &k.name, &k.help, "protocol", &k.options))
        .collect()
}
