//! Faults: vaurien behaviors and Toxiproxy toxics are the same kind of thing.
//!
//! A fault is built as a [`Fault`]: an [`ExchangeHook`] (hooks around one exchange:
//! `on_before_handle`, `on_between_handle`, `on_after_handle`, as the original Vaurien had
//! them), a [`ChunkToxic`] (a hook on the chunks flowing in one direction, as a Toxiproxy toxic
//! works), or `Pass` (touches nothing). Hooks see a connection only through the narrow
//! [`Wire`] and the protocol's [`Framing`]: never a socket. An exchange hook may also rewrite
//! the messages of an exchange ([`ExchangeHook::transform`]: one whole message in, the bytes to
//! send out), for the directions it names in [`ExchangeHook::transforms`]. Python behaviors
//! are adapted to the same hook trait (see `crate::python`).
//!
//! The [`Registry`] holds one [`Kind`] per name: its option schema and a factory. The CLI, the
//! ini reader, both HTTP APIs and Python all look faults up here.

pub mod mix;

mod abort;
mod blackout;
mod delay;
mod dummy;
mod error;
mod hang;
mod transient;

// Toxiproxy's toxics.
mod bandwidth;
mod latency;
mod limit_data;
mod noop;
mod packet_loss;
mod reset_peer;
mod slicer;
mod slow_close;
mod timeout;

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use rand::rngs::SmallRng;

pub use mix::{Mix, MixError, MixSpec};

pub(crate) use crate::base::options::options;
pub use crate::base::options::{NoOptions, OptionKind, OptionSet, OptionSpec, Options, Value};
use crate::base::ConnInfo;
pub use crate::base::PeerInfo;
pub use crate::base::{Direction, Side};

/// What a hook tells the engine to do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Go on with the exchange.
    Continue,
    /// The behavior answered the exchange itself: do not forward it, keep the connection.
    Skip,
    /// End the exchange and close the connection.
    Close,
}

impl Flow {
    /// The original hooks return a boolean: true carries on, false ends the connection.
    pub fn from_bool(keep: bool) -> Self {
        if keep {
            Flow::Continue
        } else {
            Flow::Close
        }
    }
}

