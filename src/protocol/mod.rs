//! Protocols frame the traffic into exchanges (one request and its answer), so that behaviors
//! act per request and a valid conversation is never disturbed by the proxy.
//!
//! A protocol implements [`Protocol`]; its [`ProtocolKind`] (name, option schema, factory) sits
//! in the [`registry`], where the CLI, the ini reader, the APIs and Python find it. Every
//! protocol has the common options `reuse_socket`, `buffer` and `keep_alive`
//! ([`CommonOptions`]). The framed ones (http, redis, memcache, smtp, mysql) implement
//! [`framing::Framed`], whose generic adapter is their `Protocol`.

pub mod framing;
pub mod http;
pub mod memcache;
pub mod mysql;
pub mod redis;
pub mod smtp;
mod tcp;

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use bytes::Bytes;

use crate::base::Direction;
use crate::behavior::{
    options, After, BehaviorError, ExchangeHook, Flow, OptionSet, OptionSpec, Options,
};
pub use crate::behavior::{ErrorReply, Framing};
use crate::link::Session;

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

/// A protocol: frames exchanges and runs the behavior's hooks around each. What faults may
/// know of it ([`Framing`]: message lengths, its error reply) is its supertrait.
#[async_trait]
pub trait Protocol: Framing + Send + Sync + 'static {
    /// The options every protocol has.
    fn common(&self) -> &CommonOptions;
    /// How connections run; `stay_connected` is `--stay-connected`.
    fn mode(&self, stay_connected: bool) -> Mode;
    /// Runs one exchange that starts with data going in direction `dir`, calling `hook`'s
    /// hooks around it (none: nothing acts on exchanges). Returns whether the connection may
    /// go on.
    async fn handle(
        &self,
        session: &mut Session<'_>,
        dir: Direction,
        hook: Option<&dyn ExchangeHook>,
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
    /// A kind whose own options are declared by `O` (see `options!`): its schema is the
    /// common options then `O`'s, and its factory gets them read.
    pub fn typed<O, F>(name: &str, help: &str, f: F) -> Self
    where
        O: OptionSet,
        F: Fn(ProtocolOptions<O>) -> Result<Arc<dyn Protocol>, ProtocolError>
            + Send
            + Sync
            + 'static,
    {
        Self::new(name, help, O::schema(), move |o| {
            f(ProtocolOptions {
                common: CommonOptions::from(o),
                own: O::from(o),
                by_name: o.clone(),
            })
        })
    }

    /// A kind whose schema is the common options plus `extra`, known at run time only
    /// (Python): its factory reads the options by name.
    pub fn new<F>(name: &str, help: &str, extra: Vec<OptionSpec>, f: F) -> Self
    where
        F: Fn(&Options) -> Result<Arc<dyn Protocol>, ProtocolError> + Send + Sync + 'static,
    {
        let mut options = CommonOptions::schema();
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
        // A read of 0 bytes reads nothing (the original closed every connection at once).
        let buffer = CommonOptions::from(&full).buffer;
        if buffer < 1 {
            return Err(ProtocolError::BadOption {
                protocol: self.name.clone(),
                message: format!(
                    "buffer {buffer}: must be a size of 1 byte or more \
                     (--protocol-{}-buffer, [protocol:{}] buffer)",
                    self.name, self.name
                ),
            });
        }
        (self.factory)(&full)
    }
}

options! {
    /// The options every protocol has, first in its schema.
    pub struct CommonOptions {
        /// reuse the backend connection for the next client (pool)
        reuse_socket: bool = false,
        /// size of one read, in bytes
        buffer: i64 = 8124,
        /// keep the connection alive between exchanges
        keep_alive: bool = false,
    }
}

/// The largest read size `buffer` may ask for.
const MAX_READ: i64 = 16 << 20;

impl CommonOptions {
    /// The size of one read: `buffer`, from 1 byte to 16 MiB.
    pub fn read_size(&self) -> usize {
        self.buffer.clamp(1, MAX_READ) as usize
    }
}

/// A protocol's options as its factory gets them.
pub struct ProtocolOptions<O> {
    /// The ones every protocol has.
    pub common: CommonOptions,
    /// Its own.
    pub own: O,
    /// All of them by name: what faults and Python see ([`Framing::options`]).
    pub by_name: Options,
}

/// Every protocol known to this process. Python registers into it at run time.
pub type Registry = crate::base::registry::Registry<ProtocolKind>;

