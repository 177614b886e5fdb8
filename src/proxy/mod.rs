//! The engine: a [`Proxy`] listens, accepts clients, connects them to the backend and runs the
//! protocol's exchanges with the active faults.
//!
//! - `listener`: the accept loop (connection limit taken before `accept()`, errors backed off);
//! - `connection`: one proxied connection, from backend connect to close;
//! - `pool`: reusable backend connections.
//!
//! Below it: the protocols (`crate::protocol`), the link every byte goes through
//! (`crate::link`), socket I/O (`crate::io`) and the faults (`crate::behavior`).
//!
//! The active faults of a proxy ([`Faults`]) sit behind an `ArcSwap`: the control plane swaps
//! in a new set, connections load it per exchange without a lock.

pub mod connection;
pub mod listener;
pub mod pool;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::base::events::EventLog;
use crate::base::metrics::Metrics;
use crate::base::{changes, Direction};
use crate::behavior::mix::Chooser;
use crate::behavior::{registry, BehaviorError, Mix, MixError, MixSpec, Options};
pub use crate::link::{Budget, Faults, Limits, Toxic};
use crate::protocol::{self, Protocol, ProtocolError};

/// Errors of the engine layer.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("invalid address '{0}': expected HOST:PORT")]
    Address(String),
    #[error("invalid address '{0}': port {1} is not in 0..=65535")]
    Port(String, u64),
    #[error("cannot resolve '{addr}': {source}")]
    Resolve {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot connect to '{addr}': {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    #[error(transparent)]
    Behavior(#[from] BehaviorError),
    #[error(transparent)]
    Mix(#[from] MixError),
    #[error("toxic not found")]
    ToxicNotFound,
    #[error("toxic already exists")]
    ToxicExists,
}

/// Engine settings of one proxy (the `[vaurien]` settings of the original).
#[derive(Clone, Debug)]
pub struct Settings {
    /// How long a read may wait before the connection is closed.
    pub timeout: Duration,
    /// Keep the client connection between exchanges.
    pub stay_connected: bool,
    /// Most idle backend connections kept for reuse.
    pub pool_max_size: usize,
    /// How long an idle pooled backend connection stays usable.
    pub pool_timeout: Duration,
    /// Listen backlog.
    pub backlog: u32,
    /// Size of one read.
    pub bufsize: usize,
    /// `--sync`: accepted for compatibility (see docs/cli.md).
    pub sync: bool,
    /// Most connections served at once (taken before `accept()`).
    pub max_connections: usize,
    /// Use `splice(2)` on the streaming fast path (Linux); off: a plain copy loop.
    pub zero_copy: bool,
    /// The longest busy-poll look after a chunk (zero: off): see [`busy_poll::BusyPoll`].
    pub busy_poll: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            timeout: Duration::from_secs(30),
            stay_connected: false,
            pool_max_size: 100,
            pool_timeout: Duration::from_secs(30),
            backlog: 8192,
            bufsize: 8192,
            sync: false,
            max_connections: default_max_connections(),
            // VAURIEN_SPLICE=0 turns the zero-copy path off (for measurements).
            zero_copy: std::env::var("VAURIEN_SPLICE").map_or(true, |v| v != "0"),
            // VAURIEN_BUSY_POLL_US=N: busy polling for up to N µs after each chunk of dense
            // traffic (at most 10 ms; 0 turns it off).
            busy_poll: Duration::from_micros(
                std::env::var("VAURIEN_BUSY_POLL_US")
                    .ok()
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .unwrap_or(DEFAULT_BUSY_POLL_US)
                    .min(10_000),
            ),
        }
    }
}

/// The default busy-poll window, in microseconds (see [`busy_poll::BusyPoll`]).
pub const DEFAULT_BUSY_POLL_US: u64 = 1000;

/// Half the descriptor limit, less a margin: each connection takes two descriptors.
pub fn default_max_connections() -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own; no other memory is touched.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0;
    let fds = if ok { lim.rlim_cur as usize } else { 1024 };
    (fds.saturating_sub(64) / 2).max(16)
}

