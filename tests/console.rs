//! The web console in a real browser: a server with every door, seeded with topics, records
//! (JSON, binary, headers), a lagging consumer group and a request-reply responder, then
//! headless Chromium (Debian's `chromium`) driven by `playwright-core` through every page of
//! the console (tests/console/driver.mjs), checking what each shows and taking a screenshot.
//!
//! The test installs what it needs when it is missing: `chromium` with apt-get (as CI runs, as
//! root), `playwright-core` with npm into a cache under `target/`. If that cannot be done here
//! (no root, no registry), it says why and skips.
//!
//! Screenshots go to `target/tmp/console-shots`; to refresh the ones in `docs/console/`, run
//! `BROOK_CONSOLE_SHOTS=docs/console cargo test -p brook-cli --test console`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use brook::server::{DoorKind, Listen, ServeConfig, Server};
use brook_broker::reqreply::Answer;
use brook_broker::{NewTopic, OffsetCommit, ProduceRecord, Request};
use bytes::Bytes;

/// The playwright-core release the driver is written against.
const PLAYWRIGHT: &str = "playwright-core@1.65.1";
const CHROMIUM: &str = "/usr/bin/chromium";

/// What the driver runs with.
struct Tools {
    node: PathBuf,
    /// A file in the directory whose `node_modules` holds playwright-core.
    module: PathBuf,
}

fn run(command: &mut Command) -> Result<(), String> {
    let output = command
        .output()
        .map_err(|e| format!("cannot run {command:?}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        Err(format!(
            "{command:?} failed ({}): {}",
            output.status,
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        ))
    }
}

