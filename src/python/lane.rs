//! The Python lane: the threads that carry the connections of proxies with a Python behavior
//! and call its hooks in place, with no trip to another thread.
//!
//! A connection accepted under a mix with a Python behavior moves to the lane's runtime (its
//! own threads and reactor; the engine's workers never run Python). There a hook is called on
//! the thread that runs the connection, so a trivial hook costs what its Python code costs
//! instead of a hand-off to the pool and back (about 15 µs of CPU on both sides; see
//! `docs/benchmarks.md`, "The Python path"). What must not happen on the lane is waiting:
//! - one lane thread at a time calls in place ([`take_turn`]); a hook called while another
//!   runs in place goes to the pool. So a hook that sleeps or computes holds at most one
//!   lane thread, and the others (at least one more) carry every other connection, taking
//!   over the queue of the held one;
//! - a hook is called in place only once its calls on the pool were quick 4 times in a row
//!   (a hook that sleeps or waits each time never holds a lane thread), and goes back to the
//!   pool for good after 3 slow calls in a row in place (see `behavior::Target::submit`);
//! - `stop_proxy` does not wait for a connection whose thread sleeps in a hook in place: it
//!   closes when the hook returns;
//! - a socket request of a hook called in place is served on the spot
//!   (`socket::with_server`): the thread hands its other connections to a new lane thread
//!   (`tokio::task::block_in_place`) and drives the request with the GIL released.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

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

/// Set while a lane thread calls a hook in place.
static BUSY: AtomicBool = AtomicBool::new(false);

/// The right to call a hook in place, held for the call.
pub struct Turn(());

impl Drop for Turn {
    fn drop(&mut self) {
        BUSY.store(false, Ordering::Release);
    }
}

/// A turn to call in place: only on a lane thread, and while no other lane thread does.
pub fn take_turn() -> Option<Turn> {
    if !ON_LANE.with(Cell::get) {
        return None;
    }
    BUSY.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
        .ok()
        .map(|_| Turn(()))
}