/// Errors of the behavior layer: who failed is in the variant.
#[derive(Debug, thiserror::Error)]
pub enum BehaviorError {
    #[error("unknown behavior '{name}' (known: {known})")]
    Unknown { name: String, known: String },
    #[error("behavior '{behavior}': {message}")]
    BadOption { behavior: String, message: String },
    #[error("i/o during behavior: {0}")]
    Io(#[from] std::io::Error),
    /// A Python hook raised or misused the traffic; said where it happened (logger
    /// `vaurien.python`), with the traceback.
    #[error("python behavior '{behavior}': {message}")]
    Python { behavior: String, message: String },
    #[error("{0}")]
    Other(String),
}

/// The answer a protocol gives in place of the backend's for the `error` behavior.
#[derive(Clone, Debug)]
pub struct ErrorReply {
    pub bytes: Vec<u8>,
    /// Close the client connection after sending it (http's `Connection: close`).
    pub close: bool,
}

/// What a fault may know of the protocol of its exchange: how long a message is and what the
/// protocol answers in place of the backend. Every protocol implements it.
pub trait Framing: Send + Sync {
    /// The protocol's name (for messages).
    fn name(&self) -> &str;
    /// Its option values (schema defaults overlaid with the user's).
    fn options(&self) -> &Options;
    /// The length of the first complete message in `buf` going in direction `dir`, or `None`
    /// when more bytes are needed. Used by behaviors that answer a request themselves.
    fn frame_len(&self, buf: &[u8], dir: Direction) -> Option<usize> {
        let _ = dir;
        (!buf.is_empty()).then_some(buf.len())
    }
    /// The protocol's own error answer, or `None` when it has none (random bytes are sent).
    /// `dir` is upstream when it answers a request (else it replaces a message the backend
    /// started, such as a greeting).
    fn error_reply(&self, rng: &mut SmallRng, dir: Direction) -> Option<ErrorReply> {
        let _ = (rng, dir);
        None
    }
    /// True when `error` always answers with the protocol's own reply (http: a 50x), whatever
    /// its `protocol_reply` option says.
    fn errors_in_kind(&self) -> bool {
        false
    }
    /// True for the protocols the original ran as tcp with `keep_alive` (smtp, mysql): it called
    /// the behavior once per read in each direction, so a `delay` applied to the request and
    /// again to the answer (a round trip took twice the sleep).
    fn hooks_each_direction(&self) -> bool {
        false
    }
}

/// The narrow interface through which a fault acts on a connection: it never sees a socket.
/// Bytes it sends go through the link of their direction (its toxics and byte counters), as
/// every forwarded byte does.
#[async_trait]
pub trait Wire: Send {
    /// Bytes read from `side` and not yet forwarded.
    fn buffer(&mut self, side: Side) -> &mut BytesMut;
    /// Reads more from `side` into its buffer: at most `max` bytes, waiting at most `timeout`
    /// (`None`: without a limit, as a blocking socket). Returns 0 at EOF.
    async fn read_more(
        &mut self,
        side: Side,
        max: usize,
        timeout: Option<Duration>,
    ) -> io::Result<usize>;
    /// Sends `data` to `side` through its link. False when a toxic closed the connection.
    async fn send(&mut self, to: Side, data: &[u8]) -> io::Result<bool>;
    /// Closes one side (both directions).
    fn close(&mut self, side: Side);
    /// Closes one side with a TCP reset.
    fn reset(&mut self, side: Side);
    /// Stops reading from `side` (`how` 0), writing to it (1) or both (2), as `shutdown(2)`.
    fn shutdown(&mut self, side: Side, how: i32) -> io::Result<()>;
    /// What a hook may know of the peer on `side`.
    fn peer(&self, side: Side) -> PeerInfo;
    /// Random numbers for this connection (seeded from the proxy's seed).
    fn rng(&mut self) -> &mut SmallRng;
    /// The protocol inserts 100 random bytes in the middle of the next answer.
    fn inject_next_answer(&mut self);
}

/// One exchange as the hooks see it: its direction, the protocol's framing, and the wire.
pub struct Exchange<'a> {
    pub framing: &'a dyn Framing,
    pub conn: &'a ConnInfo,
    /// Upstream when the exchange goes from the client to the backend.
    pub direction: Direction,
    pub wire: &'a mut dyn Wire,
}

impl Exchange<'_> {
    /// The side the exchange comes from.
    pub fn source(&self) -> Side {
        self.direction.source()
    }
    /// The side the exchange goes to.
    pub fn dest(&self) -> Side {
        self.direction.dest()
    }
    /// Bytes read from the source side that are not yet forwarded. In streaming mode this is
    /// the chunk of this exchange; in framed protocols what was read ahead of the next request.
    pub fn pending(&mut self) -> &mut BytesMut {
        let side = self.source();
        self.wire.buffer(side)
    }
    pub fn rng(&mut self) -> &mut SmallRng {
        self.wire.rng()
    }
    /// Reads one whole message (as the protocol frames it) from the source into `pending` and
    /// returns its length; 0 when the source closed first.
    pub async fn read_message(&mut self) -> io::Result<usize> {
        let side = self.source();
        loop {
            if let Some(n) = self
                .framing
                .frame_len(self.wire.buffer(side), self.direction)
            {
                return Ok(n);
            }
            let n = self
                .wire
                .read_more(side, self.conn.bufsize, Some(self.conn.timeout))
                .await?;
            if n == 0 {
                return Ok(0);
            }
        }
    }
}

/// One chunk flowing through a link (one direction of one connection), as toxics see it.
pub struct ChunkCx<'a> {
    pub conn: &'a ConnInfo,
    pub direction: Direction,
    /// When the chunk was read from its source: latency counts from here.
    pub arrived: Instant,
    /// The pieces to write, in order, each after its own pause. A toxic may drop, split, delay
    /// or truncate them. Empty with `eof` set means the source has closed.
    pub pieces: &'a mut Vec<Piece>,
    /// The source closed its side: this is the end-of-stream event.
    pub eof: bool,
    /// State a toxic keeps for this link (bytes counted so far, ...), by toxic slot.
    pub link: &'a mut LinkState,
    pub rng: &'a mut SmallRng,
    /// Set by a toxic: close the link (and so the connection) after writing `pieces`.
    pub close: bool,
    /// Set by a toxic: close with a TCP reset.
    pub reset: bool,
}

