"""The authorized operations kafka-python's admin client reads for a user
(tests/security_acl_matrix.rs): describe_cluster (DescribeCluster), describe_topics (Metadata with
include_topic_authorized_operations) and describe_groups (DescribeGroups v3+), each asking for
them. Usage: security_authorized_operations.py USER TOPIC GROUP (password `<user>-pw`; USER `-`:
no SASL, for a broker with auth off). Prints one JSON line: the operation names per resource, or
null where the broker sent none.
"""
import json
import sys

from kafka import KafkaAdminClient

from sasl_plain import login

user, topic, group = sys.argv[1:4]
admin = KafkaAdminClient(**login(user))


def names(operations):
    """kafka-python turns the bits into ACLOperation names (or members)."""
    if operations is None:
        return None
    return sorted(op if isinstance(op, str) else op.name for op in operations)


cluster = admin.describe_cluster()["authorized_operations"]
described = [t for t in admin.describe_topics([topic]) if t["name"] == topic]
groups = admin.describe_groups([group])
print(json.dumps({
    "cluster": names(cluster),
    "topic": names(described[0]["authorized_operations"]),
    "group": names(groups[group]["authorized_operations"]),
}), flush=True)
admin.close()
