//! Python behavior classes as engine behaviors.
//!
//! `Behavior.register(cls)` (Python) calls [`register_behavior`]: the class's `options` dict
//! becomes the kind's option schema, so a Python behavior gets `--behavior-NAME-OPTION` flags,
//! ini sections, `PUT /behavior` and `GET /behaviors` like a built-in. Each built behavior
//! (one per configuration, shared by every connection of the proxy, as in the original) makes
//! its Python instance when it is built (at start, or by `PUT /behavior`): `cls()` then
//! `update_settings(options)`; one that raises is refused there.
//!
//! A hook call: on a thread of the Python [`lane`] (where the connections of a proxy with a
//! Python behavior run), the hook is called in place when it may be (see [`Target::submit`]);
//! otherwise the connection's task submits the call to the [`pool`], then performs the
//! socket requests of the hook (see [`socket`]) until the result arrives. Hooks the class lacks
//! are not called at all (they count as returning True). `on_request` and `on_response` get
//! a whole message as bytes and return the bytes to send (or None): the engine's
//! [`ExchangeHook::transform`]; a class that lacks both costs the protocols nothing.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes};
use tokio::sync::oneshot;

use super::socket::{
    self, BetweenHook, Conduit, End, Msg, PeerInfo, ProtocolView, Request, Socket, ViewCache,
    ViewData,
};
use super::{errors, lane, pool};
use crate::base::Direction;
use crate::behavior::{
    self, After, BehaviorError, Exchange, ExchangeHook, Fault, Flow, Kind, Later, OptionKind,
    OptionSpec, Options, Origin, Side, Transforms, Value, Wire,
};

/// A class registered from Python (behavior or protocol).
pub struct Plugin {
    pub name: String,
    pub class: Py<PyAny>,
    /// Which of the [`Hook`]s the class has, in their order.
    pub hooks: [bool; HOOKS],
}

/// One configured instance of a plugin: its options and, once made, its Python object.
pub struct Instance {
    pub plugin: Arc<Plugin>,
    pub options: Options,
    object: OnceLock<Py<PyAny>>,
    /// The `protocol` argument of the last call, shared by the next ones.
    pub views: ViewCache,
    /// By hook, whether it may be called in place (see [`Target::submit`]).
    place: [Placing; HOOKS],
}

impl Instance {
    pub fn new(plugin: Arc<Plugin>, options: Options) -> Self {
        Instance {
            plugin,
            options,
            object: OnceLock::new(),
            views: ViewCache::default(),
            place: Default::default(),
        }
    }

    /// The Python object, made on first use: `cls()`, then `update_settings(options)` (or a
    /// `settings` attribute for a plain class). Two threads may race to make it: one wins, the
    /// other's object is dropped; no lock is held while Python runs.
    pub fn object<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        if let Some(o) = self.object.get() {
            return Ok(o.bind(py).clone());
        }
        let obj = self.plugin.class.bind(py).call0()?;
        let settings = socket::options_to_dict(py, &self.options)?;
        if obj.hasattr("update_settings")? {
            obj.call_method1("update_settings", (settings,))?;
        } else if !obj.hasattr("settings")? {
            let _ = obj.setattr("settings", settings);
        }
        let _ = self.object.set(obj.unbind());
        Ok(self.object.get().expect("set above").bind(py).clone())
    }
}

/// How many hooks a behavior class may have.
pub const HOOKS: usize = 5;

/// The hooks: the three around an exchange, then the two that rewrite its messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    Before = 0,
    Between = 1,
    After = 2,
    /// Rewrites a message going to the backend.
    Request = 3,
    /// Rewrites a message going to the client.
    Response = 4,
}

/// `method` as an interned Python string (made once): a hook's name, or `_handle` (a
/// protocol); anything else is made afresh.
fn method_name<'py>(py: Python<'py>, method: &'static str) -> Bound<'py, pyo3::types::PyString> {
    let interned = match method {
        "on_before_handle" => pyo3::intern!(py, "on_before_handle"),
        "on_between_handle" => pyo3::intern!(py, "on_between_handle"),
        "on_after_handle" => pyo3::intern!(py, "on_after_handle"),
        "on_request" => pyo3::intern!(py, "on_request"),
        "on_response" => pyo3::intern!(py, "on_response"),
        "_handle" => pyo3::intern!(py, "_handle"),
        other => return pyo3::types::PyString::new(py, other),
    };
    interned.clone()
}

