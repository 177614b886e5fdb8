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
use super::socket::{self, Conduit, End, PeerInfo, Request};
use crate::base::Direction;
use crate::behavior::{ExchangeHook, OptionSet, Options};
use crate::link::Session;
use crate::protocol::{
    self, after, before, between, CommonOptions, Framing, Mode, Protocol, ProtocolError,
    ProtocolKind,
};

pub struct PyProtocol {
    instance: Arc<Instance>,
    common: CommonOptions,
}

impl PyProtocol {
    /// Performs one socket request of `_handle` on the session. What it sends is forwarded
    /// through the link of its direction, as every other byte.
    async fn serve(
        &self,
        req: Request,
        s: &mut Session<'_>,
        dir: Direction,
        hook: Option<&dyn ExchangeHook>,
    ) {
        let side = |end: End| {
            if end == End::Source {
                dir.source()
            } else {
                dir.dest()
            }
        };
        match req {
            Request::Recv {
                side: end,
                max,
                timeout,
                reply,
            } => {
                let _ = reply.send(socket::recv_from(s, side(end), max, timeout).await);
            }
            Request::Send {
                side: end,
                data,
                reply,
            } => {
                let r = s.forward(side(end).incoming(), &data).await.map(|_| ());
                let _ = reply.send(r);
            }
            Request::Close { side: end, reply } => {
                s.peer(side(end)).close();
                let _ = reply.send(());
            }
            Request::Shutdown {
                side: end,
                how,
                reply,
            } => {
                let _ = reply.send(s.peer(side(end)).shutdown_how(how));
            }
            Request::Between { reply } => {
                let r = between(s, self, dir, hook).await.map_err(|e| e.to_string());
                let _ = reply.send(r);
            }
        }
    }
}

impl Framing for PyProtocol {
    fn name(&self) -> &str {
        &self.instance.plugin.name
    }

    fn options(&self) -> &Options {
        &self.instance.options
    }
}

#[async_trait]
impl Protocol for PyProtocol {
    fn common(&self) -> &CommonOptions {
        &self.common
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
        dir: Direction,
        hook: Option<&dyn ExchangeHook>,
    ) -> Result<bool, ProtocolError> {
        if let Some(keep) = before(s, self, dir, hook).await? {
            return Ok(keep);
        }
        let (src, dst) = (s.peer(dir.source()), s.peer(dir.dest()));
        let (conduit, first) = Conduit::new();
        let call = Call {
            instance: self.instance.clone(),
            protocol: self.instance.views.get(self.name(), self.options()),
            direction: dir,
            source: PeerInfo::new(src.info(), dir.source()),
            dest: PeerInfo::new(dst.info(), dir.dest()),
            timeout: s.conn.timeout,
            conduit,
        };
        let mut pending = pyb::submit(call, "_handle", None, true, first);
        let outcome = loop {
            match pending.step().await {
                Step::Request(request) => self.serve(request, s, dir, hook).await,
                Step::Done(result) => break result?,
            }
        };
        if outcome.close_source {
            src.close();
        }
        if outcome.close_dest {
            dst.close();
        }
        let after_ok = after(s, self, dir, hook).await?;
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
    let common: Vec<String> = CommonOptions::schema()
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
        hooks: [true; pyb::HOOKS],
    });
    protocol::registry().register(ProtocolKind::new(&name, &help, extra, move |o| {
        Ok(Arc::new(PyProtocol {
            instance: Arc::new(Instance::new(plugin.clone(), o.clone())),
            common: CommonOptions::from(o),
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