/// What it takes to start a proxy.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// Its name (Toxiproxy's proxy name); the CLI's proxy is called `vaurien`.
    pub name: String,
    pub listen: String,
    pub backend: String,
    pub protocol: String,
    pub protocol_options: Options,
    /// The `--behavior` mix.
    pub behavior: String,
    /// Options per behavior name (flags, ini sections).
    pub behavior_options: BTreeMap<String, Options>,
    pub settings: Settings,
    pub seed: Option<u64>,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            name: "vaurien".into(),
            listen: "localhost:8000".into(),
            backend: "localhost:80".into(),
            protocol: "tcp".into(),
            protocol_options: Options::default(),
            behavior: "100:dummy".into(),
            behavior_options: BTreeMap::new(),
            settings: Settings::default(),
            seed: None,
        }
    }
}

/// The control plane's own state: edited under a mutex, never touched by the data path.
struct Control {
    /// Options per behavior name.
    behavior_options: BTreeMap<String, Options>,
    /// The mix given at start (restored by `/reset`).
    initial_behavior: String,
}

/// Everything a proxy's connections share.
pub struct ProxyShared {
    pub name: String,
    pub settings: Settings,
    pub protocol: Arc<dyn Protocol>,
    pub backend: ArcSwap<String>,
    pub faults: ArcSwap<Faults>,
    /// Bumped on each change of `faults`: wakes connections on the zero-copy path.
    pub changes: watch::Sender<u64>,
    pub chooser: Chooser,
    pub metrics: Metrics,
    pub events: Arc<EventLog>,
    pub pool: pool::Pool,
    control: Mutex<Control>,
    next_toxic: AtomicU64,
}

static NEXT_TOXIC_ID: AtomicU64 = AtomicU64::new(1);

/// How long [`Proxy::stop`] waits for killed connections to end.
const KILL_WAIT: Duration = Duration::from_secs(1);

impl ProxyShared {
    pub fn new(cfg: &ProxyConfig, events: Arc<EventLog>) -> Result<Arc<Self>, ProxyError> {
        let pkind = protocol::registry().get(&cfg.protocol)?;
        let mut popts = Options::defaults(&pkind.options);
        for (k, v) in &cfg.protocol_options.0 {
            popts.0.insert(k.clone(), v.clone());
        }
        let protocol = pkind.build(&popts)?;
        let spec = MixSpec::parse(&cfg.behavior, false)?;
        let opts = cfg.behavior_options.clone();
        let mix = Mix::build(&cfg.behavior, &spec, |n| {
            opts.get(n).cloned().unwrap_or_default()
        })?;
        check_address(&cfg.backend)?;
        let (changes, _) = watch::channel(0);
        Ok(Arc::new(ProxyShared {
            name: cfg.name.clone(),
            settings: cfg.settings.clone(),
            protocol,
            backend: ArcSwap::from_pointee(cfg.backend.clone()),
            faults: ArcSwap::from_pointee(Faults::new(Arc::new(mix), Vec::new(), 0)),
            changes,
            chooser: Chooser::new(cfg.seed),
            metrics: Metrics::default(),
            events,
            pool: pool::Pool::new(cfg.settings.pool_max_size, cfg.settings.pool_timeout),
            control: Mutex::new(Control {
                behavior_options: cfg.behavior_options.clone(),
                initial_behavior: cfg.behavior.clone(),
            }),
            next_toxic: AtomicU64::new(0),
        }))
    }

    fn control(&self) -> std::sync::MutexGuard<'_, Control> {
        self.control.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Swaps in a new fault set built from the current one. Callers hold the control lock,
    /// so that edits never race each other.
    fn swap_faults(&self, f: impl FnOnce(&Faults) -> Faults) {
        let cur = self.faults.load_full();
        self.faults.store(Arc::new(f(&cur)));
        self.changes.send_modify(|g| *g += 1);
    }

    /// The active mix as given (`GET /behavior`).
    pub fn behavior(&self) -> String {
        self.faults.load().mix.spec.clone()
    }