impl Hook {
    pub fn method(self) -> &'static str {
        match self {
            Hook::Before => "on_before_handle",
            Hook::Between => "on_between_handle",
            Hook::After => "on_after_handle",
            Hook::Request => "on_request",
            Hook::Response => "on_response",
        }
    }
}

/// What a Python call tells the engine.
pub struct Outcome {
    /// The call's truth value.
    pub keep: bool,
    /// The second call's truth value, when one was asked for and made (see [`Call::run`]).
    pub then: Option<bool>,
    /// `_closed` was set (or `close()` called) on the source / dest socket.
    pub close_source: bool,
    pub close_dest: bool,
}

impl Outcome {
    /// Whether the connection must act on it (a false first call, a side to close), where
    /// the task does not await the call (see [`Conduit::wanted`]).
    pub fn wanted(&self) -> bool {
        !self.keep || self.close_source || self.close_dest
    }
}

/// Everything a Python thread needs for one call; no borrowed engine state.
pub struct Call {
    pub instance: Arc<Instance>,
    pub protocol: Arc<ViewData>,
    /// The exchange's direction (Python hooks get the original's `to_backend` boolean).
    pub direction: Direction,
    pub source: PeerInfo,
    pub dest: PeerInfo,
    pub timeout: Duration,
    pub conduit: socket::Conduit,
}

impl Call {
    /// Runs `method(protocol, source, dest, to_backend)` on the instance, or for a protocol
    /// (`between` given) `_handle(source, dest, to_backend, on_between_handle)`; then `then`
    /// the same way, with the same sockets, unless the first call closed one (the engine then
    /// closes it before anything else runs). Runs on a pool thread; takes the GIL for the
    /// Python part only.
    pub fn run(
        self,
        method: &'static str,
        then: Option<&'static str>,
        protocol_call: bool,
    ) -> Result<Outcome, BehaviorError> {
        self.run_noting(method, then, protocol_call, &mut None)
    }

    /// [`run`](Self::run), noting in `entered` when the thread got the GIL (a wait for it is
    /// not the hook's doing).
    fn run_noting(
        self,
        method: &'static str,
        then: Option<&'static str>,
        protocol_call: bool,
        entered: &mut Option<Instant>,
    ) -> Result<Outcome, BehaviorError> {
        if pool::finalizing() {
            return Err(BehaviorError::Other(
                "the Python interpreter is shutting down".into(),
            ));
        }
        pool::attach(|py| {
            *entered = Some(Instant::now());
            let obj = self
                .instance
                .object(py)
                .map_err(|e| errors::hook_failed(py, &self.instance.plugin.name, method, e))?;
            let socket = |side, info: &PeerInfo| {
                Bound::new(
                    py,
                    Socket::new(self.conduit.clone(), side, info.clone(), self.timeout),
                )
            };
            let (source, dest) = match (
                socket(End::Source, &self.source),
                socket(End::Dest, &self.dest),
            ) {
                (Ok(s), Ok(d)) => (s, d),
                (Err(e), _) | (_, Err(e)) => {
                    return Err(errors::hook_failed(
                        py,
                        &self.instance.plugin.name,
                        method,
                        e,
                    ))
                }
            };
            let to_backend = self.direction.is_upstream();
            let call = |method: &'static str| -> Result<bool, BehaviorError> {
                let ret = if protocol_call {
                    Bound::new(py, BetweenHook::new(self.conduit.clone())).and_then(|between| {
                        obj.call_method1(
                            method_name(py, method),
                            (&source, &dest, to_backend, between),
                        )
                    })
                } else {
                    Bound::new(py, ProtocolView::new(self.protocol.clone())).and_then(|proto| {
                        obj.call_method1(
                            method_name(py, method),
                            (proto, &source, &dest, to_backend),
                        )
                    })
                };
                // What `on_after_handle` returns is never looked at, not even its truth value
                // (the original's `finally:` dropped it): one whose `__bool__` raises is fine.
                ret.and_then(|r| Ok(method == Hook::After.method() || r.is_truthy()?))
                    .map_err(|e| errors::hook_failed(py, &self.instance.plugin.name, method, e))
            };
            let closed = || (source.borrow().closed, dest.borrow().closed);
            let keep = call(method)?;
            let (close_source, close_dest) = closed();
            let then = match then {
                Some(m) if !close_source && !close_dest => Some(call(m)?),
                _ => None,
            };
            let (close_source, close_dest) = closed();
            Ok(Outcome {
                keep,
                close_source,
                close_dest,
                then,
            })
        })
    }
}

