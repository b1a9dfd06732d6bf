//! `brook user` and `brook token` as the built binary, against `brook serve --auth on`: a user
//! added offline logs in over HTTP Basic and a token created offline over Bearer; a wrong
//! password is refused; the store is refused to the tools while a broker holds it; a removed
//! user and a revoked token are refused after the restart. Listings never show a secret.

#[path = "cli_support/mod.rs"]
mod cli_support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;

use base64::Engine as _;
use cli_support::{brook_command, ok, run, PATIENCE};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;

/// `brook ARGS --data-dir DATA` run to the end with `stdin`.
async fn brook_on(data: &Path, args: &[&str], stdin: &[u8]) -> std::process::Output {
    let mut all = args.to_vec();
    all.extend_from_slice(&["--data-dir", data.to_str().expect("utf-8 path")]);
    run(brook_command(&all), stdin).await
}

/// `brook serve --auth on` on `data` with only the HTTP and gRPC doors, on port 0: the child
/// (killed when dropped) and the HTTP door's base URL.
async fn serve(data: &Path) -> (Child, String) {
    let mut child = brook_command(&[
        "serve",
        "--data-dir",
        data.to_str().expect("utf-8 path"),
        "--auth",
        "on",
        "--grpc-addr",
        "127.0.0.1:0",
        "--http-addr",
        "127.0.0.1:0",
        "--kafka-addr",
        "off",
        "--log-level",
        "warn",
    ])
    .stderr(Stdio::null())
    .spawn()
    .expect("spawn brook serve");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut http: Option<SocketAddr> = None;
    let ready = async {
        while let Some(line) = lines.next_line().await.expect("read stdout") {
            if let Some(addr) = line.strip_prefix("brook: http listening on ") {
                http = Some(addr.parse().expect("HTTP address"));
            } else if line.starts_with("brook: ready") {
                return;
            }
        }
        panic!("brook serve ended before it was ready");
    };
    tokio::time::timeout(PATIENCE, ready)
        .await
        .expect("brook serve got ready in time");
    // Keep reading, so the server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let http = http.expect("an HTTP listening line");
    (child, format!("http://{http}"))
}

/// The status of `GET /v1/topics` with `authorization: <header>`.
async fn status(base: &str, header: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{base}/v1/topics"))
        .header("authorization", header)
        .send()
        .await
        .expect("HTTP request")
        .status()
        .as_u16()
}

fn basic(user: &str, password: &str) -> String {
    let pair = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {pair}")
}

#[tokio::test]
async fn users_and_tokens_made_offline_log_in_and_removed_ones_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path();

    ok(brook_on(
        data,
        &["user", "add", "alice", "--password-stdin"],
        b"alice-secret\n",
    )
    .await);
    ok(brook_on(
        data,
        &["user", "add", "bob", "--password-stdin"],
        b"bob-secret",
    )
    .await);
    let again = brook_on(
        data,
        &["user", "add", "alice", "--password-stdin"],
        b"other\n",
    )
    .await;
    assert!(!again.status.success(), "a second alice is refused");
    let no_stdin_flag = brook_on(data, &["user", "add", "carol"], b"").await;
    assert!(
        !no_stdin_flag.status.success(),
        "a password comes only from --password-stdin"
    );
    let empty = brook_on(data, &["user", "add", "carol", "--password-stdin"], b"\n").await;
    assert!(!empty.status.success(), "an empty password is refused");

    let users = ok(brook_on(data, &["user", "list"], b"").await);
    assert!(
        users.contains("alice\t") && users.contains("bob\t"),
        "{users}"
    );
    assert!(users.contains("SCRAM-SHA-256") && users.contains("SCRAM-SHA-512"));
    assert!(
        !users.contains("carol") && !users.contains("secret"),
        "{users}"
    );

    let created = brook_on(data, &["token", "create", "alice", "--ttl", "1h"], b"").await;
    let token = ok(created).trim().to_owned();
    assert!(token.starts_with("brook_"), "{token}");
    let tokens = ok(brook_on(data, &["token", "list"], b"").await);
    let id = tokens
        .lines()
        .find(|line| line.contains("\talice\t"))
        .and_then(|line| line.split('\t').next())
        .expect("alice's token listed")
        .to_owned();
    assert!(token.contains(&id) && !tokens.contains(&token), "{tokens}");
    let nobody = brook_on(data, &["token", "create", "nobody"], b"").await;
    assert!(!nobody.status.success(), "no token for an unknown user");

    let (server, base) = serve(data).await;
    assert_eq!(status(&base, &basic("alice", "alice-secret")).await, 200);
    assert_eq!(status(&base, &basic("bob", "bob-secret")).await, 200);
    assert_eq!(status(&base, &format!("Bearer {token}")).await, 200);
    assert_eq!(status(&base, &basic("alice", "wrong")).await, 401);
    assert_eq!(status(&base, &basic("carol", "whatever")).await, 401);

    let busy = brook_on(data, &["user", "remove", "bob"], b"").await;
    assert!(!busy.status.success(), "the store is the running broker's");
    let said = String::from_utf8_lossy(&busy.stderr);
    assert!(said.contains("running broker"), "{said}");
    drop(server);
    // Wait for the killed server to let go of the store.
    let removed = async {
        loop {
            let output = brook_on(data, &["user", "remove", "bob"], b"").await;
            if output.status.success() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(PATIENCE, removed)
        .await
        .expect("bob removed once the server is gone");
    ok(brook_on(data, &["token", "revoke", &id], b"").await);
    let users = ok(brook_on(data, &["user", "list"], b"").await);
    assert!(
        users.contains("alice\t") && !users.contains("bob"),
        "{users}"
    );
    assert_eq!(ok(brook_on(data, &["token", "list"], b"").await), "");

    let (_server, base) = serve(data).await;
    assert_eq!(status(&base, &basic("alice", "alice-secret")).await, 200);
    assert_eq!(status(&base, &basic("bob", "bob-secret")).await, 401);
    assert_eq!(status(&base, &format!("Bearer {token}")).await, 401);
}