    /// Sets the mix (`PUT /behavior`): a name or a `PERCENT:NAME,...` spec, with options for a
    /// single named behavior. Options given here apply on top of the configured ones.
    pub fn set_behavior(
        &self,
        spec_text: &str,
        options: Option<&serde_json::Map<String, serde_json::Value>>,
    ) -> Result<(), ProxyError> {
        let spec = MixSpec::parse(spec_text, true)?;
        let mut ctl = self.control();
        let mut per_name = ctl.behavior_options.clone();
        if let Some(obj) = options {
            // Options in the body go to the behaviors of the spec (one, in practice).
            for name in spec.names() {
                let name: String = name;
                let kind = registry().get(&name)?;
                let base = per_name.get(&name).cloned().unwrap_or_default();
                let relevant: serde_json::Map<String, serde_json::Value> = obj
                    .iter()
                    .filter(|(k, _)| kind.options.iter().any(|o| o.name == k.replace('-', "_")))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                let unknown: Vec<&String> = obj
                    .keys()
                    .filter(|k| {
                        !spec.names().iter().any(|n| {
                            registry()
                                .get(n)
                                .map(|kd| kd.options.iter().any(|o| o.name == k.replace('-', "_")))
                                .unwrap_or(false)
                        })
                    })
                    .collect();
                if let Some(k) = unknown.first() {
                    return Err(BehaviorError::BadOption {
                        behavior: name.clone(),
                        message: format!(
                            "unknown option '{k}' (known: {})",
                            kind.options
                                .iter()
                                .map(|o| o.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    }
                    .into());
                }
                let merged = kind.options_from_json(&base, &relevant, &[])?;
                per_name.insert(name, merged);
            }
        }
        let mix = Mix::build(spec_text, &spec, |n| {
            per_name.get(n).cloned().unwrap_or_default()
        })?;
        let shown: Vec<String> = spec
            .names()
            .iter()
            .filter_map(|n| per_name.get(n).map(|o| format!("{n} {}", o.to_json())))
            .collect();
        ctl.behavior_options = per_name;
        let mix = Arc::new(mix);
        self.swap_faults(|cur| Faults::new(mix, cur.toxics.clone(), cur.generation + 1));
        drop(ctl);
        tracing::info!(
            proxy = %self.name,
            by = %changes::who(),
            options = %shown.join(", "),
            "behavior set to {spec_text}"
        );
        Ok(())
    }

    /// Restores the mix given at start.
    pub fn reset_behavior(&self) -> Result<(), ProxyError> {
        let initial = self.control().initial_behavior.clone();
        self.set_behavior(&initial, None)
    }

    /// The toxics, upstream first.
    pub fn toxics(&self) -> Vec<Arc<Toxic>> {
        self.faults.load().toxics.clone()
    }

    /// Adds a toxic at the end of its direction's chain. With `limits.expires`, it removes
    /// itself that long after (as `remove_toxic`, unless removed or replaced before).
    pub fn add_toxic(
        self: &Arc<Self>,
        name: &str,
        kind: &str,
        stream_text: &str,
        toxicity: f32,
        attributes: Options,
        limits: Limits,
    ) -> Result<Arc<Toxic>, ProxyError> {
        let _ctl = self.control();
        let stream = Direction::parse(stream_text).unwrap_or(Direction::Downstream);
        if self.faults.load().toxics.iter().any(|t| t.name == name) {
            return Err(ProxyError::ToxicExists);
        }
        let k = registry().get(kind)?;
        let fault = k.build(&attributes)?;
        let mut full = Options::defaults(&k.options);
        full.0.extend(attributes.0);
        let toxic = Arc::new(Toxic {
            id: NEXT_TOXIC_ID.fetch_add(1, Ordering::Relaxed),
            name: name.to_string(),
            kind: kind.to_string(),
            stream,
            stream_text: stream_text.to_string(),
            toxicity,
            attributes: full,
            fault,
            limits,
            budget: Arc::default(),
        });
        self.next_toxic.fetch_add(1, Ordering::Relaxed);
        if let Some(after) = limits.expires {
            self.expire(toxic.id, after);
        }
        let t = toxic.clone();
        self.swap_faults(|cur| {
            let mut toxics = cur.toxics.clone();
            toxics.push(t);
            toxics.sort_by_key(|t| t.stream == Direction::Downstream);
            Faults::new(cur.mix.clone(), toxics, cur.generation + 1)
        });
        tracing::info!(
            proxy = %self.name,
            by = %changes::who(),
            stream = %stream,
            toxicity,
            attributes = %toxic.attributes.to_json(),
            "toxic {name} ({kind}) added"
        );
        Ok(toxic)
    }

    /// Replaces a toxic's attributes (merged over the current ones) and toxicity.
    pub fn update_toxic(
        &self,
        name: &str,
        attributes: Option<&serde_json::Map<String, serde_json::Value>>,
        toxicity: Option<f32>,
    ) -> Result<Arc<Toxic>, ProxyError> {
        let _ctl = self.control();
        let cur = self
            .faults
            .load()
            .toxics
            .iter()
            .find(|t| t.name == name)
            .cloned()
            .ok_or(ProxyError::ToxicNotFound)?;
        let kind = registry().get(&cur.kind)?;
        let attrs = match attributes {
            Some(obj) => kind.options_from_json(&cur.attributes, obj, &[])?,
            None => cur.attributes.clone(),
        };
        let fault = kind.build(&attrs)?;
        let new = Arc::new(Toxic {
            id: cur.id,
            name: cur.name.clone(),
            kind: cur.kind.clone(),
            stream: cur.stream,
            stream_text: cur.stream_text.clone(),
            toxicity: toxicity.unwrap_or(cur.toxicity),
            attributes: attrs,
            fault,
            limits: cur.limits,
            budget: cur.budget.clone(),
        });
        let n = new.clone();
        self.swap_faults(|f| {
            let toxics = f
                .toxics
                .iter()
                .map(|t| if t.name == name { n.clone() } else { t.clone() })
                .collect();
            Faults::new(f.mix.clone(), toxics, f.generation + 1)
        });
        tracing::info!(
            proxy = %self.name,
            by = %changes::who(),
            toxicity = new.toxicity,
            attributes = %new.attributes.to_json(),
            "toxic {name} updated"
        );
        Ok(new)
    }

    /// Removes a toxic.
    pub fn remove_toxic(&self, name: &str) -> Result<(), ProxyError> {
        let _ctl = self.control();
        if !self.faults.load().toxics.iter().any(|t| t.name == name) {
            return Err(ProxyError::ToxicNotFound);
        }
        tracing::info!(proxy = %self.name, by = %changes::who(), "toxic {name} removed");
        self.swap_faults(|f| {
            let toxics = f
                .toxics
                .iter()
                .filter(|t| t.name != name)
                .cloned()
                .collect();
            Faults::new(f.mix.clone(), toxics, f.generation + 1)
        });
        Ok(())
    }

    /// Removes toxic `id` after `after` (its `expires_ms`), if it is still there then.
    fn expire(self: &Arc<Self>, id: u64, after: Duration) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(proxy = %self.name, "no runtime: the toxic will not expire");
            return;
        };
        let weak = Arc::downgrade(self);
        rt.spawn(async move {
            tokio::time::sleep(after).await;
            let Some(shared) = weak.upgrade() else { return };
            let _ctl = shared.control();
            let Some(name) = shared
                .faults
                .load()
                .toxics
                .iter()
                .find(|t| t.id == id)
                .map(|t| t.name.clone())
            else {
                return;
            };
            tracing::info!(proxy = %shared.name, toxic = %name, "toxic expired; removed");
            shared.swap_faults(|f| {
                let toxics = f.toxics.iter().filter(|t| t.id != id).cloned().collect();
                Faults::new(f.mix.clone(), toxics, f.generation + 1)
            });
        });
    }

