//! Toxiproxy's routes.

use actix_web::{web, HttpResponse};

pub fn routes(_cfg: &mut web::ServiceConfig) {}

/// Unknown path: Go's mux answers `404 page not found` in text.
pub async fn not_found() -> HttpResponse {
    HttpResponse::NotFound()
        .insert_header(("Content-Type", "text/plain; charset=utf-8"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .body("404 page not found\n")
}
