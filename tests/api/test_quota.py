"""The backend quota members run with, and the status warning near it (pure)."""

from __future__ import annotations

from typing import Any

from xlinefed.api.engines import ETCD_DEFAULT_QUOTA
from xlinefed.api.loading import parse
from xlinefed.api.models import XlineFederation
from xlinefed.planner.desired import desired_from
from xlinefed.reporting import quota_warnings


def _federation(engine: str = "etcd", **spec: Any) -> XlineFederation:
    return parse(
        XlineFederation,
        {
            "apiVersion": "xlinefed.io/v1alpha1",
            "kind": "XlineFederation",
            "metadata": {"name": "f"},
            "spec": {
                "engine": engine,
                "version": "3.5.36" if engine == "etcd" else "0.7.0",
                "clusters": [{"id": "a", "replicas": 3}],
                **spec,
            },
        },
    )


def test_the_quota_is_etcds_default_unless_engine_args_set_it() -> None:
    assert desired_from(_federation()).quota_bytes == ETCD_DEFAULT_QUOTA
    custom = _federation(engineArgs={"quota-backend-bytes": "104857600"})
    assert desired_from(custom).quota_bytes == 104857600
    assert desired_from(_federation("xline")).quota_bytes is None


def test_a_member_at_80_percent_of_the_quota_is_warned_about_with_the_fix() -> None:
    quota = 100 * 2**20
    sizes = {"f-a-0": 79 * 2**20, "f-a-1": 80 * 2**20, "f-a-2": 99 * 2**20}
    warnings = quota_warnings(sizes, quota)
    assert [w.split(":")[0] for w in warnings] == ["f-a-1", "f-a-2"]
    assert "80% of its 100 MiB quota" in warnings[0]
    assert "quota-backend-bytes" in warnings[0] and "defragment" in warnings[0]
    assert quota_warnings(sizes, None) == []
