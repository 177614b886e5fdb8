//! A whole vaurien process: its proxies, the fault event log, and an orderly shutdown. It
//! knows nothing of the control plane: the faces (the CLI, `toxiproxy-server`, Python, the
//! tests) compose a server with the control API through `crate::api::launch`, which hands
//! the server a [`ControlPlane`] to stop at shutdown.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::base::changes;
use crate::base::events::EventLog;
use crate::behavior::{OptionSet, Options};
use crate::protocol::CommonOptions;
use crate::proxy::{Proxy, ProxyConfig, ProxyError, Settings};

/// Errors of starting or running a server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Proxy(#[from] ProxyError),
    #[error("cannot start the control API on {addr}: {source}")]
    Api {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot open the events file {path}: {source}")]
    Events {
        path: String,
        source: std::io::Error,
    },
}

/// What to start.
#[derive(Clone, Debug, Default)]
pub struct ServerConfig {
    /// The proxy of `--proxy/--backend`, if any.
    pub proxy: Option<ProxyConfig>,
    /// `--http`: where the control API listens (`host:port`), for the face that starts it
    /// (`crate::api::launch`); the server itself does not read it.
    pub http: Option<String>,
    /// `--seed`: makes every random choice reproducible.
    pub seed: Option<u64>,
    /// Append every fault applied to this JSON-lines file.
    pub events_file: Option<String>,
    /// How long in-flight exchanges may finish at shutdown.
    pub grace: Duration,
}

/// A running vaurien.
pub struct Server {
    pub proxies: RwLock<BTreeMap<String, Arc<Proxy>>>,
    pub events: Arc<EventLog>,
    pub seed: Option<u64>,
    /// The name of the command line's proxy (what `/behavior` and `/backend` act on).
    pub main: Option<String>,
    /// The runtime the proxies run on: the control API's workers have runtimes of their own,
    /// so proxies started through the API are started here.
    pub runtime: tokio::runtime::Handle,
    /// Serialises changes of the proxy collection (create, replace, delete, populate).
    collection: tokio::sync::Mutex<()>,
    control: tokio::sync::Mutex<Option<Box<dyn ControlPlane>>>,
    control_addr: std::sync::OnceLock<std::net::SocketAddr>,
    grace: Duration,
    /// Set by [`Server::record_connections`]: a proxy made later through the API records its
    /// connections from its first one too.
    conn_events: std::sync::atomic::AtomicBool,
}

/// A control plane serving a [`Server`] (the HTTP API): stopped first at shutdown.
pub trait ControlPlane: Send + Sync {
    fn stop(self: Box<Self>) -> futures::future::BoxFuture<'static, ()>;
}

impl Server {
    /// Starts the proxy of the command line, if any; it accepts connections when this
    /// returns.
    pub async fn start(cfg: ServerConfig) -> Result<Arc<Server>, ServerError> {
        let events = Arc::new(match &cfg.events_file {
            Some(path) => EventLog::with_file(path).map_err(|source| ServerError::Events {
                path: path.clone(),
                source,
            })?,
            None => EventLog::default(),
        });
        let mut proxies = BTreeMap::new();
        let mut main = None;
        if let Some(pc) = &cfg.proxy {
            let mut pc = pc.clone();
            if pc.seed.is_none() {
                pc.seed = cfg.seed;
            }
            let p = Proxy::new(&pc, events.clone())?;
            p.enable().await?;
            main = Some(pc.name.clone());
            proxies.insert(pc.name.clone(), p);
        }
        let server = Server {
            proxies: RwLock::new(proxies),
            events,
            seed: cfg.seed,
            main,
            runtime: tokio::runtime::Handle::current(),
            collection: tokio::sync::Mutex::new(()),
            control: tokio::sync::Mutex::new(None),
            control_addr: std::sync::OnceLock::new(),
            grace: cfg.grace,
            conn_events: std::sync::atomic::AtomicBool::new(false),
        };
        Ok(Arc::new(server))
    }

    /// Attaches the control plane listening on `addr` (stopped first by [`Server::shutdown`]).
    pub async fn attach_control(&self, control: Box<dyn ControlPlane>, addr: std::net::SocketAddr) {
        let _ = self.control_addr.set(addr);
        *self.control.lock().await = Some(control);
    }

