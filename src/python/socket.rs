//! The socket-like objects handed to Python hooks (`source`, `dest`), the `protocol` view and
//! the `on_between_handle` callable of Python protocols.
//!
//! A Python hook never touches a real socket. Each method sends a [`Request`] through the call's
//! [`Conduit`] to the connection's task, which performs it on the real [`Peer`] (a `recv` on
//! the source first drains the bytes the engine already read) and answers on a oneshot; the
//! Python thread waits with the GIL released. When the hook returns, the task stops listening
//! and the objects become unusable (`OSError(EBADF)`).

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use pyo3::exceptions::{PyKeyError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use pyo3::IntoPyObjectExt;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use super::behavior::Outcome;
use super::errors;
use crate::base::Side;
use crate::behavior::Wire;
use crate::behavior::{BehaviorError, Options, Value};

/// Which of the hook's two sockets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    Source,
    Dest,
}

/// What a Python thread asks the connection's task to do.
pub enum Request {
    Recv {
        side: End,
        max: usize,
        /// `None`: wait forever (blocking socket); zero: do not wait (non-blocking).
        timeout: Option<Duration>,
        reply: oneshot::Sender<io::Result<Vec<u8>>>,
    },
    Send {
        side: End,
        data: Vec<u8>,
        reply: oneshot::Sender<io::Result<()>>,
    },
    Close {
        side: End,
        reply: oneshot::Sender<()>,
    },
    Shutdown {
        side: End,
        how: i32,
        reply: oneshot::Sender<io::Result<()>>,
    },
    /// A Python protocol calls the behavior's `on_between_handle`.
    Between {
        reply: oneshot::Sender<Result<bool, String>>,
    },
}

/// What a pool thread sends the connection's task during a call: a request of the hook (with
/// the receiver of the next message), or the call's result.
pub enum Msg {
    Request(Request, oneshot::Receiver<Msg>),
    Done(Result<Outcome, BehaviorError>),
}

/// The Python end of a call: each message goes on a oneshot of its own, and a request carries
/// the receiver of the next one. A call that makes no request costs one oneshot.
#[derive(Clone)]
pub struct Conduit(Arc<Shared>);

struct Shared {
    next: Mutex<Option<oneshot::Sender<Msg>>>,
    /// Rung when the task must see a message it does not await (a call left running after
    /// its exchange, see [`Conduit::wanted`]): every request, and a result that asks
    /// something of the connection ([`Outcome::wanted`]).
    alarm: futures::task::AtomicWaker,
    /// Nanoseconds the call's socket requests took (not the hook's own time: see
    /// [`Conduit::waited`]).
    waited: std::sync::atomic::AtomicU64,
}

impl Conduit {
    /// A conduit and the receiver of its first message.
    pub fn new() -> (Conduit, oneshot::Receiver<Msg>) {
        let (tx, rx) = oneshot::channel();
        (Conduit::with(Some(tx)), rx)
    }

    /// The conduit of a call made in place on a lane thread: its requests are served on the
    /// spot (see [`with_server`]) and its result is returned, so no message goes through it
    /// (a request from another Python thread gets `EBADF`, as after the call).
    pub fn detached() -> Conduit {
        Conduit::with(None)
    }

    fn with(next: Option<oneshot::Sender<Msg>>) -> Conduit {
        Conduit(Arc::new(Shared {
            next: Mutex::new(next),
            alarm: futures::task::AtomicWaker::new(),
            waited: std::sync::atomic::AtomicU64::new(0),
        }))
    }

