//! `GET /ui`: a live page over the public routes (`/proxies`, `/metrics`, `/behavior`,
//! `/events`, `/events/stream`), three files built into the binary. It loads nothing from the
//! network (its Content-Security-Policy allows only the API itself) and may not be framed by
//! another site. What it shows: docs/ui.md.

use actix_web::{web, HttpResponse};

/// The page's files: path, content type, text.
const FILES: [(&str, &str, &str); 3] = [
    (
        "/ui",
        "text/html; charset=utf-8",
        include_str!("ui/index.html"),
    ),
    (
        "/ui/ui.js",
        "text/javascript; charset=utf-8",
        include_str!("ui/ui.js"),
    ),
    (
        "/ui/ui.css",
        "text/css; charset=utf-8",
        include_str!("ui/ui.css"),
    ),
];

/// Nothing but the API itself: no CDN, no other site, no inline script.
const CSP: &str = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; \
                   base-uri 'none'; form-action 'none'";

pub fn routes(cfg: &mut web::ServiceConfig) {
    for (path, content_type, text) in FILES {
        cfg.service(
            web::resource(path)
                .route(web::get().to(move || serve(content_type, text)))
                .route(web::head().to(move || serve(content_type, text)))
                .default_service(web::to(super::toxiproxy::method_not_allowed)),
        );
    }
    cfg.service(web::resource("/ui/").route(web::get().to(|| async {
        HttpResponse::PermanentRedirect()
            .insert_header(("Location", "/ui"))
            .finish()
    })));
}

async fn serve(content_type: &'static str, text: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("Content-Type", content_type))
        .insert_header(("Content-Security-Policy", CSP))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header(("X-Frame-Options", "DENY"))
        .insert_header(("Cache-Control", "no-cache"))
        .body(text)
}
