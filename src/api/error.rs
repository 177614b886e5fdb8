//! Error responses of both APIs, in the shapes their clients parse.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use serde_json::json;

/// The original Vaurien's error: HTTP 400 with `{"status": "error", "errors": [...]}`.
pub fn vaurien_error(name: &str, description: &str) -> HttpResponse {
    HttpResponse::BadRequest().json(json!({
        "status": "error",
        "errors": [{"location": "body", "name": name, "description": description}],
    }))
}

/// Toxiproxy's error: `{"error": "...", "status": N}` plus a newline, sent as Go's
/// `http.Error` does (text/plain; charset=utf-8, nosniff).
pub fn toxiproxy_error(status: u16, message: &str) -> HttpResponse {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = format!("{}\n", json!({"error": message, "status": status}));
    HttpResponse::build(code)
        .insert_header(("Content-Type", "text/plain; charset=utf-8"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .body(body)
}
