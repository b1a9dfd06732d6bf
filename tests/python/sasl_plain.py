"""What the ACL scripts (security_acl.py, security_acl_matrix.py,
security_authorized_operations.py) share: kafka-python settings that log a test user in with
SASL PLAIN (password `<user>-pw`, as the Rust side creates them) and the JSON line each result is
printed as. Not a test itself: the scripts import it from their own directory.
"""
import json
import os

bootstrap = os.environ["BOOTSTRAP"]


def login(user):
    """Client settings for `user` over SASL PLAIN; `None` or `-`: no SASL (a broker with auth off)."""
    settings = dict(bootstrap_servers=bootstrap)
    if user not in (None, "-"):
        settings.update(security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN",
                        sasl_plain_username=user, sasl_plain_password=f"{user}-pw")
    return settings


def emit(**fields):
    """Prints one result as a JSON line, at once."""
    print(json.dumps(fields), flush=True)
