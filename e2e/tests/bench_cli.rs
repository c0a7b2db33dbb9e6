//! `strand bench` against `strand dev`: what it produces, it reads back, and its JSON report
//! says so.

use std::process::Command;

fn bench(args: &[&str]) -> serde_json::Value {
    let output = Command::new(strand_e2e::strand_bin())
        .arg("bench")
        .args(args)
        .args(["-o", "json"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "strand bench {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn bench_produces_a_report_and_consume_reads_every_record_back() {
    let dev = strand_e2e::DevCluster::start(3);
    let produced = bench(&[
        "produce",
        "-b",
        &dev.bootstrap,
        "--topic",
        "bench-smoke",
        "--duration",
        "2",
        "--rate",
        "500",
        "--record-size",
        "100",
        "--keys",
        "10",
    ]);
    let records = produced["records"].as_u64().unwrap();
    assert!(records > 0, "{produced}");
    assert_eq!(produced["errors"], 0, "{produced}");
    assert!(
        produced["latency_ms"]["p99"].as_f64().unwrap() > 0.0,
        "{produced}"
    );
    let consumed = bench(&["consume", "-b", &dev.bootstrap, "--topic", "bench-smoke"]);
    assert_eq!(consumed["records"].as_u64().unwrap(), records, "{consumed}");
    // 100-byte values and keys key-0 .. key-9 (5 bytes each).
    assert_eq!(
        consumed["bytes"].as_u64().unwrap(),
        records * 105,
        "{consumed}"
    );
}
