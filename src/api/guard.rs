//! The control plane is not a hole: a web page in a browser must not be able to reconfigure a
//! proxy on the developer's machine. Every request of both dialects passes here first:
//!
//! - a cross-origin request (an `Origin` that is not the API's own) is refused with 403, and so
//!   is any request a browser marks as made by another site (`Sec-Fetch-Site: cross-site` or
//!   `same-site`: a page on another port of localhost is `same-site`), with or without `Origin`;
//! - a `Host` that is not an address of the API itself is refused with 403 (DNS rebinding: a
//!   name that resolves to 127.0.0.1 gets a page's requests past the same-origin policy).
//!   Addresses are IP literals, `localhost` (and `*.localhost`) and this machine's host name.
//!   An API bound to a non-loopback address (the user exposed it on purpose, e.g. behind a
//!   Kubernetes Service) also accepts other names; names listed in `VAURIEN_API_HOSTS`
//!   (comma-separated) are accepted always.
//!
//! Clients that are not browsers send no `Origin` and the `Host` they connected to: they are
//! not affected. The API binds to loopback by default (`--http-host localhost`).

use std::net::{IpAddr, SocketAddr};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};

use crate::base::changes;

/// Who the API is: what its requests' `Host` and `Origin` may name.
#[derive(Clone, Debug)]
pub struct Guard {
    /// The API listens on loopback only.
    loopback_only: bool,
    /// This machine's host name, lower case.
    hostname: Option<String>,
    /// Names accepted whatever the bind address (`VAURIEN_API_HOSTS`).
    extra: Vec<String>,
}

impl Guard {
    /// The guard of an API listening on `local`.
    pub fn new(local: SocketAddr) -> Self {
        let extra = std::env::var("VAURIEN_API_HOSTS")
            .unwrap_or_default()
            .split(',')
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect();
        Guard {
            loopback_only: local.ip().is_loopback(),
            hostname: hostname(),
            extra,
        }
    }

    /// Whether `host` (a `Host` header value, or the authority of an `Origin`) names this API.
    fn accepts_host(&self, authority: &str) -> bool {
        let name = host_part(authority).to_ascii_lowercase();
        if name.is_empty() {
            return false;
        }
        if name.trim_matches(['[', ']']).parse::<IpAddr>().is_ok() {
            return true;
        }
        if name == "localhost" || name.ends_with(".localhost") {
            return true;
        }
        if self.hostname.as_deref() == Some(name.as_str()) || self.extra.contains(&name) {
            return true;
        }
        !self.loopback_only
    }

    /// Why a request with these headers (`Host`, `Origin`, `Sec-Fetch-Site`) is refused, if it
    /// is.
    pub fn refuse(
        &self,
        host: Option<&str>,
        origin: Option<&str>,
        fetch_site: Option<&str>,
    ) -> Option<String> {
        if let Some(h) = host {
            if !self.accepts_host(h) {
                return Some(format!(
                    "Host '{h}' is not an address of this API (set VAURIEN_API_HOSTS to accept it)"
                ));
            }
        }
        if let Some(site) = fetch_site {
            let site = site.trim().to_ascii_lowercase();
            if site == "cross-site" || site == "same-site" {
                return Some(format!("a request made by another site ({site}) refused"));
            }
        }
        let origin = origin?;
        // A page's own requests carry its origin: only the API's own (same scheme-less
        // authority as the Host the request was sent to) is accepted.
        let own = origin
            .strip_prefix("http://")
            .is_some_and(|auth| host.is_some_and(|h| auth.eq_ignore_ascii_case(h)));
        (!own).then(|| format!("cross-origin request from '{origin}' refused"))
    }
}

/// `host[:port]` → `host` (IPv6 literals keep their brackets).
fn host_part(authority: &str) -> &str {
    let a = authority.trim();
    if a.starts_with('[') {
        return a.find(']').map_or(a, |i| &a[..=i]);
    }
    a.rsplit_once(':').map_or(a, |(h, _)| h)
}

/// This machine's host name.
fn hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into the buffer we own.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    std::str::from_utf8(&buf[..end])
        .ok()
        .map(|s| s.to_ascii_lowercase())
        .filter(|s| !s.is_empty())
}

/// The middleware: refuses with 403 (one line, plain text) what [`Guard::refuse`] refuses.
pub async fn check(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let refusal = req.app_data::<web::Data<Guard>>().and_then(|g| {
        let text = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
        let host = text(header::HOST).or_else(|| req.uri().authority().map(|a| a.as_str()));
        g.refuse(
            host,
            text(header::ORIGIN),
            text(header::HeaderName::from_static("sec-fetch-site")),
        )
    });
    if let Some(why) = refusal {
        tracing::warn!(path = %req.path(), "control API: {why}");
        let resp = HttpResponse::Forbidden()
            .insert_header(("Content-Type", "text/plain; charset=utf-8"))
            .body(format!("{why}\n"));
        return Ok(req.into_response(resp).map_into_right_body());
    }
    // Changes made by this request say who asked for them in their log line.
    let by = match req.peer_addr() {
        Some(a) => format!("API client {a}"),
        None => "API client".to_string(),
    };
    changes::by(by, next.call(req))
        .await
        .map(|r| r.map_into_left_body())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(local: &str) -> Guard {
        Guard {
            loopback_only: local.parse::<SocketAddr>().unwrap().ip().is_loopback(),
            hostname: Some("devbox".into()),
            extra: vec!["vaurien.example".into()],
        }
    }

    #[test]
    fn hosts_of_a_loopback_api() {
        let g = guard("127.0.0.1:8080");
        for ok in [
            "127.0.0.1:8080",
            "localhost:8080",
            "LOCALHOST",
            "[::1]:8080",
            "api.localhost:9000",
            "devbox:8080",
            "vaurien.example:80",
            "10.0.0.5:8474",
        ] {
            assert_eq!(g.refuse(Some(ok), None, None), None, "{ok}");
        }
        for bad in ["attacker.example:8080", "127.0.0.1.nip.io:8080", ""] {
            assert!(g.refuse(Some(bad), None, None).is_some(), "{bad}");
        }
        // No Host at all (HTTP/1.0 clients): nothing to check.
        assert_eq!(g.refuse(None, None, None), None);
    }

    #[test]
    fn an_exposed_api_accepts_names() {
        let g = guard("0.0.0.0:8474");
        assert_eq!(g.refuse(Some("vaurien.default.svc:8474"), None, None), None);
    }

    #[test]
    fn only_the_api_s_own_origin() {
        let g = guard("127.0.0.1:8080");
        assert_eq!(
            g.refuse(Some("127.0.0.1:8080"), Some("http://127.0.0.1:8080"), None),
            None
        );
        for site in ["same-origin", "none"] {
            assert_eq!(g.refuse(Some("127.0.0.1:8080"), None, Some(site)), None);
        }
        for site in ["cross-site", "same-site", "Cross-Site"] {
            assert!(g.refuse(Some("127.0.0.1:8080"), None, Some(site)).is_some());
            assert!(g
                .refuse(
                    Some("127.0.0.1:8080"),
                    Some("http://127.0.0.1:8080"),
                    Some(site)
                )
                .is_some());
        }
        for bad in [
            "http://evil.example",
            "http://127.0.0.1:9999",
            "null",
            "https://127.0.0.1:8080",
        ] {
            assert!(
                g.refuse(Some("127.0.0.1:8080"), Some(bad), None).is_some(),
                "{bad}"
            );
        }
    }
}