    /// Removes every toxic.
    pub fn clear_toxics(&self) {
        let _ctl = self.control();
        if !self.faults.load().toxics.is_empty() {
            tracing::info!(proxy = %self.name, by = %changes::who(), "every toxic removed");
        }
        self.swap_faults(|f| Faults::new(f.mix.clone(), Vec::new(), f.generation + 1));
    }

    pub fn backend(&self) -> String {
        self.backend.load().as_ref().clone()
    }

    /// Points new connections at another backend (`PUT /backend`).
    pub fn set_backend(&self, backend: &str) -> Result<(), ProxyError> {
        check_address(backend)?;
        self.backend.store(Arc::new(backend.to_string()));
        tracing::info!(proxy = %self.name, by = %changes::who(), "backend set to {backend}");
        Ok(())
    }
}

/// Checks the shape `HOST:PORT` (`[v6]:PORT` for IPv6) without resolving.
pub fn check_address(addr: &str) -> Result<(), ProxyError> {
    split_host_port(addr).map(|_| ())
}

/// Splits `HOST:PORT` / `[V6]:PORT`.
pub fn split_host_port(addr: &str) -> Result<(String, u16), ProxyError> {
    let bad = || ProxyError::Address(addr.to_string());
    let (host, port) = addr.trim().rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = match port.parse::<u64>() {
        Ok(p) => u16::try_from(p).map_err(|_| ProxyError::Port(addr.to_string(), p))?,
        Err(_) => return Err(bad()),
    };
    let host = if let Some(h) = host.strip_prefix('[') {
        h.strip_suffix(']').ok_or_else(bad)?
    } else {
        if host.contains(':') {
            return Err(bad());
        }
        host
    };
    Ok((host.to_string(), port))
}

