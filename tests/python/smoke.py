"""kafka-python against brook: admin, produce (each codec kafka-python builds in pure Python),
consume in a group with commits, and resume from the committed offset.

Prints one JSON line per step; the Rust test (tests/kafka_python.rs) asserts on them.
"""
import json
import os
import sys

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

bootstrap = os.environ["BOOTSTRAP"]
topic = sys.argv[1]


def emit(**fields):
    print(json.dumps(fields), flush=True)


admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="smoke-admin")
admin.create_topics([NewTopic(name=topic, num_partitions=2, replication_factor=1)])
emit(step="created", topics=sorted(t for t in admin.list_topics() if t == topic))
described = admin.describe_topics([topic])
emit(step="described", partitions=len(described[0]["partitions"]))

sent = 0
for codec in (None, "gzip"):
    producer = KafkaProducer(bootstrap_servers=bootstrap, compression_type=codec, acks="all")
    for i in range(50):
        producer.send(topic, key=f"k{i % 5}".encode(), value=f"{codec}-{i}".encode(),
                      headers=[("h", b"v")])
        sent += 1
    producer.flush()
    producer.close()
emit(step="produced", records=sent)

consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id="smoke-group",
                         auto_offset_reset="earliest", enable_auto_commit=False,
                         consumer_timeout_ms=10000)
seen = []
for message in consumer:
    seen.append((message.partition, message.offset, message.key.decode(), message.value.decode(),
                 [(k, v.decode()) for k, v in message.headers]))
    if len(seen) == sent:
        break
consumer.commit()
committed = {p: consumer.committed(TopicPartition(topic, p)) for p in (0, 1)}
consumer.close()
emit(step="consumed", records=len(seen), distinct=len({(p, o) for p, o, *_ in seen}),
     headers_ok=all(h == [("h", "v")] for *_, h in seen),
     committed=sum(v or 0 for v in committed.values()))

groups = [g["group_id"] if isinstance(g, dict) else g[0] for g in admin.list_groups()]
emit(step="groups", has_group="smoke-group" in groups)
admin.close()
