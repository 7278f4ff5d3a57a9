"""Data loss: a member's data directory deleted while it runs is detected and the member
replaced (removed, re-added as a learner under a new id, promoted) with no manual step and
nothing acknowledged lost. The victim is chosen at random, the leader included."""

from __future__ import annotations

import random
import shutil
import time

import pytest

from tests.chaos._federation import ChaosFederation, observed_run
from tests.chaos.conftest import BASE
from tests.chaos.test_process_faults import ensure_shape
from tests.support.wait import wait_until

pytestmark = pytest.mark.slow


def test_data_dir_deleted_while_running(
    federation: ChaosFederation, rng: random.Random, soak_round: int
) -> None:
    ensure_shape(federation, BASE)
    victim = rng.choice(sorted(federation.desired_names()))
    was_leader = victim == federation.leader()
    old_id = federation.member_id(victim)
    with observed_run(federation, "data dir deleted", rng.randrange(2**31)) as run:
        since = time.time()
        shutil.rmtree(federation.dir.data_dir(victim))
        run.fault("data-dir-deleted")
        print(f"deleted the data of {victim} (leader: {was_leader})")
        wait_until(
            lambda: federation.member_id(victim) != old_id,
            timeout=120,
            what=f"{victim} replaced under a new member id",
        )
        federation.wait_converged(since)
    assert federation.member_id(victim) != old_id
    assert (federation.dir.data_dir(victim) / "member" / "wal").is_dir()
