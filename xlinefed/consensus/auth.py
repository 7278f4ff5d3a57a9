"""The store's users and roles: the operator owns `/xlinefed/`, applications the rest.

Members demand a client certificate, and etcd takes the certificate's CN as the user when
a request carries no token: so the operator and applications authenticate by their
certificates and no password travels or expires. `root` gets a password for a person
breaking glass (etcd refuses to enable auth without a root user).

etcd checks membership changes, snapshots and auth itself against the root role, so the
operator's user holds it; the application role reads and writes every key but those under
RESERVED_PREFIX, where the membership lock, its pending step and the revision keys live
(an application that could write there could stop every operator by holding the lock).
"""

from __future__ import annotations

from xlinefed.consensus.client import ConsensusClient

RESERVED_PREFIX = b"/xlinefed/"
#: The users the certificates name (their CN).
OPERATOR_USER = "operator"
APPLICATION_USER = "client"
APPLICATION_ROLE = "application"
ROOT = "root"


def _after_prefix(prefix: bytes) -> bytes:
    """The first key after every key that starts with `prefix` ('/' + 1 is '0')."""
    return prefix[:-1] + bytes([prefix[-1] + 1])


async def enable_auth(client: ConsensusClient, root_password: str) -> None:
    """Users, roles and auth on; every call is idempotent, so a pass cut off half way is
    finished by the next one."""
    await client.user_add(ROOT, root_password)
    await client.user_grant_role(ROOT, ROOT)
    await client.user_add(OPERATOR_USER, None)
    await client.user_grant_role(OPERATOR_USER, ROOT)
    await client.role_add(APPLICATION_ROLE)
    # [\0, /xlinefed/) and [/xlinefed0, end): every key but the reserved ones (etcd keys
    # are never empty, so \0 is the first).
    await client.role_grant_range(APPLICATION_ROLE, b"\0", RESERVED_PREFIX)
    await client.role_grant_range(APPLICATION_ROLE, _after_prefix(RESERVED_PREFIX), b"\0")
    await client.user_add(APPLICATION_USER, None)
    await client.user_grant_role(APPLICATION_USER, APPLICATION_ROLE)
    await client.auth_enable()
