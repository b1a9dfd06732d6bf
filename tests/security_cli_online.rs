//! `brook user`, `brook token` and `brook acl` online as the built binary, over TLS with a
//! client certificate as the caller's principal (docs/security.md, "Managing users online").
//!
//! First a broker whose gRPC door is off: the commands reach its HTTP door with `--http-addr
//! https://...`, trusting the test CA (`--tls-ca`) and presenting the superuser's certificate
//! (`--tls-cert`, `--tls-key`; the server's `--tls-client-ca` makes its subject the principal):
//! they add a user, list users, add, list and remove an ACL, create, list and revoke a token,
//! and the token they made works (then stops working) on the door. Another certificate from
//! the same CA is authenticated but not allowed (403, said as needing Alter), a wrong password
//! in `--credentials-file` beats the certificate and is 401 (said as needing credentials), no
//! certificate fails the handshake the door requires, and addresses or TLS flags that cannot
//! work are refused before any request. Then the same data directory behind
//! a broker whose HTTP door is off: the same commands reach the gRPC door over TLS (`-s`) with
//! the same certificate, and see what the HTTP door changed.

#[path = "cli_support/mod.rs"]
mod cli_support;
mod security_support;

use std::path::Path;

use brook::server::{DoorKind, Listen, ServeConfig, Server};
use brook_broker::auth::Principal;
use cli_support::outcome;
use security_support::TestCa;

/// The superuser's certificate subject (RFC 4514 order, as the doors print it).
const ADMIN: &str = "User:O=brook-tests,CN=admin";

/// `brook ARGS` that must succeed; its stdout.
async fn brook_ok(args: &[&str], stdin: &str) -> String {
    let (ok, out, err) = outcome(args, stdin).await;
    assert!(ok, "brook {args:?} failed: {out}{err}");
    out
}

/// `brook ARGS` that must fail; its stderr.
async fn brook_err(args: &[&str]) -> String {
    let (ok, out, err) = outcome(args, "").await;
    assert!(!ok, "brook {args:?} must fail: {out}");
    err
}