    /// How long the call's socket requests took, all told.
    pub fn waited(&self) -> Duration {
        Duration::from_nanos(self.0.waited.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// This conduit, as the lane tells conduits apart.
    pub fn id(&self) -> *const () {
        Arc::as_ptr(&self.0).cast()
    }

    fn sender(&self) -> Option<oneshot::Sender<Msg>> {
        self.0.next.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Sends a request; false when the call is over (the task no longer listens).
    fn request(&self, request: Request) -> bool {
        let Some(tx) = self.sender() else {
            return false;
        };
        let (next_tx, next_rx) = oneshot::channel();
        if tx.send(Msg::Request(request, next_rx)).is_err() {
            return false;
        }
        *self.0.next.lock().unwrap_or_else(|e| e.into_inner()) = Some(next_tx);
        self.0.alarm.wake();
        true
    }

    /// Sends the call's result; the conduit is closed from then on.
    pub fn finish(&self, result: Result<Outcome, BehaviorError>) {
        let wanted = result.as_ref().map_or(true, Outcome::wanted);
        if let Some(tx) = self.sender() {
            let _ = tx.send(Msg::Done(result));
        }
        if wanted {
            self.0.alarm.wake();
        }
    }

    /// For a task that does not await `next` (the receiver of the call's next message): ready
    /// when that message is there and needs the task (a request, or a result that asks
    /// something of the connection); a plain result is kept in `seen` and wakes no one.
    pub fn wanted(
        &self,
        next: &mut oneshot::Receiver<Msg>,
        seen: &mut Option<Msg>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        use std::task::Poll;
        if seen.is_none() {
            self.0.alarm.register(cx.waker());
            match next.try_recv() {
                Ok(msg) => *seen = Some(msg),
                Err(oneshot::error::TryRecvError::Empty) => return Poll::Pending,
                // Dropped unanswered: the task sees it when it settles.
                Err(oneshot::error::TryRecvError::Closed) => return Poll::Ready(()),
            }
        }
        match seen {
            Some(Msg::Done(Ok(outcome))) if !outcome.wanted() => Poll::Pending,
            _ => Poll::Ready(()),
        }
    }
}

/// Has a request performed and waits for its answer with the GIL released: served on the
/// spot for a hook called in place on a lane thread (see [`try_serve`]), sent to the
/// connection's task otherwise.
fn roundtrip<T: Send + 'static>(
    py: Python<'_>,
    conduit: &Conduit,
    make: impl FnOnce(oneshot::Sender<T>) -> Request + Send,
) -> PyResult<T> {
    let t0 = std::time::Instant::now();
    let (tx, mut rx) = oneshot::channel();
    let answer = match try_serve(py, conduit, make(tx)) {
        Ok(()) => rx.try_recv().ok(),
        Err(request) => py.detach(move || {
            conduit.request(request).then_some(())?;
            rx.blocking_recv().ok()
        }),
    };
    let took = u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX);
    conduit
        .0
        .waited
        .fetch_add(took, std::sync::atomic::Ordering::Relaxed);
    answer.ok_or_else(errors::socket_gone)
}

/// What a socket knows about its real peer (for `fileno`, `getpeername`).
#[derive(Clone, Debug, Default)]
pub struct PeerInfo {
    pub fd: i64,
    pub addr: Option<SocketAddr>,
    pub role: &'static str,
}

impl PeerInfo {
    /// What the wire tells of the peer on `side`.
    pub fn new(info: crate::base::PeerInfo, side: Side) -> Self {
        PeerInfo {
            fd: info.fd,
            addr: info.addr,
            role: side.as_str(),
        }
    }
}

/// A socket as a hook sees it: `recv`, `send`, `sendall`, `close`, `shutdown`, `settimeout`,
/// `gettimeout`, `setblocking`, `fileno`, and a settable `_closed` (true after the hook: that
/// side is closed and the connection ends).
#[pyclass(module = "vaurien._vaurien", name = "Socket")]
pub struct Socket {
    conduit: Conduit,
    side: End,
    info: PeerInfo,
    /// Seconds; `None` blocks forever, 0 is non-blocking.
    timeout: Option<f64>,
    /// Set by the hook (or by `close()`): the engine closes this side when the hook returns.
    #[pyo3(get, set, name = "_closed")]
    pub closed: bool,
}

impl Socket {
    pub fn new(conduit: Conduit, side: End, info: PeerInfo, timeout: Duration) -> Self {
        Socket {
            conduit,
            side,
            info,
            timeout: Some(timeout.as_secs_f64()),
            closed: false,
        }
    }
}

fn duration(timeout: Option<f64>) -> Option<Duration> {
    timeout.map(|t| Duration::from_secs_f64(t.clamp(0.0, 1e9)))
}

#[pymethods]
impl Socket {
    /// Reads at most `bufsize` bytes; `b""` when the peer has closed. Raises `socket.timeout`
    /// after the socket's timeout (the proxy's `--timeout` unless `settimeout` changed it).
    #[pyo3(signature = (bufsize, flags = 0))]
    fn recv<'py>(
        &self,
        py: Python<'py>,
        bufsize: isize,
        flags: i32,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let _ = flags;
        if bufsize < 0 {
            return Err(PyValueError::new_err("negative buffersize in recv"));
        }
        let (side, timeout) = (self.side, duration(self.timeout));
        let r = roundtrip(py, &self.conduit, move |reply| Request::Recv {
            side,
            max: bufsize as usize,
            timeout,
            reply,
        })?;
        match r {
            Ok(data) => Ok(PyBytes::new(py, &data)),
            Err(e) => Err(errors::io_error(py, e)),
        }
    }

    /// Writes all of `data`; returns its length (a hook's `send` never writes part of it).
    #[pyo3(signature = (data, flags = 0))]
    fn send(&self, py: Python<'_>, data: Vec<u8>, flags: i32) -> PyResult<usize> {
        let _ = flags;
        let n = data.len();
        self.sendall(py, data, 0)?;
        Ok(n)
    }