/// A call submitted to the pool: what it asks of the connection, then its result. (A pool
/// thread stuck in a slow hook does not hold up the calls queued behind it: the pool's
/// watchdog starts another one, see [`pool::submit`].)
pub struct Pending {
    next: oneshot::Receiver<Msg>,
    /// The next message, taken by [`Pending::poll_wanted`] before the task awaited it.
    seen: Option<Msg>,
    conduit: Conduit,
}

/// What a pending call needs next.
pub enum Step {
    /// Perform this socket request of the hook.
    Request(Request),
    /// The call is over.
    Done(Result<Outcome, BehaviorError>),
}

/// Submits a call to the pool; `first` is the receiver of its conduit's first message.
pub fn submit(
    call: Call,
    method: &'static str,
    then: Option<&'static str>,
    protocol_call: bool,
    first: oneshot::Receiver<Msg>,
) -> Pending {
    let conduit = call.conduit.clone();
    let pending = Pending::new(first, conduit.clone());
    pool::submit(move || conduit.finish(call.run(method, then, protocol_call)));
    pending
}

impl Pending {
    fn new(first: oneshot::Receiver<Msg>, conduit: Conduit) -> Self {
        Pending {
            next: first,
            seen: None,
            conduit,
        }
    }

    pub async fn step(&mut self) -> Step {
        let next = match self.seen.take() {
            Some(msg) => Ok(msg),
            None => (&mut self.next).await,
        };
        match next {
            Ok(Msg::Done(result)) => Step::Done(result),
            Ok(Msg::Request(request, then)) => {
                self.next = then;
                Step::Request(request)
            }
            Err(_) => Step::Done(Err(BehaviorError::Other(
                "the Python call was dropped".into(),
            ))),
        }
    }

    /// For a call the task does not await: ready when its next message needs the task (see
    /// [`Conduit::wanted`]).
    pub fn poll_wanted(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        self.conduit.wanted(&mut self.next, &mut self.seen, cx)
    }
}

/// A Python behavior, as the engine sees it.
pub struct PyBehavior {
    instance: Arc<Instance>,
}

impl PyBehavior {
    /// Calls `hook`, then `then` if given (one trip to Python for both). The second flow is
    /// `None` when `then` was not called here (the class lacks one of the two, or the first
    /// call closed a side): the caller then makes it on its own.
    async fn call(
        &self,
        hook: Hook,
        then: Option<Hook>,
        cx: &mut Exchange<'_>,
    ) -> Result<(Flow, Option<Flow>), BehaviorError> {
        match self.start(hook, then, cx).await {
            Some(mut started) => started.finish(&mut *cx.wire).await,
            None => Ok((Flow::Continue, None)), // the caller makes `then` on its own
        }
    }

    /// Makes the call of `hook` (then `then`) in place or submits it to the pool (see
    /// [`Target::submit`]); `None` when the class lacks `hook`.
    async fn start(
        &self,
        hook: Hook,
        then: Option<Hook>,
        cx: &mut Exchange<'_>,
    ) -> Option<Started> {
        let has = |h: Hook| self.instance.plugin.hooks[h as usize];
        if !has(hook) {
            return None;
        }
        let then = then.filter(|t| has(*t));
        let (src, dst) = (cx.source(), cx.dest());
        let target = Target {
            instance: self.instance.clone(),
            protocol: self
                .instance
                .views
                .get(cx.framing.name(), cx.framing.options()),
            direction: cx.direction,
            source: PeerInfo::new(cx.wire.peer(src), src),
            dest: PeerInfo::new(cx.wire.peer(dst), dst),
            timeout: cx.conn.timeout,
        };
        Some(target.submit(hook, then, &mut *cx.wire).await)
    }
}

/// What a call needs of its exchange, kept for a call made later (see [`PyLater`]).
#[derive(Clone)]
struct Target {
    instance: Arc<Instance>,
    protocol: Arc<ViewData>,
    direction: Direction,
    source: PeerInfo,
    dest: PeerInfo,
    timeout: Duration,
}