    /// From now on every proxy, including those made later, records its connections' starts
    /// and ends (`Metrics::per_connection`, for statsd's per-connection counters).
    pub fn record_connections(&self) {
        self.conn_events
            .store(true, std::sync::atomic::Ordering::Relaxed);
        for p in self.all_proxies() {
            p.shared
                .metrics
                .per_connection
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Where the control API listens.
    pub fn api_addr(&self) -> Option<std::net::SocketAddr> {
        self.control_addr.get().copied()
    }

    pub fn proxy(&self, name: &str) -> Option<Arc<Proxy>> {
        self.proxies
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// The command line's proxy.
    pub fn main_proxy(&self) -> Option<Arc<Proxy>> {
        self.main.as_deref().and_then(|n| self.proxy(n))
    }

    pub fn all_proxies(&self) -> Vec<Arc<Proxy>> {
        self.proxies
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Runs `f` on the proxies' runtime (see [`Server::runtime`]).
    pub async fn on_runtime<F>(&self, f: F) -> F::Output
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match self.runtime.spawn(f).await {
            Ok(v) => v,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }

    /// The configuration of a proxy created through the Toxiproxy API: both directions stream
    /// at once (tcp with keep_alive, stay connected) and no idle timeout, as in Toxiproxy.
    pub fn toxiproxy_config(&self, spec: &ProxySpec) -> ProxyConfig {
        let protocol_options = CommonOptions {
            keep_alive: true,
            ..CommonOptions::default()
        }
        .to_options();
        let listen = if spec.listen.trim().is_empty() {
            // Go listens on every interface with an ephemeral port for an empty address.
            ":0".to_string()
        } else {
            spec.listen.clone()
        };
        ProxyConfig {
            name: spec.name.clone(),
            listen,
            backend: spec.upstream.clone(),
            protocol: spec.protocol.clone(),
            protocol_options,
            behavior: "100:dummy".into(),
            behavior_options: BTreeMap::new(),
            settings: Settings {
                stay_connected: true,
                timeout: NO_IDLE_TIMEOUT,
                ..Settings::default()
            },
            seed: self.seed,
        }
    }

    /// Builds a proxy with its toxics and starts it if `enabled`: no connection is accepted
    /// before every toxic is in place. On a bind error the proxy is returned disabled.
    async fn build(
        &self,
        spec: &ProxySpec,
    ) -> Result<(Arc<Proxy>, Option<ProxyError>), ProxyError> {
        let p = Proxy::new(&self.toxiproxy_config(spec), self.events.clone())?;
        if self.conn_events.load(std::sync::atomic::Ordering::Relaxed) {
            p.shared
                .metrics
                .per_connection
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        for t in &spec.toxics {
            p.shared.add_toxic(
                &t.name,
                &t.kind,
                &t.stream,
                t.toxicity,
                t.attributes.clone(),
                t.limits,
            )?;
        }
        let mut failed = None;
        if spec.enabled {
            if let Err(e) = self.enable(&p).await {
                failed = Some(e);
            }
        }
        if failed.is_none() {
            tracing::info!(
                proxy = %spec.name,
                by = %changes::who(),
                listen = %p.listen(),
                upstream = %spec.upstream,
                enabled = spec.enabled,
                "proxy created"
            );
        }
        Ok((p, failed))
    }

    /// Starts a proxy on the proxies' runtime. As Toxiproxy, an ephemeral port is kept once
    /// bound: disabling and enabling again listens on the same address.
    async fn enable(&self, p: &Arc<Proxy>) -> Result<(), ProxyError> {
        let pp = p.clone();
        let addr = self.on_runtime(async move { pp.enable().await }).await?;
        if crate::proxy::split_host_port(&p.listen()).is_ok_and(|(_, port)| port == 0) {
            p.set_listen(&addr.to_string())?;
        }
        Ok(())
    }

    fn insert(&self, p: Arc<Proxy>) {
        self.proxies
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(p.shared.name.clone(), p);
    }

    /// `POST /proxies`: a new proxy (with its toxics, a vaurien extra). A bind error leaves
    /// nothing behind.
    pub async fn create_proxy(&self, spec: &ProxySpec) -> Result<Arc<Proxy>, CollectionError> {
        let _g = self.collection.lock().await;
        if self.proxy(&spec.name).is_some() {
            return Err(CollectionError::Exists);
        }
        match self.build(spec).await? {
            (p, None) => {
                self.insert(p.clone());
                Ok(p)
            }
            (_, Some(e)) => Err(e.into()),
        }
    }

    /// `DELETE /proxies/{proxy}`: stops it (closing its connections) and forgets it.
    pub async fn delete_proxy(&self, name: &str) -> Result<(), CollectionError> {
        let _g = self.collection.lock().await;
        let p = self
            .proxies
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name)
            .ok_or(CollectionError::NotFound)?;
        self.on_runtime(async move { p.disable().await }).await;
        tracing::info!(proxy = %name, by = %changes::who(), "proxy deleted");
        Ok(())
    }

    /// `POST /proxies/{proxy}`: absent fields keep their values; a new listen address or
    /// upstream restarts the proxy (closing its connections); `enabled` starts or stops it.
    pub async fn update_proxy(
        &self,
        name: &str,
        listen: Option<String>,
        upstream: Option<String>,
        enabled: Option<bool>,
    ) -> Result<Arc<Proxy>, CollectionError> {
        let _g = self.collection.lock().await;
        let p = self.proxy(name).ok_or(CollectionError::NotFound)?;
        let was = p.is_enabled().await;
        let enabled = enabled.unwrap_or(was);
        let mut restart = false;
        if let Some(l) = listen {
            if !same_listen(&p, &l).await {
                p.set_listen(&l)?;
                restart = true;
            }
        }
        if let Some(u) = upstream {
            if u != p.shared.backend() {
                p.shared.set_backend(&u)?;
                restart = true;
            }
        }
        if restart || !enabled {
            let pp = p.clone();
            self.on_runtime(async move { pp.disable().await }).await;
        }
        if enabled {
            self.enable(&p).await?;
        }
        tracing::info!(
            proxy = %name,
            by = %changes::who(),
            listen = %p.listen(),
            upstream = %p.shared.backend(),
            enabled,
            "proxy updated"
        );
        Ok(p)
    }

    /// `POST /populate` and `-config`: entries applied in order. An existing proxy with the
    /// same listen address and upstream is kept as it is (its toxics replaced when the entry
    /// declares some); otherwise it is replaced. The first failure stops the rest: the error
    /// comes with the proxies done before it.
    pub async fn populate(
        &self,
        specs: &[ProxySpec],
    ) -> Result<Vec<Arc<Proxy>>, (CollectionError, Vec<Arc<Proxy>>)> {
        let _g = self.collection.lock().await;
        let mut done = Vec::new();
        for spec in specs {
            if let Some(old) = self.proxy(&spec.name) {
                if same_listen(&old, &spec.listen).await && old.shared.backend() == spec.upstream {
                    if spec.declares_toxics {
                        old.shared.clear_toxics();
                        for t in &spec.toxics {
                            if let Err(e) = old.shared.add_toxic(
                                &t.name,
                                &t.kind,
                                &t.stream,
                                t.toxicity,
                                t.attributes.clone(),
                                t.limits,
                            ) {
                                return Err((e.into(), done));
                            }
                        }
                    }
                    done.push(old);
                    continue;
                }
                let o = old.clone();
                self.on_runtime(async move { o.disable().await }).await;
            }
            match self.build(spec).await {
                // As Toxiproxy's `AddOrReplace`: the new proxy goes in only once started; a
                // proxy it was to replace stays as it was, stopped.
                Ok((p, None)) => {
                    self.insert(p.clone());
                    done.push(p);
                }
                Ok((_, Some(e))) => return Err((e.into(), done)),
                Err(e) => return Err((e.into(), done)),
            }
        }
        Ok(done)
    }

    /// `POST /reset`: every proxy enabled again and rid of its toxics.
    pub async fn reset(&self) -> Result<(), ProxyError> {
        let _g = self.collection.lock().await;
        tracing::info!(by = %changes::who(), "reset: every proxy enabled, every toxic removed");
        for p in self.all_proxies() {
            self.enable(&p).await?;
            p.shared.clear_toxics();
        }
        Ok(())
    }

    /// Stops accepting, lets exchanges in flight finish for the grace period, stops the API.
    pub async fn shutdown(&self) {
        if let Some(control) = self.control.lock().await.take() {
            control.stop().await;
        }
        let proxies = self.all_proxies();
        futures::future::join_all(proxies.iter().map(|p| p.stop(self.grace))).await;
    }
}

/// Proxies created through the Toxiproxy API never close a connection for being idle.
pub const NO_IDLE_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 3600);

/// A proxy as the Toxiproxy API declares it (plus vaurien's `protocol` and inline toxics).
#[derive(Clone, Debug)]
pub struct ProxySpec {
    pub name: String,
    pub listen: String,
    pub upstream: String,
    pub enabled: bool,
    pub protocol: String,
    pub toxics: Vec<ToxicSpec>,
    /// The entry had a `toxics` key (populate then sets exactly those on a kept proxy).
    pub declares_toxics: bool,
}

/// A toxic as the Toxiproxy API declares it, attributes already checked.
#[derive(Clone, Debug)]
pub struct ToxicSpec {
    pub name: String,
    pub kind: String,
    /// The stream as given (echoed back).
    pub stream: String,
    pub toxicity: f32,
    pub attributes: Options,
    /// `expires_ms` and `count` (vaurien extras).
    pub limits: crate::proxy::Limits,
}

/// Errors of the proxy collection.
#[derive(Debug, thiserror::Error)]
pub enum CollectionError {
    #[error("proxy not found")]
    NotFound,
    #[error("proxy already exists")]
    Exists,
    #[error(transparent)]
    Proxy(#[from] ProxyError),
}

/// True when `listen` names the address the proxy is configured with or bound to (so that a
/// client sending back what it read, or what it created the proxy with, does not restart it).
async fn same_listen(p: &Proxy, listen: &str) -> bool {
    let configured = p.listen();
    if listen == configured || (listen.trim().is_empty() && configured == ":0") {
        return true;
    }
    let Some(bound) = p.local_addr().await else {
        return false;
    };
    if listen == bound.to_string() {
        return true;
    }
    // Port 0 means "any port": the one bound already qualifies (clients that send back the
    // address they created the proxy with do not move it to a new port).
    match crate::proxy::resolve(listen).await {
        Ok(addrs) => addrs
            .iter()
            .any(|a| *a == bound || (a.port() == 0 && a.ip() == bound.ip())),
        Err(_) => false,
    }
}