/// A piece of a chunk to be written at `at` (at once when that time has passed). Times are
/// absolute, so that delays follow a schedule: a late wake-up does not push later pieces back,
/// and rounding does not add up.
#[derive(Debug, Clone)]
pub struct Piece {
    pub at: Instant,
    pub data: bytes::Bytes,
}

/// Per-link state of the toxics, keyed by the toxic's unique id.
#[derive(Default)]
pub struct LinkState {
    slots: BTreeMap<u64, Box<dyn std::any::Any + Send>>,
    /// The toxic being run: set by the engine before each `on_chunk`.
    pub current: u64,
}

impl LinkState {
    /// The state of the running toxic, created with `init` the first time.
    pub fn state<T: Send + 'static>(&mut self, init: impl FnOnce() -> T) -> &mut T {
        let fresh = !self.slots.get(&self.current).is_some_and(|s| s.is::<T>());
        if fresh {
            self.slots.insert(self.current, Box::new(init()));
        }
        self.slots
            .get_mut(&self.current)
            .and_then(|s| s.downcast_mut::<T>())
            .expect("inserted above")
    }
}

/// The directions whose messages a hook rewrites (see [`ExchangeHook::transform`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Transforms {
    /// Messages on their way to the backend (requests).
    pub up: bool,
    /// Messages on their way to the client (answers, greetings).
    pub down: bool,
}

impl Transforms {
    /// Rewrites nothing: messages stream through as they arrive.
    pub const NONE: Transforms = Transforms {
        up: false,
        down: false,
    };

    /// True when the messages going in `dir` are rewritten.
    pub fn has(self, dir: Direction) -> bool {
        match dir {
            Direction::Upstream => self.up,
            Direction::Downstream => self.down,
        }
    }

    /// Rewrites the messages of either.
    pub fn or(self, other: Transforms) -> Transforms {
        Transforms {
            up: self.up || other.up,
            down: self.down || other.down,
        }
    }
}

/// How an exchange's last hooks ended (see [`ExchangeHook::on_between_then_later`]).
pub enum After {
    /// They are over: their flow.
    Now(Flow),
    /// They are still running: settle them before the direction's next step.
    Later(Box<dyn Later>),
}

/// Hooks still running after their exchange: a Python `on_between_handle` and
/// `on_after_handle` on a pool thread, while the connection waits for the next chunk.
#[async_trait]
pub trait Later: Send {
    /// Ready when they need the connection: a socket request to serve, or their end when it
    /// ends the connection or failed. Their plain end wakes no one (that is the point: the
    /// connection's task is not woken up once more per exchange).
    fn poll_wanted(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()>;
    /// Waits for their end, serving their socket requests through `wire`; the flow of the
    /// exchange they belong to (`Close`: the connection ends).
    async fn settle(self: Box<Self>, wire: &mut dyn Wire) -> Result<Flow, BehaviorError>;
}

/// A fault that acts around exchanges (the original Vaurien's behaviors). One instance serves
/// a whole proxy, so its counters are shared by every connection.
#[async_trait]
pub trait ExchangeHook: Send + Sync + 'static {
    /// Before anything of the exchange is forwarded.
    async fn on_before_handle(&self, _cx: &mut Exchange<'_>) -> Result<Flow, BehaviorError> {
        Ok(Flow::Continue)
    }
    /// After the request went to the backend, before the answer is read.
    async fn on_between_handle(&self, _cx: &mut Exchange<'_>) -> Result<Flow, BehaviorError> {
        Ok(Flow::Continue)
    }
    /// After the exchange.
    async fn on_after_handle(&self, _cx: &mut Exchange<'_>) -> Result<Flow, BehaviorError> {
        Ok(Flow::Continue)
    }
    /// `on_between_handle` then `on_after_handle`, where nothing happens between the two
    /// (a streaming exchange): a behavior may make both in one go (a Python behavior: one trip
    /// to Python instead of two). The after hook runs whatever the between hook returned.
    async fn on_between_then_after(
        &self,
        cx: &mut Exchange<'_>,
    ) -> Result<(Flow, Flow), BehaviorError> {
        let between = self.on_between_handle(cx).await?;
        let after = self.on_after_handle(cx).await?;
        Ok((between, after))
    }
    /// [`on_between_then_after`](Self::on_between_then_after) where the connection's next
    /// step is to wait for the next chunk (a streaming exchange): the `after` part may still be
    /// running when this returns ([`After::Later`]). The connection then settles it before
    /// anything else happens in this direction (the next exchange, the end of the stream) or
    /// as soon as it asks for the connection (a socket request, a side to close, an error),
    /// so a hook sees what it would have seen had it been awaited. By default both now.
    async fn on_between_then_later(
        &self,
        cx: &mut Exchange<'_>,
    ) -> Result<(Flow, After), BehaviorError> {
        let (between, after) = self.on_between_then_after(cx).await?;
        Ok((between, After::Now(after)))
    }
    /// The runtime this behavior's connections are best served on, when not the engine's: a
    /// Python behavior's lane, whose threads call its hooks in place (see
    /// `python::lane`). A connection goes there when it is accepted under a mix with such a
    /// behavior; it runs there whatever the mix becomes later.
    fn home(&self) -> Option<tokio::runtime::Handle> {
        None
    }
    /// The directions whose messages [`transform`](Self::transform) rewrites. None by default:
    /// the protocols then forward each message as it arrives, and never call `transform`.
    fn transforms(&self) -> Transforms {
        Transforms::NONE
    }
    /// Rewrites one whole message going in `dir` (as the protocol frames it: a redis command
    /// or reply, an HTTP request or response with its body, a tcp chunk) before it is
    /// forwarded; `cx.direction` is the exchange's. `Ok(None)` sends it unchanged; `Ok(Some(b))`
    /// sends `b` in its place (empty: nothing), through the link of `dir` like any forwarded
    /// byte. Called only for the directions of [`transforms`](Self::transforms).
    async fn transform(
        &self,
        cx: &mut Exchange<'_>,
        dir: Direction,
        message: &[u8],
    ) -> Result<Option<Bytes>, BehaviorError> {
        let _ = (cx, dir, message);
        Ok(None)
    }
}

