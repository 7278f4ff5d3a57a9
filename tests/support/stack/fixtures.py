"""pytest plugin: the real Kubernetes + Karmada stack as session fixtures.

Use it from a conftest with `pytest_plugins = ["tests.support.stack.fixtures"]` (root conftest)
or by importing the fixtures (`from tests.support.stack.fixtures import stack  # noqa: F401`).

- `stack_bin`: builds the binaries (hack/stack/build.sh; cached, a no-op when warm).
- `stack`: a started stack with the members in `XLINEFED_STACK_MEMBERS` (default
  member1..member4: the federation tests add a fourth cluster) in the state dir
  `XLINEFED_STACK_TEST_STATE` (default
  /tmp/xlinefed-stack-pytest; `-2`, `-3`, ... when another live session holds it).
  Leftovers of a crashed earlier run in that dir are stopped by pid first. With
  `XLINEFED_STACK_REUSE=1` a stack already running there (started with
  `python -m tests.support.stack --state-dir ... up`) is attached to and left running.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.stack._client import KubeClient
from tests.support.stack._stack import Stack, StackError, StackInUse, build

MEMBERS = [
    m
    for m in os.environ.get("XLINEFED_STACK_MEMBERS", "member1,member2,member3,member4").split(",")
    if m
]
STATE = Path(os.environ.get("XLINEFED_STACK_TEST_STATE", "/tmp/xlinefed-stack-pytest"))


@pytest.fixture(scope="session")
def stack_bin() -> Path:
    return build()


@pytest.fixture(scope="session")
def stack(stack_bin: Path) -> Iterator[Stack]:
    if os.environ.get("XLINEFED_STACK_REUSE") == "1":
        try:
            attached = Stack.attach(STATE)
        except StackError:
            pass
        else:
            yield attached
            return
    started = None
    for index in range(1, 10):
        # The first state dir no live session owns: leftovers of crashed runs there are
        # stopped first, and a concurrent session elsewhere on the machine is left alone.
        state = STATE if index == 1 else STATE.with_name(f"{STATE.name}-{index}")
        try:
            started = Stack.start(MEMBERS, state_dir=state, bin_dir=stack_bin)
            break
        except StackInUse:
            continue
    if started is None:
        raise StackError(f"every state dir like {STATE} is in use")
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="session")
def karmada(stack: Stack) -> KubeClient:
    return stack.karmada()


@pytest.fixture
def namespace(stack: Stack, karmada: KubeClient) -> Iterator[str]:
    """A fresh namespace in Karmada (Karmada propagates it to every member); deleted after."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    karmada.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    yield name
    karmada.delete("v1", "Namespace", name)
