//! kafka-python (a pure-Python Kafka client, not librdkafka) against `strand dev`: its admin
//! client creates a topic, its producer writes keyed records with acks=all, and a consumer
//! group reads them back and commits; OffsetDelete is refused while the group subscribes to the
//! topic and taken once it is empty; `__consumer_offsets` read back holds the commits and the
//! group's membership in Kafka's format (`e2e/python/kafka_python_smoke.py` does the checking).

use std::process::Command;

#[test]
fn kafka_python_creates_produces_consumes_and_commits_against_strand_dev() {
    let dev = strand_e2e::DevCluster::start(3);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/kafka_python_smoke.py");
    let output = Command::new("python3")
        .args([script, &dev.bootstrap, "pysmoke"])
        .output()
        .expect("python3 runs (kafka-python: `python3 -m pip install kafka-python`)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "kafka-python smoke test failed:\n{stderr}"
    );
    assert!(stdout.contains("2000 records produced, consumed and committed"));
    // Every topic config key Kafka defines, created and described back with its source.
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/topic_configs.py");
    let output = Command::new("python3")
        .args([script, &dev.bootstrap])
        .output()
        .expect("python3 runs");
    println!("{}", String::from_utf8_lossy(&output.stdout));
    assert!(
        output.status.success(),
        "topic config test failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
