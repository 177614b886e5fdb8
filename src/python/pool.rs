//! The threads Python code runs on when the engine calls it (hooks, protocols): never a tokio
//! worker. A thread takes the GIL only while it runs Python code; the pool grows on demand (a
//! hook that sleeps must not hold up the other connections) up to [`MAX_THREADS`], and idle
//! threads leave after [`IDLE`].

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::Duration;

/// At most this many connections run Python code at once; more wait their turn.
pub const MAX_THREADS: usize = 512;
/// An idle thread leaves after this long.
const IDLE: Duration = Duration::from_secs(30);
/// Python's recursion needs more than Rust's default 2 MiB.
const STACK: usize = 8 << 20;

/// Set when the interpreter is finalizing: no more calls into Python.
pub static FINALIZING: AtomicBool = AtomicBool::new(false);

pub fn finalizing() -> bool {
    FINALIZING.load(Ordering::Acquire)
}

type Task = Box<dyn FnOnce() + Send + 'static>;

struct State {
    tasks: VecDeque<Task>,
    /// Threads waiting for a task.
    idle: usize,
    /// Threads alive.
    total: usize,
}

struct Pool {
    state: Mutex<State>,
    ready: Condvar,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| Pool {
        state: Mutex::new(State {
            tasks: VecDeque::new(),
            idle: 0,
            total: 0,
        }),
        ready: Condvar::new(),
    })
}

/// Runs `task` on a pool thread.
pub fn submit(task: impl FnOnce() + Send + 'static) {
    let p = pool();
    let mut s = p.state.lock().unwrap_or_else(|e| e.into_inner());
    s.tasks.push_back(Box::new(task));
    if s.tasks.len() > s.idle && s.total < MAX_THREADS {
        let spawned = std::thread::Builder::new()
            .name("vaurien-python".into())
            .stack_size(STACK)
            .spawn(worker);
        if spawned.is_ok() {
            s.total += 1;
        }
    }
    drop(s);
    p.ready.notify_one();
}

fn worker() {
    let p = pool();
    let mut s = p.state.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        if let Some(task) = s.tasks.pop_front() {
            drop(s);
            task();
            s = p.state.lock().unwrap_or_else(|e| e.into_inner());
            continue;
        }
        s.idle += 1;
        let (guard, timeout) = p
            .ready
            .wait_timeout(s, IDLE)
            .unwrap_or_else(|e| e.into_inner());
        s = guard;
        s.idle -= 1;
        if timeout.timed_out() && s.tasks.is_empty() {
            s.total -= 1;
            return;
        }
    }
}
