//! `tracing` events to Python's `logging`: a layer queues each event (never blocking the
//! engine: when the queue is full the event is dropped) and one thread of its own hands them to
//! `logging.getLogger("vaurien.<module>")`, so a test suite sees the engine's logs where it sees
//! its own. The level comes from `--log-level` (`start_proxy(log_level=...)`).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::OnceLock;

use pyo3::prelude::*;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

use super::{errors, pool};

/// The most verbose level forwarded for vaurien's own events: 1 error .. 5 trace.
static LEVEL: AtomicU8 = AtomicU8::new(3);

/// What the log thread is given: a record for Python, or a flush to acknowledge.
enum Record {
    /// (logging level, logger name, message).
    Line(u8, String, String),
    /// Acknowledged once every record queued before it went to `logging`.
    Flush(std::sync::mpsc::SyncSender<()>),
}

/// How long [`flush`] waits for the log thread at most.
const FLUSH_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Waits (GIL released, at most [`FLUSH_WAIT`]) until the records queued so far went to
/// `logging`: `stop_proxy` returns with the proxy's lines in the application's handlers.
pub fn flush(py: Python<'_>) {
    let Some(queue) = QUEUE.get() else { return };
    let (tx, rx) = sync_channel(1);
    py.detach(move || {
        // A full queue is drained by the log thread: the marker waits for room, in the
        // same time bound, instead of the flush returning before the lines arrived.
        let end = std::time::Instant::now() + FLUSH_WAIT;
        let mut marker = Record::Flush(tx);
        loop {
            match queue.try_send(marker) {
                Ok(()) => break,
                Err(TrySendError::Full(back)) if std::time::Instant::now() < end => {
                    marker = back;
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                Err(_) => return,
            }
        }
        let _ = rx.recv_timeout(end.saturating_duration_since(std::time::Instant::now()));
    });
}

static QUEUE: OnceLock<SyncSender<Record>> = OnceLock::new();

fn rank(l: &Level) -> u8 {
    match *l {
        Level::ERROR => 1,
        Level::WARN => 2,
        Level::INFO => 3,
        Level::DEBUG => 4,
        Level::TRACE => 5,
    }
}

fn python_level(l: &Level) -> u8 {
    match *l {
        Level::ERROR => 40,
        Level::WARN => 30,
        Level::INFO => 20,
        Level::DEBUG => 10,
        Level::TRACE => 5,
    }
}

/// Sets the level from a `--log-level` value (critical, error, warning, info, debug).
pub fn set_level(level: &str) -> Result<(), String> {
    let directive = crate::config::parse_log_level(level).map_err(|e| e.to_string())?;
    let n = match directive {
        "error" => 1,
        "warn" => 2,
        "info" => 3,
        "debug" => 4,
        _ => 5,
    };
    LEVEL.store(n, Ordering::Relaxed);
    Ok(())
}

/// `set_log_level("debug")`: the most verbose level of the engine's events sent to `logging`.
#[pyfunction]
pub fn set_log_level(level: &str) -> PyResult<()> {
    set_level(level).map_err(errors::value_error)
}

struct PyLogLayer;

impl<S: Subscriber> Layer<S> for PyLogLayer {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> tracing::subscriber::Interest {
        // The level changes at run time: ask `enabled` every time.
        tracing::subscriber::Interest::sometimes()
    }

    fn enabled(&self, meta: &Metadata<'_>, _: Context<'_, S>) -> bool {
        let max = if meta.target().starts_with("vaurien") {
            LEVEL.load(Ordering::Relaxed)
        } else {
            // Other crates (actix, ...): warnings and errors only.
            2
        };
        rank(meta.level()) <= max
    }

    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let Some(queue) = QUEUE.get() else { return };
        let mut v = Message::default();
        event.record(&mut v);
        let meta = event.metadata();
        let name = meta.target().replace("::", ".");
        let _ = queue.try_send(Record::Line(python_level(meta.level()), name, v.text));
    }
}

#[derive(Default)]
struct Message {
    text: String,
}

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let fields = std::mem::take(&mut self.text);
            let _ = write!(self.text, "{value:?}{fields}");
        } else {
            let _ = write!(self.text, " {}={value:?}", field.name());
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.record_debug(field, &format_args!("{value}"));
        } else {
            let _ = write!(self.text, " {}={value}", field.name());
        }
    }
}

/// Installs the layer as the global subscriber (once) and starts the thread that logs.
pub fn install() {
    if QUEUE.get().is_some() {
        return;
    }
    let (tx, rx) = sync_channel::<Record>(10_000);
    if QUEUE.set(tx).is_err() {
        return;
    }
    let _ = tracing_subscriber::registry().with(PyLogLayer).try_init();
    let _ = std::thread::Builder::new()
        .name("vaurien-log".into())
        .spawn(move || {
            for record in rx {
                let (level, name, msg) = match record {
                    Record::Line(level, name, msg) => (level, name, msg),
                    Record::Flush(done) => {
                        let _ = done.try_send(());
                        continue;
                    }
                };
                if pool::finalizing() {
                    continue;
                }
                pool::attach(|py| {
                    let _ = py
                        .import("logging")
                        .and_then(|l| l.call_method1("getLogger", (name,)))
                        .and_then(|logger| logger.call_method1("log", (level, "%s", msg)));
                });
            }
        });
}