impl crate::base::registry::Entry for ProtocolKind {
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
        framing::kind::<http::Http>(),
        framing::kind::<redis::Redis>(),
        framing::kind::<memcache::Memcache>(),
        framing::kind::<smtp::Smtp>(),
        framing::kind::<mysql::Mysql>(),
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
    framing: &dyn Framing,
    dir: Direction,
    hook: Option<&dyn ExchangeHook>,
) -> Result<Option<bool>, ProtocolError> {
    let Some(hook) = hook else {
        return Ok(None);
    };
    let flow = hook
        .on_before_handle(&mut session.exchange(framing, dir))
        .await?;
    Ok(match flow {
        Flow::Continue => None,
        Flow::Skip => Some(true),
        Flow::Close => Some(false),
    })
}

/// Runs the `between` hook; false when the exchange must stop (and the connection close).
pub async fn between(
    session: &mut Session<'_>,
    framing: &dyn Framing,
    dir: Direction,
    hook: Option<&dyn ExchangeHook>,
) -> Result<bool, ProtocolError> {
    let Some(hook) = hook else {
        return Ok(true);
    };
    let flow = hook
        .on_between_handle(&mut session.exchange(framing, dir))
        .await?;
    Ok(flow == Flow::Continue)
}

/// Runs the `between` hook, then the `after` hook (in one go where the behavior can: nothing
/// happens between them); false when the connection must close. On the streaming path the
/// two may still be running when this returns: they are left in `session.later`, which the
/// connection settles before the direction's next step.
pub async fn between_then_after(
    session: &mut Session<'_>,
    framing: &dyn Framing,
    dir: Direction,
    hook: Option<&dyn ExchangeHook>,
) -> Result<bool, ProtocolError> {
    let Some(hook) = hook else {
        return Ok(true);
    };
    let (between, after) = hook
        .on_between_then_later(&mut session.exchange(framing, dir))
        .await?;
    let after = match after {
        After::Now(flow) => flow,
        After::Later(later) if session.streaming && session.later.is_none() => {
            *session.later = Some(later);
            Flow::Continue
        }
        After::Later(later) => later.settle(session).await?,
    };
    Ok(between == Flow::Continue && after != Flow::Close)
}

/// Settles the hooks left running by the direction's last exchange (see
/// [`between_then_after`]); false when the connection must close.
pub async fn settle(session: &mut Session<'_>) -> Result<bool, ProtocolError> {
    match session.later.take() {
        Some(later) => Ok(later.settle(session).await? != Flow::Close),
        None => Ok(true),
    }
}

/// Runs the `after` hook; false when the connection must close.
pub async fn after(
    session: &mut Session<'_>,
    framing: &dyn Framing,
    dir: Direction,
    hook: Option<&dyn ExchangeHook>,
) -> Result<bool, ProtocolError> {
    let Some(hook) = hook else {
        return Ok(true);
    };
    let flow = hook
        .on_after_handle(&mut session.exchange(framing, dir))
        .await?;
    Ok(flow != Flow::Close)
}

/// What `hook` makes of one whole message going in `msg_dir`, in the exchange that goes in
/// `dir`: `None` when there is no hook (the caller passes one only where it rewrites
/// `msg_dir`) or it leaves the message as it is.
pub async fn transform(
    session: &mut Session<'_>,
    framing: &dyn Framing,
    dir: Direction,
    hook: Option<&dyn ExchangeHook>,
    msg_dir: Direction,
    msg: &[u8],
) -> Result<Option<Bytes>, ProtocolError> {
    let Some(hook) = hook else {
        return Ok(None);
    };
    Ok(hook
        .transform(&mut session.exchange(framing, dir), msg_dir, msg)
        .await?)
}

/// Forwards one whole message going in `msg_dir` as [`transform`] makes it: what the hook
/// returns goes out in its place, through the link of `msg_dir`. Returns false when a toxic
/// closed the connection.
pub async fn forward_message(
    session: &mut Session<'_>,
    framing: &dyn Framing,
    dir: Direction,
    hook: Option<&dyn ExchangeHook>,
    msg_dir: Direction,
    msg: &[u8],
) -> Result<bool, ProtocolError> {
    let out = transform(session, framing, dir, hook, msg_dir, msg).await?;
    Ok(session.forward_or(msg_dir, msg, out.as_deref()).await?)
}
