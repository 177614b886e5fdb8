//! Protocols frame the traffic into exchanges (one request and its answer), so that behaviors
//! act per request and a valid conversation is never disturbed by the proxy.
//!
//! A protocol implements [`Protocol`]; its [`ProtocolKind`] (name, option schema, factory) sits
//! in the [`registry`], where the CLI, the ini reader, the APIs and Python find it. Every
//! protocol has the common options `reuse_socket`, `buffer` and `keep_alive`.

pub mod framing;
pub mod http;
pub mod memcache;
pub mod mysql;
pub mod redis;
pub mod smtp;
mod tcp;

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use rand::rngs::SmallRng;

use crate::behavior::{Behavior, BehaviorError, OptionSpec, Options, Value};
use crate::proxy::session::Session;

pub use tcp::Tcp;

/// How a connection runs with a protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Both directions flow at once; each chunk read is one exchange in its direction
    /// (tcp with `keep_alive` and `--stay-connected`).
    Streaming,
    /// One exchange at a time, started by whichever side speaks; `stay` says whether the
    /// client connection is kept after an exchange that asked to keep it. Without `stay`,
    /// `drain` still answers the requests the client had already sent (read in one go).
    Exchanges { stay: bool, drain: bool },
}

/// The answer a protocol gives in place of the backend's for the `error` behavior.
#[derive(Clone, Debug)]
pub struct ErrorReply {
    pub bytes: Vec<u8>,
    /// Close the client connection after sending it (http's `Connection: close`).
    pub close: bool,
}

/// Errors of the protocol layer.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("unknown protocol '{name}' (known: {known})")]
    Unknown { name: String, known: String },
    #[error("protocol '{protocol}': {message}")]
    BadOption { protocol: String, message: String },
    #[error("{protocol}: malformed data from the {side}: {message}")]
    Malformed {
        protocol: &'static str,
        side: &'static str,
        message: String,
    },
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Behavior(#[from] BehaviorError),
}

/// A protocol: frames exchanges and runs the behavior's hooks around each.
#[async_trait]
pub trait Protocol: Send + Sync + 'static {
    fn name(&self) -> &str;
    /// Its option values (schema defaults overlaid with the user's).
    fn options(&self) -> &Options;
    fn option(&self, name: &str) -> Option<&Value> {
        self.options().get(name)
    }
    /// How connections run; `stay_connected` is `--stay-connected`.
    fn mode(&self, stay_connected: bool) -> Mode;
    /// The length of the first complete message in `buf` (a request when `to_backend`), or
    /// `None` when more bytes are needed. Used by behaviors that answer a request themselves.
    fn frame_len(&self, buf: &[u8], to_backend: bool) -> Option<usize> {
        let _ = to_backend;
        (!buf.is_empty()).then_some(buf.len())
    }
    /// True for the protocols the original ran as tcp with `keep_alive` (smtp, mysql): it called
    /// the behavior once per read in each direction, so a `delay` applied to the request and
    /// again to the answer (a round trip took twice the sleep).
    fn hooks_each_direction(&self) -> bool {
        false
    }
    /// The protocol's own error answer, or `None` when it has none (random bytes are sent).
    /// `to_backend` says whether it answers a request (else it replaces a message the backend
    /// started, such as a greeting).
    fn error_reply(&self, rng: &mut SmallRng, to_backend: bool) -> Option<ErrorReply> {
        let _ = (rng, to_backend);
        None
    }
    /// Runs one exchange that starts with data from the client (`to_backend`) or the backend,
    /// calling `behavior`'s hooks around it. Returns whether the connection may go on.
    async fn handle(
        &self,
        session: &mut Session<'_>,
        to_backend: bool,
        behavior: &dyn Behavior,
    ) -> Result<bool, ProtocolError>;
}

/// Builds a protocol from its options.
pub type Factory = Arc<dyn Fn(&Options) -> Result<Arc<dyn Protocol>, ProtocolError> + Send + Sync>;

/// A kind of protocol in the registry.
#[derive(Clone)]
pub struct ProtocolKind {
    pub name: String,
    pub help: String,
    /// The full schema, common options included.
    pub options: Vec<OptionSpec>,
    pub factory: Factory,
}

