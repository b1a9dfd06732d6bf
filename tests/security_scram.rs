//! SCRAM users managed online through the Kafka door (KIP-554: DescribeUserScramCredentials,
//! AlterUserScramCredentials; docs/security.md), by kafka-python's admin client
//! (tests/python/security_scram.py) against `brook::server::Server` with authentication on:
//! the superuser adds a user with both mechanisms, who can then log in; describe shows
//! mechanisms and iterations and never a secret; an unknown user, a bad iteration count and a
//! deletion of a missing credential get Kafka's per-user errors; a principal without `Alter` on
//! the cluster is refused; a deleted user can no longer log in.

mod kafka_support;
mod security_support;

use std::path::Path;
use std::time::Duration;

use brook::server::{DoorKind, Server};
use brook_broker::auth::{Auth, AuthConfig};
use kafka_support::python;
use serde_json::Value;

/// A server with authentication on, `User:admin` its superuser, and users `admin` and `alice`
/// created offline in its data directory.
async fn start(dir: &Path) -> Server {
    let data = dir.join("data");
    {
        let auth = Auth::open(&data, AuthConfig::default())
            .await
            .expect("security store");
        auth.create_user("admin", b"admin-secret")
            .await
            .expect("admin");
        auth.create_user("alice", b"alice-secret")
            .await
            .expect("alice");
    }
    let config = security_support::auth_config(&data);
    Server::start(&config).await.expect("server starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_python_adds_describes_and_deletes_scram_users_on_a_running_broker() {
    let dir = tempfile::tempdir().expect("dir");
    let server = start(dir.path()).await;
    let bootstrap = server.addr(DoorKind::Kafka).expect("Kafka").to_string();
    let output = tokio::task::spawn_blocking(move || {
        python::run_script("security_scram.py", &bootstrap, &[])
    })
    .await
    .expect("script task");
    let lines = python::json_lines(&output);
    let step = |name: &str| -> Value {
        lines
            .iter()
            .find(|l| l["step"] == name)
            .unwrap_or_else(|| panic!("no step {name} in {lines:?}"))
            .clone()
    };
    let both = |iterations: (u64, u64)| {
        serde_json::json!([
            ["SCRAM_SHA_256", iterations.0],
            ["SCRAM_SHA_512", iterations.1]
        ])
    };

    let before = step("all_before");
    assert_eq!(before["users"]["admin"]["mechanisms"], both((4096, 4096)));
    assert!(before["users"]["alice"].is_object(), "{before}");
    assert!(before["users"].get("carol").is_none(), "{before}");
    assert!(
        !before.to_string().contains("secret"),
        "no secret is answered"
    );

    assert_eq!(step("add_carol")["result"]["carol"], Value::Null, "added");
    let carol = step("carol");
    assert_eq!(carol["users"]["carol"]["error"], Value::Null);
    assert_eq!(carol["users"]["carol"]["mechanisms"], both((8192, 4096)));
    let login = step("carol_logs_in");
    assert_eq!(login["sha256"], true, "{login}");
    assert_eq!(login["sha512"], true, "{login}");
    assert_eq!(login["wrong"], false, "{login}");
    let auth = server.auth().expect("auth on");

    let unknown = step("unknown");
    let error = unknown["users"]["nobody"]["error"].to_string();
    assert!(error.contains("does not exist"), "{unknown}");
    let bad = step("bad_iterations")["result"]["dave"].to_string();
    assert!(bad.contains("iterations"), "{bad}");
    assert!(
        !auth.users().iter().any(|u| u.name == "dave"),
        "nothing stored"
    );
    let missing = step("delete_unknown")["result"]["nobody"].to_string();
    assert!(missing.contains("does not exist"), "{missing}");
    let denied = step("alice_alters")["result"]["mallory"].to_string();
    assert!(denied.contains("Alter on the cluster"), "{denied}");
    assert!(!auth.users().iter().any(|u| u.name == "mallory"));

    assert_eq!(step("delete_carol")["result"]["carol"], Value::Null);
    let after = step("all_after");
    assert!(after["users"].get("carol").is_none(), "{after}");
    assert_eq!(step("carol_after")["logs_in"], false);
    assert!(!auth.users().iter().any(|u| u.name == "carol"));

    tokio::time::timeout(Duration::from_secs(30), server.stop())
        .await
        .expect("stops in time")
        .expect("stops");
}