/// A fault that acts on the chunks of one direction (Toxiproxy's toxics).
#[async_trait]
pub trait ChunkToxic: Send + Sync + 'static {
    /// On each chunk (and on the end of the stream) of a link this toxic is attached to.
    async fn on_chunk(&self, cx: &mut ChunkCx<'_>) -> Result<(), BehaviorError>;
    /// True when the toxic only delays whole chunks (`latency`): chunks may be queued with
    /// their due time while reading goes on.
    fn only_delays(&self) -> bool {
        false
    }
    /// A toxic that ends connections on a clock (Toxiproxy's `timeout`): the engine closes each
    /// connection it applies to this long after the toxic started on it, data moving or not.
    fn closes_after(&self) -> Option<Duration> {
        None
    }
    /// True when removing this toxic closes the connections it applied to (Toxiproxy's
    /// `timeout` holds them open until then).
    fn closes_on_removal(&self) -> bool {
        false
    }
}

/// A fault, built: what it acts on decides which engine path runs it.
#[derive(Clone)]
pub enum Fault {
    /// Touches nothing (`dummy`, `noop`, a zero `latency`): the zero-copy path may be taken.
    Pass,
    /// Acts around exchanges.
    Hook(Arc<dyn ExchangeHook>),
    /// Acts on the chunks of one direction.
    Toxic(Arc<dyn ChunkToxic>),
}

impl Fault {
    pub fn hook(h: impl ExchangeHook) -> Self {
        Fault::Hook(Arc::new(h))
    }
    pub fn toxic(t: impl ChunkToxic) -> Self {
        Fault::Toxic(Arc::new(t))
    }
    /// True when this fault never touches the traffic.
    pub fn is_passthrough(&self) -> bool {
        matches!(self, Fault::Pass)
    }
    pub fn as_hook(&self) -> Option<&Arc<dyn ExchangeHook>> {
        match self {
            Fault::Hook(h) => Some(h),
            _ => None,
        }
    }
    pub fn as_toxic(&self) -> Option<&Arc<dyn ChunkToxic>> {
        match self {
            Fault::Toxic(t) => Some(t),
            _ => None,
        }
    }
}

/// Where a kind of fault comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// One of the original Vaurien's behaviors.
    Vaurien,
    /// One of Toxiproxy's toxics.
    Toxic,
    /// Registered at run time (Python).
    Plugin,
}

