//! What a client sends to authenticate, on arbitrary bytes, through the broker's and the
//! doors' own parsers: a SCRAM exchange (client-first, then client-final) against a broker with
//! one user, an HTTP `authorization` header, and a bearer token. The first byte picks which;
//! for SCRAM the rest is the client-first message, a `\n`, then the client-final one, where
//! `@@` stands for the nonce the server answered (which the fuzzer cannot guess), so that the
//! checks behind the nonce's (the channel binding, the proof's length and value) are reached
//! too; in a token `@@` stands for the id of the user's one token, so that the lookup and the
//! secret's comparison are reached. Each must answer or refuse, never panic, and never let in
//! a client without the password or the token's secret. The doors slow an address after failures (brook-door's `auth`), so this target
//! calls the parsers directly rather than through a socket.
#![no_main]

use std::sync::OnceLock;

use brook_broker::auth::{Auth, AuthConfig, ScramMechanism};
use brook_door::auth::Credentials;
use libfuzzer_sys::fuzz_target;

const USER: &str = "fuzz";
const PASSWORD: &[u8] = b"fuzz-password";

/// The broker's users and tokens, and the id of the one token.
fn auth() -> &'static (Auth, String) {
    static AUTH: OnceLock<(Auth, String)> = OnceLock::new();
    AUTH.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let auth = Auth::in_memory(AuthConfig::enabled(Vec::new()));
            auth.create_user(USER, PASSWORD).await.expect("user");
            let (token, _secret) = auth.create_token(USER, 3_600_000).await.expect("token");
            (auth, token.id)
        })
    })
}

/// `data` with every `@@` replaced by `with`.
fn fill(data: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + with.len());
    let mut rest = data;
    while let Some(at) = rest.windows(2).position(|w| w == b"@@") {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(with);
        rest = &rest[at + 2..];
    }
    out.extend_from_slice(rest);
    out
}

/// The nonce in a server-first message (`r=NONCE,s=...,i=...`).
fn nonce(server_first: &[u8]) -> &[u8] {
    let rest = server_first
        .strip_prefix(b"r=")
        .expect("server-first starts with r=");
    let end = rest.iter().position(|b| *b == b',').unwrap_or(rest.len());
    &rest[..end]
}

fn scram(mechanism: ScramMechanism, data: &[u8]) {
    let split = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
    let (client_first, client_final) = (&data[..split], data.get(split + 1..).unwrap_or(&[]));
    let Ok((pending, server_first)) = auth().0.scram_start(mechanism, client_first) else {
        return;
    };
    let last = fill(client_final, nonce(&server_first));
    if let Ok((principal, _)) = auth().0.scram_finish(pending, &last) {
        // Only a proof made from the password gets here: the fuzzer would have to have found
        // the password (or broken the hash).
        panic!("a fuzzed SCRAM exchange authenticated {principal:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    match pick % 4 {
        0 => scram(ScramMechanism::Sha256, rest),
        1 => scram(ScramMechanism::Sha512, rest),
        2 => {
            let _ = Credentials::parse(&String::from_utf8_lossy(rest));
        }
        _ => {
            let (auth, id) = auth();
            let token = fill(rest, id.as_bytes());
            if let Some(principal) = auth.verify_token(&String::from_utf8_lossy(&token)) {
                panic!("a fuzzed token was accepted as {principal:?}");
            }
        }
    }
});
