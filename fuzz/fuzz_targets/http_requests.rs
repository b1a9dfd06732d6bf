//! The HTTP door's paths and query strings on arbitrary bytes, end to end over a real socket:
//! the first byte picks one of the door's routes (`brook_server::http::routes`), the rest is
//! split at `\n` into a value for each `{parameter}` of its path, the query string, and the
//! body. Path values and the query are sent as the fuzzer made them, except for the bytes an
//! HTTP request line cannot carry (controls, space, `#`, non-ASCII; `/` and `?` in a path
//! value), which are percent-encoded; `%` itself stays, so malformed escapes reach the door.
//! Every request must get an answer (a 4xx for a bad one) and the door must never panic.
//! The streams (SSE) and request-reply's call are left out: a well-formed one waits.
#![no_main]

#[path = "support.rs"]
mod support;

use std::net::SocketAddr;
use std::sync::OnceLock;

use brook_server::http::routes;
use brook_server::{Http, HttpConfig};
use libfuzzer_sys::fuzz_target;

fn door() -> SocketAddr {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| support::start_door::<Http>(HttpConfig::default()))
}

/// The routes a fuzzed request may take.
fn fuzzed_routes() -> &'static [(String, &'static str)] {
    static ROUTES: OnceLock<Vec<(String, &'static str)>> = OnceLock::new();
    ROUTES.get_or_init(|| {
        routes()
            .into_iter()
            .filter(|(method, path)| {
                !path.ends_with("/stream") && !(method == "POST" && path.ends_with("/call"))
            })
            .map(|(method, path)| (method.to_string(), path))
            .collect()
    })
}

/// `bytes` as they may stand in a request line: what it cannot carry percent-encoded, and in a
/// path segment also `/` and `?`.
fn encode(bytes: &[u8], segment: bool) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        let plain = b.is_ascii_graphic() && b != b'#' && !(segment && (b == b'/' || b == b'?'));
        if plain {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let routes = fuzzed_routes();
    let (method, template) = &routes[usize::from(pick) % routes.len()];
    let mut parts = rest.split(|b| *b == b'\n');
    let mut path = String::new();
    for segment in template.split('/').skip(1) {
        path.push('/');
        if segment.starts_with('{') {
            path.push_str(&encode(parts.next().unwrap_or(b"fuzz"), true));
        } else {
            path.push_str(segment);
        }
    }
    let query = parts.next().map(|q| encode(q, false)).unwrap_or_default();
    let body: Vec<u8> = parts.collect::<Vec<_>>().join(&b'\n');
    let target = if query.is_empty() {
        path
    } else {
        format!("{path}?{query}")
    };
    let mut request = format!(
        "{method} {target} HTTP/1.1\r\nhost: fuzz\r\nconnection: close\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    support::exchange(door(), &request);
});
