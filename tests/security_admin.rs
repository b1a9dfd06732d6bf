//! Users and bearer tokens managed online (docs/security.md, "Managing users online"): a
//! running `brook::server` with `--auth on` and `User:admin` a superuser (made offline, as
//! `brook user add --data-dir` does, the only way to make the first one). Over real sockets:
//! the superuser creates a user through HTTP `/v1/users` and gRPC `CreateUser`, who logs in
//! (Basic) on the next request; a token made online works, and revoking it (or deleting its
//! user) refuses it on the next request; a password change takes effect at once. A user without
//! Alter on the cluster is refused (403 / PERMISSION_DENIED), no credentials get 401 /
//! UNAUTHENTICATED, and with authentication off the calls are refused with a clear error. The
//! `brook user` / `brook token` commands do the same through the real binary (`-s`).

mod security_support;

use std::path::Path;

use brook::server::{DoorKind, Server};
use brook_broker::auth::{Auth, AuthConfig};
use brook_proto::v1 as pb;
use brook_proto::v1::brook_client::BrookClient;
use tonic::Code;

/// `admin` (a superuser) and `bob` (no ACL), made offline; passwords `<name>-pw`.
async fn create_users(data_dir: &Path) {
    let auth = Auth::open(data_dir, AuthConfig::default())
        .await
        .expect("security store opens");
    for user in ["admin", "bob"] {
        auth.create_user(user, format!("{user}-pw").as_bytes())
            .await
            .expect("user");
    }
}

