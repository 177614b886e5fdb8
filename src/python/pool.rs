//! The threads Python code runs on when the engine calls it.
//!
//! Every Python hook and protocol call that is not made in place on the Python lane (see
//! [`super::lane`]) runs on this pool, never on one of the engine's tokio workers. A pool
//! thread takes the GIL only while it runs Python code; the pool grows on demand (a hook that
//! sleeps must not hold up the other connections) up to [`MAX_THREADS`], and idle threads
//! leave after [`IDLE`]. A watchdog thread sees when the running threads are all stuck in slow
//! hooks while calls wait, and starts one more: the callers never arm a timer per call.
//!
//! [`attach`] is how engine threads enter Python: it keeps the thread's Python thread state
//! between calls, where `Python::attach` alone would make and free one per call (in CPython
//! 3.11+ that maps and unmaps the thread's frame stack, a TLB shootdown on every core).

use std::cell::OnceCell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

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

/// This thread's Python thread state, kept from its first call into Python until it exits.
struct Kept(*mut pyo3::ffi::PyThreadState);

impl Drop for Kept {
    fn drop(&mut self) {
        // SAFETY: the inverse of `attach`'s set-up, on the same thread: take the GIL back with
        // the kept thread state, then drop the one GILState reference it holds (which clears
        // and frees it, releasing the GIL). Skipped once the interpreter is going away.
        unsafe {
            if self.0.is_null() || finalizing() || pyo3::ffi::Py_IsInitialized() == 0 {
                return;
            }
            pyo3::ffi::PyEval_RestoreThread(self.0);
            pyo3::ffi::PyGILState_Release(pyo3::ffi::PyGILState_STATE::PyGILState_UNLOCKED);
        }
    }
}

thread_local! {
    static KEPT: OnceCell<Kept> = const { OnceCell::new() };
}

/// `Python::attach`, keeping this thread's Python thread state for its next calls. Called only
/// by engine threads that do not hold the GIL (hook calls, the log thread).
pub fn attach<R>(f: impl for<'py> FnOnce(pyo3::Python<'py>) -> R) -> R {
    KEPT.with(|k| {
        k.get_or_init(|| {
            // SAFETY: plain GILState calls on an initialized interpreter, from a thread that
            // does not hold the GIL: one `Ensure` that is never released (so the thread state
            // lives on), then the GIL is released, keeping the thread state.
            unsafe {
                if finalizing() || pyo3::ffi::Py_IsInitialized() == 0 {
                    return Kept(std::ptr::null_mut());
                }
                let _ = pyo3::ffi::PyGILState_Ensure();
                Kept(pyo3::ffi::PyEval_SaveThread())
            }
        });
    });
    pyo3::Python::attach(f)
}

type Task = Box<dyn FnOnce() + Send + 'static>;

/// A thread that has not picked a task for this long while tasks wait is stuck in a hook
/// (sleeping, waiting on a socket): another thread takes the queue over.
const STUCK: Duration = Duration::from_millis(1);

/// The watchdog looks every [`STUCK`] while calls come; after this many looks without a
/// queued call it sleeps until the next call (so an idle proxy costs no wake-ups).
const WATCH_QUIET: u32 = 100;

/// How long a thread that ran out of tasks looks out for the next one before it sleeps.
const LINGER: Duration = Duration::from_micros(50);

/// Tasks in the queue (read without the lock by lingering threads).
static QUEUED: AtomicUsize = AtomicUsize::new(0);

struct State {
    tasks: VecDeque<Task>,
    /// The watchdog sleeps until a call is submitted (it was quiet for [`WATCH_QUIET`] looks).
    watch_asleep: bool,
    /// The watchdog thread was started.
    watch_started: bool,
    /// Threads waiting for a task.
    idle: usize,
    /// Threads alive.
    total: usize,
    /// When a thread last took a task from the queue, or the empty queue got one.
    last_pick: Instant,
}

