"""kafka-python against a Strand cluster: create a topic through the admin client, produce
keyed records with acks=all, read them back in a consumer group, commit and check the
committed offsets, then read `__consumer_offsets` as Kafka's tools do and find the commits and
the group's membership in Kafka's record format. Exits non-zero, with the reason, on the first
thing that is not as Kafka would have it. Usage: kafka_python_smoke.py BOOTSTRAP TOPIC"""

import struct
import sys
from collections import defaultdict

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka import errors as Errors
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
    group = f"{topic}-readers"
    first = TopicPartition(topic, 0)
    # OffsetDelete (KIP-496): refused for a topic the group's member subscribes to...
    try:
        refused = admin.delete_group_offsets(group, [first])
    except Exception as e:  # a top-level error, where Kafka gives a partition-level one
        fail(f"OffsetDelete of a subscribed topic: {e!r}")
    if refused.get(first) is not Errors.GroupSubscribedToTopicError:
        fail(f"OffsetDelete of a subscribed topic answered {refused}")
    consumer.close()
    # ...and taken once the group is empty: partition 0's offset is gone, the others stay.
    deleted = admin.delete_group_offsets(group, [first])
    if deleted.get(first) is not Errors.NoError:
        fail(f"OffsetDelete of an empty group's offset answered {deleted}")
    left = admin.list_group_offsets({group: None}).get(group, {})
    if first in left or len(left) != PARTITIONS - 1:
        fail(f"after OffsetDelete the group's offsets are {left}")
    ends = {tp.partition: end for tp, end in ends.items() if tp.partition != 0}
    check_offsets_topic(bootstrap, group, topic, ends)
    print(f"kafka-python: {RECORDS} records produced, consumed and committed")
    print(f"__consumer_offsets: group {group}'s commits and membership in Kafka's format")
    print("OffsetDelete: refused while subscribed, taken once the group is empty")


class Reader:
    """Kafka's fixed-width encodings (the versions of these records that are not flexible)."""

    def __init__(self, data):
        self.data, self.at = data, 0

    def take(self, fmt):
        (value,) = struct.unpack_from(fmt, self.data, self.at)
        self.at += struct.calcsize(fmt)
        return value

    def string(self):
        n = self.take(">h")
        if n < 0:
            return None
        value = self.data[self.at : self.at + n].decode()
        self.at += n
        return value

    def bytes(self):
        n = self.take(">i")
        value = self.data[self.at : self.at + max(n, 0)]
        self.at += max(n, 0)
        return value


def check_offsets_topic(bootstrap, group, topic, ends):
    """Reads `__consumer_offsets` from the start, decoding each record as Kafka's
    OffsetsMessageFormatter and GroupMetadataMessageFormatter would."""
    reader = KafkaConsumer(
        "__consumer_offsets",
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=5000,
    )
    offsets, memberships = {}, []
    for message in reader:
        key = Reader(message.key)
        kind = key.take(">h")
        if kind in (0, 1):
            g, t, p = key.string(), key.string(), key.take(">i")
            if (g, t) != (group, topic):
                continue
            if message.value is None:
                offsets.pop(p, None)
                continue
            value = Reader(message.value)
            version = value.take(">h")
            if version != 3:
                fail(f"an offset commit's value is version {version}, not 3")
            offsets[p] = value.take(">q")
            value.take(">i")  # leader epoch
            value.string()  # metadata
            value.take(">q")  # commit timestamp
        elif kind == 2:
            if key.string() != group or message.value is None:
                continue
            value = Reader(message.value)
            version = value.take(">h")
            if version != 3:
                fail(f"a group's metadata value is version {version}, not 3")
            protocol_type, generation = value.string(), value.take(">i")
            protocol, leader, _ = value.string(), value.string(), value.take(">q")
            members = []
            for _ in range(value.take(">i")):
                member_id, _instance = value.string(), value.string()
                _client, _host = value.string(), value.string()
                value.take(">i")
                value.take(">i")
                value.bytes()
                members.append((member_id, value.bytes()))
            memberships.append((protocol_type, generation, protocol, leader, members))
        else:
            fail(f"a key of unknown record type {kind} in __consumer_offsets")
    reader.close()
    if offsets != ends:
        fail(f"__consumer_offsets holds commits {offsets}, the consumer committed {ends}")
    # Stored when the assignment was handed out: the member, its leadership and what it was
    # assigned (and again, with no members, once it left).
    stored = [m for m in memberships if m[4]]
    if not stored:
        fail(f"no record of group {group} with its members in __consumer_offsets")
    protocol_type, generation, protocol, leader, members = stored[-1]
    if protocol_type != "consumer" or generation < 1 or not protocol:
        fail(f"group {group}'s record: type {protocol_type}, generation {generation}")
    if [leader] != [m for m, _ in members] or not members[0][1]:
        fail(f"group {group}'s record: leader {leader}, members {members}")


if __name__ == "__main__":
    main()
