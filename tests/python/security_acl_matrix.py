"""The operation matrix of Kafka's ACL model through kafka-python (tests/security_acl_matrix.rs):
for each resource type (topic, group, cluster, transactional id) and each operation Kafka
defines for it, the client operation that needs it is run as `m`, a user whose only ACLs are
the ones the case grants:

- with exactly that ACL (plus what the same request needs on other resources) it succeeds;
- with each operation Kafka lets imply it (Read/Write/Delete/Alter imply Describe,
  AlterConfigs implies DescribeConfigs, All implies everything) it succeeds;
- without it (only the other resources' ACLs, and Describe where the client must find the
  resource first) it fails with Kafka's authorization error for that resource type.

The superuser `admin` replaces m's ACLs before each attempt (CreateAcls / DeleteAcls), and
creates what an attempt consumes (a topic to delete, a group to delete). Users log in with SASL
PLAIN (password `<name>-pw`). Prints one JSON line per attempt: {"case", "grant", "outcome",
"refusal", "allowed"}: outcome is null (succeeded) or the error's class name, refusal the error
expected without the ACL, allowed what an allowed attempt answers (null: success).
"""
import re
import uuid

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import (ACL, ACLFilter, ACLOperation, ACLPermissionType,
                         ACLResourcePatternType, ConfigResource, ConfigResourceType,
                         NewPartitions, NewTopic, ResourcePattern, ResourcePatternFilter,
                         ResourceType)
from kafka.errors import KafkaError
import kafka.errors as Errors
from kafka.protocol.producer.transaction import InitProducerIdRequest
from kafka.structs import OffsetAndMetadata

from sasl_plain import emit, login

TOPIC = "mx"
GROUP = "mg"
TXN = "mtx"
OP = ACLOperation
TOPIC_T, GROUP_T, CLUSTER_T, TXN_T = (ResourceType.TOPIC, ResourceType.GROUP,
                                      ResourceType.CLUSTER, ResourceType.TRANSACTIONAL_ID)
CLUSTER = "kafka-cluster"


admin = KafkaAdminClient(**login("admin"))
m_admin = KafkaAdminClient(**login("m"))

M_RULES = ACLFilter(principal="User:m", host=None, operation=OP.ANY,
                    permission_type=ACLPermissionType.ANY,
                    resource_pattern=ResourcePatternFilter(ResourceType.ANY, None,
                                                           ACLResourcePatternType.ANY))


def grant(rules):
    """Makes `rules` ((resource type, name, operation), ...) m's only ACLs."""
    admin.delete_acls([M_RULES])
    if rules:
        acls = [ACL(principal="User:m", host="*", operation=op,
                    permission_type=ACLPermissionType.ALLOW,
                    resource_pattern=ResourcePattern(kind, name, ACLResourcePatternType.LITERAL))
                for kind, name, op in rules]
        created = admin.create_acls(acls)
        assert not created["failed"], created


ERROR_NAME = re.compile(r"([A-Z][A-Za-z]+Error)")
ERROR_TEXT = re.compile(r"\[Error -?\d+\] ([A-Z][A-Za-z]+Error)")


def first_error(value):
    """The name of the first error in what an admin call returned (its shapes vary: error
    classes, instances, `error_code` fields, `error` strings), or None."""
    if isinstance(value, type) and issubclass(value, KafkaError):
        return None if value.__name__ == "NoError" else value.__name__
    if isinstance(value, KafkaError):
        return None if type(value).__name__ == "NoError" else type(value).__name__
    if isinstance(value, str):
        found = ERROR_TEXT.search(value) or ERROR_NAME.fullmatch(value)
        return found.group(1) if found and found.group(1) != "NoError" else None
    if hasattr(value, "to_dict"):
        return first_error(value.to_dict())
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "error_code" and isinstance(item, int) and item != 0:
                return Errors.for_code(item).__name__
            if key == "error" and isinstance(item, str):
                found = ERROR_NAME.search(item)
                if found:
                    return found.group(1)
            found = first_error(item)
            if found:
                return found
        return None
    if isinstance(value, (list, tuple, set)):
        for item in value:
            found = first_error(item)
            if found:
                return found
        return None
    for attr in ("error_code",):
        code = getattr(value, attr, None)
        if isinstance(code, int) and code != 0:
            return Errors.for_code(code).__name__
    return None


def attempt(action):
    try:
        return first_error(action())
    except KafkaError as e:
        return type(e).__name__


counter = [0]
RUN = uuid.uuid4().hex[:8]


def fresh(prefix):
    counter[0] += 1
    return f"{prefix}-{RUN}-{counter[0]}"


# ---- the client operations ------------------------------------------------------------------

def fetch():
    consumer = KafkaConsumer(group_id=None, enable_auto_commit=False, consumer_timeout_ms=3000,
                             request_timeout_ms=5000, **login("m"))
    try:
        tp = TopicPartition(TOPIC, 0)
        consumer.assign([tp])
        consumer.seek(tp, 0)
        got = consumer.poll(timeout_ms=3000, max_records=1)
        if not got:
            got = consumer.poll(timeout_ms=3000, max_records=1)
        return None if got else "NoRecords"
    finally:
        consumer.close()