/// Resolves `HOST:PORT`; an empty host means all interfaces.
pub async fn resolve(addr: &str) -> Result<Vec<SocketAddr>, ProxyError> {
    let (host, port) = split_host_port(addr)?;
    let host = if host.is_empty() {
        "0.0.0.0".to_string()
    } else {
        host
    };
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|source| ProxyError::Resolve {
            addr: addr.to_string(),
            source,
        })?
        .collect();
    if addrs.is_empty() {
        return Err(ProxyError::Resolve {
            addr: addr.to_string(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no address"),
        });
    }
    Ok(addrs)
}

/// A running listener of a proxy.
struct Running {
    addr: SocketAddr,
    /// Stops the accept loop.
    stop_accept: CancellationToken,
    /// Ends every connection at once.
    kill: CancellationToken,
    tracker: TaskTracker,
    accept: tokio::task::JoinHandle<()>,
}

/// A proxy: its shared state and, while enabled, its listener.
pub struct Proxy {
    pub shared: Arc<ProxyShared>,
    /// The listen address as configured.
    listen: Mutex<String>,
    running: tokio::sync::Mutex<Option<Running>>,
}

impl Proxy {
    /// A proxy that does not listen yet.
    pub fn new(cfg: &ProxyConfig, events: Arc<EventLog>) -> Result<Arc<Self>, ProxyError> {
        check_address(&cfg.listen)?;
        Ok(Arc::new(Proxy {
            shared: ProxyShared::new(cfg, events)?,
            listen: Mutex::new(cfg.listen.clone()),
            running: tokio::sync::Mutex::new(None),
        }))
    }

    /// Builds and starts a proxy: it accepts connections when this returns.
    pub async fn start(cfg: &ProxyConfig) -> Result<Arc<Self>, ProxyError> {
        let p = Proxy::new(cfg, Arc::new(EventLog::default()))?;
        p.enable().await?;
        Ok(p)
    }

    pub fn listen(&self) -> String {
        self.listen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn set_listen(&self, listen: &str) -> Result<(), ProxyError> {
        check_address(listen)?;
        *self.listen.lock().unwrap_or_else(|e| e.into_inner()) = listen.to_string();
        Ok(())
    }

    /// The bound address while enabled.
    pub async fn local_addr(&self) -> Option<SocketAddr> {
        self.running.lock().await.as_ref().map(|r| r.addr)
    }

    pub async fn is_enabled(&self) -> bool {
        self.running.lock().await.is_some()
    }

    /// Binds and starts accepting. Does nothing when already enabled.
    pub async fn enable(&self) -> Result<SocketAddr, ProxyError> {
        let mut running = self.running.lock().await;
        if let Some(r) = running.as_ref() {
            return Ok(r.addr);
        }
        let listen = self.listen();
        let listener = listener::bind(&listen, self.shared.settings.backlog).await?;
        let addr = listener.local_addr().map_err(|source| ProxyError::Bind {
            addr: listen.clone(),
            source,
        })?;
        let stop_accept = CancellationToken::new();
        let kill = CancellationToken::new();
        let tracker = TaskTracker::new();
        let accept = tokio::spawn(listener::accept_loop(
            listener,
            self.shared.clone(),
            stop_accept.clone(),
            kill.clone(),
            tracker.clone(),
        ));
        tracing::info!(proxy = %self.shared.name, %addr, backend = %self.shared.backend(), "listening");
        *running = Some(Running {
            addr,
            stop_accept,
            kill,
            tracker,
            accept,
        });
        Ok(addr)
    }

    /// Stops accepting and closes every connection at once.
    pub async fn disable(&self) {
        self.stop(Duration::ZERO).await;
    }

    /// Stops accepting, lets connections finish for at most `grace`, then closes the rest.
    pub async fn stop(&self, grace: Duration) {
        let Some(r) = self.running.lock().await.take() else {
            return;
        };
        r.stop_accept.cancel();
        let _ = r.accept.await;
        r.tracker.close();
        if tokio::time::timeout(grace, r.tracker.wait()).await.is_err() {
            tracing::info!(proxy = %self.shared.name, "grace period over; closing connections");
        }
        r.kill.cancel();
        // A connection ends at once when killed, unless its thread is held by a hook called
        // in place (a Python behavior's hook that sleeps): the proxy does not wait for that.
        if tokio::time::timeout(KILL_WAIT, r.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                proxy = %self.shared.name,
                "{} connection(s) still in a hook; each closes when its hook returns",
                r.tracker.len()
            );
        }
        self.shared.pool.clear();
    }
}