/// Builds an instance of a fault from its options.
pub type Factory = Arc<dyn Fn(&Options) -> Result<Fault, BehaviorError> + Send + Sync>;

/// A kind of fault: its name, its options and how to build it.
#[derive(Clone)]
pub struct Kind {
    pub name: String,
    pub help: String,
    pub options: Vec<OptionSpec>,
    pub origin: Origin,
    pub factory: Factory,
}

impl Kind {
    /// A kind whose options are declared by `O` (see `options!`): its schema is `O`'s and its
    /// factory gets them read.
    pub fn typed<O, F>(name: &str, help: &str, origin: Origin, f: F) -> Self
    where
        O: OptionSet,
        F: Fn(O) -> Result<Fault, BehaviorError> + Send + Sync + 'static,
    {
        Self::new(name, help, origin, O::schema(), move |o| f(O::from(o)))
    }

    /// A kind whose schema is known at run time only (Python): its factory reads the options
    /// by name.
    pub fn new<F>(name: &str, help: &str, origin: Origin, options: Vec<OptionSpec>, f: F) -> Self
    where
        F: Fn(&Options) -> Result<Fault, BehaviorError> + Send + Sync + 'static,
    {
        Kind {
            name: name.to_string(),
            help: help.to_string(),
            options,
            origin,
            factory: Arc::new(f),
        }
    }

    /// Builds an instance with these options (defaults filled in for missing ones).
    pub fn build(&self, options: &Options) -> Result<Fault, BehaviorError> {
        let mut full = Options::defaults(&self.options);
        for (k, v) in &options.0 {
            full.0.insert(k.clone(), v.clone());
        }
        (self.factory)(&full)
    }

    /// Options from JSON (API bodies): names and types checked against the schema.
    pub fn options_from_json(
        &self,
        base: &Options,
        obj: &serde_json::Map<String, serde_json::Value>,
        skip: &[&str],
    ) -> Result<Options, BehaviorError> {
        let mut opts = base.clone();
        for (k, v) in obj {
            if skip.contains(&k.as_str()) {
                continue;
            }
            opts.set_json(&self.options, k, v)
                .map_err(|message| BehaviorError::BadOption {
                    behavior: self.name.clone(),
                    message,
                })?;
        }
        Ok(opts)
    }
}

/// Every kind of fault known to this process. Python registers into it at run time.
pub type Registry = crate::base::registry::Registry<Kind>;

impl crate::base::registry::Entry for Kind {
    type Error = BehaviorError;
    fn name(&self) -> &str {
        &self.name
    }
    fn unknown(name: &str, known: String) -> BehaviorError {
        BehaviorError::Unknown {
            name: name.to_string(),
            known,
        }
    }
}

fn builtins() -> Vec<Kind> {
    vec![
        dummy::kind(),
        delay::kind(),
        error::kind(),
        hang::kind(),
        blackout::kind(),
        transient::kind(),
        abort::kind(),
        latency::kind(),
        bandwidth::kind(),
        slow_close::kind(),
        timeout::kind(),
        reset_peer::kind(),
        slicer::kind(),
        limit_data::kind(),
        noop::kind(),
        packet_loss::kind(),
    ]
}

/// The process-wide registry of faults.
pub fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| Registry::new(builtins()))
}

/// A refused option value.
pub(crate) fn bad(behavior: &str, message: String) -> BehaviorError {
    BehaviorError::BadOption {
        behavior: behavior.to_string(),
        message,
    }
}

/// Refuses negative values (Toxiproxy takes them and then misbehaves).
pub(crate) fn non_negative(behavior: &str, values: &[(&str, i64)]) -> Result<(), BehaviorError> {
    match values.iter().find(|(_, v)| *v < 0) {
        Some((name, v)) => Err(bad(behavior, format!("{name} must be 0 or more, not {v}"))),
        None => Ok(()),
    }
}

/// Sleeps for a number of seconds given as a float (negative or NaN: no sleep), to the
/// microsecond (see [`crate::base::timer`]).
pub(crate) async fn sleep_secs(secs: f64) {
    if secs.is_finite() && secs > 0.0 {
        crate::base::timer::sleep(Duration::from_secs_f64(secs.min(1e9))).await;
    }
}