/// `args` followed by `more`.
fn and<'a>(args: &[&'a str], more: &[&'a str]) -> Vec<&'a str> {
    let mut all = args.to_vec();
    all.extend_from_slice(more);
    all
}

/// A broker on `data` with TLS (client certificates from `clients` asked), auth on, `ADMIN` a
/// superuser, and only `door` on.
fn config(dir: &Path, data: &Path, ca: &TestCa, clients: &TestCa, door: DoorKind) -> ServeConfig {
    let (cert, key) = ca.server();
    let mut config = security_support::loopback_config(data);
    config.tls.cert = Some(security_support::write(dir, "server.pem", &cert));
    config.tls.key = Some(security_support::write(dir, "server.key", &key));
    config.tls.client_ca = Some(clients.write(dir, "client-ca.pem"));
    config.auth.enabled = true;
    config.auth.superusers = vec![Principal::parse(ADMIN).expect("principal")];
    config.kafka_addr = Listen::Off;
    if door == DoorKind::Http {
        config.grpc_addr = Listen::Off;
    } else {
        config.http_addr = Listen::Off;
    }
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_commands_reach_either_door_over_tls_as_their_client_certificate() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = TestCa::new("brook test CA");
    let clients = TestCa::new("brook client CA");
    let data = dir.path().join("data");
    security_support::create_users(&data, &["bob"]).await;
    let path = |name: &str, text: &str| {
        security_support::write(dir.path(), name, text)
            .to_str()
            .expect("utf-8")
            .to_owned()
    };
    let ca_file = path("ca.pem", &ca.pem);
    let admin = clients.client("admin");
    let (admin_cert, admin_key) = (path("admin.pem", &admin.0), path("admin.key", &admin.1));
    let carol = clients.client("carol");
    let (carol_cert, carol_key) = (path("carol.pem", &carol.0), path("carol.key", &carol.1));

    // The HTTP door alone.
    let server = Server::start(&config(dir.path(), &data, &ca, &clients, DoorKind::Http))
        .await
        .expect("server starts");
    assert!(
        server.addr(DoorKind::Grpc).is_none(),
        "the gRPC door is off"
    );
    let http = server.addr(DoorKind::Http).expect("HTTP");
    let url = format!("https://{http}");
    let as_admin = [
        "--http-addr",
        url.as_str(),
        "--tls-ca",
        ca_file.as_str(),
        "--tls-cert",
        admin_cert.as_str(),
        "--tls-key",
        admin_key.as_str(),
    ];

    let out = brook_ok(
        &and(&["user", "add", "carol", "--password-stdin"], &as_admin),
        "carol-pw\n",
    )
    .await;
    assert!(out.contains("user carol added"), "{out}");
    let users = brook_ok(&and(&["user", "list"], &as_admin), "").await;
    let names: Vec<&str> = users.lines().filter_map(|l| l.split('\t').next()).collect();
    assert_eq!(names, ["bob", "carol"], "{users}");
    assert!(users.contains("SCRAM-SHA-512"), "{users}");
    let out = brook_ok(
        &and(
            &[
                "acl",
                "add",
                "--principal",
                "User:carol",
                "--operation",
                "describe",
                "--cluster",
            ],
            &as_admin,
        ),
        "",
    )
    .await;
    assert!(out.contains("added: User:carol Allow Describe"), "{out}");
    let acls = brook_ok(
        &and(&["acl", "list", "--principal", "User:carol"], &as_admin),
        "",
    )
    .await;
    assert_eq!(acls.lines().count(), 1, "{acls}");

    // A token made through the HTTP door works there, and stops when revoked through it.
    let token = brook_ok(
        &and(&["token", "create", "carol", "--ttl", "1h"], &as_admin),
        "",
    )
    .await;
    let bearer = format!("Bearer {}", token.trim());
    // (The door asks every client for a certificate: carol's, which the token's header beats.)
    let as_carol_tls = Some((carol.0.as_str(), carol.1.as_str()));
    let mut conn = security_support::Https::connect(http, &ca.pem, as_carol_tls)
        .await
        .expect("connect");
    let topics = conn
        .request("GET", "/v1/topics", &[("authorization", &bearer)], None)
        .await
        .expect("request");
    assert_eq!(topics.status, 200, "{topics:?}");
    let tokens = brook_ok(&and(&["token", "list", "--user", "carol"], &as_admin), "").await;
    let id = tokens.split('\t').next().expect("an id").to_owned();
    let out = brook_ok(&and(&["token", "revoke", &id], &as_admin), "").await;
    assert!(out.contains("revoked"), "{out}");
    let mut conn = security_support::Https::connect(http, &ca.pem, as_carol_tls)
        .await
        .expect("connect");
    let revoked = conn
        .request("GET", "/v1/topics", &[("authorization", &bearer)], None)
        .await
        .expect("request");
    assert_eq!(revoked.status, 401, "revoked at once: {revoked:?}");

    // Refusals, in words that say what to do.
    let as_carol = [
        "--http-addr",
        url.as_str(),
        "--tls-ca",
        ca_file.as_str(),
        "--tls-cert",
        carol_cert.as_str(),
        "--tls-key",
        carol_key.as_str(),
    ];
    let err = brook_err(&and(&["user", "remove", "bob"], &as_carol)).await;
    assert!(err.contains("CN=carol") && err.contains("Alter"), "{err}");
    let wrong = path("wrong.creds", "bob:not-bobs\n");
    let err = brook_err(&and(
        &["user", "list", "--credentials-file", &wrong],
        &as_admin,
    ))
    .await;
    assert!(
        err.contains("--credentials-file"),
        "a wrong password beats the certificate: {err}"
    );
    let err = brook_err(&["user", "list", "--http-addr", &url, "--tls-ca", &ca_file]).await;
    assert!(
        err.contains("ertificate"),
        "the door asks for a certificate: {err}"
    );
    let err = brook_err(&["user", "list", "--http-addr", &url]).await;
    assert!(err.contains("--tls-ca"), "{err}");
    let plain = format!("http://{http}");
    let err = brook_err(&["user", "list", "--http-addr", &plain, "--tls-ca", &ca_file]).await;
    assert!(err.contains("https://"), "{err}");
    let err = brook_err(&["user", "list", "--http-addr", "localhost"]).await;
    assert!(err.contains("HOST:PORT"), "{err}");
    server.stop().await.expect("stops");

    // The gRPC door alone, on the same data: the same commands, the same certificate.
    let server = Server::start(&config(dir.path(), &data, &ca, &clients, DoorKind::Grpc))
        .await
        .expect("server starts");
    assert!(
        server.addr(DoorKind::Http).is_none(),
        "the HTTP door is off"
    );
    let grpc = server.addr(DoorKind::Grpc).expect("gRPC").to_string();
    let as_admin = [
        "-s",
        grpc.as_str(),
        "--tls-ca",
        ca_file.as_str(),
        "--tls-cert",
        admin_cert.as_str(),
        "--tls-key",
        admin_key.as_str(),
    ];
    let acls = brook_ok(&and(&["acl", "list"], &as_admin), "").await;
    assert!(acls.contains("User:carol Allow Describe"), "{acls}");
    let out = brook_ok(
        &and(&["acl", "remove", "--principal", "User:carol"], &as_admin),
        "",
    )
    .await;
    assert!(out.contains("removed: User:carol"), "{out}");
    let out = brook_ok(&and(&["user", "remove", "carol"], &as_admin), "").await;
    assert!(out.contains("user carol removed"), "{out}");
    let users = brook_ok(&and(&["user", "list"], &as_admin), "").await;
    assert_eq!(users.lines().count(), 1, "bob alone: {users}");
    let token = brook_ok(
        &and(&["token", "create", "bob", "--ttl", "1h"], &as_admin),
        "",
    )
    .await;
    assert!(token.trim().starts_with("brook_"), "{token}");
    let as_carol = [
        "-s",
        grpc.as_str(),
        "--tls-ca",
        ca_file.as_str(),
        "--tls-cert",
        carol_cert.as_str(),
        "--tls-key",
        carol_key.as_str(),
    ];
    let err = brook_err(&and(&["user", "list"], &as_carol)).await;
    assert!(err.contains("Describe"), "{err}");
    let err = brook_err(&and(
        &["user", "list", "--credentials-file", &wrong],
        &as_admin,
    ))
    .await;
    assert!(err.contains("--credentials-file"), "{err}");
    server.stop().await.expect("stops");
}