/// A call is slow when it took longer than this (its Python code, not its wait for the
/// GIL nor its socket calls, which hold no lane thread: see [`socket::with_server`]): it
/// sleeps, waits or computes.
const SLOW: Duration = Duration::from_millis(1);
/// A hook is called in place once this many of its calls in a row on the pool were quick: a
/// hook that sleeps or waits each time never holds a lane thread.
const PROBATION: u32 = 4;
/// A hook called in place that is slow this many times in a row goes to the pool for good.
/// (One slow call may be a quick one the system preempted: on a loaded machine that happens
/// many times a second.)
const STRIKES: u32 = 3;

/// Counts a call of `hook` (then `then`) that got the GIL at `entered` and ends now: its own
/// time, without its socket requests.
fn note_call(
    place: &[Placing; HOOKS],
    hook: Hook,
    then: Option<Hook>,
    in_place: bool,
    entered: Option<Instant>,
    conduit: &Conduit,
) {
    let took = entered.map(|t| t.elapsed().saturating_sub(conduit.waited()));
    for h in std::iter::once(hook).chain(then) {
        place[h as usize].note(in_place, took);
    }
}

/// Whether a hook may be called in place, from how long its calls took.
#[derive(Default)]
struct Placing {
    /// Quick calls on the pool in a row, up to [`PROBATION`].
    quick: AtomicU32,
    /// Slow calls in place in a row; from [`STRIKES`] on, the hook stays on the pool.
    strikes: AtomicU32,
}

impl Placing {
    fn in_place(&self) -> bool {
        self.quick.load(Ordering::Relaxed) >= PROBATION
            && self.strikes.load(Ordering::Relaxed) < STRIKES
    }

    /// Counts a call that took `took` (`None`: it never got to Python).
    fn note(&self, in_place: bool, took: Option<Duration>) {
        let slow = took.is_none_or(|t| t > SLOW);
        let (count, reset) = match (in_place, slow) {
            (false, false) => (&self.quick, None),
            (false, true) => (&self.quick, Some(0)),
            (true, true) => (&self.strikes, None),
            (true, false) => (&self.strikes, Some(0)),
        };
        match reset {
            Some(v) if count.load(Ordering::Relaxed) != v => count.store(v, Ordering::Relaxed),
            Some(_) => {}
            None if in_place || count.load(Ordering::Relaxed) < PROBATION => {
                count.fetch_add(1, Ordering::Relaxed);
            }
            None => {}
        }
    }
}

impl Target {
    /// Makes the call of `hook` (then `then`, which the class has).
    ///
    /// In place when both hooks may be ([`PROBATION`] quick calls in a row on the pool,
    /// fewer than [`STRIKES`] slow ones in a row in place) and this lane thread gets the turn
    /// (awaited for a short while when another lane thread calls in place, see
    /// [`lane::take_turn`]): the call is over when this returns, its socket requests served
    /// through `wire` on the spot. Otherwise the call is submitted to the pool, and
    /// [`Started::finish`] serves its requests.
    async fn submit(&self, hook: Hook, then: Option<Hook>, wire: &mut dyn Wire) -> Started {
        let (method, then_method) = (hook.method(), then.map(Hook::method));
        let place = &self.instance.place;
        let may = |h: Hook| place[h as usize].in_place();
        let turn = if may(hook) && then.is_none_or(may) {
            lane::take_turn().await
        } else {
            None
        };
        let started = |run| Started {
            target: self.clone(),
            hook,
            then,
            run,
        };
        let Some(turn) = turn else {
            let (conduit, first) = Conduit::new();
            let call = self.call(conduit.clone());
            let pending = Pending::new(first, conduit.clone());
            pool::submit(move || {
                let instance = call.instance.clone();
                let mut entered = None;
                let result = call.run_noting(method, then_method, false, &mut entered);
                note_call(&instance.place, hook, then, false, entered, &conduit);
                conduit.finish(result);
            });
            return started(Run::Pool(pending, Tally::default()));
        };
        // In place: the call's socket requests are served on the spot, and its result comes
        // back here (no message to the task: its conduit has no receiver).
        let conduit = Conduit::detached();
        let call = self.call(conduit.clone());
        let dir = self.direction;
        let (src, dst) = (dir.source(), dir.dest());
        let mut tally = Tally::default();
        let mut serve_here = |request: Request| {
            // This thread's other connections go on on another lane thread meanwhile.
            tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current()
                    .block_on(serve(request, &mut *wire, src, dst, &mut tally))
            })
        };
        let mut entered = None;
        let result = socket::with_server(&conduit, &mut serve_here, || {
            call.run_noting(method, then_method, false, &mut entered)
        });
        note_call(place, hook, then, true, entered, &conduit);
        drop(turn); // after the count: one call in place at a time counts the strikes
        started(Run::Done(Some(result), tally))
    }

    /// A call of this target whose sockets talk through `conduit`.
    fn call(&self, conduit: Conduit) -> Call {
        Call {
            instance: self.instance.clone(),
            protocol: self.protocol.clone(),
            direction: self.direction,
            source: self.source.clone(),
            dest: self.dest.clone(),
            timeout: self.timeout,
            conduit,
        }
    }
}

