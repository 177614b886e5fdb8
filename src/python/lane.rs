//! The Python lane: the threads that carry the connections of proxies with a Python behavior
//! and call its hooks in place, with no trip to another thread.
//!
//! A connection accepted under a mix with a Python behavior moves to the lane's runtime (its
//! own threads and reactor; the engine's workers never run Python). There a hook is called on
//! the thread that runs the connection, so a trivial hook costs what its Python code costs
//! instead of a hand-off to the pool and back (about 15 µs of CPU on both sides; see
//! `docs/benchmarks.md`, "The Python path"). What must not happen on the lane is waiting:
//! - one lane thread at a time calls in place ([`take_turn`]); a call that finds the turn
//!   taken waits for it without holding its thread (which runs its other connections
//!   meanwhile), and goes to the pool if it has not come within 2 ms. So a
//!   hook that sleeps or computes holds at most one lane thread, and the others (at least
//!   one more) carry every other connection, taking over the queue of the held one;
//! - a hook is called in place only once its calls on the pool were quick 4 times in a row
//!   (a hook that sleeps or waits each time never holds a lane thread), and goes back to the
//!   pool for good after 3 slow calls in a row in place (see `behavior::Target::submit`);
//! - `stop_proxy` does not wait for a connection whose thread sleeps in a hook in place: it
//!   closes when the hook returns;
//! - a socket request of a hook called in place is served on the spot
//!   (`socket::with_server`): the thread hands its other connections to a new lane thread
//!   (`tokio::task::block_in_place`) and drives the request with the GIL released.

use std::cell::Cell;
use std::sync::OnceLock;
use std::time::Duration;

/// The lane's threads: at least 2, so that one held in a hook leaves one for the others.
fn threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().max(2))
}

thread_local! {
    static ON_LANE: Cell<bool> = const { Cell::new(false) };
}

/// The lane's runtime; `None` when it cannot be started (the connections then stay on the
/// engine's runtime and every hook goes to the pool).
pub fn handle() -> Option<tokio::runtime::Handle> {
    static RT: OnceLock<Option<tokio::runtime::Runtime>> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads())
            .thread_name("vaurien-lane")
            .on_thread_start(|| ON_LANE.with(|l| l.set(true)))
            .enable_all()
            .build()
            .map_err(|e| {
                tracing::warn!("cannot start the Python lane ({e}): hooks run on the pool")
            })
            .ok()
    })
    .as_ref()
    .map(|rt| rt.handle().clone())
}

/// The turn to call in place: one permit. Released permits go to the waiters in the order
/// they came (the task woken by a release runs next on the releasing thread).
static TURN: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// How long a call waits for the turn before it goes to the pool (the timer's resolution is
/// a millisecond). A hook in place is one that proved quick, so the turn comes back within
/// microseconds, unless its thread was preempted while it holds the GIL (then the pool could
/// not run the call sooner either), or the hook now sleeps with the GIL released (the call
/// is then 2 ms late, once: three such calls send that hook to the pool for good).
/// `VAURIEN_LANE_WAIT_US` (A/B runs; 0: no wait).
fn wait() -> Duration {
    static WAIT: OnceLock<Duration> = OnceLock::new();
    *WAIT.get_or_init(|| {
        std::env::var("VAURIEN_LANE_WAIT_US")
            .ok()
            .and_then(|v| v.parse().ok())
            .map_or(Duration::from_millis(2), Duration::from_micros)
    })
}

/// The right to call a hook in place, held for the call.
pub struct Turn(#[allow(dead_code)] tokio::sync::SemaphorePermit<'static>);

/// A turn to call in place: only on a lane thread. While another lane thread calls in place,
/// the task waits for the turn (its thread runs its other tasks meanwhile) for at most
/// [`wait`]; `None` then, and the call goes to the pool.
pub async fn take_turn() -> Option<Turn> {
    if !ON_LANE.with(Cell::get) {
        return None;
    }
    if let Ok(permit) = TURN.try_acquire() {
        return Some(Turn(permit));
    }
    let wait = wait();
    if wait.is_zero() {
        return None;
    }
    match tokio::time::timeout(wait, TURN.acquire()).await {
        Ok(Ok(permit)) => Some(Turn(permit)),
        _ => None,
    }
}