    /// Writes all of `data`.
    #[pyo3(signature = (data, flags = 0))]
    fn sendall(&self, py: Python<'_>, data: Vec<u8>, flags: i32) -> PyResult<()> {
        let _ = flags;
        let side = self.side;
        roundtrip(py, &self.conduit, move |reply| Request::Send {
            side,
            data,
            reply,
        })?
        .map_err(|e| errors::io_error(py, e))
    }

    /// Closes this side; the connection ends.
    fn close(&mut self, py: Python<'_>) -> PyResult<()> {
        self.closed = true;
        let side = self.side;
        // Closing an already gone connection is not an error, as with a real socket.
        let _ = roundtrip(py, &self.conduit, move |reply| Request::Close {
            side,
            reply,
        });
        Ok(())
    }

    /// `socket.SHUT_RD`, `SHUT_WR` or `SHUT_RDWR` (which closes the connection).
    fn shutdown(&self, py: Python<'_>, how: i32) -> PyResult<()> {
        let side = self.side;
        roundtrip(py, &self.conduit, move |reply| Request::Shutdown {
            side,
            how,
            reply,
        })?
        .map_err(|e| errors::io_error(py, e))
    }

    #[pyo3(signature = (value))]
    fn settimeout(&mut self, value: Option<f64>) -> PyResult<()> {
        if value.is_some_and(|v| v < 0.0 || v.is_nan()) {
            return Err(PyValueError::new_err("Timeout value out of range"));
        }
        self.timeout = value;
        Ok(())
    }

    fn gettimeout(&self) -> Option<f64> {
        self.timeout
    }

    fn setblocking(&mut self, flag: bool) {
        self.timeout = if flag { None } else { Some(0.0) };
    }

    fn getblocking(&self) -> bool {
        self.timeout != Some(0.0)
    }

    /// The real socket's descriptor (for logs and identity; do not read or write it).
    fn fileno(&self) -> i64 {
        self.info.fd
    }

    fn getpeername(&self) -> PyResult<(String, u16)> {
        self.info
            .addr
            .map(|a| (a.ip().to_string(), a.port()))
            .ok_or_else(|| errors::io_error_plain(io::ErrorKind::NotConnected))
    }

    /// `"client"` or `"backend"`.
    #[getter]
    fn role(&self) -> &'static str {
        self.info.role
    }

    fn __repr__(&self) -> String {
        let addr = self.info.addr.map(|a| a.to_string()).unwrap_or_default();
        format!(
            "<vaurien socket {} {addr} fd={}>",
            self.info.role, self.info.fd
        )
    }
}

/// The `protocol` argument of a hook: `name`, `option(name)`, `settings`.
#[pyclass(module = "vaurien._vaurien", name = "ProtocolView", frozen)]
pub struct ProtocolView(Arc<ViewData>);

/// What a [`ProtocolView`] shows: shared by the views of every call with the same protocol.
#[derive(PartialEq)]
pub struct ViewData {
    pub name: String,
    pub options: Options,
}

impl ProtocolView {
    pub fn new(data: Arc<ViewData>) -> Self {
        ProtocolView(data)
    }
}

/// The last view made, kept so that the next call with the same protocol shares it.
#[derive(Default)]
pub struct ViewCache(Mutex<Option<Arc<ViewData>>>);

impl ViewCache {
    pub fn get(&self, name: &str, options: &Options) -> Arc<ViewData> {
        let mut last = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match &*last {
            Some(d) if d.name == name && d.options == *options => d.clone(),
            _ => {
                let d = Arc::new(ViewData {
                    name: name.to_string(),
                    options: options.clone(),
                });
                *last = Some(d.clone());
                d
            }
        }
    }
}

/// An option value as a Python object.
pub fn value_to_py<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    match v {
        Value::Bool(b) => b.into_bound_py_any(py),
        Value::Int(i) => i.into_bound_py_any(py),
        Value::Float(f) => f.into_bound_py_any(py),
        Value::Str(s) => s.into_bound_py_any(py),
    }
}

/// Option values as a dict.
pub fn options_to_dict<'py>(py: Python<'py>, o: &Options) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (k, v) in &o.0 {
        d.set_item(k, value_to_py(py, v)?)?;
    }
    Ok(d)
}

#[pymethods]
impl ProtocolView {
    /// The value of one option of the protocol (`KeyError` for an unknown name).
    fn option<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        match self.0.options.get(name) {
            Some(v) => value_to_py(py, v),
            None => Err(PyKeyError::new_err(name.to_string())),
        }
    }

    #[getter]
    fn settings<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        options_to_dict(py, &self.0.options)
    }

    #[getter]
    fn name(&self) -> &str {
        &self.0.name
    }

    fn __repr__(&self) -> String {
        format!("<vaurien protocol {}>", self.0.name)
    }
}