/// A loopback server on `data`; with `auth`, `User:admin` is a superuser.
async fn start(data: &Path, auth: bool) -> Server {
    let mut config = security_support::auth_config(data);
    config.auth.enabled = auth;
    Server::start(&config).await.expect("server starts")
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// A gRPC request carrying `authorization` (none when empty).
fn with<T>(authorization: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if !authorization.is_empty() {
        request
            .metadata_mut()
            .insert("authorization", authorization.parse().expect("ASCII"));
    }
    request
}

fn code<T>(answer: Result<T, tonic::Status>) -> Code {
    answer.map_or_else(|s| s.code(), |_| Code::Ok)
}

/// The HTTP door: `(status, JSON body or Null)` of `method path` with `authorization`.
struct Http {
    base: String,
    client: reqwest::Client,
}

impl Http {
    fn new(server: &Server) -> Self {
        Self {
            base: format!("http://{}", server.addr(DoorKind::Http).expect("on")),
            client: reqwest::Client::new(),
        }
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        authorization: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if !authorization.is_empty() {
            request = request.header("authorization", authorization);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("send");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
        )
    }

    /// The status of `GET /v1/topics` as `authorization`: 200 when it logs in.
    async fn login(&self, authorization: &str) -> u16 {
        self.send(reqwest::Method::GET, "/v1/topics", authorization, None)
            .await
            .0
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_superuser_manages_users_and_tokens_over_http_and_each_change_holds_at_once() {
    use reqwest::Method as M;
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    create_users(&data).await;
    let server = start(&data, true).await;
    let http = Http::new(&server);
    let admin = basic("admin", "admin-pw");
    let bob = basic("bob", "bob-pw");
    let carol = basic("carol", "carol-pw");

    assert_eq!(http.login(&carol).await, 401, "no carol yet");
    let new_carol = serde_json::json!({"name": "carol", "password": "carol-pw"});
    let (status, body) = http
        .send(M::POST, "/v1/users", &bob, Some(new_carol.clone()))
        .await;
    assert_eq!((status, &body["error_code"]), (403, &"forbidden".into()));
    assert_eq!(
        http.send(M::POST, "/v1/users", "", Some(new_carol.clone()))
            .await
            .0,
        401
    );
    let (status, body) = http
        .send(M::POST, "/v1/users", &admin, Some(new_carol.clone()))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["name"], "carol");
    assert_eq!(body["mechanisms"].as_array().expect("list").len(), 2);
    assert_eq!(http.login(&carol).await, 200, "carol logs in at once");
    assert_eq!(
        http.send(M::POST, "/v1/users", &admin, Some(new_carol))
            .await
            .0,
        409,
        "carol exists"
    );
    let (status, body) = http
        .send(
            M::POST,
            "/v1/users",
            &admin,
            Some(serde_json::json!({"name": "x", "password": ""})),
        )
        .await;
    assert_eq!(status, 400, "an empty password: {body}");

    // Listing: Describe on the cluster; names and mechanisms only.
    assert_eq!(http.send(M::GET, "/v1/users", &bob, None).await.0, 403);
    let (status, listed) = http.send(M::GET, "/v1/users", &admin, None).await;
    assert_eq!(status, 200);
    let names: Vec<&str> = listed["users"]
        .as_array()
        .expect("users")
        .iter()
        .filter_map(|u| u["name"].as_str())
        .collect();
    assert!(
        names.contains(&"carol") && names.contains(&"admin"),
        "{listed}"
    );
    let text = listed.to_string();
    for secret in ["carol-pw", "salt", "stored_key", "server_key"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }

    // A token made online works at once; revoked, it stops at once.
    let ttl = serde_json::json!({"user": "carol", "ttl_ms": 3_600_000});
    assert_eq!(
        http.send(M::POST, "/v1/tokens", &bob, Some(ttl.clone()))
            .await
            .0,
        403
    );
    let (status, token) = http.send(M::POST, "/v1/tokens", &admin, Some(ttl)).await;
    assert_eq!(status, 201, "{token}");
    let text = token["token_text"].as_str().expect("text").to_owned();
    let id = token["id"].as_str().expect("id").to_owned();
    let bearer = format!("Bearer {text}");
    assert_eq!(http.login(&bearer).await, 200, "the token works at once");
    let (_, tokens) = http
        .send(M::GET, "/v1/tokens?user=carol", &admin, None)
        .await;
    assert_eq!(tokens["tokens"][0]["id"], id.as_str(), "{tokens}");
    assert!(!tokens.to_string().contains(&text), "no secret listed");
    let (status, _) = http
        .send(
            M::POST,
            "/v1/tokens",
            &admin,
            Some(serde_json::json!({"user": "carol", "ttl_ms": 1})),
        )
        .await;
    assert_eq!(status, 400, "a TTL under a minute");
    assert_eq!(
        http.send(M::DELETE, &format!("/v1/tokens/{id}"), &bob, None)
            .await
            .0,
        403
    );
    assert_eq!(http.login(&bearer).await, 200, "bob revoked nothing");
    let (status, revoked) = http
        .send(M::DELETE, &format!("/v1/tokens/{id}"), &admin, None)
        .await;
    assert_eq!((status, &revoked["user"]), (200, &"carol".into()));
    assert_eq!(http.login(&bearer).await, 401, "revoked: refused at once");
    assert_eq!(
        http.send(M::DELETE, &format!("/v1/tokens/{id}"), &admin, None)
            .await
            .0,
        404
    );

    // A new password replaces the old at once.
    let new_password = serde_json::json!({"password": "carol-new"});
    assert_eq!(
        http.send(
            M::PUT,
            "/v1/users/carol/password",
            &bob,
            Some(new_password.clone())
        )
        .await
        .0,
        403
    );
    assert_eq!(
        http.send(
            M::PUT,
            "/v1/users/carol/password",
            &admin,
            Some(new_password)
        )
        .await
        .0,
        204
    );
    assert_eq!(http.login(&carol).await, 401, "the old password");
    let carol_new = basic("carol", "carol-new");
    assert_eq!(http.login(&carol_new).await, 200);

    // Deleting a user refuses it and its tokens at once.
    let (_, token) = http
        .send(
            M::POST,
            "/v1/tokens",
            &admin,
            Some(serde_json::json!({"user": "carol", "ttl_ms": 60_000})),
        )
        .await;
    let bearer = format!("Bearer {}", token["token_text"].as_str().expect("text"));
    assert_eq!(http.login(&bearer).await, 200);
    assert_eq!(
        http.send(M::DELETE, "/v1/users/carol", &bob, None).await.0,
        403
    );
    assert_eq!(
        http.send(M::DELETE, "/v1/users/carol", &admin, None)
            .await
            .0,
        204
    );
    assert_eq!(http.login(&carol_new).await, 401);
    assert_eq!(http.login(&bearer).await, 401, "its tokens went with it");
    assert_eq!(
        http.send(M::DELETE, "/v1/users/carol", &admin, None)
            .await
            .0,
        404
    );
    server.stop().await.expect("stops");

    // The changes were durable: after a restart the store holds them.
    let auth = Auth::open(&data, AuthConfig::default())
        .await
        .expect("store");
    assert!(auth.users().iter().all(|u| u.name != "carol"));
    assert!(auth.tokens(None).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_superuser_manages_users_and_tokens_over_grpc_and_others_are_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    create_users(&data).await;
    let server = start(&data, true).await;
    let url = format!("http://{}", server.addr(DoorKind::Grpc).expect("on"));
    let mut grpc = BrookClient::connect(url).await.expect("gRPC connects");
    let admin = basic("admin", "admin-pw");
    let bob = basic("bob", "bob-pw");
    let dave = basic("dave", "dave-pw");
    let new_dave = || pb::CreateUserRequest {
        name: "dave".into(),
        password: bytes::Bytes::from_static(b"dave-pw"),
    };

    assert_eq!(
        code(grpc.create_user(with("", new_dave())).await),
        Code::Unauthenticated
    );
    assert_eq!(
        code(grpc.create_user(with(&bob, new_dave())).await),
        Code::PermissionDenied
    );
    let created = grpc
        .create_user(with(&admin, new_dave()))
        .await
        .expect("the superuser creates dave")
        .into_inner();
    assert_eq!(created.user.expect("user").name, "dave");
    assert_eq!(
        code(grpc.create_user(with(&admin, new_dave())).await),
        Code::AlreadyExists
    );
    grpc.list_topics(with(&dave, pb::ListTopicsRequest {}))
        .await
        .expect("dave logs in at once");

    assert_eq!(
        code(grpc.list_users(with(&bob, pb::ListUsersRequest {})).await),
        Code::PermissionDenied
    );
    let users = grpc
        .list_users(with(&admin, pb::ListUsersRequest {}))
        .await
        .expect("list")
        .into_inner()
        .users;
    let dave_listed = users.iter().find(|u| u.name == "dave").expect("dave");
    assert!(
        dave_listed
            .mechanisms
            .iter()
            .any(|m| m.starts_with("SCRAM-SHA-512(")),
        "{dave_listed:?}"
    );

    let token_for_dave = || pb::CreateTokenRequest {
        user: "dave".into(),
        ttl_ms: 3_600_000,
    };
    assert_eq!(
        code(grpc.create_token(with(&bob, token_for_dave())).await),
        Code::PermissionDenied
    );
    let token = grpc
        .create_token(with(&admin, token_for_dave()))
        .await
        .expect("token")
        .into_inner();
    let record = token.token.expect("record");
    let bearer = format!("Bearer {}", token.text);
    grpc.list_topics(with(&bearer, pb::ListTopicsRequest {}))
        .await
        .expect("the token works at once");
    let listed = grpc
        .list_tokens(with(
            &admin,
            pb::ListTokensRequest {
                user: Some("dave".into()),
            },
        ))
        .await
        .expect("list")
        .into_inner()
        .tokens;
    assert_eq!(listed, vec![record.clone()]);
    assert_eq!(
        code(
            grpc.revoke_token(with(
                &bob,
                pb::RevokeTokenRequest {
                    id: record.id.clone()
                }
            ))
            .await
        ),
        Code::PermissionDenied
    );
    grpc.revoke_token(with(
        &admin,
        pb::RevokeTokenRequest {
            id: record.id.clone(),
        },
    ))
    .await
    .expect("revoked");
    assert_eq!(
        code(
            grpc.list_topics(with(&bearer, pb::ListTopicsRequest {}))
                .await
        ),
        Code::Unauthenticated,
        "a revoked token stops at once"
    );
    assert_eq!(
        code(
            grpc.revoke_token(with(&admin, pb::RevokeTokenRequest { id: record.id }))
                .await
        ),
        Code::NotFound
    );

    let new_password = |who: &str| pb::SetPasswordRequest {
        name: who.into(),
        password: bytes::Bytes::from_static(b"dave-new"),
    };
    assert_eq!(
        code(grpc.set_password(with(&bob, new_password("dave"))).await),
        Code::PermissionDenied
    );
    grpc.set_password(with(&admin, new_password("dave")))
        .await
        .expect("changed");
    assert_eq!(
        code(
            grpc.list_topics(with(&dave, pb::ListTopicsRequest {}))
                .await
        ),
        Code::Unauthenticated,
        "the old password"
    );
    assert_eq!(
        code(
            grpc.set_password(with(&admin, new_password("nobody")))
                .await
        ),
        Code::NotFound
    );
    let remove = || pb::DeleteUserRequest {
        name: "dave".into(),
    };
    assert_eq!(
        code(grpc.delete_user(with(&bob, remove())).await),
        Code::PermissionDenied
    );
    grpc.delete_user(with(&admin, remove()))
        .await
        .expect("deleted");
    assert_eq!(
        code(
            grpc.list_topics(with(&basic("dave", "dave-new"), pb::ListTopicsRequest {}))
                .await
        ),
        Code::Unauthenticated
    );
    server.stop().await.expect("stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_authentication_off_the_user_calls_are_refused_and_say_why() {
    let dir = tempfile::tempdir().expect("dir");
    let server = start(&dir.path().join("data"), false).await;
    let url = format!("http://{}", server.addr(DoorKind::Grpc).expect("on"));
    let mut grpc = BrookClient::connect(url).await.expect("gRPC connects");
    let refused = grpc
        .create_user(pb::CreateUserRequest {
            name: "eve".into(),
            password: bytes::Bytes::from_static(b"eve-pw"),
        })
        .await
        .expect_err("auth off");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused.message().contains("--auth on"), "{refused:?}");
    assert_eq!(
        code(
            grpc.create_token(pb::CreateTokenRequest {
                user: "eve".into(),
                ttl_ms: 60_000
            })
            .await
        ),
        Code::FailedPrecondition
    );
    let http = Http::new(&server);
    let (status, body) = http
        .send(
            reqwest::Method::POST,
            "/v1/users",
            "",
            Some(serde_json::json!({"name": "eve", "password": "eve-pw"})),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body["message"]
            .as_str()
            .expect("message")
            .contains("--auth on"),
        "{body}"
    );
    assert_eq!(
        http.send(reqwest::Method::GET, "/v1/tokens", "", None)
            .await
            .0,
        400
    );
    server.stop().await.expect("stops");
}

/// Runs the `brook` binary with `args` and `stdin`: (success, stdout, stderr).
async fn brook_cli(args: Vec<String>, stdin: &'static str) -> (bool, String, String) {
    tokio::task::spawn_blocking(move || {
        use std::io::Write as _;
        use std::process::{Command, Stdio};
        let mut child = Command::new(env!("CARGO_BIN_EXE_brook"))
            .args(&args)
            .env_remove("BROOK_SERVER")
            .env_remove("BROOK_CONTEXT")
            .env_remove("BROOK_CREDENTIALS_FILE")
            .env("HOME", std::env::temp_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run brook");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.as_bytes())
            .expect("write stdin");
        let output = child.wait_with_output().expect("brook ends");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    })
    .await
    .expect("join")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brook_user_and_token_work_online_through_the_running_broker() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    create_users(&data).await;
    let server = start(&data, true).await;
    let grpc = server.addr(DoorKind::Grpc).expect("on").to_string();
    let http = Http::new(&server);
    let admin_file = dir.path().join("admin.credentials");
    std::fs::write(&admin_file, "admin:admin-pw\n").expect("write");
    let bob_file = dir.path().join("bob.credentials");
    std::fs::write(&bob_file, "bob:bob-pw\n").expect("write");
    let cli = |words: &[&str], credentials: Option<&Path>| {
        let mut args: Vec<String> = vec!["-s".into(), grpc.clone()];
        args.extend(words.iter().map(|w| (*w).to_owned()));
        if let Some(file) = credentials {
            args.push("--credentials-file".into());
            args.push(file.to_str().expect("utf-8").into());
        }
        args
    };

    let (ok, _, err) = brook_cli(
        cli(&["user", "add", "erin", "--password-stdin"], None),
        "erin-pw\n",
    )
    .await;
    assert!(!ok);
    assert!(err.contains("--credentials-file"), "{err}");
    let (ok, _, err) = brook_cli(
        cli(
            &["user", "add", "erin", "--password-stdin"],
            Some(&bob_file),
        ),
        "erin-pw\n",
    )
    .await;
    assert!(!ok);
    assert!(err.contains("Alter on the cluster"), "{err}");
    let (ok, out, err) = brook_cli(
        cli(
            &["user", "add", "erin", "--password-stdin"],
            Some(&admin_file),
        ),
        "erin-pw\n",
    )
    .await;
    assert!(ok, "{err}");
    assert!(out.contains("user erin added"), "{out}");
    let erin = basic("erin", "erin-pw");
    assert_eq!(http.login(&erin).await, 200, "erin logs in at once");
    let (ok, out, _) = brook_cli(cli(&["user", "list"], Some(&admin_file)), "").await;
    assert!(ok);
    assert!(
        out.lines().any(|l| l.starts_with("erin\tSCRAM-SHA-")),
        "{out}"
    );
    assert!(!out.contains("erin-pw"));

    let (ok, out, err) = brook_cli(
        cli(
            &["token", "create", "erin", "--ttl", "1h"],
            Some(&admin_file),
        ),
        "",
    )
    .await;
    assert!(ok, "{err}");
    let text = out.trim().to_owned();
    let bearer = format!("Bearer {text}");
    assert_eq!(http.login(&bearer).await, 200, "the token works at once");
    let (ok, out, _) = brook_cli(
        cli(&["token", "list", "--user", "erin"], Some(&admin_file)),
        "",
    )
    .await;
    assert!(ok);
    let id = out.split('\t').next().expect("id").to_owned();
    assert!(text.starts_with(&format!("brook_{id}_")), "{out} / {text}");

    // A token in the credentials file is sent as Bearer: one for admin lists too.
    let (ok, out, err) = brook_cli(
        cli(
            &["token", "create", "admin", "--ttl", "10m"],
            Some(&admin_file),
        ),
        "",
    )
    .await;
    assert!(ok, "{err}");
    let token_file = dir.path().join("admin.token");
    std::fs::write(&token_file, out).expect("write");
    let (ok, out, err) = brook_cli(cli(&["token", "revoke", &id], Some(&token_file)), "").await;
    assert!(ok, "{err}");
    assert!(out.contains("revoked"), "{out}");
    assert_eq!(http.login(&bearer).await, 401, "revoked: refused at once");

    let (ok, _, err) = brook_cli(
        cli(
            &["user", "passwd", "erin", "--password-stdin"],
            Some(&admin_file),
        ),
        "erin-new\n",
    )
    .await;
    assert!(ok, "{err}");
    assert_eq!(http.login(&erin).await, 401);
    assert_eq!(http.login(&basic("erin", "erin-new")).await, 200);
    let (ok, _, err) = brook_cli(cli(&["user", "remove", "erin"], Some(&admin_file)), "").await;
    assert!(ok, "{err}");
    assert_eq!(http.login(&basic("erin", "erin-new")).await, 401);

    // Offline on the directory of the running broker: refused (the store is locked).
    let (ok, _, err) = brook_cli(
        vec![
            "user".into(),
            "list".into(),
            "--data-dir".into(),
            data.to_str().expect("utf-8").into(),
        ],
        "",
    )
    .await;
    assert!(!ok);
    assert!(err.contains("locked"), "{err}");
    server.stop().await.expect("stops");
}
