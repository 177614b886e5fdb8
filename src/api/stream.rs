//! `GET /events/stream`: the fault events as they happen, as server-sent events, fed by the
//! same log as `GET /events` (src/base/events.rs). Any client can read it (`curl -N`, a
//! browser's `EventSource`, the page at `/ui`).
//!
//! One `data:` line per event, the JSON object `/events` lists; events that arrive together
//! go out in one write. A reader too slow for the event rate misses events and is told so
//! (`event: lagged`, `data: {"missed": N}`); a comment line every 15 s keeps proxies and
//! browsers from closing an idle stream. The stream ends when the control API stops.

use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use tokio_util::sync::CancellationToken;

use crate::base::events::Event;
use crate::server::Server;

/// Most events put in one write.
const BATCH: usize = 256;
/// A comment line after this long without an event.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Fires when the control API stops: every open stream ends.
#[derive(Clone, Default)]
pub struct Streams(pub CancellationToken);

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/events/stream")
            .route(web::get().to(stream))
            .default_service(web::to(super::toxiproxy::method_not_allowed)),
    );
}

#[derive(serde::Deserialize)]
struct StreamQuery {
    proxy: Option<String>,
}

/// One reader's state between writes.
struct Reader {
    live: broadcast::Receiver<Event>,
    proxy: Option<String>,
    stop: CancellationToken,
}

async fn stream(
    req: HttpRequest,
    server: web::Data<Server>,
    streams: web::Data<Streams>,
    q: web::Query<StreamQuery>,
) -> HttpResponse {
    if let Some(refused) = super::toxiproxy::refuse_browser(&req) {
        return refused;
    }
    let reader = Reader {
        live: server.events.subscribe(),
        proxy: q.into_inner().proxy,
        stop: streams.0.clone(),
    };
    // The first write tells the client the stream is open (and how soon to come back).
    let hello = futures::stream::once(async {
        Ok::<_, actix_web::Error>(web::Bytes::from_static(
            b"retry: 2000\n: vaurien events\n\n",
        ))
    });
    let body = futures::stream::unfold(reader, |mut r| async move {
        let text = r.next_write().await?;
        Some((Ok::<_, actix_web::Error>(web::Bytes::from(text)), r))
    });
    HttpResponse::Ok()
        .insert_header(("Content-Type", "text/event-stream"))
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(futures::StreamExt::chain(hello, body))
}

impl Reader {
    /// The next text to write: the events waiting (at least one), a lag notice or a
    /// keep-alive comment; `None` when the stream ends.
    async fn next_write(&mut self) -> Option<String> {
        loop {
            let first = tokio::select! {
                _ = self.stop.cancelled() => return None,
                r = tokio::time::timeout(KEEP_ALIVE, self.live.recv()) => r,
            };
            let mut out = String::new();
            match first {
                Err(_) => return Some(": keep-alive\n\n".into()),
                Ok(Err(RecvError::Closed)) => return None,
                Ok(Err(RecvError::Lagged(n))) => lagged(&mut out, n),
                Ok(Ok(ev)) => self.push(&mut out, &ev),
            }
            for _ in 1..BATCH {
                match self.live.try_recv() {
                    Ok(ev) => self.push(&mut out, &ev),
                    Err(TryRecvError::Lagged(n)) => lagged(&mut out, n),
                    Err(_) => break,
                }
            }
            // Only other proxies' events: wait for more.
            if !out.is_empty() {
                return Some(out);
            }
        }
    }

    fn push(&self, out: &mut String, ev: &Event) {
        if self.proxy.as_deref().is_some_and(|p| p != ev.proxy) {
            return;
        }
        if let Ok(json) = serde_json::to_string(ev) {
            out.push_str("data: ");
            out.push_str(&json);
            out.push_str("\n\n");
        }
    }
}

fn lagged(out: &mut String, missed: u64) {
    out.push_str(&format!(
        "event: lagged\ndata: {{\"missed\": {missed}}}\n\n"
    ));
}
