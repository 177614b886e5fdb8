//! A whole vaurien process: its proxies, the fault event log, the control server, and an
//! orderly shutdown. The CLI, the tests and the Python module all start vaurien through
//! [`Server::start`].

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::api::{self, ApiHandle};
use crate::metrics::EventLog;
use crate::proxy::{Proxy, ProxyConfig, ProxyError};

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
    /// `--http`: where the control API listens (`host:port`).
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
    api: tokio::sync::Mutex<Option<ApiHandle>>,
    api_addr: Option<std::net::SocketAddr>,
    grace: Duration,
}

impl Server {
    /// Starts the proxy and the control API; both accept connections when this returns.
    pub async fn start(cfg: ServerConfig) -> Result<Arc<Server>, ServerError> {
        let events = Arc::new(EventLog::default());
        if let Some(path) = &cfg.events_file {
            events
                .set_file(path)
                .map_err(|source| ServerError::Events {
                    path: path.clone(),
                    source,
                })?;
        }
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
        let mut server = Server {
            proxies: RwLock::new(proxies),
            events,
            seed: cfg.seed,
            main,
            api: tokio::sync::Mutex::new(None),
            api_addr: None,
            grace: cfg.grace,
        };
        let server = if let Some(http) = &cfg.http {
            let (handle, addr) = match api::bind(http) {
                Ok(b) => b,
                Err(source) => {
                    let s = Arc::new(server);
                    s.shutdown().await;
                    return Err(ServerError::Api {
                        addr: http.clone(),
                        source,
                    });
                }
            };
            server.api_addr = Some(addr);
            let server = Arc::new(server);
            *server.api.lock().await = Some(handle.start(server.clone()));
            server
        } else {
            Arc::new(server)
        };
        Ok(server)
    }

    /// Where the control API listens.
    pub fn api_addr(&self) -> Option<std::net::SocketAddr> {
        self.api_addr
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

    /// Stops accepting, lets exchanges in flight finish for the grace period, stops the API.
    pub async fn shutdown(&self) {
        if let Some(api) = self.api.lock().await.take() {
            api.stop().await;
        }
        let proxies = self.all_proxies();
        futures::future::join_all(proxies.iter().map(|p| p.stop(self.grace))).await;
    }
}
