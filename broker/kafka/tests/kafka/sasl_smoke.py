"""kafka-python over SASL_SSL with SCRAM against a Strand cluster with the ACL authorizer on.

As the super user `admin`: creates users with AlterUserScramCredentials and reads them back
with DescribeUserScramCredentials, creates topics, and grants `alice` ACLs with CreateAcls
(read back with DescribeAcls). As `alice` (SCRAM-SHA-256): produces, consumes in a group and
commits; Metadata hides the topic she may not describe. As `bob` (no ACLs): produce is refused
with TOPIC_AUTHORIZATION_FAILED. A wrong password is refused. After DeleteAcls removes her
group ACL, alice's group is refused. Exits non-zero with the reason on the first thing that
is not as Kafka would have it.

Usage: sasl_smoke.py BOOTSTRAP CA_FILE ADMIN_PASSWORD
"""

import sys

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import (
    ACL,
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    NewTopic,
    ResourcePattern,
    ResourcePatternFilter,
    ResourceType,
    UserScramCredentialUpsertion,
)
from kafka.errors import GroupAuthorizationFailedError, TopicAuthorizationFailedError

RECORDS = 200
TOPIC = "py-orders"
SECRET = "py-secret"
GROUP = "py-group"


def fail(reason):
    print(f"kafka-python over SASL_SSL: {reason}", file=sys.stderr)
    sys.exit(1)


def main():
    bootstrap, ca, admin_password = sys.argv[1], sys.argv[2], sys.argv[3]

    def sasl(user, password, mechanism="SCRAM-SHA-512"):
        return {
            "bootstrap_servers": bootstrap,
            "security_protocol": "SASL_SSL",
            "ssl_cafile": ca,
            "sasl_mechanism": mechanism,
            "sasl_plain_username": user,
            "sasl_plain_password": password,
            "request_timeout_ms": 30000,
        }

    admin = KafkaAdminClient(**sasl("admin", admin_password))
    errors = admin.alter_user_scram_credentials(
        [
            UserScramCredentialUpsertion("alice", "SCRAM-SHA-256", "alice-secret"),
            UserScramCredentialUpsertion("bob", "SCRAM-SHA-512", "bob-secret", iterations=8192),
        ]
    )
    if any(e is not None for e in errors.values()):
        fail(f"AlterUserScramCredentials: {errors}")
    described = admin.describe_user_scram_credentials(["alice", "bob"])
    if "alice" not in str(described) or "bob" not in str(described):
        fail(f"DescribeUserScramCredentials does not list alice and bob: {described}")

    admin.create_topics(
        [
            NewTopic(TOPIC, num_partitions=2, replication_factor=3),
            NewTopic(SECRET, num_partitions=1, replication_factor=3),
        ]
    )
    topic = ResourcePattern(ResourceType.TOPIC, TOPIC, ACLResourcePatternType.LITERAL)
    group = ResourcePattern(ResourceType.GROUP, GROUP, ACLResourcePatternType.LITERAL)
    grants = [
        ACL("User:alice", "*", op, ACLPermissionType.ALLOW, topic)
        for op in (ACLOperation.WRITE, ACLOperation.READ)
    ] + [ACL("User:alice", "*", ACLOperation.READ, ACLPermissionType.ALLOW, group)]
    created = admin.create_acls(grants)
    if created["failed"]:
        fail(f"CreateAcls failed: {created['failed']}")
    alice_filter = ACLFilter(
        "User:alice",
        None,
        ACLOperation.ANY,
        ACLPermissionType.ANY,
        ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.ANY),
    )
    acls, error = admin.describe_acls(alice_filter)
    if len(acls) != 3:
        fail(f"DescribeAcls for alice: {len(acls)} ACLs, not 3 ({error}): {acls}")

    alice = sasl("alice", "alice-secret", "SCRAM-SHA-256")
    producer = KafkaProducer(acks="all", retries=10, **alice)
    futures = [producer.send(TOPIC, value=f"value-{i:04}".encode()) for i in range(RECORDS)]
    producer.flush()
    acked = {}
    for i, future in enumerate(futures):
        meta = future.get(timeout=60)
        acked[(meta.partition, meta.offset)] = f"value-{i:04}".encode()
    producer.close()

    consumer = KafkaConsumer(
        TOPIC,
        group_id=GROUP,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=20000,
        **alice,
    )
    read = {}
    for message in consumer:
        read[(message.partition, message.offset)] = message.value
        if len(read) == RECORDS:
            break
    if read != acked:
        fail(f"alice read {len(read)} records; {len(set(acked) - set(read))} acknowledged ones missing")
    consumer.commit()
    visible = consumer.topics()
    consumer.close()
    if TOPIC not in visible or SECRET in visible:
        fail(f"alice's Metadata should show {TOPIC} and hide {SECRET}: {visible}")

    bob = KafkaProducer(acks="all", retries=0, max_block_ms=20000, **sasl("bob", "bob-secret"))
    try:
        bob.send(TOPIC, value=b"not allowed").get(timeout=30)
        fail("bob, without ACLs, could produce")
    except TopicAuthorizationFailedError:
        pass
    finally:
        bob.close()

    try:
        wrong = KafkaProducer(max_block_ms=10000, **sasl("alice", "wrong", "SCRAM-SHA-256"))
        wrong.send(TOPIC, value=b"x").get(timeout=15)
        fail("a wrong password was accepted")
    except Exception as e:  # kafka-python reports the refused authentication in several ways
        if "wrong password was accepted" in str(e):
            raise

    deleted = admin.delete_acls(
        [
            ACLFilter(
                "User:alice",
                None,
                ACLOperation.ANY,
                ACLPermissionType.ANY,
                ResourcePatternFilter(ResourceType.GROUP, GROUP, ACLResourcePatternType.LITERAL),
            )
        ]
    )
    if not deleted or not deleted[0][1]:
        fail(f"DeleteAcls matched nothing: {deleted}")
    consumer = KafkaConsumer(group_id=GROUP, enable_auto_commit=False, **alice)
    try:
        consumer.subscribe([TOPIC])
        consumer.poll(timeout_ms=15000)
        consumer.commit()
        fail("alice's group was served after its ACL was deleted")
    except GroupAuthorizationFailedError:
        pass
    finally:
        consumer.close()
    admin.close()
    print(f"kafka-python: {RECORDS} records over SASL_SSL with SCRAM and ACLs; users, ACLs and refusals as Kafka's")


if __name__ == "__main__":
    main()
