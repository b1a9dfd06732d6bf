//! `brook bench` as the built binary: a tiny run of each workload against an embedded broker
//! prints one JSON object with every figure present and positive, beside its baseline. No
//! speed is asserted: speeds are for docs/benchmarks.md, not for tests.

use std::process::Command;

use serde_json::Value;

mod serve_child;

/// `brook bench ARGS` against an embedded broker.
fn bench(args: &[&str]) -> Value {
    bench_against(&["--embedded"], args)
}

/// `brook bench ARGS` against `target` (`--embedded`, or `--server URL`).
fn bench_against(target: &[&str], args: &[&str]) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_brook"))
        .arg("bench")
        .args(args)
        .args(target)
        .args(["--json", "--durability", "none"])
        .env_remove("RUST_LOG")
        .output()
        .expect("run brook bench");
    assert!(
        output.status.success(),
        "brook bench {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(stdout.lines().count(), 1, "one JSON object: {stdout}");
    serde_json::from_str(&stdout).expect("stdout is JSON")
}

fn positive(report: &Value, key: &str) -> f64 {
    let value = report[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing or not a number in {report}"));
    assert!(value > 0.0, "{key} = {value} in {report}");
    value
}

fn assert_figures(report: &Value, records: u64) {
    for key in [
        "records_per_sec",
        "mb_per_sec",
        "p50_us",
        "p99_us",
        "p999_us",
    ] {
        positive(report, key);
        positive(&report["baseline"], key);
    }
    for key in ["records_per_sec", "mb_per_sec", "p50", "p99", "p999"] {
        positive(&report["ratio"], key);
    }
    assert_eq!(report["records"].as_u64(), Some(records), "{report}");
    assert_eq!(report["baseline"]["records"].as_u64(), Some(records));
    assert!(positive(report, "p50_us") <= positive(report, "p999_us"));
}

#[test]
fn produce_reports_every_figure_beside_its_baseline() {
    let report = bench(&["produce", "--records", "2000"]);
    assert_figures(&report, 2000);
    assert_eq!(report["workload"], "produce");
    assert_eq!(report["protocol"], "grpc");
    assert_eq!(report["durability"], "none");
    let expected_mb = 2000.0 * 100.0 / 1e6;
    let mb_per_sec = positive(&report, "mb_per_sec");
    let elapsed = positive(&report, "elapsed_secs");
    assert!(
        (mb_per_sec * elapsed - expected_mb).abs() < 1e-6,
        "{report}"
    );
}

/// Against a separate server, a produce run also has its baseline with the server apart
/// (on threads of its own), with brook's ratio to it; an embedded one has not.
#[test]
fn produce_against_a_separate_server_reports_the_baseline_apart_too() {
    let data = tempfile::tempdir().expect("temporary directory");
    let dir = data.path().to_str().expect("utf-8 path");
    let server = serve_child::Served::start(&[
        "--data-dir",
        dir,
        "--grpc-addr",
        "127.0.0.1:0",
        "--kafka-addr",
        "off",
        "--http-addr",
        "off",
    ]);
    let url = format!("http://{}", server.addr("grpc"));
    let args = [
        "produce",
        "--records",
        "500",
        "--batch",
        "1",
        "--in-flight",
        "1",
    ];
    let report = bench_against(&["--server", &url], &args);
    server.stop();
    assert_figures(&report, 500);
    let apart = &report["baseline_apart"];
    for key in ["records_per_sec", "p50_us", "p99_us", "p999_us"] {
        positive(apart, key);
    }
    assert_eq!(apart["records"].as_u64(), Some(500), "{report}");
    assert!(apart["kind"].is_string(), "{report}");
    for key in ["records_per_sec", "p50", "p99", "p999"] {
        let ratio = positive(&apart["ratio"], key);
        let expected = positive(&report, &format!("{key}{}", suffix(key)))
            / positive(apart, &format!("{key}{}", suffix(key)));
        assert!(
            (ratio - expected).abs() < 1e-9,
            "{key}: {ratio} vs {expected}"
        );
    }

    let embedded = bench(&["produce", "--records", "500"]);
    assert!(embedded.get("baseline_apart").is_none(), "{embedded}");
}

/// The JSON key suffix of a figure a ratio is named after (`p50` -> `p50_us`).
fn suffix(ratio: &str) -> &'static str {
    match ratio {
        "records_per_sec" => "",
        _ => "_us",
    }
}

#[test]
fn consume_e2e_raw_batches_and_the_embedded_api_report_too() {
    let consume = bench(&[
        "consume",
        "--records",
        "3000",
        "--partitions",
        "2",
        "--consumers",
        "2",
        "--batch",
        "100",
    ]);
    assert_figures(&consume, 3000);

    let e2e = bench(&["e2e", "--records", "300", "--batch", "1", "--rate", "3000"]);
    assert_figures(&e2e, 300);
    assert_eq!(e2e["rate"].as_u64(), Some(3000));

    let raw = bench(&["consume", "--protocol", "grpc-raw", "--records", "2000"]);
    assert_figures(&raw, 2000);
    assert_eq!(raw["protocol"], "grpc-raw");

    let direct = bench(&["produce", "--protocol", "embedded", "--records", "2000"]);
    assert_figures(&direct, 2000);
    assert_eq!(direct["address"], "in-process");
    let direct_e2e = bench(&[
        "e2e",
        "--protocol",
        "embedded",
        "--records",
        "300",
        "--batch",
        "1",
        "--rate",
        "3000",
    ]);
    assert_figures(&direct_e2e, 300);
}

/// Runs `brook bench` with `args`, expects exit 2, returns stderr.
fn refused(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_brook"))
        .arg("bench")
        .args(args)
        .output()
        .expect("run brook bench");
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn impossible_plans_are_refused_with_one_line() {
    let stderr = refused(&[
        "consume",
        "--embedded",
        "--consumers",
        "3",
        "--partitions",
        "2",
    ]);
    assert!(
        stderr.starts_with("error: ") && stderr.contains("--consumers"),
        "{stderr}"
    );
    let stderr = refused(&["produce", "--protocol", "embedded", "--records", "10"]);
    assert!(stderr.contains("--embedded"), "{stderr}");
    let stderr = refused(&[
        "e2e",
        "--embedded",
        "--record-bytes",
        "4",
        "--records",
        "10",
    ]);
    assert!(stderr.contains("--record-bytes"), "{stderr}");
}