/// A hook that returned True (the exchange goes on) after it read bytes the engine was to
/// forward — the request in `on_before_handle` of an exchange the client started, the answer
/// in `on_between_handle` — leaves the engine waiting for a message that is gone: the client
/// would wait for `--timeout`, then see the connection close without a word. Said in one
/// line, and the connection closes at once.
fn check(name: &str, hook: Hook, tally: &Tally, dir: Direction) -> Result<(), BehaviorError> {
    let (read, what, from, instead) = match hook {
        Hook::Before if dir.is_upstream() => (tally.read_source, "request", "source", "on_request"),
        Hook::Between => (tally.read_dest, "answer", "dest", "on_response"),
        _ => return Ok(()),
    };
    if read == 0 {
        return Ok(());
    }
    let sent = match tally.sent_dest {
        0 => String::new(),
        n => format!(" and sent {n} bytes to `dest` itself"),
    };
    let problem = format!(
        "read {read} bytes of the {what} from `{from}`{sent}, then returned True: the proxy \
             cannot forward a {what} that was taken from it, nor go on with the exchange. To \
             change the {what}, return its new bytes from {instead}(protocol, data, to_backend); \
             a hook that answers by itself returns False"
    );
    Err(errors::hook_misused(name, hook.method(), &problem))
}

/// A call made in place or submitted to the pool, with what its end needs.
struct Started {
    target: Target,
    hook: Hook,
    then: Option<Hook>,
    run: Run,
}

/// Where a call is, and what its hook did with its sockets so far.
enum Run {
    /// On the pool: its socket requests and its result come through the conduit.
    Pool(Pending, Tally),
    /// Made in place, and over: its result (taken by [`Started::finish`]).
    Done(Option<Result<Outcome, BehaviorError>>, Tally),
}

impl Started {
    /// Made in place: over already.
    fn in_place(&self) -> bool {
        matches!(self.run, Run::Done(..))
    }

    /// For a call the task does not await: ready when it needs the task (see
    /// [`Pending::poll_wanted`]).
    fn poll_wanted(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        match &mut self.run {
            Run::Pool(pending, _) => pending.poll_wanted(cx),
            Run::Done(..) => std::task::Poll::Ready(()),
        }
    }

    /// Waits for the call's end, serving its socket requests through `wire`: the flows of
    /// `hook` and (when made in the same trip) of `then`.
    async fn finish(&mut self, wire: &mut dyn Wire) -> Result<(Flow, Option<Flow>), BehaviorError> {
        let dir = self.target.direction;
        let (src, dst) = (dir.source(), dir.dest());
        let (outcome, tally) = match &mut self.run {
            Run::Pool(pending, tally) => loop {
                match pending.step().await {
                    Step::Request(request) => {
                        serve(request, &mut *wire, src, dst, &mut *tally).await
                    }
                    Step::Done(result) => break (result?, &*tally),
                }
            },
            Run::Done(result, tally) => {
                let result = result.take().unwrap_or_else(|| {
                    Err(BehaviorError::Other(
                        "the Python call was settled twice".into(),
                    ))
                });
                (result?, &*tally)
            }
        };
        if outcome.close_source {
            wire.close(src);
        }
        if outcome.close_dest {
            wire.close(dst);
        }
        let closed = outcome.close_source || outcome.close_dest;
        // What `on_after_handle` returns is dropped, as the original's `finally:` dropped it
        // (a hook without `return` gives None): only a side it closed ends the connection.
        let flow = |h: Hook, keep: bool| Flow::from_bool((keep || h == Hook::After) && !closed);
        let first = flow(self.hook, outcome.keep);
        if first == Flow::Continue && self.then.is_none() {
            check(&self.target.instance.plugin.name, self.hook, tally, dir)?;
        }
        Ok((
            first,
            outcome.then.zip(self.then).map(|(keep, h)| flow(h, keep)),
        ))
    }
}

