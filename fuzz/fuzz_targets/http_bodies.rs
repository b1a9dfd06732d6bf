//! The HTTP door's JSON bodies on arbitrary bytes, end to end over a real socket: the first
//! byte picks the endpoint (produce JSON, produce NDJSON, create a topic, commit offsets,
//! alter a topic's config, add partitions, an atomic produce), the rest is the body, sent with its true
//! `Content-Length`. Every bad body must get a 4xx answer and change nothing it should not;
//! the door must never panic.
#![no_main]

#[path = "support.rs"]
mod support;

use std::net::SocketAddr;
use std::sync::OnceLock;

use brook_server::{Http, HttpConfig};
use libfuzzer_sys::fuzz_target;

/// Request-reply's call is left out: a well-formed one waits for its reply.
const ENDPOINTS: [(&str, &str, &str); 7] = [
    ("POST", "/v1/topics/fuzz/records", "application/json"),
    ("POST", "/v1/topics/fuzz/records", "application/x-ndjson"),
    ("POST", "/v1/topics", "application/json"),
    ("POST", "/v1/groups/fuzz-group/offsets", "application/json"),
    ("PATCH", "/v1/topics/fuzz/config", "application/json"),
    ("POST", "/v1/topics/fuzz/partitions", "application/json"),
    ("POST", "/v1/transactions", "application/json"),
];

fn door() -> SocketAddr {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| support::start_door::<Http>(HttpConfig::default()))
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let (method, path, content_type) = ENDPOINTS[usize::from(pick) % ENDPOINTS.len()];
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nhost: fuzz\r\nconnection: close\r\n\
         content-type: {content_type}\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    support::exchange(door(), &request);
});