/// Installs Debian packages with apt-get (once the package lists are fresh).
fn apt_install(packages: &[&str]) -> Result<(), String> {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"));
    if !root {
        return Err(format!(
            "{} missing and not root to install it",
            packages.join(" ")
        ));
    }
    run(Command::new("apt-get").args(["update", "-qq"]))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

/// Chromium, Node and playwright-core, installed when missing.
fn prepare() -> Result<Tools, String> {
    if !Path::new(CHROMIUM).exists() {
        apt_install(&["chromium"])?;
    }
    let has = |tool: &str| {
        Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !has("node") || !has("npm") {
        apt_install(&["nodejs", "npm"])?;
    }
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-driver");
    let module = cache.join("package.json");
    let installed = cache.join("node_modules/playwright-core/package.json");
    if !installed.exists() {
        std::fs::create_dir_all(&cache)
            .map_err(|e| format!("cannot create {}: {e}", cache.display()))?;
        std::fs::write(&module, "{\"private\": true}\n").map_err(|e| e.to_string())?;
        run(Command::new("npm")
            .args([
                "install",
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
                PLAYWRIGHT,
            ])
            .current_dir(&cache))?;
    }
    Ok(Tools {
        node: PathBuf::from("node"),
        module,
    })
}

/// A server with every door but Kafka, on a directory of its own.
async fn start() -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("data dir");
    let mut config = ServeConfig::default();
    config.broker.data_dir = dir.path().to_path_buf();
    let any = Listen::On("127.0.0.1:0".parse().expect("address"));
    config.grpc_addr = any;
    config.kafka_addr = Listen::Off;
    config.http_addr = any;
    (Server::start(&config).await.expect("server"), dir)
}

/// What the driver expects to find: see the header of tests/console/driver.mjs.
async fn seed(server: &Server) {
    let broker = server.broker().expect("a local broker").clone();
    broker
        .create_topic(NewTopic::new("orders", 3))
        .await
        .expect("create orders");
    let orders: Vec<ProduceRecord> = (0..25)
        .map(|i| {
            let value = format!(
                "{{\"amount\":{},\"item\":\"tea\",\"line\":{i}}}",
                10 * (i + 1)
            );
            let mut record = ProduceRecord::keyed(format!("order-{i}"), value);
            record.headers = vec![("source".into(), Bytes::from_static(b"shop"))];
            record.partition = Some(0);
            record
        })
        .collect();
    broker
        .produce("orders", orders)
        .await
        .expect("produce orders");
    let mut binary = ProduceRecord::value(Bytes::from_static(&[0xff, 0xfe, 0x00, 0x01]));
    binary.partition = Some(1);
    broker
        .produce("orders", vec![binary])
        .await
        .expect("produce binary");
    broker
        .commit_offsets(
            "billing",
            vec![
                OffsetCommit::new("orders", 0, 5),
                OffsetCommit::new("orders", 1, 1),
            ],
        )
        .await
        .expect("commit");
    let responder = broker.clone();
    tokio::spawn(async move {
        responder
            .respond("echo", "echo-service", |request: Request| async move {
                let value = request.value.unwrap_or_default();
                let reply = format!("echo: {}", String::from_utf8_lossy(&value));
                Ok::<_, String>(Answer::value(reply))
            })
            .await
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_of_the_console_works_in_a_real_browser() {
    let tools = match tokio::task::spawn_blocking(prepare).await.expect("prepare") {
        Ok(tools) => tools,
        Err(why) => {
            eprintln!("skipping the console browser test: {why}");
            return;
        }
    };
    let (server, _dir) = start().await;
    seed(&server).await;
    let base = format!("http://{}", server.addr(DoorKind::Http).expect("HTTP door"));
    let shots = match std::env::var_os("BROOK_CONSOLE_SHOTS") {
        Some(dir) => Path::new(env!("CARGO_MANIFEST_DIR")).join(dir),
        None => Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-shots"),
    };
    std::fs::create_dir_all(&shots).expect("screenshot dir");
    let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/console/driver.mjs");
    let mut node = tokio::process::Command::new(&tools.node);
    node.arg(&driver)
        .arg(&base)
        .arg(&shots)
        .env("PLAYWRIGHT_MODULE", &tools.module)
        .env("CHROMIUM", CHROMIUM)
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(180), node.output())
        .await
        .expect("the driver finished in time")
        .expect("node ran");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the console driver failed ({}):\n{stdout}\n{stderr}\n(screenshots in {})",
        output.status,
        shots.display()
    );
    assert!(stdout.contains("every check passed"), "{stdout}");
    for page in [
        "topics",
        "topic",
        "topic-live-tail",
        "groups",
        "group",
        "call",
        "broker",
    ] {
        assert!(
            shots.join(format!("{page}.png")).exists(),
            "screenshot of {page}"
        );
    }
    // The reset the driver clicked moved the group's offsets in the broker itself.
    let group = server
        .broker()
        .expect("a local broker")
        .describe_group("billing")
        .expect("billing");
    assert!(
        group
            .offsets
            .iter()
            .all(|p| p.committed.as_ref().is_some_and(|c| c.offset == 0)),
        "{group:?}"
    );
    server.stop().await.expect("stop");
}

#[tokio::test]
async fn the_console_is_served_from_the_binary_with_a_strict_content_policy() {
    let (server, _dir) = start().await;
    let base = format!("http://{}", server.addr(DoorKind::Http).expect("HTTP door"));
    let page = reqwest::get(format!("{base}/")).await.expect("get /");
    assert_eq!(page.status(), 200);
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(policy.starts_with("default-src 'self'"), "{policy}");
    let html = page.text().await.expect("html");
    assert!(
        html.contains("/console/app.js") && !html.contains("<script>"),
        "{html}"
    );
    for (asset, kind) in [
        ("/console/app.js", "text/javascript"),
        ("/console/style.css", "text/css"),
    ] {
        let response = reqwest::get(format!("{base}{asset}")).await.expect("asset");
        assert_eq!(response.status(), 200, "{asset}");
        assert!(response.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with(kind));
    }
    let settings: serde_json::Value = reqwest::get(format!("{base}/console/api/settings"))
        .await
        .expect("settings")
        .json()
        .await
        .expect("JSON");
    assert_eq!(settings["broker"]["auto_create_topics"], true);
    assert_eq!(settings["topic_defaults"]["brook.durability"], "sync");
    // A reset of a group that does not exist, or with a bad target, is refused and moves nothing.
    let client = reqwest::Client::new();
    let bad = client
        .post(format!("{base}/console/api/groups/g/reset"))
        .json(&serde_json::json!({"to": "sideways"}))
        .send()
        .await
        .expect("reset");
    assert_eq!(bad.status(), 400);
    server.stop().await.expect("stop");
}