struct Pool {
    state: Mutex<State>,
    ready: Condvar,
    /// Wakes the sleeping watchdog.
    watch: Condvar,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| Pool {
        state: Mutex::new(State {
            tasks: VecDeque::new(),
            watch_asleep: false,
            watch_started: false,
            idle: 0,
            total: 0,
            last_pick: Instant::now(),
        }),
        ready: Condvar::new(),
        watch: Condvar::new(),
    })
}

fn lock(p: &Pool) -> std::sync::MutexGuard<'_, State> {
    p.state.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `task` on a pool thread. One thread at a time runs the queue, task after task (Python
/// runs one thread at a time anyway, and a thread that keeps the queue needs no wake-up per
/// task); a second one starts only when none is running, or when the running ones are stuck
/// (the [`watchdog`]).
pub fn submit(task: impl FnOnce() + Send + 'static) {
    let p = pool();
    let mut s = lock(p);
    if s.tasks.is_empty() {
        // The queue starts to wait now: the watchdog counts from here.
        s.last_pick = Instant::now();
    }
    s.tasks.push_back(Box::new(task));
    QUEUED.fetch_add(1, Ordering::Relaxed);
    if !s.watch_started {
        s.watch_started = std::thread::Builder::new()
            .name("vaurien-python-watch".into())
            .spawn(watchdog)
            .is_ok();
    } else if s.watch_asleep {
        s.watch_asleep = false;
        p.watch.notify_one();
    }
    if s.total > s.idle {
        return; // a running thread takes it next
    }
    start_one(p, s);
}

/// Wakes an idle thread, or starts a new one.
fn start_one(p: &Pool, mut s: std::sync::MutexGuard<'_, State>) {
    if s.idle > 0 {
        drop(s);
        p.ready.notify_one();
    } else {
        spawn(&mut s);
    }
}

/// Runs `f` on a pool thread; the caller's task awaits its result (the [`watchdog`] sees that
/// a stuck thread does not hold it up). `None` when the task was dropped unrun.
pub async fn run<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    submit(move || {
        let _ = tx.send(f());
    });
    rx.await.ok()
}

/// Every [`STUCK`] while calls come: if tasks wait and no thread took one for that long,
/// every running thread is inside a slow hook (sleeping, waiting on a socket): one more takes
/// the queue over. Sleeps while no call comes.
fn watchdog() {
    let p = pool();
    let mut quiet = 0u32;
    loop {
        let mut s = lock(p);
        if s.tasks.is_empty() {
            quiet += 1;
            if quiet >= WATCH_QUIET {
                s.watch_asleep = true;
                while s.watch_asleep {
                    s = p.watch.wait(s).unwrap_or_else(|e| e.into_inner());
                }
                quiet = 0;
            }
        } else {
            quiet = 0;
            if s.last_pick.elapsed() >= STUCK {
                s.last_pick = Instant::now();
                start_one(p, s);
                std::thread::sleep(STUCK);
                continue;
            }
        }
        drop(s);
        std::thread::sleep(STUCK);
    }
}

fn spawn(s: &mut State) {
    if s.total >= MAX_THREADS {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("vaurien-python".into())
        .stack_size(STACK)
        .spawn(worker);
    if spawned.is_ok() {
        s.total += 1;
    }
}

fn worker() {
    let p = pool();
    let mut s = lock(p);
    loop {
        if let Some(task) = s.tasks.pop_front() {
            QUEUED.fetch_sub(1, Ordering::Relaxed);
            s.last_pick = Instant::now();
            drop(s);
            task();
            s = lock(p);
            continue;
        }
        // Before sleeping, look out for the next task a little while: under load it comes
        // within microseconds, and a sleeping thread costs its submitter a wake-up call and
        // itself a context switch per task. (Not counted idle meanwhile: submitters do not
        // wake anyone.)
        drop(s);
        let until = Instant::now() + LINGER;
        while QUEUED.load(Ordering::Relaxed) == 0 && Instant::now() < until {
            std::thread::yield_now();
        }
        s = lock(p);
        if !s.tasks.is_empty() {
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