/// The `on_between_handle` callable given to a Python protocol's `_handle`: runs the behavior's
/// between hook (on the connection's task) and returns whether the exchange goes on.
#[pyclass(module = "vaurien._vaurien", name = "BetweenHook", frozen)]
pub struct BetweenHook {
    conduit: Conduit,
}

impl BetweenHook {
    pub fn new(conduit: Conduit) -> Self {
        BetweenHook { conduit }
    }
}

#[pymethods]
impl BetweenHook {
    #[pyo3(signature = (*args, **kwargs))]
    fn __call__(
        &self,
        py: Python<'_>,
        args: &Bound<'_, pyo3::types::PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<bool> {
        let _ = (args, kwargs);
        roundtrip(py, &self.conduit, |reply| Request::Between { reply })?
            .map_err(errors::value_error)
    }
}

/// Reads for a hook from `side`: first what the engine already read, else one read from the
/// peer (through the wire).
pub async fn recv_from(
    wire: &mut dyn Wire,
    side: Side,
    max: usize,
    timeout: Option<Duration>,
) -> io::Result<Vec<u8>> {
    if max == 0 {
        return Ok(Vec::new());
    }
    let buf = wire.buffer(side);
    if !buf.is_empty() {
        let n = max.min(buf.len());
        return Ok(buf.split_to(n).to_vec());
    }
    // A recv returns at most what one read gives: never reserve more than 1 MiB for it.
    let max = max.min(1 << 20);
    match wire.read_more(side, max, timeout).await {
        Ok(_) => {
            let buf = wire.buffer(side);
            let n = max.min(buf.len());
            Ok(buf.split_to(n).to_vec())
        }
        Err(e) if e.kind() == io::ErrorKind::TimedOut && timeout.is_some_and(|t| t.is_zero()) => {
            Err(io::ErrorKind::WouldBlock.into())
        }
        Err(e) => Err(e),
    }
}

// -- requests of a hook called in place (see `lane`) ---------------------------------------

/// What serves the socket requests of an in-place call, its lifetime erased (see
/// [`with_server`]).
type Server = *mut (dyn FnMut(Request) + 'static);

thread_local! {
    /// The socket requests of the in-place call running on this thread: its conduit, and
    /// what serves them.
    static SERVER: std::cell::Cell<Option<(*const (), Server)>> =
        const { std::cell::Cell::new(None) };
}

/// Runs `f` (an in-place call) with `serve` answering the socket requests made on this thread
/// through `conduit` ([`try_serve`]); what was there before is put back after, even on a
/// panic.
pub fn with_server<R>(
    conduit: &Conduit,
    serve: &mut dyn FnMut(Request),
    f: impl FnOnce() -> R,
) -> R {
    struct Restore(Option<(*const (), Server)>);
    impl Drop for Restore {
        fn drop(&mut self) {
            SERVER.with(|s| s.set(self.0.take()));
        }
    }
    let ptr: *mut (dyn FnMut(Request) + '_) = serve;
    // SAFETY: only the lifetime is erased. The pointer is used by `try_serve` on this thread
    // while `f` runs, that is while `serve` is borrowed here, and `Restore` takes it out of
    // the thread-local before this function returns or unwinds.
    let ptr: Server = unsafe { std::mem::transmute(ptr) };
    let _restore = Restore(SERVER.with(|s| s.replace(Some((conduit.id(), ptr)))));
    f()
}

/// A request is raw pointers away from being sent to another thread; it is not: it is served
/// on the thread that made it.
struct Here<T>(T);
// SAFETY: see `try_serve`: the value crosses no thread (`Python::detach` asks for `Send` of
// what it runs, which runs on the calling thread).
unsafe impl<T> Send for Here<T> {}

/// Serves `request` on this thread when it comes from the in-place call running here through
/// `conduit` (with the GIL released); gives it back otherwise.
pub fn try_serve(py: pyo3::Python<'_>, conduit: &Conduit, request: Request) -> Result<(), Request> {
    let Some((owner, serve)) = SERVER.with(std::cell::Cell::get) else {
        return Err(request);
    };
    if owner != conduit.id() {
        return Err(request);
    }
    let job = Here((serve, request));
    py.detach(move || {
        let job = job; // the whole `Here`, not its fields (which are not `Send`)
        let Here((serve, request)) = job;
        // SAFETY: `serve` is the live `&mut` that `with_server` lent for the call still
        // running on this thread (the thread-local is cleared before that borrow ends), and
        // no other reference to it is in use while the call's Python code waits here.
        unsafe { (*serve)(request) }
    });
    Ok(())
}
