//! The control server (actix-web): the original Vaurien's routes (`vaurien`) and Toxiproxy's
//! (`toxiproxy`), over one shared [`Server`], the live event stream (`stream`) and the page
//! that shows it all (`ui`). It runs without signal handling of its own and stops when the
//! server shuts down.

// Handlers return `Result<_, HttpResponse>` so that an error is a ready response.
#![allow(clippy::result_large_err)]

pub mod error;
mod guard;
mod stream;
pub mod toxiproxy;
mod ui;
pub mod vaurien;

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::{web, App, HttpServer};

use crate::server::{ControlPlane, Server, ServerConfig, ServerError};

/// Starts a whole vaurien: the server (its proxy, if any) and, with `cfg.http`, the control
/// API serving it. Both accept connections when this returns. The faces (CLI,
/// `toxiproxy-server`, Python) start vaurien through here.
pub async fn launch(cfg: ServerConfig) -> Result<Arc<Server>, ServerError> {
    let server = Server::start(cfg.clone()).await?;
    if let Some(http) = &cfg.http {
        let (bound, addr) = match bind(http) {
            Ok(b) => b,
            Err(source) => {
                server.shutdown().await;
                return Err(ServerError::Api {
                    addr: http.clone(),
                    source,
                });
            }
        };
        let handle = bound.start(server.clone());
        server.attach_control(Box::new(handle), addr).await;
    }
    Ok(server)
}

/// A bound, not yet serving, control server.
pub struct Bound {
    listener: std::net::TcpListener,
}

/// A serving control server.
pub struct ApiHandle {
    handle: actix_web::dev::ServerHandle,
    /// Ends the open event streams, which would otherwise hold the graceful stop.
    streams: stream::Streams,
    task: tokio::task::JoinHandle<()>,
}

/// Binds the control API's address (so that a port in use is reported at start).
pub fn bind(addr: &str) -> std::io::Result<(Bound, SocketAddr)> {
    use std::net::ToSocketAddrs;
    let mut last = None;
    let addrs: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|e| std::io::Error::new(e.kind(), format!("invalid address '{addr}': {e}")))?
        .collect();
    for a in addrs {
        match std::net::TcpListener::bind(a) {
            Ok(l) => {
                let local = l.local_addr()?;
                return Ok((Bound { listener: l }, local));
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no address")))
}

impl Bound {
    /// Starts serving on the current tokio runtime.
    pub fn start(self, server: Arc<Server>) -> ApiHandle {
        let data = web::Data::from(server);
        let local = self
            .listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
        let guard = web::Data::new(guard::Guard::new(local));
        let streams = stream::Streams::default();
        let open = web::Data::new(streams.clone());
        let http = HttpServer::new(move || {
            App::new()
                .wrap(actix_web::middleware::from_fn(guard::check))
                .app_data(guard.clone())
                .app_data(open.clone())
                .app_data(data.clone())
                .app_data(
                    web::JsonConfig::default()
                        .limit(1 << 20)
                        .content_type_required(false),
                )
                .app_data(web::PayloadConfig::default().limit(1 << 20))
                .configure(vaurien::routes)
                .configure(toxiproxy::routes)
                .configure(stream::routes)
                .configure(ui::routes)
                .default_service(web::to(toxiproxy::not_found))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(1)
        .listen(self.listener)
        .expect("a bound std listener is accepted")
        .run();
        let handle = http.handle();
        let task = tokio::spawn(async move {
            if let Err(e) = http.await {
                tracing::error!(error = %e, "control API stopped");
            }
        });
        ApiHandle {
            handle,
            streams,
            task,
        }
    }
}

impl ApiHandle {
    pub async fn stop(self) {
        self.streams.0.cancel();
        self.handle.stop(true).await;
        let _ = self.task.await;
    }
}

impl ControlPlane for ApiHandle {
    fn stop(self: Box<Self>) -> futures::future::BoxFuture<'static, ()> {
        Box::pin(ApiHandle::stop(*self))
    }
}
