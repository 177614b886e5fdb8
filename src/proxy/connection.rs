//! One proxied connection: connect to the backend, then run exchanges (or stream both
//! directions) until either side is done, a behavior closes it, or the proxy stops.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use rand::rngs::SmallRng;
use rand::SeedableRng;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::ProxyShared;
use crate::base::metrics::ConnEvent;
use crate::base::{ConnInfo, Direction, Side};
use crate::behavior::{BehaviorError, Exchange, ExchangeHook, Fault, Flow, Later, Transforms};
use crate::io::busy_poll::BusyPoll;
use crate::io::peer::Peer;
use crate::link::chain::{pipe_channel, pipe_writer};
use crate::link::fast::{self, Activity, Outcome};
use crate::link::{Faults, Links, Session, Toxic};
use crate::protocol::{Mode, ProtocolError};

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

/// Exchanges of one connection in each direction (statsd's per-connection counters).
#[derive(Default)]
struct Counts {
    to_backend: AtomicU64,
    to_client: AtomicU64,
}

impl Counts {
    fn add(&self, dir: Direction) {
        let c = match dir {
            Direction::Upstream => &self.to_backend,
            Direction::Downstream => &self.to_client,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// Serves one accepted client until the connection ends or `kill` fires.
pub async fn serve(
    shared: Arc<ProxyShared>,
    stream: TcpStream,
    addr: SocketAddr,
    kill: CancellationToken,
) {
    let id = NEXT_CONN.fetch_add(1, Ordering::Relaxed);
    let backend_addr = shared.backend();
    let span = tracing::debug_span!("conn", id, proxy = %shared.name, client = %addr, backend = %backend_addr);
    shared
        .metrics
        .connections_total
        .fetch_add(1, Ordering::Relaxed);
    shared
        .metrics
        .connections_active
        .fetch_add(1, Ordering::Relaxed);
    shared.metrics.conn_event(ConnEvent::Start { id });
    let counts = Counts::default();
    async {
        tokio::select! {
            _ = kill.cancelled() => tracing::debug!("closed by proxy stop"),
            _ = run(&shared, id, stream, addr, &backend_addr, &counts) => {}
            _ = watch(&shared, id) => tracing::debug!("closed by a toxic (timeout)"),
        }
    }
    .instrument(span)
    .await;
    shared.metrics.conn_event(ConnEvent::End {
        id,
        to_backend: counts.to_backend.load(Ordering::Relaxed),
        to_client: counts.to_client.load(Ordering::Relaxed),
    });
    shared
        .metrics
        .connections_active
        .fetch_sub(1, Ordering::Relaxed);
}

async fn run(
    shared: &Arc<ProxyShared>,
    id: u64,
    stream: TcpStream,
    addr: SocketAddr,
    backend_addr: &str,
    counts: &Counts,
) {
    let client = Peer::new(stream, Side::Client, addr);
    let reuse = shared.protocol.common().reuse_socket;
    // Boxed (as the exchanges path below): a streaming connection's future stays small.
    let backend = match Box::pin(
        shared
            .pool
            .connect(backend_addr, reuse, shared.settings.timeout),
    )
    .await
    {
        Ok(b) => b,
        Err(e) => {
            // As the original: the client's connection is dropped, the proxy carries on.
            tracing::warn!(error = %e, "backend unreachable; closing the client connection");
            return;
        }
    };
    let conn = ConnInfo {
        id,
        proxy: shared.name.clone(),
        backend: backend_addr.to_string(),
        timeout: shared.settings.timeout,
        bufsize: shared.settings.bufsize,
    };
    let mut rng = SmallRng::seed_from_u64(shared.chooser.next_u64());
    let clean = match shared.protocol.mode(shared.settings.stay_connected) {
        Mode::Streaming => streaming(shared, &conn, &client, &backend, &mut rng, counts).await,
        Mode::Exchanges { stay, drain } => {
            Box::pin(exchanges(
                shared,
                &conn,
                &client,
                &backend,
                &mut rng,
                (stay, drain),
                counts,
            ))
            .await
        }
    };
    if clean && reuse && !backend.is_closed() {
        shared.pool.put(backend_addr, backend);
    }
    tracing::debug!("connection closed");
}

/// Ends the connection on a toxic's clock ([`crate::behavior::ChunkToxic::closes_after`],
/// Toxiproxy's `timeout`, counted from when the toxic started on this connection) or when a
/// toxic that holds connections is removed
/// ([`crate::behavior::ChunkToxic::closes_on_removal`]). It runs beside the connection, so
/// this happens whether data moves or not. Toxicity is not rolled here: such a toxic closes
/// every connection of its proxy (that its `count` admits).
async fn watch(shared: &ProxyShared, conn: u64) {
    use std::collections::HashMap;
    use tokio::time::Instant;
    let mut changes = shared.changes.subscribe();
    // Toxic id → when it started on this connection, and whether its removal closes it.
    let mut seen: HashMap<u64, (Instant, bool)> = HashMap::new();
    // To the microsecond: a `timeout` of 50 ms closes at 50 ms, not 51.
    let mut timer = crate::base::timer::Timer::default();
    loop {
        let faults = shared.faults.load_full();
        let now = Instant::now();
        let holding_removed = seen
            .iter()
            .any(|(id, (_, holds))| *holds && !faults.toxics.iter().any(|t| t.id == *id));
        if holding_removed {
            return;
        }
        let mut deadline: Option<Instant> = None;
        for t in faults.toxics.iter() {
            let Some(toxic) = t.fault.as_toxic() else {
                continue;
            };
            let after = toxic.closes_after();
            let holds = toxic.closes_on_removal();
            if (after.is_none() && !holds) || !t.admits(conn) {
                continue;
            }
            let entry = seen.entry(t.id).or_insert((now, holds));
            entry.1 = holds;
            if let Some(d) = after {
                let at = entry.0 + d;
                deadline = Some(deadline.map_or(at, |x| x.min(at)));
            }
        }
        tokio::select! {
            r = changes.changed() => {
                if r.is_err() {
                    // The proxy is gone; the kill token ends the connection.
                    std::future::pending::<()>().await;
                }
            }
            _ = timer.sleep_until(deadline.unwrap_or(now).into_std()), if deadline.is_some() => return,
        }
    }
}

/// A stable per-link state key for a fault picked from the mix (toxic ids count up from 1).
fn mix_slot(name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
    }
    h | (1 << 63)
}

/// Records the toxics that started to apply to a connection-direction.
fn record_started(shared: &ProxyShared, conn: &ConnInfo, started: Vec<Arc<Toxic>>) {
    for t in started {
        shared.metrics.fault(&t.kind);
        shared.events.record(
            &shared.name,
            conn.id,
            Some(t.stream),
            &t.name,
            &t.kind,
            t.attributes.to_json(),
        );
    }
}

/// The hooks of one exchange: the behavior picked from the mix, then the toxics that carry
/// exchange hooks (vaurien behaviors added through the Toxiproxy API).
pub struct Hooks {
    list: Vec<Arc<dyn ExchangeHook>>,
}

#[async_trait::async_trait]
impl ExchangeHook for Hooks {
    async fn on_before_handle(&self, cx: &mut Exchange<'_>) -> Result<Flow, BehaviorError> {
        for b in &self.list {
            let f = b.on_before_handle(cx).await?;
            if f != Flow::Continue {
                return Ok(f);
            }
        }
        Ok(Flow::Continue)
    }
    async fn on_between_handle(&self, cx: &mut Exchange<'_>) -> Result<Flow, BehaviorError> {
        for b in &self.list {
            let f = b.on_between_handle(cx).await?;
            if f != Flow::Continue {
                return Ok(f);
            }
        }
        Ok(Flow::Continue)
    }
    async fn on_after_handle(&self, cx: &mut Exchange<'_>) -> Result<Flow, BehaviorError> {
        let mut out = Flow::Continue;
        for b in &self.list {
            let f = b.on_after_handle(cx).await?;
            if f == Flow::Close {
                out = Flow::Close;
            }
        }
        Ok(out)
    }
    fn transforms(&self) -> Transforms {
        self.list
            .iter()
            .fold(Transforms::NONE, |t, b| t.or(b.transforms()))
    }
    /// Each hook that rewrites `dir` gets what the one before it made.
    async fn transform(
        &self,
        cx: &mut Exchange<'_>,
        dir: Direction,
        message: &[u8],
    ) -> Result<Option<Bytes>, BehaviorError> {
        let mut out: Option<Bytes> = None;
        for b in self.list.iter().filter(|b| b.transforms().has(dir)) {
            let input = out.as_deref().unwrap_or(message);
            if let Some(next) = b.transform(cx, dir, input).await? {
                out = Some(next);
            }
        }
        Ok(out)
    }
}

/// Picks the hooks of one exchange (none when nothing acts on exchanges) and records the
/// faults applied.
/// A fault of the mix that has a chunk hook (a toxic named in `--behavior`) applies to the
/// downstream chunks of the exchange it is picked for: it is put in `links.down.extra`.
fn pick(
    shared: &ProxyShared,
    faults: &Faults,
    conn: &ConnInfo,
    dir: Direction,
    rng: &mut SmallRng,
    links: &mut Links,
) -> Option<Arc<dyn ExchangeHook>> {
    use rand::Rng;
    let (name, picked) = match faults.mix.single() {
        Some(one) => one,
        None => faults.mix.pick(shared.chooser.roll()),
    };
    links.down.extra = picked.as_toxic().map(|t| (mix_slot(name), t.clone()));
    if !picked.is_passthrough() {
        shared.metrics.fault(name);
        shared.events.record(
            &shared.name,
            conn.id,
            Some(dir),
            name,
            name,
            serde_json::Value::Null,
        );
    }
    let mut extra: Vec<Arc<dyn ExchangeHook>> = Vec::new();
    for t in faults.toxics.iter() {
        let Some(hook) = t.fault.as_hook() else {
            continue;
        };
        if t.take_exchange() && (t.toxicity >= 1.0 || rng.random::<f32>() < t.toxicity) {
            shared.metrics.fault(&t.kind);
            shared.events.record(
                &shared.name,
                conn.id,
                Some(t.stream),
                &t.name,
                &t.kind,
                t.attributes.to_json(),
            );
            extra.push(hook.clone());
        }
    }
    let picked = picked.as_hook().cloned();
    if tracing::enabled!(tracing::Level::DEBUG) {
        // One line per exchange, with what applies to it (the connection's span names the
        // connection, client and backend).
        let active: Vec<&str> = faults
            .toxics
            .iter()
            .filter(|t| matches!(t.fault, Fault::Toxic(_)) && t.stream == dir)
            .map(|t| t.name.as_str())
            .collect();
        tracing::debug!(
            dir = %dir,
            behavior = name,
            exchange_toxics = extra.len(),
            chunk_toxics = ?active,
            "exchange"
        );
    }
    if extra.is_empty() {
        return picked;
    }
    let mut list = Vec::with_capacity(extra.len() + 1);
    list.extend(picked);
    list.extend(extra);
    Some(Arc::new(Hooks { list }))
}

fn log_end(e: &ProtocolError) {
    match e {
        ProtocolError::Io(io) => match io.kind() {
            std::io::ErrorKind::TimedOut => tracing::debug!("timed out; closing"),
            _ => tracing::debug!(error = %io, "peer went away"),
        },
        ProtocolError::Behavior(BehaviorError::Io(io)) => {
            tracing::debug!(error = %io, "peer went away during a behavior")
        }
        // Said where it happened, with its traceback.
        ProtocolError::Behavior(e @ BehaviorError::Python { .. }) => {
            tracing::debug!(error = %e, "closing the connection")
        }
        other => tracing::warn!(error = %other, "closing the connection"),
    }
}

/// One exchange at a time. Returns true when it ended cleanly between exchanges (the backend
/// connection may then be reused).
async fn exchanges(
    shared: &Arc<ProxyShared>,
    conn: &ConnInfo,
    client: &Peer,
    backend: &Peer,
    rng: &mut SmallRng,
    (stay, drain): (bool, bool),
    counts: &Counts,
) -> bool {
    let protocol = shared.protocol.clone();
    let mut client_buf = BytesMut::new();
    let mut backend_buf = BytesMut::new();
    let mut links = Links::default();
    let mut spin = BusyPoll::new(shared.settings.busy_poll);
    let mut memory = 0u64;
    let stay_connected = shared.settings.stay_connected;
    // An exchange starts with one read of at most the protocol's `buffer` (the original's read
    // size: tcp without keep_alive forwards only that much of the client's first data).
    let common = protocol.common();
    let first_read = if common.buffer > 0 {
        common.read_size()
    } else {
        conn.bufsize
    };
    loop {
        let dir = if !client_buf.is_empty() {
            Direction::Upstream
        } else if !backend_buf.is_empty() {
            Direction::Downstream
        } else {
            // Busy polling first (a client talking to its server one request at a time).
            let spinning = spin.enabled(&shared.metrics);
            let caught = if spinning {
                let a = (client, &mut client_buf);
                let b = (backend, &mut backend_buf);
                match Peer::spin_either(a, b, first_read, &spin).await {
                    Ok(c) => c,
                    Err(_) => return false,
                }
            } else {
                None
            };
            let from = match caught {
                Some(true) => Side::Client,
                Some(false) => Side::Backend,
                // Read rather than wait for readiness: tokio keeps a socket "ready" after a
                // read that returned data until one hits WouldBlock, so `readable()` may wake
                // for a side that has nothing to say while the other one is talking. A read
                // of 0 (EOF) still starts an exchange, which sees the EOF itself.
                // Between exchanges, as the original: without --stay-connected a connection
                // quiet for --timeout is closed; with it, it waits for as long as both sides
                // keep it open.
                None => tokio::select! {
                    biased;
                    r = client.read_buf(&mut client_buf, first_read) => { if r.is_err() { return false; } Side::Client }
                    r = backend.read_buf(&mut backend_buf, first_read) => { if r.is_err() { return false; } Side::Backend }
                    _ = tokio::time::sleep(conn.timeout), if !stay_connected => {
                        tracing::debug!("idle for --timeout; closing");
                        return false;
                    }
                },
            };
            if spinning {
                spin.chunk_moved(std::time::Instant::now());
            }
            // A side that closed between exchanges ends the connection: its close is not an
            // exchange (no hooks, no fault, no count). A client that left cleanly leaves the
            // backend connection reusable.
            let (nothing, eof) = match from {
                Side::Client => (client_buf.is_empty(), client.saw_eof()),
                Side::Backend => (backend_buf.is_empty(), backend.saw_eof()),
            };
            if nothing && eof {
                tracing::debug!(side = from.as_str(), "closed between exchanges");
                return from == Side::Client;
            }
            from.outgoing()
        };
        let faults = shared.faults.load_full();
        let started = links.refresh(&faults, conn.id, rng);
        record_started(shared, conn, started);
        counts.add(dir);
        let hooks = pick(shared, &faults, conn, dir, rng, &mut links);
        shared
            .metrics
            .exchanges_total
            .fetch_add(1, Ordering::Relaxed);
        let mut session = Session {
            conn,
            client,
            backend,
            client_buf: &mut client_buf,
            backend_buf: &mut backend_buf,
            rng,
            inject: false,
            links: &mut links,
            metrics: &shared.metrics,
            streaming: false,
            spin: &mut spin,
            memory: &mut memory,
            // Hooks are never left running off the streaming path.
            later: &mut None,
        };
        let keep = match protocol.handle(&mut session, dir, hooks.as_deref()).await {
            Ok(k) => k,
            Err(e) => {
                log_end(&e);
                return false;
            }
        };
        if client.is_closed() || backend.is_closed() {
            return false;
        }
        // A protocol that closes after each exchange unless --stay-connected may still answer
        // the requests the client had already sent (`drain`: a redis pipeline read in one go).
        let go_on = keep && (stay || (drain && !client_buf.is_empty()));
        if !go_on {
            return keep;
        }
    }
}

/// Both directions at once (tcp with keep_alive): the zero-copy path while nothing can touch
/// the bytes, the per-chunk hooks otherwise, and back to the zero-copy path once the toxics are
/// gone (a removed toxic costs nothing). With --stay-connected, half-close is passed on and the
/// connection ends when both directions are done or a behavior closes it; without it (the
/// original's select loop), the first EOF from either side ends the connection, and so does
/// --timeout without traffic. Returns true when the backend connection may be reused (the
/// client left first, nothing unread).
async fn streaming(
    shared: &Arc<ProxyShared>,
    conn: &ConnInfo,
    client: &Peer,
    backend: &Peer,
    rng: &mut SmallRng,
    counts: &Counts,
) -> bool {
    let stay = shared.settings.stay_connected;
    let activity = &Activity::default();
    let idle = async {
        if stay {
            std::future::pending::<()>().await
        } else {
            activity.idle(conn.timeout).await
        }
    };
    tokio::pin!(idle);
    let all = async {
        let mut changes = shared.changes.subscribe();
        // Directions that are over (their EOF was passed on).
        let mut over = (false, false);
        loop {
            // Changes until now are seen here: the fast path stops at the next one only.
            changes.borrow_and_update();
            let (up, down) = if shared.faults.load().passthrough {
                fast::forward_both(
                    client,
                    backend,
                    shared.settings.zero_copy,
                    shared.settings.busy_poll,
                    stay,
                    &mut changes,
                    activity,
                    &shared.metrics,
                    over,
                )
                .await
            } else {
                let go_on = |over: bool| {
                    if over {
                        Outcome::Eof
                    } else {
                        Outcome::Changed
                    }
                };
                (go_on(over.0), go_on(over.1))
            };
            if !stay && (up == Outcome::Eof || down == Outcome::Eof) {
                // The first EOF ends the connection; a backend the client left may be reused.
                client.close();
                if up != Outcome::Eof {
                    backend.close();
                }
                return;
            }
            if up == Outcome::Abort || down == Outcome::Abort {
                client.close();
                backend.close();
                return;
            }
            // The directions the faults changed for go on through the hooks (boxed: a
            // connection on the fast path does not carry their state).
            let up_seed = rand::RngCore::next_u64(rng);
            let down_seed = rand::RngCore::next_u64(rng);
            let leave = &AtomicBool::new(false);
            let hooks = |dir: Direction, outcome: Outcome, seed: u64| async move {
                if outcome != Outcome::Changed {
                    return HooksEnd::Over;
                }
                let (src, dst) = match dir {
                    Direction::Upstream => (client, backend),
                    Direction::Downstream => (backend, client),
                };
                Box::pin(hooks_path(
                    shared, conn, src, dst, dir, seed, activity, counts, leave,
                ))
                .await
            };
            let (u, d) = tokio::join!(
                hooks(Direction::Upstream, up, up_seed),
                hooks(Direction::Downstream, down, down_seed)
            );
            over = (u == HooksEnd::Over, d == HooksEnd::Over);
            if (over.0 && over.1) || client.is_closed() || backend.is_closed() {
                return;
            }
        }
    };
    tokio::select! {
        _ = all => {}
        _ = &mut idle => {
            tracing::debug!("idle for --timeout; closing");
            return false;
        }
    }
    !stay && client.saw_eof() && !backend.saw_eof() && !backend.is_closed()
}

/// How a direction's hooks path ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HooksEnd {
    /// The direction is over (EOF passed on) or the connection is closing.
    Over,
    /// Nothing can touch the bytes any more and nothing is queued: back to the fast path.
    Fast,
}

/// The hooks' path of one streaming direction: one exchange per chunk, until the direction
/// ends or the faults become passthrough again.
/// `leave` is shared by both directions: set by the first one that goes back to the fast
/// path, which the other one then does too.
#[allow(clippy::too_many_arguments)]
async fn hooks_path(
    shared: &Arc<ProxyShared>,
    conn: &ConnInfo,
    src: &Peer,
    dst: &Peer,
    dir: Direction,
    seed: u64,
    activity: &Activity,
    counts: &Counts,
    leave: &AtomicBool,
) -> HooksEnd {
    let (client, backend) = match dir {
        Direction::Upstream => (src, dst),
        Direction::Downstream => (dst, src),
    };
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut own = BytesMut::new();
    let mut other = BytesMut::new();
    let mut links = Links::default();
    // Each direction runs on its own here: no busy polling.
    let mut no_spin = BusyPoll::new(std::time::Duration::ZERO);
    let mut memory = 0u64;
    // The hooks of the last exchange when they are still running (a Python behavior's
    // `on_after_handle`): settled before anything else happens in this direction.
    let mut later: Option<Box<dyn Later>> = None;
    // Chunks whose chain is only latency toxics are written by `pipe_writer` at their due
    // time, so that reading goes on meanwhile (1024 chunks ahead at most, as Toxiproxy).
    let (tx, rx) = pipe_channel(1024);
    links.get_mut(dir).pipe = Some(tx);
    let protocol = shared.protocol.clone();
    // Wakes an idle direction when the faults change (a toxic removed while nothing moves).
    let mut changes = shared.changes.subscribe();
    let mut watching = true;
    // The session of the direction's next step (an exchange, or settling `later`).
    macro_rules! session {
        () => {{
            let (client_buf, backend_buf) = match dir {
                Direction::Upstream => (&mut own, &mut other),
                Direction::Downstream => (&mut other, &mut own),
            };
            Session {
                conn,
                client,
                backend,
                client_buf,
                backend_buf,
                rng: &mut rng,
                inject: false,
                links: &mut links,
                metrics: &shared.metrics,
                streaming: true,
                spin: &mut no_spin,
                memory: &mut memory,
                later: &mut later,
            }
        }};
    }
    // Settles `later`, if any: false when the direction must end (`Err` logged, both sides
    // closed).
    macro_rules! settle {
        () => {{
            if later.is_none() {
                true
            } else {
                match crate::protocol::settle(&mut session!()).await {
                    Ok(go_on) => go_on,
                    Err(e) => {
                        log_end(&e);
                        src.close();
                        dst.close();
                        return HooksEnd::Over;
                    }
                }
            }
        }};
    }
    let reader = async move {
        loop {
            if own.is_empty() {
                if leave.load(Ordering::Relaxed) || shared.faults.load().passthrough {
                    if !settle!() {
                        break;
                    }
                    // No toxic left (or the other direction leaves): once what was queued went
                    // out, the fast path takes over; what the source sent meanwhile is still in
                    // its socket. Both directions leave together, so that neither waits on the
                    // other (the streaming loop checks the faults again before the fast path).
                    if links.get_mut(dir).flush().await.is_err() {
                        src.close();
                        dst.close();
                        return HooksEnd::Over;
                    }
                    leave.store(true, Ordering::Relaxed);
                    // Both directions are polled by the same task: wake it so that the other
                    // one sees `leave`.
                    std::future::poll_fn(|cx| {
                        cx.waker().wake_by_ref();
                        std::task::Poll::Ready(())
                    })
                    .await;
                    return HooksEnd::Fast;
                }
                tokio::select! {
                    biased;
                    r = src.readable() => {
                        if r.is_err() {
                            break;
                        }
                    }
                    r = changes.changed(), if watching => {
                        watching = r.is_ok();
                        continue;
                    }
                    // The last exchange's hooks ask for the connection (a socket request, a
                    // side to close): served now, as if they had been awaited.
                    _ = std::future::poll_fn(|cx| match later.as_mut() {
                        Some(l) => l.poll_wanted(cx),
                        None => std::task::Poll::Pending,
                    }), if later.is_some() => {
                        if settle!() {
                            continue;
                        }
                        break;
                    }
                    _ = std::future::poll_fn(|_| {
                        if leave.load(Ordering::Relaxed) {
                            std::task::Poll::Ready(())
                        } else {
                            std::task::Poll::Pending
                        }
                    }) => continue,
                }
            }
            if !settle!() {
                break;
            }
            let faults = shared.faults.load_full();
            activity.tick();
            let started = links.refresh(&faults, conn.id, &mut rng);
            // Each direction keeps both chains; only its own one is used and recorded.
            record_started(
                shared,
                conn,
                started.into_iter().filter(|t| t.stream == dir).collect(),
            );
            counts.add(dir);
            let hooks = pick(shared, &faults, conn, dir, &mut rng, &mut links);
            shared
                .metrics
                .exchanges_total
                .fetch_add(1, Ordering::Relaxed);
            let kept = protocol
                .handle(&mut session!(), dir, hooks.as_deref())
                .await;
            // The chunk went out (after any delay): --timeout counts from here, as the
            // original's select loop did.
            activity.tick();
            match kept {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => {
                    log_end(&e);
                    src.close();
                    dst.close();
                    return HooksEnd::Over;
                }
            }
            break;
        }
        // Whatever ended the direction, the last exchange's hooks end first (as they would
        // have, awaited).
        let _ = settle!();
        if !shared.settings.stay_connected && src.saw_eof() {
            // Without --stay-connected the first EOF ends the connection (the other direction
            // sees the closed sockets and stops too).
            client.close();
            backend.close();
        } else if src.saw_eof() && !src.is_closed() && !dst.is_closed() {
            // Half-close: the toxics see the end of the stream (slow_close), then it is passed on.
            let _ = links
                .get_mut(dir)
                .send_bytes(
                    conn,
                    dir,
                    bytes::Bytes::new(),
                    std::time::Instant::now(),
                    true,
                    dst,
                    src,
                    &mut rng,
                    &shared.metrics,
                )
                .await;
            let _ = dst.shutdown_write();
        } else {
            src.close();
            dst.close();
        }
        HooksEnd::Over
    };
    let (end, ()) = tokio::join!(reader, pipe_writer(rx, dst, src, dir, &shared.metrics));
    end
}