impl ProtocolKind {
    /// A kind whose schema is the common options plus `extra`.
    pub fn new<F>(name: &str, help: &str, extra: Vec<OptionSpec>, f: F) -> Self
    where
        F: Fn(&Options) -> Result<Arc<dyn Protocol>, ProtocolError> + Send + Sync + 'static,
    {
        let mut options = common_options();
        options.extend(extra);
        ProtocolKind {
            name: name.to_string(),
            help: help.to_string(),
            options,
            factory: Arc::new(f),
        }
    }

    pub fn build(&self, options: &Options) -> Result<Arc<dyn Protocol>, ProtocolError> {
        let mut full = Options::defaults(&self.options);
        for (k, v) in &options.0 {
            full.0.insert(k.clone(), v.clone());
        }
        (self.factory)(&full)
    }
}

/// The options every protocol has.
pub fn common_options() -> Vec<OptionSpec> {
    vec![
        OptionSpec::bool(
            "reuse_socket",
            false,
            "reuse the backend connection for the next client (pool)",
        ),
        OptionSpec::int("buffer", 8124, "size of one read, in bytes"),
        OptionSpec::bool(
            "keep_alive",
            false,
            "keep the connection alive between exchanges",
        ),
    ]
}

/// Every protocol known to this process. Python registers into it at run time.
pub type Registry = crate::registry::Registry<ProtocolKind>;

impl crate::registry::Entry for ProtocolKind {
    type Error = ProtocolError;
    fn name(&self) -> &str {
        &self.name
    }
    fn unknown(name: &str, known: String) -> ProtocolError {
        ProtocolError::Unknown {
            name: name.to_string(),
            known,
        }
    }
}

fn builtins() -> Vec<ProtocolKind> {
    vec![
        tcp::kind(),
        http::kind(),
        redis::kind(),
        memcache::kind(),
        smtp::kind(),
        mysql::kind(),
    ]
}

/// The process-wide protocol registry.
pub fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| Registry::new(builtins()))
}

/// Runs the `before` hook; `Some(keep)` when the exchange must not go on.
pub async fn before(
    session: &mut Session<'_>,
    protocol: &dyn Protocol,
    to_backend: bool,
    behavior: &dyn Behavior,
) -> Result<Option<bool>, ProtocolError> {
    if !behavior.has_exchange_hooks() {
        return Ok(None);
    }
    let flow = behavior
        .on_before_handle(&mut session.exchange(protocol, to_backend))
        .await?;
    Ok(match flow {
        crate::behavior::Flow::Continue => None,
        crate::behavior::Flow::Skip => Some(true),
        crate::behavior::Flow::Close => Some(false),
    })
}

/// Runs the `between` hook; false when the exchange must stop (and the connection close).
pub async fn between(
    session: &mut Session<'_>,
    protocol: &dyn Protocol,
    to_backend: bool,
    behavior: &dyn Behavior,
) -> Result<bool, ProtocolError> {
    if !behavior.has_exchange_hooks() {
        return Ok(true);
    }
    let flow = behavior
        .on_between_handle(&mut session.exchange(protocol, to_backend))
        .await?;
    Ok(flow == crate::behavior::Flow::Continue)
}

/// Runs the `between` hook, then the `after` hook (in one go where the behavior can: nothing
/// happens between them); false when the connection must close.
pub async fn between_then_after(
    session: &mut Session<'_>,
    protocol: &dyn Protocol,
    to_backend: bool,
    behavior: &dyn Behavior,
) -> Result<bool, ProtocolError> {
    if !behavior.has_exchange_hooks() {
        return Ok(true);
    }
    let (between, after) = behavior
        .on_between_then_after(&mut session.exchange(protocol, to_backend))
        .await?;
    Ok(between == crate::behavior::Flow::Continue && after != crate::behavior::Flow::Close)
}

/// Runs the `after` hook; false when the connection must close.
pub async fn after(
    session: &mut Session<'_>,
    protocol: &dyn Protocol,
    to_backend: bool,
    behavior: &dyn Behavior,
) -> Result<bool, ProtocolError> {
    if !behavior.has_exchange_hooks() {
        return Ok(true);
    }
    let flow = behavior
        .on_after_handle(&mut session.exchange(protocol, to_backend))
        .await?;
    Ok(flow != crate::behavior::Flow::Close)
}
