"""Every topic config key Kafka defines, through kafka-python's admin client against a Strand
cluster: a topic created with all of them, each set away from its default, describes them
back with their values and the source TOPIC_CONFIG; a topic without them describes Kafka's
defaults with the source DEFAULT_CONFIG; a value of the wrong type or out of range is refused
with INVALID_CONFIG naming the key. Exits non-zero, with the reason, on the first thing that
is not as Kafka would have it. Usage: topic_configs.py BOOTSTRAP"""

import sys

from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.errors import InvalidConfigurationError

# Every key, with a value other than Kafka's default.
EVERY_KEY = {
    "cleanup.policy": "compact,delete",
    "compression.gzip.level": "5",
    "compression.lz4.level": "12",
    "compression.type": "zstd",
    "compression.zstd.level": "7",
    "delete.retention.ms": "3600000",
    "file.delete.delay.ms": "30000",
    "flush.messages": "1000",
    "flush.ms": "5000",
    "follower.replication.throttled.replicas": "0:1,0:2",
    "index.interval.bytes": "8192",
    "leader.replication.throttled.replicas": "*",
    "local.retention.bytes": "1048576",
    "local.retention.ms": "60000",
    "max.compaction.lag.ms": "86400000",
    "max.message.bytes": "2097152",
    "message.downconversion.enable": "false",
    "message.timestamp.after.max.ms": "3600000",
    "message.timestamp.before.max.ms": "7200000",
    "message.timestamp.difference.max.ms": "7200000",
    "message.timestamp.type": "LogAppendTime",
    "min.cleanable.dirty.ratio": "0.25",
    "min.compaction.lag.ms": "1000",
    "min.insync.replicas": "2",
    "preallocate": "true",
    "remote.log.copy.disable": "true",
    "remote.log.delete.on.disable": "true",
    "remote.storage.enable": "false",
    "retention.bytes": "1073741824",
    "retention.ms": "86400000",
    "segment.bytes": "134217728",
    "segment.index.bytes": "1048576",
    "segment.jitter.ms": "1000",
    "segment.ms": "3600000",
    "unclean.leader.election.enable": "true",
}

# Kafka's config sources, as kafka-python names them (or their numbers).
TOPIC_CONFIG = {1, "DYNAMIC_TOPIC_CONFIG"}
DEFAULT_CONFIG = {5, "DEFAULT_CONFIG"}


def fail(reason):
    print(f"topic configs: {reason}", file=sys.stderr)
    sys.exit(1)


def described(admin, topic):
    resource = ConfigResource(ConfigResourceType.TOPIC, topic)
    answer = admin.describe_configs([resource], config_filter="all")
    return answer["topic"][topic] if "topic" in answer else answer[ConfigResourceType.TOPIC][topic]


def entry(configs, key):
    found = configs.get(key)
    if found is None:
        fail(f"{key} is not described")
    if isinstance(found, dict):
        return found.get("value"), found.get("config_source", found.get("source"))
    return found.value, found.config_source


def main():
    bootstrap = sys.argv[1]
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)
    admin.create_topics(
        [
            NewTopic("every-key", 1, 3, topic_configs=EVERY_KEY),
            NewTopic("no-keys", 1, 3),
        ]
    )
    configs = described(admin, "every-key")
    for key, value in EVERY_KEY.items():
        got, source = entry(configs, key)
        if got != value or getattr(source, "name", source) not in TOPIC_CONFIG:
            fail(f"{key}: described as {got!r} (source {source}), set to {value!r}")
    defaults = described(admin, "no-keys")
    for key in EVERY_KEY:
        got, source = entry(defaults, key)
        if getattr(source, "name", source) not in DEFAULT_CONFIG:
            fail(f"{key} of a topic without it: source {source}, value {got!r}")
    for key, bad in [
        ("unclean.leader.election.enable", "yes"),
        ("min.cleanable.dirty.ratio", "2"),
        ("compression.lz4.level", "18"),
        ("leader.replication.throttled.replicas", "0-1"),
        ("remote.storage.enable", "true"),
    ]:
        try:
            admin.create_topics([NewTopic(f"bad-{key}", 1, 3, topic_configs={key: bad})])
        except InvalidConfigurationError as e:
            if key not in str(e):
                fail(f"{key}={bad} refused without naming the key: {e}")
            continue
        fail(f"{key}={bad} was taken")
    print(f"topic configs: {len(EVERY_KEY)} keys set, described back and defaulted; bad values refused")


if __name__ == "__main__":
    main()
