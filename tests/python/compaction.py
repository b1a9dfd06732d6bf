"""kafka-python against a compacted brook topic, in two phases (argv[2]):

- "write": creates the topic with cleanup.policy=compact (topic_configs), checks it with
  describe_configs, writes 100 keys x 100 updates (gzip) and tombstones for ten keys, tries a
  keyless record (refused), and reads it all in a group that commits and leaves;
- "read" (after the Rust test has waited for the cleaner): reads everything from the
  beginning with a fresh consumer, and resumes the group from its committed offset.

Prints one JSON line per step; the Rust test (tests/compaction_python.rs) asserts on them.
"""
import json
import os
import signal
import sys
import traceback

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.errors import KafkaError

# Every wait below is bounded: a step that hangs (a flush, a group join, a commit) fails the
# script after DEADLINE_S with the stack of where it hung, instead of hanging the Rust test.
DEADLINE_S = 120


def on_deadline(signum, frame):
    traceback.print_stack(frame)
    sys.exit(f"compaction.py: still running after {DEADLINE_S} s")


signal.signal(signal.SIGALRM, on_deadline)
signal.alarm(DEADLINE_S)

bootstrap = os.environ["BOOTSTRAP"]
topic = sys.argv[1]
phase = sys.argv[2]
KEYS = 100
UPDATES = 100


def emit(**fields):
    print(json.dumps(fields), flush=True)


def read_to_end(consumer, ends):
    """Records until every partition's high watermark, as (partition, offset, key, value)."""
    out = []
    done = {p: end == 0 for p, end in ends.items()}
    while not all(done.values()):
        batch = consumer.poll(timeout_ms=10000)
        if not batch:
            raise RuntimeError(f"the read stopped short: {len(out)} records, {done}")
        for records in batch.values():
            for m in records:
                out.append((m.partition, m.offset, m.key.decode(),
                            None if m.value is None else m.value.decode()))
                if m.offset + 1 >= ends[m.partition]:
                    done[m.partition] = True
    return out


if phase == "write":
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="compaction-admin")
    admin.create_topics([NewTopic(name=topic, num_partitions=1, replication_factor=1,
                                  topic_configs={"cleanup.policy": "compact",
                                                 "segment.bytes": "16384",
                                                 "min.cleanable.dirty.ratio": "0.01"})])
    described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    # kafka-python 3: {resource type: {name: {key: {"value": ...}}}}, non-default keys only.
    entries = described["topic"][topic]
    emit(step="created", cleanup_policy=entries.get("cleanup.policy", {}).get("value"))
    admin.close()

    producer = KafkaProducer(bootstrap_servers=bootstrap, compression_type="gzip", acks="all",
                             linger_ms=5)
    for round in range(UPDATES):
        for k in range(KEYS):
            producer.send(topic, key=f"key-{k:03}".encode(), value=f"value-{k}-{round}".encode())
    for k in range(10):
        producer.send(topic, key=f"key-{k:03}".encode(), value=None)
    producer.flush()
    emit(step="written", records=KEYS * UPDATES + 10)
    try:
        producer.send(topic, key=None, value=b"no key").get(timeout=10)
        emit(step="keyless", refused=False)
    except KafkaError as e:
        emit(step="keyless", refused=True, error=type(e).__name__)
    producer.close()

    probe = KafkaConsumer(bootstrap_servers=bootstrap)
    tp = TopicPartition(topic, 0)
    end = probe.end_offsets([tp])[tp]
    probe.close()
    group = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id="py-positions",
                          auto_offset_reset="earliest", enable_auto_commit=False)
    read_to_end(group, {0: end})
    group.commit()
    emit(step="group", end=end, committed=group.committed(tp))
    group.close()

elif phase == "read":
    probe = KafkaConsumer(bootstrap_servers=bootstrap)
    tp = TopicPartition(topic, 0)
    ends = {0: probe.end_offsets([tp])[tp]}
    probe.close()
    fresh = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id="py-fresh",
                          auto_offset_reset="earliest", enable_auto_commit=False)
    records = read_to_end(fresh, ends)
    fresh.close()
    latest = {}
    for _, _, key, value in records:
        latest[key] = value
    offsets = [o for _, o, _, _ in records]
    emit(step="read", records=len(records), latest=latest,
         rising=all(a < b for a, b in zip(offsets, offsets[1:])))

    group = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id="py-positions",
                          auto_offset_reset="earliest", enable_auto_commit=False)
    # It committed at the end: nothing is left to read, and nothing before its commit comes back.
    first = None
    for _ in range(3):
        for batch in group.poll(timeout_ms=2000).values():
            first = batch[0].offset
        if first is not None:
            break
    emit(step="resumed", first=first, committed=group.committed(tp),
         position=group.position(tp))
    group.close()