/// `on_between_handle` then `on_after_handle` of a streaming exchange, left running on the
/// pool (see [`ExchangeHook::on_between_then_later`]).
struct PyLater {
    started: Started,
}

#[async_trait]
impl Later for PyLater {
    fn poll_wanted(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        self.started.poll_wanted(cx)
    }

    async fn settle(mut self: Box<Self>, wire: &mut dyn Wire) -> Result<Flow, BehaviorError> {
        let s = &mut self.started;
        let (first, second) = s.finish(&mut *wire).await?;
        let (between, after) = match (s.hook, second) {
            (Hook::After, _) => (Flow::Continue, first),
            (_, Some(after)) => (first, after),
            // The class has no after hook, or the between hook closed a side: as
            // `on_between_then_after`, the after hook now (awaited), if the class has one.
            (_, None) => (first, self.after_now(wire).await?),
        };
        Ok(Flow::from_bool(
            between == Flow::Continue && after != Flow::Close,
        ))
    }
}

impl PyLater {
    /// The after hook on its own (awaited), if the class has one.
    async fn after_now(&mut self, wire: &mut dyn Wire) -> Result<Flow, BehaviorError> {
        let target = &self.started.target;
        if !target.instance.plugin.hooks[Hook::After as usize] {
            return Ok(Flow::Continue);
        }
        let mut after = target.submit(Hook::After, None, &mut *wire).await;
        Ok(after.finish(wire).await?.0)
    }
}

/// What a hook did with its sockets (bytes read and sent, by socket).
#[derive(Default)]
struct Tally {
    read_source: usize,
    read_dest: usize,
    sent_dest: usize,
}

/// Performs one socket request of a behavior hook, through the exchange's wire: what it
/// sends goes through the link (toxics, counters) as every other byte.
async fn serve(req: Request, wire: &mut dyn Wire, src: Side, dst: Side, tally: &mut Tally) {
    let side = |end: End| if end == End::Source { src } else { dst };
    match req {
        Request::Recv {
            side: end,
            max,
            timeout,
            reply,
        } => {
            let r = socket::recv_from(&mut *wire, side(end), max, timeout).await;
            let n = r.as_ref().map_or(0, Vec::len);
            match end {
                End::Source => tally.read_source += n,
                End::Dest => tally.read_dest += n,
            }
            let _ = reply.send(r);
        }
        Request::Send {
            side: end,
            data,
            reply,
        } => {
            if end == End::Dest {
                tally.sent_dest += data.len();
            }
            let r = wire.send(side(end), &data).await.map(|_| ());
            let _ = reply.send(r);
        }
        Request::Close { side: end, reply } => {
            wire.close(side(end));
            let _ = reply.send(());
        }
        Request::Shutdown {
            side: end,
            how,
            reply,
        } => {
            let _ = reply.send(wire.shutdown(side(end), how));
        }
        Request::Between { reply } => {
            let _ = reply.send(Err("on_between_handle is only given to protocols".into()));
        }
    }
}

