//! kcat (librdkafka's command-line client) against `strand dev`: 10,000 keyed records in, and
//! the same records out, in order per partition.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn kcat() -> Command {
    let mut command = Command::new("kcat");
    command.stderr(Stdio::inherit());
    command
}

#[test]
fn kcat_produces_and_consumes_ten_thousand_keyed_records_against_strand_dev() {
    let dev = strand_e2e::DevCluster::start(3);
    let bootstrap = dev.bootstrap.clone();
    let admin = dev.admin.clone();
    let created = Command::new(strand_e2e::strand_bin())
        .args(["topic", "create", "smoke", "--partitions", "3"])
        .args(["--replication-factor", "3", "--server", &admin])
        .status()
        .unwrap();
    assert!(created.success(), "strand topic create failed");

    let input: Vec<(String, String)> = (0..10_000)
        .map(|i| (format!("key-{}", i % 101), format!("value-{i:05}")))
        .collect();
    let mut producer = kcat()
        .args(["-P", "-b", &bootstrap, "-t", "smoke", "-K", ":"])
        // Idempotence keeps each partition in send order across retries (a leader still
        // settling right after the topic is created makes the first sends retry).
        .args(["-X", "acks=all", "-X", "enable.idempotence=true"])
        .args(["-X", "broker.address.family=v4"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("kcat is installed (apt-get install kcat)");
    {
        let mut stdin = producer.stdin.take().unwrap();
        for (key, value) in &input {
            writeln!(stdin, "{key}:{value}").unwrap();
        }
    }
    assert!(producer.wait().unwrap().success(), "kcat -P failed");

    let deadline = Instant::now() + Duration::from_secs(60);
    let output = loop {
        let output = kcat()
            .args(["-C", "-b", &bootstrap, "-t", "smoke", "-e", "-q"])
            .args(["-X", "broker.address.family=v4"])
            .args(["-f", "%p\t%o\t%k\t%s\n"])
            .output()
            .unwrap();
        assert!(output.status.success(), "kcat -C failed");
        let text = String::from_utf8(output.stdout).unwrap();
        if text.lines().count() >= input.len() || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    // Per partition: offsets from 0 without a gap, and each key's values in the order sent.
    let mut partitions: BTreeMap<u32, Vec<(u64, String, String)>> = BTreeMap::new();
    for line in output.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        assert_eq!(fields.len(), 4, "unexpected line {line:?}");
        partitions
            .entry(fields[0].parse().unwrap())
            .or_default()
            .push((
                fields[1].parse().unwrap(),
                fields[2].to_string(),
                fields[3].to_string(),
            ));
    }
    let mut read = Vec::new();
    let mut partition_of_key = BTreeMap::new();
    for (partition, records) in &partitions {
        for (expected, (offset, key, value)) in records.iter().enumerate() {
            assert_eq!(*offset, expected as u64, "partition {partition}");
            let first = partition_of_key.entry(key.clone()).or_insert(*partition);
            assert_eq!(first, partition, "key {key} on two partitions");
            read.push((key.clone(), value.clone()));
        }
    }
    assert_eq!(read.len(), input.len(), "records read back");
    for key in partition_of_key.keys() {
        let sent: Vec<&String> = input
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v)
            .collect();
        let got: Vec<&String> = read
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v)
            .collect();
        assert_eq!(got, sent, "values of {key} in the order sent");
    }
    drop(dev);
}

#[test]
fn kcat_reads_and_writes_with_the_client_properties_of_strand_dev_secure() {
    let dev = strand_e2e::DevCluster::start_secure(3);
    let properties = dev
        .properties
        .clone()
        .expect("strand dev --secure prints its client properties file");
    let with_file = |args: &[&str]| {
        let mut command = kcat();
        command
            // The system's librdkafka (with OpenSSL), not the rdkafka crate's.
            .env_remove("LD_LIBRARY_PATH")
            .arg("-F")
            .arg(&properties)
            .args(["-X", "broker.address.family=v4"])
            .args(args);
        command
    };
    // The admin user may create topics by producing to them (`strand dev` auto-creates).
    let mut producer = with_file(&["-P", "-t", "secured", "-X", "acks=all"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("kcat is installed (apt-get install kcat)");
    {
        let mut stdin = producer.stdin.take().unwrap();
        for i in 0..500 {
            writeln!(stdin, "secured-{i:03}").unwrap();
        }
    }
    assert!(producer.wait().unwrap().success(), "kcat -P -F failed");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let output = with_file(&["-C", "-t", "secured", "-e", "-q"])
            .output()
            .unwrap();
        let lines = String::from_utf8_lossy(&output.stdout).lines().count();
        if output.status.success() && lines == 500 {
            break;
        }
        assert!(Instant::now() < deadline, "kcat -C -F read {lines} of 500");
        std::thread::sleep(Duration::from_millis(500));
    }
    let listed = with_file(&["-L"]).output().unwrap();
    assert!(String::from_utf8_lossy(&listed.stdout).contains("topic \"secured\""));

    // Without the properties: plaintext gets no metadata; SASL with a wrong password neither.
    let plain = kcat()
        .args(["-L", "-b", &dev.bootstrap, "-m", "5"])
        .args(["-X", "broker.address.family=v4"])
        .env_remove("LD_LIBRARY_PATH")
        .stderr(Stdio::null())
        .output()
        .unwrap();
    assert!(!plain.status.success(), "a plaintext client was served");
    let wrong = with_file(&["-L", "-m", "5", "-X", "sasl.password=wrong"])
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(!wrong.status.success(), "a wrong password was served");
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("Authentication failed"),
        "{}",
        String::from_utf8_lossy(&wrong.stderr)
    );
    drop(dev);
}
