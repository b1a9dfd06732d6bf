"""kafka-python's admin ACL calls against brook's Kafka door (tests/security_acl.rs): the
superuser `admin` grants `alice` write and describe on `py-orders` with create_acls, lists the
rules with describe_acls, `bob` may not create ACLs (not a superuser), and delete_acls takes the
grant away again: alice's produce is refused before, accepted during, refused after.

Users log in with SASL PLAIN (password `<name>-pw`). Prints one JSON line per step.
"""

from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import (ACL, ACLFilter, ACLOperation, ACLPermissionType,
                         ACLResourcePatternType, ResourcePattern, ResourcePatternFilter,
                         ResourceType)
from kafka.errors import KafkaError

from sasl_plain import emit, login

TOPIC = "py-orders"


def produce_as(user):
    """The name of the error alice's produce gets, or None when it is stored."""
    producer = KafkaProducer(acks="all", max_block_ms=10000, **login(user))
    try:
        producer.send(TOPIC, value=b"v").get(timeout=10)
        return None
    except KafkaError as e:
        return type(e).__name__
    finally:
        producer.close(timeout=5)


emit(step="denied_before", error=produce_as("alice"))

admin = KafkaAdminClient(**login("admin"))
pattern = ResourcePattern(ResourceType.TOPIC, TOPIC, ACLResourcePatternType.LITERAL)
acls = [ACL(principal="User:alice", host="*", operation=op,
            permission_type=ACLPermissionType.ALLOW, resource_pattern=pattern)
        for op in (ACLOperation.WRITE, ACLOperation.DESCRIBE)]
created = admin.create_acls(acls)
emit(step="created", errors=[e.__name__ for e in created["failed"]],
     succeeded=len(created["succeeded"]))

every = ACLFilter(principal=None, host=None, operation=ACLOperation.ANY,
                  permission_type=ACLPermissionType.ANY,
                  resource_pattern=ResourcePatternFilter(ResourceType.ANY, None,
                                                         ACLResourcePatternType.ANY))
found, error = admin.describe_acls(every)
emit(step="described", count=len(found), error=error.__name__,
     principals=sorted({a.principal for a in found}))

emit(step="produced", ok=produce_as("alice") is None)

bob = KafkaAdminClient(**login("bob"))
try:
    bob.describe_acls(every)
    emit(step="bob_describe_acls", error=None)
except KafkaError as e:
    emit(step="bob_describe_acls", error=type(e).__name__, message=str(e))
refused = bob.create_acls([acls[0]])
emit(step="bob_create_acls", error=refused["failed"][0].__name__ if refused["failed"] else None)
bob.close()

alice_rules = ACLFilter(principal="User:alice", host=None, operation=ACLOperation.ANY,
                        permission_type=ACLPermissionType.ANY,
                        resource_pattern=ResourcePatternFilter(ResourceType.TOPIC, TOPIC,
                                                               ACLResourcePatternType.MATCH))
results = admin.delete_acls([alice_rules])
_, matched, error = results[0]
emit(step="deleted", count=len(matched), error=error.__name__)
admin.close()

emit(step="denied_after", error=produce_as("alice"))