#[async_trait]
impl ExchangeHook for PyBehavior {
    /// The Python lane: its threads call the hooks in place (see [`lane`]).
    fn home(&self) -> Option<tokio::runtime::Handle> {
        lane::handle()
    }
    async fn on_before_handle(&self, cx: &mut Exchange<'_>) -> Result<Flow, BehaviorError> {
        Ok(self.call(Hook::Before, None, cx).await?.0)
    }
    async fn on_between_handle(&self, cx: &mut Exchange<'_>) -> Result<Flow, BehaviorError> {
        Ok(self.call(Hook::Between, None, cx).await?.0)
    }
    async fn on_after_handle(&self, cx: &mut Exchange<'_>) -> Result<Flow, BehaviorError> {
        Ok(self.call(Hook::After, None, cx).await?.0)
    }
    /// The between and after hooks are submitted in one trip and left running: the
    /// connection's task is not woken for their plain end (see [`Later`]).
    async fn on_between_then_later(
        &self,
        cx: &mut Exchange<'_>,
    ) -> Result<(Flow, After), BehaviorError> {
        let started = match self.start(Hook::Between, Some(Hook::After), cx).await {
            Some(started) => Some(started),
            None => self.start(Hook::After, None, cx).await,
        };
        Ok(match started {
            // Made in place, and over: nothing is left running.
            Some(started) if started.in_place() => {
                let flow = Box::new(PyLater { started }).settle(&mut *cx.wire).await?;
                (Flow::Continue, After::Now(flow))
            }
            Some(started) => (Flow::Continue, After::Later(Box::new(PyLater { started }))),
            None => (Flow::Continue, After::Now(Flow::Continue)),
        })
    }
    async fn on_between_then_after(
        &self,
        cx: &mut Exchange<'_>,
    ) -> Result<(Flow, Flow), BehaviorError> {
        match self.call(Hook::Between, Some(Hook::After), cx).await? {
            (between, Some(after)) => Ok((between, after)),
            // Not made in the same trip (see `call`): now the after hook.
            (between, None) => Ok((between, self.on_after_handle(cx).await?)),
        }
    }
    fn transforms(&self) -> Transforms {
        let has = &self.instance.plugin.hooks;
        Transforms {
            up: has[Hook::Request as usize],
            down: has[Hook::Response as usize],
        }
    }
    /// `on_request` / `on_response(protocol, data, to_backend)` on a pool thread; no socket
    /// is involved, so the task only waits for the result.
    async fn transform(
        &self,
        cx: &mut Exchange<'_>,
        dir: Direction,
        message: &[u8],
    ) -> Result<Option<Bytes>, BehaviorError> {
        let hook = if dir.is_upstream() {
            Hook::Request
        } else {
            Hook::Response
        };
        let instance = self.instance.clone();
        let protocol = instance.views.get(cx.framing.name(), cx.framing.options());
        let to_backend = cx.direction.is_upstream();
        let data = message.to_vec();
        pool::run(move || rewrite(&instance, protocol, hook, to_backend, &data))
            .await
            .unwrap_or_else(|| Err(BehaviorError::Other("the Python call was dropped".into())))
    }
}

/// Calls `on_request` or `on_response` with one message; `None` when it returns None or the
/// very bytes it was given. Runs on a pool thread; takes the GIL for the Python part only.
fn rewrite(
    instance: &Instance,
    protocol: Arc<ViewData>,
    hook: Hook,
    to_backend: bool,
    data: &[u8],
) -> Result<Option<Bytes>, BehaviorError> {
    if pool::finalizing() {
        return Err(BehaviorError::Other(
            "the Python interpreter is shutting down".into(),
        ));
    }
    let name = &instance.plugin.name;
    pool::attach(|py| {
        let failed = |e| errors::hook_failed(py, name, hook.method(), e);
        let obj = instance.object(py).map_err(failed)?;
        let data = PyBytes::new(py, data);
        let view = Bound::new(py, ProtocolView::new(protocol)).map_err(failed)?;
        let out = obj
            .call_method1(method_name(py, hook.method()), (view, &data, to_backend))
            .map_err(failed)?;
        if out.is_none() || out.is(&data) {
            return Ok(None);
        }
        if let Ok(b) = out.downcast::<PyBytes>() {
            return Ok(Some(Bytes::copy_from_slice(b.as_bytes())));
        }
        if let Ok(b) = out.downcast::<PyByteArray>() {
            return Ok(Some(Bytes::from(b.to_vec())));
        }
        let kind = out
            .get_type()
            .name()
            .map_or_else(|_| "?".to_string(), |n| n.to_string());
        Err(errors::hook_misused(
            name,
            hook.method(),
            &format!(
                "returned {kind}: return the bytes to send (bytes or bytearray), or None to \
                 send the message unchanged"
            ),
        ))
    })
}

/// One option of a Python `options` dict, already split by the Python side into
/// `(name, type name, default, description)`.
pub type PyOptionSpec<'py> = (String, String, Bound<'py, PyAny>, String);

