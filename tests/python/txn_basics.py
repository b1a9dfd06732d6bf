"""kafka-python's transactional producer against brook: a committed and an aborted
transaction on two partitions read with read_committed and read_uncommitted, then fencing by a
second producer with the same transactional.id.

Usage: txn_basics.py TOPIC. Prints one JSON line per step; tests/kafka_txn_python.rs asserts on
them.
"""
import json
import os
import sys

from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError

bootstrap = os.environ["BOOTSTRAP"]
topic = sys.argv[1]


def emit(**fields):
    print(json.dumps(fields), flush=True)


def producer(transactional_id):
    return KafkaProducer(bootstrap_servers=bootstrap, transactional_id=transactional_id,
                         client_id=transactional_id)


def read(isolation, stops):
    """Every value of the topic with `isolation`, up to the `stops`-th b"end"."""
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"{topic}-{isolation}",
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             isolation_level=isolation, consumer_timeout_ms=20000)
    values, seen_stops = [], 0
    for message in consumer:
        values.append((message.partition, message.offset, message.value.decode()))
        if message.value == b"end":
            seen_stops += 1
            if seen_stops == stops:
                break
    consumer.close()
    return values


admin = KafkaAdminClient(bootstrap_servers=bootstrap)
admin.create_topics([NewTopic(name=topic, num_partitions=2, replication_factor=1)])
admin.close()

p = producer(f"{topic}-app")
p.init_transactions()
for prefix, commit in (("c", True), ("a", False)):
    p.begin_transaction()
    for i in range(10):
        p.send(topic, value=f"{prefix}-{i}".encode(), partition=i % 2)
    p.flush()
    if commit:
        p.commit_transaction()
    else:
        p.abort_transaction()
p.begin_transaction()
for partition in (0, 1):
    p.send(topic, value=b"end", partition=partition)
p.commit_transaction()
emit(step="produced")

committed = read("read_committed", 2)
emit(step="read_committed", count=len(committed),
     aborted=sum(1 for *_, v in committed if v.startswith("a-")),
     values=sorted(v for *_, v in committed))
uncommitted = read("read_uncommitted", 2)
emit(step="read_uncommitted", count=len(uncommitted),
     aborted=sum(1 for *_, v in uncommitted if v.startswith("a-")),
     offsets={str(part): [o for pp, o, _ in uncommitted if pp == part] for part in (0, 1)})

# A second instance with the same transactional.id fences the first.
first = producer(f"{topic}-fence")
first.init_transactions()
first.begin_transaction()
first.send(topic, value=b"zombie", partition=0).get(timeout=20)
second = producer(f"{topic}-fence")
second.init_transactions()
try:
    first.send(topic, value=b"late", partition=0).get(timeout=20)
    first.commit_transaction()
    emit(step="fenced", fenced=False, error=None)
except KafkaError as e:
    emit(step="fenced", fenced=True, error=type(e).__name__)
second.begin_transaction()
second.send(topic, value=b"end", partition=0)
second.commit_transaction()
values = [v for *_, v in read("read_committed", 3)]
emit(step="after_fence", zombie="zombie" in values, late="late" in values)
for client in (p, first, second):
    client.close(timeout=5)
