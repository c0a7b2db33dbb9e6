"""kafka-python against a Strand cluster: create a topic through the admin client, produce
keyed records with acks=all, read them back in a consumer group, commit and check the
committed offsets. Exits non-zero, with the reason, on the first thing that is not as Kafka
would have it. Usage: kafka_python_smoke.py BOOTSTRAP TOPIC"""

import sys
from collections import defaultdict

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic

RECORDS = 2000
PARTITIONS = 3


def fail(reason):
    print(f"kafka-python smoke test: {reason}", file=sys.stderr)
    sys.exit(1)


def main():
    bootstrap, topic = sys.argv[1], sys.argv[2]
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)
    admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=3)])
    if topic not in admin.list_topics():
        fail(f"topic {topic} is not listed after it was created")

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", retries=10)
    sent = [
        (f"key-{i % 37}".encode(), f"value-{i:05}".encode()) for i in range(RECORDS)
    ]
    futures = [producer.send(topic, key=k, value=v) for k, v in sent]
    producer.flush()
    acked = {}
    for (key, value), future in zip(sent, futures):
        meta = future.get(timeout=60)
        acked[(meta.partition, meta.offset)] = (key, value)
    producer.close()

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"{topic}-readers",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=20000,
    )
    read = {}
    for message in consumer:
        read[(message.partition, message.offset)] = (message.key, message.value)
        if len(read) == RECORDS:
            break
    if read != acked:
        missing = len(set(acked) - set(read))
        fail(f"read {len(read)} records, {missing} acknowledged ones missing or different")

    # Each key on one partition; each partition's values in the order they were sent.
    partitions_of = defaultdict(set)
    by_partition = defaultdict(list)
    for (partition, offset), (key, value) in sorted(read.items()):
        partitions_of[key].add(partition)
        by_partition[partition].append(value)
    if any(len(p) != 1 for p in partitions_of.values()):
        fail("a key landed on more than one partition")
    for partition, values in by_partition.items():
        if values != sorted(values):
            fail(f"partition {partition} holds values out of send order")

    consumer.commit()
    ends = consumer.end_offsets(list(consumer.assignment()))
    for tp, end in ends.items():
        committed = consumer.committed(tp)
        if committed != end:
            fail(f"partition {tp.partition}: committed {committed}, end offset {end}")
    consumer.close()
    print(f"kafka-python: {RECORDS} records produced, consumed and committed")


if __name__ == "__main__":
    main()
