"""kafka-python over TLS (Kafka's SSL security protocol, through Python's ssl module) against
a Strand cluster: create a topic, produce with acks=all, read back in a consumer group and
commit. Exits non-zero, with the reason, on the first thing that is not as Kafka would have
it. Usage: tls_smoke.py BOOTSTRAP CA_FILE"""

import sys

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic

RECORDS = 500
TOPIC = "over-tls"


def fail(reason):
    print(f"kafka-python over TLS: {reason}", file=sys.stderr)
    sys.exit(1)


def main():
    bootstrap, ca = sys.argv[1], sys.argv[2]
    tls = {"security_protocol": "SSL", "ssl_cafile": ca, "ssl_check_hostname": True}
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000, **tls)
    admin.create_topics([NewTopic(TOPIC, num_partitions=2, replication_factor=3)])
    admin.close()

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", retries=10, **tls)
    futures = [producer.send(TOPIC, value=f"value-{i:04}".encode()) for i in range(RECORDS)]
    producer.flush()
    acked = {}
    for i, future in enumerate(futures):
        meta = future.get(timeout=60)
        acked[(meta.partition, meta.offset)] = f"value-{i:04}".encode()
    producer.close()

    consumer = KafkaConsumer(
        TOPIC,
        bootstrap_servers=bootstrap,
        group_id="tls-readers",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=20000,
        **tls,
    )
    read = {}
    for message in consumer:
        read[(message.partition, message.offset)] = message.value
        if len(read) == RECORDS:
            break
    if read != acked:
        fail(f"read {len(read)} records; {len(set(acked) - set(read))} acknowledged ones missing")
    consumer.commit()
    consumer.close()
    print(f"kafka-python: {RECORDS} records over TLS produced, consumed and committed")


if __name__ == "__main__":
    main()
