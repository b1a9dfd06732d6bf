//! What keeps a web page from using the HTTP door through a developer's browser
//! (docs/security.md, "The HTTP door and browsers").
//!
//! - **Cross-site writes (CSRF).** A page on any site can make the browser send a `POST` with
//!   a `text/plain`, form or multipart body to `localhost` without asking first (a CORS "simple
//!   request"); its answer is hidden from the page, but the write happens. So every request
//!   that writes (`POST`, `PUT`, `PATCH`, and a `DELETE` that has a body) must say its body is
//!   JSON (`application/json`, `application/*+json`, or `application/x-ndjson` for a streaming
//!   produce); anything else is 415 before a handler runs. A browser sends those types from
//!   another origin only after a CORS preflight, which the door answers only for
//!   `http_cors_origins`.
//! - **DNS rebinding.** A page can point a name of its own at 127.0.0.1 and then read the
//!   door as "its own" origin. The browser still sends that name in `Host`, so a request whose
//!   `Host` is not one of the door's names is 421 Misdirected Request. The door's names: any IP
//!   address (what it is bound to is one; an IP is never a name an attacker controls),
//!   `localhost` and `*.localhost`, and the names in `http_allowed_hosts` (`*` allows any). A
//!   request with no `Host` at all (HTTP/1.0) is not from a browser and passes, and so do the
//!   health checks (`/healthz`, `/readyz`: they show nothing, and probes name hosts freely).

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::produce::NDJSON;

/// The names a request's `Host` may have besides IP addresses and `localhost`.
#[derive(Debug, Clone, Default)]
pub(crate) struct AllowedHosts {
    names: Vec<String>,
    any: bool,
}

impl AllowedHosts {
    pub(crate) fn new(configured: &[String]) -> Arc<Self> {
        Arc::new(Self {
            any: configured.iter().any(|name| name == "*"),
            names: configured
                .iter()
                .map(|name| name.trim().trim_end_matches('.').to_ascii_lowercase())
                .collect(),
        })
    }

    /// Whether `host` (a `Host` header: a name or address, maybe with a port) is one of the
    /// door's names.
    fn allows(&self, host: &str) -> bool {
        if self.any {
            return true;
        }
        let name = strip_port(host.trim()).trim_end_matches('.');
        let bracketed = name.strip_prefix('[').and_then(|n| n.strip_suffix(']'));
        if bracketed.unwrap_or(name).parse::<IpAddr>().is_ok() {
            return true;
        }
        let name = name.to_ascii_lowercase();
        name == "localhost" || name.ends_with(".localhost") || self.names.contains(&name)
    }
}

/// `host` without its `:port`, if any (an IPv6 address keeps its brackets).
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |end| &host[..=end]);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// Whether `content_type`'s media type is one of the JSON ones a write may carry.
fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || essence == NDJSON
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// The middleware on every request: refuses a foreign `Host` (421).
pub(crate) async fn check_host(
    State(hosts): State<Arc<AllowedHosts>>,
    request: Request,
    next: Next,
) -> Response {
    let host = request
        .headers()
        .get(HOST)
        .map(|v| v.to_str().unwrap_or("?").to_owned())
        .or_else(|| request.uri().authority().map(|a| a.as_str().to_owned()));
    let health = matches!(request.uri().path(), "/healthz" | "/readyz");
    if let Some(host) = host.filter(|host| !health && !hosts.allows(host)) {
        return ApiError::new(
            StatusCode::MISDIRECTED_REQUEST,
            "misdirected_request",
            format!(
                "Host {host:?} is not a name of this server: use its IP address or localhost, \
                 or add the name to http_allowed_hosts (a guard against DNS rebinding)"
            ),
        )
        .into_response();
    }
    next.run(request).await
}

/// The middleware on every route (so a method a route does not take is still 405): refuses
/// a write whose body is not JSON (415).
pub(crate) async fn check_body(request: Request, next: Next) -> Response {
    let method = request.method();
    let has_body = request.headers().contains_key(CONTENT_TYPE)
        || request
            .headers()
            .get(CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0");
    let writes = [Method::POST, Method::PUT, Method::PATCH].contains(method)
        || (method == Method::DELETE && has_body);
    if writes {
        let content_type = request
            .headers()
            .get(CONTENT_TYPE)
            .map(|v| v.to_str().unwrap_or("?"));
        if !content_type.is_some_and(is_json) {
            let said = content_type.map_or("no Content-Type".to_owned(), |t| format!("{t:?}"));
            return ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!(
                    "{method} takes a JSON body (Content-Type: application/json, or \
                     application/x-ndjson for a streaming produce), not {said}: other types \
                     are what a web page can send cross-site without asking"
                ),
            )
            .into_response();
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_ip_addresses_localhost_and_the_configured_names() {
        let hosts = AllowedHosts::new(&["Brook.example.com".to_owned()]);
        for good in [
            "127.0.0.1:8080",
            "127.0.0.1",
            "[::1]:80",
            "[::1]",
            "10.1.2.3:9",
            "localhost:8080",
            "LOCALHOST",
            "app.localhost:3000",
            "brook.example.com:443",
            "brook.example.com.",
        ] {
            assert!(hosts.allows(good), "{good}");
        }
        for bad in [
            "evil.example",
            "evil.example:8080",
            "localhost.evil.example",
            "brook.example.com.evil",
            "127.0.0.1.nip.io",
            "",
        ] {
            assert!(!hosts.allows(bad), "{bad}");
        }
        assert!(AllowedHosts::new(&["*".to_owned()]).allows("anything"));
    }

    #[test]
    fn json_media_types_pass_and_browser_simple_ones_do_not() {
        for good in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/x-ndjson",
            "application/merge-patch+json",
        ] {
            assert!(is_json(good), "{good}");
        }
        for bad in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/octet-stream",
            "text/json+plain",
            "",
        ] {
            assert!(!is_json(bad), "{bad}");
        }
    }
}
