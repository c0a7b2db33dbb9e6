//! The bound on idempotent producers a partition remembers (`producers_max` in
//! `strand_node::limits`): past it the producer silent longest is forgotten, its next batch is
//! taken as one from a producer never seen, and the partition goes on serving everyone.

use strand_node::Limits;
use strand_server::KafkaSettings;

use super::{Cluster, produce_raw, producer_id, wire};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn past_producers_max_the_producer_silent_longest_is_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start_with(
        dir.path(),
        KafkaSettings {
            limits: Limits {
                producers_max: 2,
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await;
    cluster.create_topic("forgetful", 1).await;
    let leader = cluster.leader("forgetful", 0).await;
    let mut conn = wire::Conn::open(cluster.kafka[leader]).await;
    let (a, b, c) = (
        producer_id(&mut conn).await,
        producer_id(&mut conn).await,
        producer_id(&mut conn).await,
    );

    // Three producers write in turn, with the same timestamps: the third one's batch makes
    // three, and `a`, which wrote first, is forgotten.
    for (producer, offset) in [(a, 0), (b, 3), (c, 6)] {
        let written = produce_raw(
            &mut conn,
            "forgetful",
            wire::idempotent_batch(producer, 0, 0, 3),
        )
        .await;
        assert_eq!(
            (written.error_code, written.base_offset),
            (0, offset),
            "producer {producer}"
        );
    }
    // The two remembered ones: a retry is answered with the offset it was written at.
    for (producer, offset) in [(b, 3), (c, 6)] {
        let retry = produce_raw(
            &mut conn,
            "forgetful",
            wire::idempotent_batch(producer, 0, 0, 3),
        )
        .await;
        assert_eq!(
            (retry.error_code, retry.base_offset),
            (0, offset),
            "retry of producer {producer}"
        );
    }
    // The forgotten one: its retry is taken as the first batch of a producer never seen, and
    // written again.
    let retry = produce_raw(&mut conn, "forgetful", wire::idempotent_batch(a, 0, 0, 3)).await;
    assert_eq!((retry.error_code, retry.base_offset), (0, 9));

    // Produce goes on: `a` is remembered again (and `b`, silent longest now, forgotten), and
    // the next batches of `a` and `c` follow their sequences.
    let next = produce_raw(&mut conn, "forgetful", wire::idempotent_batch(c, 0, 3, 1)).await;
    assert_eq!((next.error_code, next.base_offset), (0, 12));
    let next = produce_raw(&mut conn, "forgetful", wire::idempotent_batch(a, 0, 3, 1)).await;
    assert_eq!((next.error_code, next.base_offset), (0, 13));
    let retry = produce_raw(&mut conn, "forgetful", wire::idempotent_batch(a, 0, 3, 1)).await;
    assert_eq!((retry.error_code, retry.base_offset), (0, 13));
    cluster.shutdown().await;
}