def produce():
    producer = KafkaProducer(acks="all", enable_idempotence=False, max_block_ms=5000,
                             retries=0, **login("m"))
    try:
        producer.send(TOPIC, value=b"v").get(timeout=10)
    finally:
        producer.close(timeout=5)


def create_topic():
    name = created_names[-1]
    return m_admin.create_topics([NewTopic(name, 1, 1)], raise_errors=False)


def delete_topic():
    return m_admin.delete_topics([doomed_topics[-1]], raise_errors=False)


def grow_topic():
    count = len(admin.describe_topics(["mx-grow"])[0]["partitions"])
    return m_admin.create_partitions({"mx-grow": NewPartitions(count + 1)}, raise_errors=False)


def describe_topic():
    return m_admin.describe_topics([TOPIC])


def send(request):
    """One request on m's admin connection, its raw response (kafka-python's describe_configs
    drops a resource's error, and its alter_configs checks broker config names itself)."""
    async def go():
        return await m_admin._manager.send(request)
    return m_admin._manager.run(go)


def describe_configs(kind, name):
    return send(m_admin._describe_configs_request([ConfigResource(kind, name)]))


def describe_topic_configs():
    return describe_configs(ConfigResourceType.TOPIC, TOPIC)


def alter_topic_configs():
    return m_admin.alter_configs(
        [ConfigResource(ConfigResourceType.TOPIC, TOPIC, configs={"retention.ms": "86400000"})])


def commit_offsets():
    return m_admin.alter_group_offsets(GROUP, {TopicPartition(TOPIC, 0): OffsetAndMetadata(0)})


def describe_group():
    return m_admin.describe_groups([GROUP])


def delete_group():
    return m_admin.delete_groups([doomed_groups[-1]])


def delete_group_offsets():
    return m_admin.delete_group_offsets(GROUP, [TopicPartition(TOPIC, 0)])


def create_acl():
    rule = ACL(principal="User:nobody", host="*", operation=OP.READ,
               permission_type=ACLPermissionType.ALLOW,
               resource_pattern=ResourcePattern(TOPIC_T, "nothing", ACLResourcePatternType.LITERAL))
    return m_admin.create_acls([rule])


def describe_acls():
    acls, error = m_admin.describe_acls(M_RULES)
    return error


def node():
    return str(admin.describe_cluster()["controller_id"])


def describe_broker_configs():
    return describe_configs(ConfigResourceType.BROKER, node())


def alter_broker_configs():
    """brook's broker configs are fixed while it runs: past authorization the answer is
    INVALID_REQUEST saying where to set them."""
    resource = ConfigResource(ConfigResourceType.BROKER, node(),
                              configs={"log.retention.ms": "604800000"})
    return send(m_admin._alter_configs_request([resource]))


def init_idempotent():
    """An idempotent producer's InitProducerId (no transactional id), sent on kafka-python's own
    connection: its producer sends it only together with a produce, which needs topic Write,
    and Write on any topic would also let InitProducerId through (Kafka's rule)."""
    response = send(InitProducerIdRequest(transactional_id=None, transaction_timeout_ms=60000,
                                          producer_id=-1, producer_epoch=-1))
    if response.error_code:
        raise Errors.for_code(response.error_code)()


def init_transactional():
    producer = KafkaProducer(transactional_id=TXN, max_block_ms=5000, **login("m"))
    try:
        producer.init_transactions()
    finally:
        producer.close(timeout=5)


def describe_transaction():
    return m_admin.describe_transactions([TXN])


# ---- what each case consumes, made by the superuser -------------------------------------------

created_names = []
doomed_topics = []
doomed_groups = []


def prepare(case):
    if case in ("topic Create", "cluster Create"):
        created_names.append(fresh("mx-new"))
    if case == "topic Delete":
        name = fresh("mx-del")
        admin.create_topics([NewTopic(name, 1, 1)])
        doomed_topics.append(name)
    if case == "group Delete (offsets)":
        admin.alter_group_offsets(GROUP, {TopicPartition(TOPIC, 0): OffsetAndMetadata(0)})
    if case == "group Delete":
        name = fresh("mg-del")
        admin.alter_group_offsets(name, {TopicPartition(TOPIC, 0): OffsetAndMetadata(0)})
        doomed_groups.append(name)


def topic_rules(op):
    return lambda: [(TOPIC_T, TOPIC, op)]


