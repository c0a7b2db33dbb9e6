"""kafka-python over an SSL listener whose client certificates name the principal: produces
and reads back records as the certificate's principal, and a client whose certificate names a
principal without ACLs is refused with TOPIC_AUTHORIZATION_FAILED.

Usage: mtls_smoke.py BOOTSTRAP CA_FILE TOPIC ALLOWED_CERT ALLOWED_KEY REFUSED_CERT REFUSED_KEY
"""

import sys

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import TopicAuthorizationFailedError

RECORDS = 20


def fail(reason):
    print(f"kafka-python over mTLS: {reason}", file=sys.stderr)
    sys.exit(1)


def main():
    bootstrap, ca, topic, cert, key, other_cert, other_key = sys.argv[1:8]

    def tls(cert, key):
        return {
            "bootstrap_servers": bootstrap,
            "security_protocol": "SSL",
            "ssl_cafile": ca,
            "ssl_certfile": cert,
            "ssl_keyfile": key,
            "request_timeout_ms": 30000,
        }

    producer = KafkaProducer(acks="all", retries=10, **tls(cert, key))
    sent = [producer.send(topic, value=f"mtls-{i}".encode(), partition=0) for i in range(RECORDS)]
    producer.flush()
    offsets = [f.get(timeout=60).offset for f in sent]
    producer.close()

    consumer = KafkaConsumer(enable_auto_commit=False, consumer_timeout_ms=20000, **tls(cert, key))
    partition = TopicPartition(topic, 0)
    consumer.assign([partition])
    consumer.seek(partition, offsets[0])
    read = []
    for message in consumer:
        read.append(message.value)
        if len(read) == RECORDS:
            break
    consumer.close()
    if read != [f"mtls-{i}".encode() for i in range(RECORDS)]:
        fail(f"read back {len(read)} of {RECORDS} records, or not in order")

    refused = KafkaProducer(acks="all", retries=0, max_block_ms=20000, **tls(other_cert, other_key))
    try:
        refused.send(topic, value=b"not allowed").get(timeout=30)
        fail("a certificate without ACLs could produce")
    except TopicAuthorizationFailedError:
        pass
    finally:
        refused.close()
    print(f"kafka-python: {RECORDS} records over mTLS as the certificate's principal; others refused")


if __name__ == "__main__":
    main()