/// The option schema of a Python class.
pub fn schema(owner: &str, specs: Vec<PyOptionSpec<'_>>) -> PyResult<Vec<OptionSpec>> {
    specs
        .into_iter()
        .map(|(name, kind, default, help)| {
            let kind = match kind.as_str() {
                "bool" => OptionKind::Bool,
                "int" => OptionKind::Int,
                "float" => OptionKind::Float,
                "str" => OptionKind::Str,
                other => {
                    return Err(errors::value_error(format!(
                        "{owner}: option '{name}' has type {other}; use int, float, bool or str"
                    )))
                }
            };
            let default = if default.is_none() {
                match kind {
                    OptionKind::Bool => Value::Bool(false),
                    OptionKind::Int => Value::Int(0),
                    OptionKind::Float => Value::Float(0.0),
                    OptionKind::Str => Value::Str(String::new()),
                }
            } else if let Ok(s) = default.extract::<String>() {
                kind.parse(&s)
                    .map_err(|e| errors::value_error(format!("{owner}: option '{name}': {e}")))?
            } else {
                match kind {
                    OptionKind::Bool => Value::Bool(default.is_truthy()?),
                    OptionKind::Int => Value::Int(default.extract()?),
                    OptionKind::Float => Value::Float(default.extract()?),
                    OptionKind::Str => Value::Str(default.str()?.to_string()),
                }
            };
            Ok(OptionSpec::new(&name, kind, default, &help))
        })
        .collect()
}

/// Registers (or replaces) a Python behavior class under `name`.
#[pyfunction]
#[pyo3(signature = (name, help, options, cls, hooks))]
pub fn register_behavior(
    name: String,
    help: String,
    options: Vec<PyOptionSpec<'_>>,
    cls: Py<PyAny>,
    hooks: Vec<bool>,
) -> PyResult<()> {
    if name.is_empty() || name.contains([',', ':', ' ']) {
        return Err(errors::value_error(format!(
            "a behavior name must be a non-empty word, not {name:?}"
        )));
    }
    let specs = schema(&name, options)?;
    let plugin = Arc::new(Plugin {
        name: name.clone(),
        class: cls,
        hooks: std::array::from_fn(|i| hooks.get(i).copied().unwrap_or(false)),
    });
    let kind_name = name.clone();
    behavior::registry().register(Kind::new(&name, &help, Origin::Plugin, specs, move |o| {
        let instance = Arc::new(Instance::new(plugin.clone(), o.clone()));
        // Made now (`cls()` then `update_settings`), where the behavior is named: a class that
        // cannot be built is refused by the start or the PUT, never accepted and then failing
        // every connection.
        Python::attach(|py| instance.object(py).map(|_| ())).map_err(|e| {
            BehaviorError::BadOption {
                behavior: kind_name.clone(),
                message: format!(
                    "cannot be built (cls() then update_settings(options) raised): {e}"
                ),
            }
        })?;
        Ok(Fault::hook(PyBehavior { instance }))
    }));
    Ok(())
}

/// A kind as Python sees it: `(name, help, origin, [(option, type, default, help)])`.
pub type KindInfo<'py> = (
    String,
    String,
    String,
    Vec<(String, String, Bound<'py, PyAny>, String)>,
);

pub fn kind_info<'py>(
    py: Python<'py>,
    name: &str,
    help: &str,
    origin: &str,
    options: &[OptionSpec],
) -> PyResult<KindInfo<'py>> {
    let opts = options
        .iter()
        .map(|s| {
            Ok((
                s.name.clone(),
                s.kind.as_str().to_string(),
                socket::value_to_py(py, &s.default)?,
                s.help.clone(),
            ))
        })
        .collect::<PyResult<Vec<_>>>()?;
    Ok((name.to_string(), help.to_string(), origin.to_string(), opts))
}

/// Every registered behavior (built-ins, Toxiproxy toxics, Python plugins).
#[pyfunction]
pub fn behavior_kinds(py: Python<'_>) -> PyResult<Vec<KindInfo<'_>>> {
    behavior::registry()
        .kinds()
        .iter()
        .map(|k| {
            let origin = match k.origin {
                Origin::Vaurien => "vaurien",
                Origin::Toxic => "toxic",
                Origin::Plugin => "plugin",
            };
            kind_info(py, &k.name, &k.help, origin, &k.options)
        })
        .collect()
}