# Each case: (name, the ACL under test as (type, name-or-callable, op), the operations that imply
# it, the ACLs the request needs on other resources, the ACLs given when refused, action,
# the error when refused).
def cases():
    d = OP.DESCRIBE
    return [
        ("topic Read", (TOPIC_T, TOPIC, OP.READ), [OP.ALL], [], [(TOPIC_T, TOPIC, d)],
         fetch, "TopicAuthorizationFailedError"),
        ("topic Write", (TOPIC_T, TOPIC, OP.WRITE), [OP.ALL], [], [(TOPIC_T, TOPIC, d)],
         produce, "TopicAuthorizationFailedError"),
        ("topic Create", (TOPIC_T, lambda: created_names[-1], OP.CREATE), [OP.ALL], [], [],
         create_topic, "TopicAuthorizationFailedError"),
        ("topic Delete", (TOPIC_T, lambda: doomed_topics[-1], OP.DELETE), [OP.ALL], [],
         [(TOPIC_T, lambda: doomed_topics[-1], d)], delete_topic,
         "TopicAuthorizationFailedError"),
        ("topic Alter", (TOPIC_T, "mx-grow", OP.ALTER), [OP.ALL], [], [(TOPIC_T, "mx-grow", d)],
         grow_topic, "TopicAuthorizationFailedError"),
        ("topic Describe", (TOPIC_T, TOPIC, d),
         [OP.READ, OP.WRITE, OP.DELETE, OP.ALTER, OP.ALL], [], [], describe_topic,
         "TopicAuthorizationFailedError"),
        ("topic DescribeConfigs", (TOPIC_T, TOPIC, OP.DESCRIBE_CONFIGS),
         [OP.ALTER_CONFIGS, OP.ALL], [], [(TOPIC_T, TOPIC, d)], describe_topic_configs,
         "TopicAuthorizationFailedError"),
        ("topic AlterConfigs", (TOPIC_T, TOPIC, OP.ALTER_CONFIGS), [OP.ALL], [],
         [(TOPIC_T, TOPIC, OP.DESCRIBE_CONFIGS)], alter_topic_configs,
         "TopicAuthorizationFailedError"),
        ("group Read", (GROUP_T, GROUP, OP.READ), [OP.ALL], [(TOPIC_T, TOPIC, OP.READ)],
         [(GROUP_T, GROUP, d)], commit_offsets, "GroupAuthorizationFailedError"),
        ("group Describe", (GROUP_T, GROUP, d), [OP.READ, OP.DELETE, OP.ALL], [], [],
         describe_group, "GroupAuthorizationFailedError"),
        ("group Delete", (GROUP_T, lambda: doomed_groups[-1], OP.DELETE), [OP.ALL], [],
         [(GROUP_T, lambda: doomed_groups[-1], d)], delete_group,
         "GroupAuthorizationFailedError"),
        ("group Delete (offsets)", (GROUP_T, GROUP, OP.DELETE), [OP.ALL],
         [(TOPIC_T, TOPIC, OP.READ)], [(GROUP_T, GROUP, d)], delete_group_offsets,
         "GroupAuthorizationFailedError"),
        ("cluster Create", (CLUSTER_T, CLUSTER, OP.CREATE), [OP.ALL], [], [], create_topic,
         "TopicAuthorizationFailedError"),
        ("cluster Alter", (CLUSTER_T, CLUSTER, OP.ALTER), [OP.ALL], [], [], create_acl,
         "ClusterAuthorizationFailedError"),
        ("cluster Describe", (CLUSTER_T, CLUSTER, d), [OP.ALTER, OP.ALL], [], [],
         describe_acls, "ClusterAuthorizationFailedError"),
        ("cluster DescribeConfigs", (CLUSTER_T, CLUSTER, OP.DESCRIBE_CONFIGS),
         [OP.ALTER_CONFIGS, OP.ALL], [], [], describe_broker_configs,
         "ClusterAuthorizationFailedError"),
        ("cluster AlterConfigs", (CLUSTER_T, CLUSTER, OP.ALTER_CONFIGS), [OP.ALL], [], [],
         alter_broker_configs, "ClusterAuthorizationFailedError"),
        ("cluster IdempotentWrite", (CLUSTER_T, CLUSTER, OP.IDEMPOTENT_WRITE), [OP.ALL],
         [], [(TOPIC_T, TOPIC, d)], init_idempotent,
         "ClusterAuthorizationFailedError"),
        ("transactional_id Write", (TXN_T, TXN, OP.WRITE), [OP.ALL], [], [(TXN_T, TXN, d)],
         init_transactional, "TransactionalIdAuthorizationFailedError"),
        ("transactional_id Describe", (TXN_T, TXN, d), [OP.WRITE, OP.ALL], [], [],
         describe_transaction, "TransactionalIdAuthorizationFailedError"),
    ]


# What an allowed attempt answers when it is not plain success.
ALLOWED = {"cluster AlterConfigs": "InvalidRequestError"}


def resolve(rules):
    return [(kind, name() if callable(name) else name, op) for kind, name, op in rules]


for name, (kind, res, op), implied_by, needs, refused_with, action, refusal in cases():
    for label, rules in ([("exactly", [(kind, res, op)] + needs)]
                         + [(f"by {o.name}", [(kind, res, o)] + needs) for o in implied_by]
                         + [("without", refused_with + needs)]):
        prepare(name)
        grant(resolve(rules))
        emit(case=name, grant=label, outcome=attempt(action), refusal=refusal,
             allowed=ALLOWED.get(name))

grant([])
m_admin.close()
admin.close()
