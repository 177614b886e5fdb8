//! Faults: vaurien behaviors and Toxiproxy toxics are the same kind of thing.
//!
//! Every fault implements [`Behavior`]: hooks around one exchange (`on_before_handle`,
//! `on_between_handle`, `on_after_handle`, as the original Vaurien had them) and a hook on the
//! chunks flowing in one direction (`on_chunk`, as a Toxiproxy toxic works). Every hook defaults
//! to "carry on", so a behavior implements only what it needs. Python behaviors are adapted to
//! this same trait (see `crate::python`).
//!
//! The [`Registry`] holds one [`Kind`] per name: its option schema and a factory. The CLI, the
//! ini reader, both HTTP APIs and Python all look faults up here.

pub mod mix;
pub mod options;

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
use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::BytesMut;
use rand::rngs::SmallRng;

pub use mix::{Mix, MixError, MixSpec};
pub use options::{OptionKind, OptionSpec, Options, Value};

use crate::protocol::Protocol;
use crate::proxy::peer::Peer;

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
    #[error("python behavior '{behavior}' raised: {message}")]
    Python { behavior: String, message: String },
    #[error("{0}")]
    Other(String),
}

/// Direction of traffic. Toxiproxy calls client→backend "upstream".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Upstream,
    Downstream,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Upstream => "upstream",
            Direction::Downstream => "downstream",
        }
    }
    pub fn from_to_backend(to_backend: bool) -> Self {
        if to_backend {
            Direction::Upstream
        } else {
            Direction::Downstream
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "upstream" => Some(Direction::Upstream),
            "downstream" => Some(Direction::Downstream),
            _ => None,
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a connection knows about itself; shared by every hook of that connection.
#[derive(Debug)]
pub struct ConnInfo {
    /// Unique per process.
    pub id: u64,
    /// The proxy's name (Toxiproxy's proxy name; `vaurien` for the CLI's proxy).
    pub proxy: String,
    /// The backend as configured (`host:port`), e.g. for http's `overwrite_host_header`.
    pub backend: String,
    /// `--timeout`: how long a read may wait.
    pub timeout: Duration,
    /// `--bufsize`: the size of one read.
    pub bufsize: usize,
}

/// One exchange as the hooks see it: both sides of the connection, the direction, and the bytes
/// already read from the source and not yet forwarded.
pub struct Exchange<'a> {
    pub protocol: &'a dyn Protocol,
    pub conn: &'a ConnInfo,
    /// True when the exchange goes from the client to the backend.
    pub to_backend: bool,
    pub client: &'a Peer,
    pub backend: &'a Peer,
    /// Bytes read from the source side that are not yet forwarded. In streaming mode this is the
    /// chunk of this exchange; in framed protocols what was read ahead of the next request.
    pub pending: &'a mut BytesMut,
    /// Random numbers for this connection (seeded from the proxy's seed).
    pub rng: &'a mut SmallRng,
    /// Set by a behavior: the protocol inserts 100 random bytes in the middle of the answer.
    pub inject: &'a mut bool,
}

impl<'a> Exchange<'a> {
    /// The side the exchange comes from.
    pub fn source(&self) -> &'a Peer {
        if self.to_backend {
            self.client
        } else {
            self.backend
        }
    }
    /// The side the exchange goes to.
    pub fn dest(&self) -> &'a Peer {
        if self.to_backend {
            self.backend
        } else {
            self.client
        }
    }
    /// Reads one whole message (as the protocol frames it) from the source into `pending` and
    /// returns its length; 0 when the source closed first.
    pub async fn read_message(&mut self) -> std::io::Result<usize> {
        let source = self.source();
        let proto = self.protocol;
        let timeout = self.conn.timeout;
        loop {
            if let Some(n) = proto.frame_len(self.pending, self.to_backend) {
                return Ok(n);
            }
            let n = source
                .read_buf_timeout(self.pending, self.conn.bufsize, timeout)
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

/// A fault. One instance serves a whole proxy, so its counters are shared by every connection.
#[async_trait]
pub trait Behavior: Send + Sync + 'static {
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
    /// On each chunk of a link this fault is attached to (toxics).
    async fn on_chunk(&self, _cx: &mut ChunkCx<'_>) -> Result<(), BehaviorError> {
        Ok(())
    }
    /// True when this fault never touches the traffic: the engine may take the zero-copy path.
    fn is_passthrough(&self) -> bool {
        false
    }
    /// True when `on_chunk` does something (the engine skips the chunk pipeline otherwise).
    fn has_chunk_hook(&self) -> bool {
        false
    }
    /// True when the exchange hooks do something.
    fn has_exchange_hooks(&self) -> bool {
        true
    }
    /// A fault that ends connections on a clock (Toxiproxy's `timeout`): the engine closes each
    /// connection it applies to this long after the fault started on it, data moving or not.
    fn closes_after(&self) -> Option<std::time::Duration> {
        None
    }
    /// True when removing this fault closes the connections it applied to (Toxiproxy's
    /// `timeout` holds them open until then).
    fn closes_on_removal(&self) -> bool {
        false
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
pub type Factory = Arc<dyn Fn(&Options) -> Result<Arc<dyn Behavior>, BehaviorError> + Send + Sync>;

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
    pub fn new<F>(name: &str, help: &str, origin: Origin, options: Vec<OptionSpec>, f: F) -> Self
    where
        F: Fn(&Options) -> Result<Arc<dyn Behavior>, BehaviorError> + Send + Sync + 'static,
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
    pub fn build(&self, options: &Options) -> Result<Arc<dyn Behavior>, BehaviorError> {
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
pub type Registry = crate::registry::Registry<Kind>;

impl crate::registry::Entry for Kind {
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
/// microsecond (see [`crate::proxy::timer`]).
pub(crate) async fn sleep_secs(secs: f64) {
    if secs.is_finite() && secs > 0.0 {
        crate::proxy::timer::sleep(Duration::from_secs_f64(secs.min(1e9))).await;
    }
}
