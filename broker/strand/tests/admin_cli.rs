//! The `strand topic` and `strand cluster` commands, run as the real binary against an
//! in-process fake admin server with canned answers and typed errors.

// Cargo would build a file directly under `tests/` as a test target of its own, so the fixture
// lives in this target's directory.
#[path = "admin_cli/fake_admin.rs"]
mod fake_admin;

use std::process::Command;

use expect_test::{Expect, expect};
use serde_json::json;

use fake_admin::FakeServer as Fixture;

impl Fixture {
    /// Runs `strand ARGS --server <this server>`.
    fn strand(&self, args: &[&str]) -> Run {
        let mut all = args.to_vec();
        all.extend(["--server", &self.address]);
        strand(&all, &[])
    }
}

/// What one run of the binary did.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs the real binary with `args` and `env`, ignoring any `STRAND_SERVER` of the caller.
fn strand(args: &[&str], env: &[(&str, &str)]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_strand"))
        .args(args)
        .env_remove("STRAND_SERVER")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    Run {
        code: output.status.code(),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

impl Run {
    fn succeeded(self) -> Self {
        assert_eq!(self.code, Some(0), "strand failed: {self:?}");
        assert_eq!(self.stderr, "", "unexpected stderr");
        self
    }

    fn failed(self) -> Self {
        assert_ne!(self.code, Some(0), "strand succeeded: {self:?}");
        assert!(self.code.is_some(), "strand was killed: {self:?}");
        assert_eq!(self.stdout, "", "unexpected stdout");
        self
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {}", self.stdout))
    }
}

/// Runs a command that must succeed and compares its stdout with `expect`.
fn check(fixture: &Fixture, args: &[&str], expect: Expect) {
    expect.assert_eq(&fixture.strand(args).succeeded().stdout);
}

/// Runs a command that must fail and compares its stderr with `expect`.
fn check_error(fixture: &Fixture, args: &[&str], expect: Expect) {
    expect.assert_eq(&fixture.strand(args).failed().stderr);
}

#[test]
fn topic_list_prints_an_aligned_table_sorted_by_name() {
    check(
        &Fixture::start(),
        &["topic", "list"],
        expect![[r#"
            NAME      PARTITIONS  REPLICATION  TOPIC ID
            orders    3           3            6f1c0e2a-0000-4000-8000-000000000001
            payments  1           1            6f1c0e2a-0000-4000-8000-000000000002
        "#]],
    );
}

#[test]
fn topic_list_json_summarises_each_topic() {
    let run = Fixture::start()
        .strand(&["topic", "list", "-o", "json"])
        .succeeded();
    assert_eq!(
        run.json(),
        json!({"topics": [
            {"name": "orders", "topic_id": "6f1c0e2a-0000-4000-8000-000000000001",
             "partition_count": 3, "replication_factor": 3},
            {"name": "payments", "topic_id": "6f1c0e2a-0000-4000-8000-000000000002",
             "partition_count": 1, "replication_factor": 1},
        ]})
    );
}

#[test]
fn topic_describe_table_shows_partitions_and_a_dash_for_no_leader() {
    check(
        &Fixture::start(),
        &["topic", "describe", "orders"],
        expect![[r#"
            Topic: orders  Topic id: 6f1c0e2a-0000-4000-8000-000000000001  Partitions: 3  Replication factor: 3  Owner: strand.dev/Topic/shop/orders/0b5e7f2c  Config: cleanup.policy=delete,retention.ms=86400000
            PARTITION  LEADER  REPLICAS  HIGH-WATERMARK  LOG-START
            0          1       1,2,3     42              0
            1          2       2,3,1     142             1
            2          -       3,1,2     242             2
        "#]],
    );
}

#[test]
fn topic_describe_json_lists_every_partition() {
    let run = Fixture::start()
        .strand(&["topic", "describe", "orders", "-o", "json"])
        .succeeded();
    assert_eq!(
        run.json(),
        json!({
            "name": "orders",
            "topic_id": "6f1c0e2a-0000-4000-8000-000000000001",
            "cluster_id": "test-cluster",
            "replication_factor": 3,
            "config": {"cleanup.policy": "delete", "retention.ms": "86400000"},
            "owner": "strand.dev/Topic/shop/orders/0b5e7f2c",
            "internal": false,
            "partitions": [
                {"partition": 0, "leader": 1, "replicas": [1, 2, 3],
                 "high_watermark": 42, "log_start_offset": 0, "leaving": []},
                {"partition": 1, "leader": 2, "replicas": [2, 3, 1],
                 "high_watermark": 142, "log_start_offset": 1, "leaving": []},
                {"partition": 2, "leader": null, "replicas": [3, 1, 2],
                 "high_watermark": 242, "log_start_offset": 2, "leaving": []},
            ],
        })
    );
}

#[test]
fn topic_describe_yaml_has_the_json_fields() {
    check(
        &Fixture::start(),
        &["topic", "describe", "orders", "--output", "yaml"],
        expect![[r#"
            name: orders
            topic_id: 6f1c0e2a-0000-4000-8000-000000000001
            cluster_id: test-cluster
            replication_factor: 3
            config:
              cleanup.policy: delete
              retention.ms: "86400000"
            owner: strand.dev/Topic/shop/orders/0b5e7f2c
            internal: false
            partitions:
            - partition: 0
              leader: 1
              replicas:
              - 1
              - 2
              - 3
              high_watermark: 42
              log_start_offset: 0
              leaving: []
            - partition: 1
              leader: 2
              replicas:
              - 2
              - 3
              - 1
              high_watermark: 142
              log_start_offset: 1
              leaving: []
            - partition: 2
              leader: null
              replicas:
              - 3
              - 1
              - 2
              high_watermark: 242
              log_start_offset: 2
              leaving: []
        "#]],
    );
}

#[test]
fn topic_describe_names_internal_topics_and_no_owner_as_null() {
    let fixture = Fixture::start();
    check(
        &fixture,
        &["topic", "describe", "__consumer_offsets"],
        expect![[r#"
            Topic: __consumer_offsets (internal)  Topic id: 6f1c0e2a-0000-4000-8000-000000000004  Partitions: 1  Replication factor: 1  Owner: -  Config: cleanup.policy=compact
            PARTITION  LEADER  REPLICAS  HIGH-WATERMARK  LOG-START
            0          1       1         42              0
        "#]],
    );
    let run = fixture
        .strand(&["topic", "describe", "__consumer_offsets", "-o", "json"])
        .succeeded();
    assert_eq!(run.json()["owner"], json!(null));
    assert_eq!(run.json()["internal"], json!(true));
}

#[test]
fn topic_create_sends_partitions_replication_and_config() {
    let run = Fixture::start()
        .strand(&[
            "topic",
            "create",
            "clicks",
            "--partitions",
            "2",
            "--replication-factor",
            "3",
            "--config",
            "retention.ms=1000",
            "--config",
            "message.format=a=b",
            "-o",
            "json",
        ])
        .succeeded();
    let topic = run.json();
    assert_eq!(topic["name"], "clicks");
    assert_eq!(topic["replication_factor"], 3);
    assert_eq!(
        topic["config"],
        json!({"retention.ms": "1000", "message.format": "a=b"})
    );
    assert_eq!(topic["partitions"].as_array().unwrap().len(), 2);
}

#[test]
fn topic_create_defaults_to_one_partition_and_one_replica() {
    check(
        &Fixture::start(),
        &["topic", "create", "clicks"],
        expect![[r#"
            created topic clicks
            Topic: clicks  Topic id: 6f1c0e2a-0000-4000-8000-000000000003  Partitions: 1  Replication factor: 1  Owner: -  Config: -
            PARTITION  LEADER  REPLICAS  HIGH-WATERMARK  LOG-START
            0          1       1         0               0
        "#]],
    );
}

#[test]
fn topic_alter_adds_partitions_and_changes_config() {
    let run = Fixture::start()
        .strand(&[
            "topic",
            "alter",
            "orders",
            "--partitions",
            "4",
            "--config",
            "retention.ms=1000",
            "--delete-config",
            "cleanup.policy",
            "-o",
            "json",
        ])
        .succeeded();
    let topic = run.json();
    assert_eq!(topic["partitions"].as_array().unwrap().len(), 4);
    assert_eq!(topic["config"], json!({"retention.ms": "1000"}));
}

#[test]
fn topic_delete_reports_whether_the_topic_existed() {
    let fixture = Fixture::start();
    check(
        &fixture,
        &["topic", "delete", "orders"],
        expect![[r#"
            deleted topic orders
        "#]],
    );
    check(
        &fixture,
        &["topic", "delete", "ghost"],
        expect![[r#"
            topic ghost does not exist; nothing deleted
        "#]],
    );
    let run = fixture
        .strand(&["topic", "delete", "ghost", "-o", "json"])
        .succeeded();
    assert_eq!(run.json(), json!({"name": "ghost", "deleted": false}));
}

#[test]
fn cluster_describe_table_shows_brokers_and_the_controller() {
    check(
        &Fixture::start(),
        &["cluster", "describe"],
        expect![[r#"
            Cluster: test-cluster  Controller: broker 1  Under-replicated partitions: 1  Leaderless partitions: 1
            BROKER  STATE     ADDRESS               ADMIN                 RACK    LEADERS  REPLICAS  LEAVING  ALIVE
            0       active    broker-0.strand:9092  broker-0.strand:9093  zone-a  1        3         0        yes
            1       active    broker-1.strand:9092  broker-1.strand:9093  zone-b  2        3         0        yes
            2       draining  broker-2.strand:9092  broker-2.strand:9093  -       3        3         1        no
            Balancing: broker 2 draining: 1 replica left
        "#]],
    );
}

#[test]
fn cluster_describe_json_lists_brokers_and_the_controller_id() {
    let run = Fixture::start()
        .strand(&["cluster", "describe", "-o", "json"])
        .succeeded();
    let cluster = run.json();
    assert_eq!(cluster["controller_id"], 1);
    assert_eq!(cluster["cluster_id"], "test-cluster");
    assert_eq!(
        cluster["brokers"][0],
        json!({
            "broker_id": 0, "node_id": 1000, "state": "active",
            "kafka_address": "broker-0.strand:9092", "grpc_address": "broker-0.strand:9093",
            "rack": "zone-a", "leader_count": 1, "replica_count": 3, "leaving_count": 0,
            "alive": true,
        })
    );
    assert_eq!(cluster["balancing"], "broker 2 draining: 1 replica left");
    assert_eq!(cluster["brokers"][2]["rack"], serde_json::Value::Null);
}

#[test]
fn rebalance_dry_run_prints_the_plan() {
    check(
        &Fixture::start(),
        &["cluster", "rebalance", "--dry-run"],
        expect![[r#"
            1 replica moves (4096 bytes to copy), 1 leader transfers
            TOPIC   PARTITION  FROM   TO     BYTES
            orders  2          3,1,2  3,1,0  4096
            TOPIC   PARTITION  LEADER  NEW LEADER
            orders  2          -       3
        "#]],
    );
}

#[test]
fn decommission_without_waiting_reports_the_draining_broker() {
    let run = Fixture::start().strand(&["broker", "decommission", "2", "--no-wait"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(
        run.stderr,
        "broker 2 is draining; its replicas move to other brokers\n"
    );
}

#[test]
fn decommissioning_an_unknown_broker_is_explained() {
    let run = Fixture::start().strand(&["broker", "decommission", "9", "--no-wait"]);
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr
            .starts_with("error: no broker 9 is registered in this cluster"),
        "{}",
        run.stderr
    );
}

#[test]
fn not_controller_error_says_where_the_controller_is() {
    check_error(
        &Fixture::start(),
        &["topic", "create", "elsewhere"],
        expect![[r#"
            error: broker 0 is not the controller
            hint: the controller is broker 2 at broker-2.strand:9093; retry with --server broker-2.strand:9093
        "#]],
    );
}

#[test]
fn invalid_config_error_names_the_key() {
    check_error(
        &Fixture::start(),
        &["topic", "create", "clicks", "--config", "retention.bogus=1"],
        expect![[r#"
            error: unknown topic config `retention.bogus`
            hint: the rejected config key is `retention.bogus`
        "#]],
    );
}

#[test]
fn topic_exists_and_unknown_topic_errors_suggest_the_next_command() {
    let fixture = Fixture::start();
    check_error(
        &fixture,
        &["topic", "create", "orders"],
        expect![[r#"
            error: topic `orders` already exists
            hint: `strand topic describe NAME` shows the existing topic; `strand topic alter NAME` changes it
        "#]],
    );
    check_error(
        &fixture,
        &["topic", "describe", "ghost"],
        expect![[r#"
            error: unknown topic `ghost`
            hint: `strand topic list` shows the topics that exist
        "#]],
    );
}

#[test]
fn internal_topic_and_owner_refusals_say_what_is_allowed() {
    let fixture = Fixture::start();
    check_error(
        &fixture,
        &["topic", "delete", "__consumer_offsets"],
        expect![[r#"
            error: `__consumer_offsets` is an internal topic: it cannot be deleted
            hint: Strand keeps internal topics such as __consumer_offsets for itself: they cannot be deleted, re-partitioned, re-replicated or owned; their config can still be changed
        "#]],
    );
    check_error(
        &fixture,
        &["topic", "alter", "claimed", "--partitions", "3"],
        expect![[r#"
            error: topic `claimed` is managed by strand.dev/Topic/ns/a/uid1, not by strand.dev/Topic/ns/b/uid2
            hint: `strand topic describe NAME` shows who manages the topic; change it through its owner (for a Topic resource, edit the resource)
        "#]],
    );
}

#[test]
fn status_without_details_is_shown_by_its_message() {
    check_error(
        &Fixture::start(),
        &["topic", "describe", "broken"],
        expect![[r#"
            error: storage of partition broken-0 is unreadable
        "#]],
    );
}

#[test]
fn malformed_config_fails_before_any_call() {
    let fixture = Fixture::start();
    let run = fixture
        .strand(&["topic", "create", "clicks", "--config", "retention.ms"])
        .failed();
    assert!(
        run.stderr
            .contains("expected KEY=VALUE, got `retention.ms`"),
        "{}",
        run.stderr
    );
    let run = fixture
        .strand(&["topic", "create", "c", "--config", "a=1", "--config", "a=2"])
        .failed();
    assert_eq!(
        run.stderr,
        "error: config key `a` is given more than once\n"
    );
    let run = fixture.strand(&["topic", "alter", "orders"]).failed();
    assert!(
        run.stderr.starts_with("error: nothing to alter"),
        "{}",
        run.stderr
    );
    assert_eq!(fixture.calls(), 0, "a malformed command reached the server");
}

#[test]
fn unreachable_server_names_the_address_and_suggests_server_flag() {
    // A port that was free a moment ago; nothing listens on it now.
    let address = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let run = strand(&["topic", "list", "--server", &address], &[]).failed();
    assert!(
        run.stderr.starts_with(&format!(
            "error: could not reach the admin API at {address}: "
        )),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("hint: pass --server HOST:PORT or set STRAND_SERVER"),
        "{}",
        run.stderr
    );
}

#[test]
fn strand_server_environment_variable_sets_the_address() {
    let fixture = Fixture::start();
    let run = strand(&["topic", "list"], &[("STRAND_SERVER", &fixture.address)]).succeeded();
    assert!(run.stdout.starts_with("NAME"), "{}", run.stdout);
    assert_eq!(fixture.calls(), 1);
}

#[test]
fn describe_help_documents_the_json_fields() {
    let run = strand(&["topic", "describe", "--help"], &[]).succeeded();
    for field in [
        "topic_id",
        "partitions",
        "leader",
        "high_watermark",
        "log_start_offset",
    ] {
        assert!(run.stdout.contains(field), "{field} missing from help");
    }
    let run = strand(&["cluster", "describe", "--help"], &[]).succeeded();
    for field in [
        "controller_id",
        "broker_id",
        "state",
        "leader_count",
        "replica_count",
    ] {
        assert!(run.stdout.contains(field), "{field} missing from help");
    }
}
