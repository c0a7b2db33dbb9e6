//! An idempotent producer across leadership hand-overs and lapsed leases: every record is
//! delivered (none refused as out of order, which is fatal to the client), and the partition
//! holds each once, in the order sent.

use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord};
use strand_proto::admin::TransferLeadershipRequest;
use strand_proto::admin::admin_client::AdminClient;

use super::{Cluster, read_back};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_idempotent_producer_keeps_its_order_across_hand_overs_and_idle_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path(), false).await;
    cluster.create_topic("ordered", 1).await;
    let producer: FutureProducer = cluster
        .config()
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "1")
        .set("batch.num.messages", "20")
        .set("message.timeout.ms", "60000")
        .create()
        .unwrap();
    let bursts = 8usize;
    let per_burst = 300usize;
    let total = bursts * per_burst;
    let sending = tokio::spawn(async move {
        let mut deliveries = Vec::with_capacity(total);
        for burst in 0..bursts {
            for i in 0..per_burst {
                let value = format!("{:06}", burst * per_burst + i);
                let record = FutureRecord::to("ordered").key(&value).payload(&value);
                deliveries.push(producer.send_result(record).unwrap());
            }
            // Longer than the leader's lease (the longest election timeout): the partition is
            // idle, its lease lapses, and the next burst finds it so.
            tokio::time::sleep(Duration::from_millis(900)).await;
        }
        let mut failed = Vec::new();
        for delivery in deliveries {
            if let Err((e, _)) = delivery.await.unwrap() {
                failed.push(e.to_string());
            }
        }
        failed
    });
    // Leadership moves around the brokers while the bursts go on.
    let mut admin = AdminClient::connect(format!("http://{}", cluster.grpc[0]))
        .await
        .unwrap();
    for round in 0..6u32 {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let leader = cluster.leader("ordered", 0).await as u32;
        let to = (leader + 1 + round % 2) % 3;
        let moved = admin
            .transfer_leadership(TransferLeadershipRequest {
                topic: "ordered".into(),
                partition: 0,
                broker_id: to,
            })
            .await;
        eprintln!(
            "hand-over {round}: {leader} -> {to}: {:?}",
            moved.map(|_| ())
        );
    }
    let failed = sending.await.unwrap();
    assert!(failed.is_empty(), "records not delivered: {failed:?}");
    let config = cluster.config();
    let got = tokio::task::spawn_blocking(move || read_back(&config, "ordered", 1, total))
        .await
        .unwrap();
    let values: Vec<String> = got
        .iter()
        .map(|(_, _, _, v)| String::from_utf8(v.clone().unwrap_or_default()).unwrap())
        .collect();
    let expected: Vec<String> = (0..total).map(|i| format!("{i:06}")).collect();
    assert_eq!(values.len(), expected.len(), "records held");
    let first_wrong = values.iter().zip(&expected).position(|(a, b)| a != b);
    assert_eq!(first_wrong, None, "records out of order or repeated");
    cluster.shutdown().await;
}
