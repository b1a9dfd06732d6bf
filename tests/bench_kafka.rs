//! `brook bench --protocol kafka` as the built binary. Without the `bench-kafka` feature it
//! refuses in one line that says how to rebuild, with exit code 2; with it, a tiny run beside
//! the gRPC door reports both doors' figures beside one baseline. No speed is asserted.

use std::process::{Command, Output};

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_brook"))
        .arg("bench")
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run brook bench")
}

#[cfg(not(feature = "bench-kafka"))]
#[test]
fn without_the_feature_kafka_exits_2_with_the_rebuild_hint() {
    let output = bench(&[
        "produce",
        "--protocol",
        "grpc,kafka",
        "--embedded",
        "--acks",
        "all",
    ]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(output.stdout.is_empty(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains("--features bench-kafka"), "{stderr}");
}

#[cfg(feature = "bench-kafka")]
#[test]
fn kafka_and_grpc_report_beside_one_baseline() {
    for workload in ["produce", "consume"] {
        let output = bench(&[
            workload,
            "--protocol",
            "grpc,kafka",
            "--acks",
            "all",
            "--embedded",
            "--json",
            "--durability",
            "none",
            "--records",
            "3000",
            "--partitions",
            "2",
        ]);
        assert!(output.status.success(), "{output:?}");
        let reports: serde_json::Value =
            serde_json::from_slice(&output.stdout).expect("stdout is JSON");
        let reports = reports.as_array().expect("one report per door");
        let doors: Vec<_> = reports.iter().map(|r| r["protocol"].clone()).collect();
        assert_eq!(doors, ["grpc", "kafka (acks=all)"], "{workload}");
        for report in reports {
            assert_eq!(report["records"].as_u64(), Some(3000), "{report}");
            assert_eq!(report["baseline"], reports[0]["baseline"], "one baseline");
            for key in ["records_per_sec", "mb_per_sec", "p50_us"] {
                let value = report[key].as_f64().unwrap_or_default();
                assert!(value > 0.0, "{key} in {report}");
            }
        }
    }
}
