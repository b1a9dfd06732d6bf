"""A consume-transform-produce application on kafka-python's transactions: reads IN, writes
"out-<value>" to OUT and commits the input offsets in the same transaction (KIP-447's
send_offsets_to_transaction), five records at a time, until POSITION reaches END.

Usage: txn_transform.py IN OUT END [CRASH_AFTER]. With CRASH_AFTER, after that many
transactions it writes the next one's output and dies (os._exit) before committing, as an
application killed between produce and commit. Prints one JSON line per committed transaction.
"""
import json
import os
import sys

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

bootstrap = os.environ["BOOTSTRAP"]
source, sink, end = sys.argv[1], sys.argv[2], int(sys.argv[3])
crash_after = int(sys.argv[4]) if len(sys.argv) > 4 else None
partition = TopicPartition(source, 0)

consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=f"{source}-app",
                         auto_offset_reset="earliest", enable_auto_commit=False,
                         isolation_level="read_committed", max_poll_records=5)
consumer.subscribe([source])
producer = KafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"{source}-app")
producer.init_transactions()
committed = 0
while True:
    batch = [m for records in consumer.poll(timeout_ms=1000).values() for m in records]
    if not batch:
        if consumer.assignment() and consumer.position(partition) >= end:
            break
        continue
    producer.begin_transaction()
    for message in batch:
        producer.send(sink, value=b"out-" + message.value, partition=0)
    producer.flush()
    if crash_after is not None and committed == crash_after:
        print(json.dumps({"step": "crash", "after": committed}), flush=True)
        os._exit(3)
    offsets = {partition: OffsetAndMetadata(batch[-1].offset + 1, "", -1)}
    producer.send_offsets_to_transaction(offsets, consumer.group_metadata())
    producer.commit_transaction()
    committed += 1
    print(json.dumps({"step": "committed", "n": committed, "next": batch[-1].offset + 1}),
          flush=True)
producer.close(timeout=5)
consumer.close()
print(json.dumps({"step": "done", "transactions": committed}), flush=True)
