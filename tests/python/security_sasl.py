"""kafka-python over SASL_PLAINTEXT with SCRAM-SHA-256 against brook's Kafka door
(tests/security_sasl.rs): admin, produce, consume in a group as alice; then a wrong password,
an unknown user and a client without SASL, each refused; then alice again.

Argument: topic. Prints one JSON line per step.
"""
import json
import logging
import os
import sys

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import KafkaError

bootstrap = os.environ["BOOTSTRAP"]
topic = sys.argv[1]


def sasl(user, password):
    return dict(security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-256",
                sasl_plain_username=user, sasl_plain_password=password)


def emit(**fields):
    print(json.dumps(fields), flush=True)


alice = sasl("alice", "alice-secret")
admin = KafkaAdminClient(bootstrap_servers=bootstrap, **alice)
admin.create_topics([NewTopic(name=topic, num_partitions=1, replication_factor=1)])
emit(step="created", ok=topic in admin.list_topics())
admin.close()

producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", **alice)
for i in range(20):
    producer.send(topic, value=f"sasl-{i}".encode())
producer.flush()
producer.close()
emit(step="produced", records=20)

consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id="py-sasl-group",
                         auto_offset_reset="earliest", consumer_timeout_ms=15000, **alice)
values = []
for message in consumer:
    values.append(message.value)
    if len(values) == 20:
        break
consumer.commit()
consumer.close()
emit(step="consumed", records=len(values))


class Collect(logging.Handler):
    """What kafka-python logs: it records an authentication failure per broker and retries,
    so the broker's answer (SASL_AUTHENTICATION_FAILED) shows in its log, not always in the
    exception the producer raises at the end."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


collected = Collect()
logging.getLogger("kafka").addHandler(collected)
logging.getLogger("kafka").setLevel(logging.INFO)


def try_once(**config):
    # kafka-python retries a refused login; brook slows an address after three failures in a
    # row. A success clears the count, so each attempt starts from none.
    ok = KafkaProducer(bootstrap_servers=bootstrap, **alice)
    ok.close()
    collected.messages.clear()
    try:
        client = KafkaProducer(bootstrap_servers=bootstrap, bootstrap_timeout_ms=10000,
                               max_block_ms=10000, request_timeout_ms=10000, **config)
        client.send(topic, value=b"intruder").get(timeout=10)
        client.close()
        return dict(refused=False)
    except KafkaError as error:
        answer = next((m for m in collected.messages if "SaslAuthenticationFailed" in m), "")
        return dict(refused=True, error=type(error).__name__,
                    sasl_failed="SaslAuthenticationFailedError" in answer,
                    message="invalid credentials" in answer)


def attempt(step, **config):
    emit(step=step, **try_once(**config))


attempt("wrong_password", **sasl("alice", "wrong"))
attempt("unknown_user", **sasl("mallory", "alice-secret"))
attempt("no_sasl")

producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", **alice)
producer.send(topic, value=b"after").get(timeout=10)
producer.close()
emit(step="after", ok=True)
