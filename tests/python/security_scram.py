"""kafka-python's admin client managing SCRAM users on brook's Kafka door (KIP-554:
DescribeUserScramCredentials, AlterUserScramCredentials; tests/security_scram.rs), over
SASL_PLAINTEXT with SCRAM-SHA-256 as the superuser `admin`: add a user, log in as them, describe,
refuse what Kafka refuses, delete them, and see their login refused.

Prints one JSON line per step.
"""
import json
import logging
import os
import time

from kafka import KafkaAdminClient
from kafka.admin import ScramMechanism, UserScramCredentialDeletion, UserScramCredentialUpsertion

bootstrap = os.environ["BOOTSTRAP"]
logging.basicConfig(level=logging.CRITICAL)


def sasl(user, password, mechanism="SCRAM-SHA-256"):
    return dict(bootstrap_servers=bootstrap, security_protocol="SASL_PLAINTEXT",
                sasl_mechanism=mechanism, sasl_plain_username=user,
                sasl_plain_password=password, request_timeout_ms=5000)


STARTED = time.monotonic()


def emit(**fields):
    fields["at_s"] = round(time.monotonic() - STARTED, 1)
    print(json.dumps(fields, default=str), flush=True)


def described(admin, users=None):
    return {user: {"error": found["error"],
                   "mechanisms": sorted((c["mechanism"].name, c["iterations"])
                                        for c in found["credential_infos"])}
            for user, found in admin.describe_user_scram_credentials(users).items()}


def logs_in(user, password, mechanism="SCRAM-SHA-256"):
    try:
        client = KafkaAdminClient(bootstrap_timeout_ms=5000, **sasl(user, password, mechanism))
        client.list_topics()
        client.close()
        return True
    except Exception as e:  # noqa: BLE001 - any failure to log in is the answer
        emit(step="login_error", user=user, error=type(e).__name__)
        return False


admin = KafkaAdminClient(**sasl("admin", "admin-secret"))
emit(step="all_before", users=described(admin))

added = admin.alter_user_scram_credentials([
    UserScramCredentialUpsertion("carol", ScramMechanism.SCRAM_SHA_256, "carol-secret",
                                 iterations=8192),
    UserScramCredentialUpsertion("carol", ScramMechanism.SCRAM_SHA_512, "carol-secret",
                                 iterations=4096),
])
emit(step="add_carol", result=added)
emit(step="carol", users=described(admin, ["carol"]))
emit(step="carol_logs_in", sha256=logs_in("carol", "carol-secret"),
     sha512=logs_in("carol", "carol-secret", "SCRAM-SHA-512"),
     wrong=logs_in("carol", "not-carols"))
emit(step="unknown", users=described(admin, ["nobody"]))
emit(step="bad_iterations", result=admin.alter_user_scram_credentials([
    UserScramCredentialUpsertion("dave", ScramMechanism.SCRAM_SHA_256, "x", iterations=10)]))
emit(step="delete_unknown", result=admin.alter_user_scram_credentials([
    UserScramCredentialDeletion("nobody", ScramMechanism.SCRAM_SHA_256)]))

alice = KafkaAdminClient(**sasl("alice", "alice-secret"))
emit(step="alice_alters", result=alice.alter_user_scram_credentials([
    UserScramCredentialUpsertion("mallory", ScramMechanism.SCRAM_SHA_256, "m", iterations=4096)]))
alice.close()

emit(step="delete_carol", result=admin.alter_user_scram_credentials([
    UserScramCredentialDeletion("carol", ScramMechanism.SCRAM_SHA_256),
    UserScramCredentialDeletion("carol", ScramMechanism.SCRAM_SHA_512),
]))
emit(step="all_after", users=described(admin))
emit(step="carol_after", logs_in=logs_in("carol", "carol-secret"))
admin.close()
