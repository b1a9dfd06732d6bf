"""kafka-python's transactional producer leaves a transaction open past its
transaction_timeout_ms: the broker aborts it, the producer's late commit fails, and a
read_committed consumer never sees the forgotten record.

Usage: txn_timeout.py TOPIC. Sends one record to partition 0 in a transaction with a 1 s
timeout, prints {"step": "sent"}, then waits for a line on stdin (the test writes it once the
broker has aborted the transaction: no sleep here guesses when), tries to commit and prints the
outcome; then a second producer commits b"end" and a read_committed consumer reads up to it.
Prints one JSON line per step; tests/kafka_txn_python.rs asserts on them.
"""
import json
import os
import sys

from kafka import KafkaConsumer, KafkaProducer

bootstrap = os.environ["BOOTSTRAP"]
topic = sys.argv[1]


def emit(**fields):
    print(json.dumps(fields), flush=True)


forgetful = KafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"{topic}-app",
                          transaction_timeout_ms=1000)
forgetful.init_transactions()
forgetful.begin_transaction()
metadata = forgetful.send(topic, value=b"forgotten", partition=0).get(timeout=20)
emit(step="sent", offset=metadata.offset)

sys.stdin.readline()
try:
    forgetful.commit_transaction()
    emit(step="commit", error=None)
except Exception as e:  # the client's fenced or epoch error, whichever its version maps
    emit(step="commit", error=type(e).__name__)
forgetful.close(timeout=5)

end = KafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"{topic}-end")
end.init_transactions()
end.begin_transaction()
end.send(topic, value=b"end", partition=0)
end.commit_transaction()
end.close(timeout=5)

consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"{topic}-check",
                         auto_offset_reset="earliest", enable_auto_commit=False,
                         isolation_level="read_committed", consumer_timeout_ms=20000)
values = []
for message in consumer:
    values.append(message.value.decode())
    if message.value == b"end":
        break
consumer.close()
emit(step="read_committed", values=values)
