"""What an application's certificate may not do once auth is on (consensus/auth.py): touch
the reserved /xlinefed/ keys the operators coordinate through."""

from __future__ import annotations

import pytest

from xlinefed.consensus import errors
from xlinefed.consensus.client import ConsensusClient
from xlinefed.consensus.lock import LOCK_KEY

#: The membership lock, its pending step and a revision key: all under /xlinefed/.
RESERVED_KEYS = (LOCK_KEY, f"{LOCK_KEY}/step", "/xlinefed/revision/x")


async def assert_kept_out_of_the_reserved_keys(app: ConsensusClient) -> None:
    """`app` cannot put, delete or read those keys, nor hold the lock on a lease."""
    for forbidden in RESERVED_KEYS:
        with pytest.raises(errors.PermissionDenied):
            await app.put(forbidden, "mine", deadline=0)
        with pytest.raises(errors.PermissionDenied):
            await app.delete(forbidden, deadline=0)
    lease = await app.lease_grant(60)
    with pytest.raises(errors.PermissionDenied):
        await app.put(LOCK_KEY, "held forever", lease=lease.id, deadline=0)
    with pytest.raises(errors.PermissionDenied):
        await app.get(LOCK_KEY, deadline=0)
