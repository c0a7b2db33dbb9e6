"""A Kafka client outside the Kubernetes cluster, reaching a Strand Cluster through an
ingress listener: kafka-python over SASL_SSL with SCRAM, checking the brokers' certificate
against the host names it connects to, and sending them as the TLS server name (SNI), by which
the ingress controller routes each connection to its broker.

The host names are not in any DNS here: every name under DOMAIN resolves to ADDRESS, where
the ingress controller listens, as a wildcard DNS record would make it.

Usage:
  ingress_client.py roundtrip BOOTSTRAP TOPIC CA_FILE USERNAME PASSWORD MECHANISM DOMAIN ADDRESS
    Writes one record to each partition of TOPIC with acks=all, reads each back from the
    offset it was written at, and prints one JSON object: the brokers as advertised, each
    partition's leader, and the records written and read.
  ingress_client.py certificate HOST PORT CA_FILE ADDRESS
    Connects to ADDRESS:PORT asking for server name HOST, checks the certificate against
    CA_FILE and HOST, and prints the SHA-256 of the certificate served.
"""

import json
import socket
import sys
import time

if sys.argv[1] == "certificate":
    import hashlib
    import ssl

    (host, port, ca_file, address) = sys.argv[2:6]
    context = ssl.create_default_context(cafile=ca_file)
    with socket.create_connection((address, int(port)), timeout=30) as tcp:
        with context.wrap_socket(tcp, server_hostname=host) as tls:
            print(hashlib.sha256(tls.getpeercert(binary_form=True)).hexdigest())
    sys.exit(0)

(bootstrap, topic, ca_file, username, password, mechanism, domain, address) = sys.argv[2:10]

resolve = socket.getaddrinfo


def resolve_domain(host, *args, **kwargs):
    if isinstance(host, str) and (host == domain or host.endswith("." + domain)):
        host = address
    return resolve(host, *args, **kwargs)


socket.getaddrinfo = resolve_domain

from kafka import KafkaConsumer, KafkaProducer, TopicPartition  # noqa: E402

common = dict(
    bootstrap_servers=bootstrap,
    security_protocol="SASL_SSL",
    sasl_mechanism=mechanism,
    sasl_plain_username=username,
    sasl_plain_password=password,
    ssl_cafile=ca_file,
    ssl_check_hostname=True,
    request_timeout_ms=30000,
)

producer = KafkaProducer(acks="all", **common)
partitions = sorted(producer.partitions_for(topic))
written = {}
for partition in partitions:
    value = "through-ingress-%d" % partition
    sent = producer.send(topic, value=value.encode(), partition=partition).get(timeout=60)
    written[partition] = {"offset": sent.offset, "value": value}
producer.flush()
brokers = {b.node_id: "%s:%d" % (b.host, b.port) for b in producer._metadata.brokers()}
leaders = {
    p: producer._metadata.leader_for_partition(TopicPartition(topic, p)) for p in partitions
}
producer.close()

consumer = KafkaConsumer(enable_auto_commit=False, **common)
consumer.assign([TopicPartition(topic, p) for p in partitions])
for partition in partitions:
    consumer.seek(TopicPartition(topic, partition), written[partition]["offset"])
read = {}
deadline = time.time() + 60
while len(read) < len(partitions) and time.time() < deadline:
    for tp, records in consumer.poll(timeout_ms=1000).items():
        for record in records:
            if record.offset == written[tp.partition]["offset"]:
                read[tp.partition] = record.value.decode()
consumer.close()

print(json.dumps({"brokers": brokers, "leaders": leaders, "written": written, "read": read}))
