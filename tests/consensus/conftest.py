"""Fixtures for tests against real etcd processes (see tests/support/etcd_cluster.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.etcd_cluster import EtcdCluster


@pytest.fixture
def etcd_cluster(tmp_path: Path) -> Iterator[EtcdCluster]:
    """A fresh, started 3-member etcd cluster on 127.0.0.1; stopped by PID afterwards."""
    cluster = EtcdCluster(tmp_path / "etcd", size=3)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
