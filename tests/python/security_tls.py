"""kafka-python over TLS against brook's Kafka door (tests/security_tls.rs): produce and consume
in a group with security_protocol="SSL" and the test CA, then a plaintext client on the same
port, which must get no broker.

Arguments: topic, CA file. Prints one JSON line per step.
"""
import json
import os
import sys

from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError

bootstrap = os.environ["BOOTSTRAP"]
topic, cafile = sys.argv[1], sys.argv[2]
tls = dict(security_protocol="SSL", ssl_cafile=cafile, ssl_check_hostname=True)


def emit(**fields):
    print(json.dumps(fields), flush=True)


producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", **tls)
for i in range(20):
    producer.send(topic, key=b"k", value=f"tls-{i}".encode())
producer.flush()
producer.close()
emit(step="produced", records=20)

consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id="py-tls-group",
                         auto_offset_reset="earliest", consumer_timeout_ms=15000, **tls)
values = []
for message in consumer:
    values.append(message.value.decode())
    if len(values) == 20:
        break
consumer.commit()
consumer.close()
emit(step="consumed", records=len(values), in_order=values == [f"tls-{i}" for i in range(20)])

try:
    plain = KafkaProducer(bootstrap_servers=bootstrap, bootstrap_timeout_ms=3000,
                          request_timeout_ms=3000, max_block_ms=3000)
    plain.send(topic, value=b"plaintext").get(timeout=3)
    plain.close()
    emit(step="plaintext", refused=False)
except KafkaError as error:
    emit(step="plaintext", refused=True, error=type(error).__name__)
