"""Which local federations speak TLS: asked for, the default, the opt-out, Xline, and a federation
that formed in plain text before TLS was the default (its members and member list are
plain text: switching it would cut every link)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from xlinefed.api.loading import parse
from xlinefed.api.models import XlineFederation
from xlinefed.api.validation import change_problems
from xlinefed.platforms.local.pki import tls_spec
from xlinefed.platforms.local.state import Facts, FederationDir


def federation(**spec: Any) -> XlineFederation:
    return parse(
        XlineFederation,
        {
            "apiVersion": "xlinefed.io/v1alpha1",
            "kind": "XlineFederation",
            "metadata": {"name": "f"},
            "spec": {
                "engine": "etcd",
                "version": "3.4.23",
                "clusters": [{"id": "a", "replicas": 1}],
                **spec,
            },
        },
    )


@pytest.fixture
def directory(tmp_path: Path) -> FederationDir:
    d = FederationDir(tmp_path, "f")
    d.path.mkdir(parents=True)
    return d


def test_etcd_speaks_tls_when_asked(directory: FederationDir) -> None:
    # The default is still plain text (EngineProfile.tls_by_default; docs/security.md).
    assert tls_spec(directory, federation()) is None
    assert tls_spec(directory, federation(tls={})) is not None
    assert tls_spec(directory, federation(tls={"enabled": False})) is None


def test_xline_defaults_to_plain_text_until_its_tls_has_run(directory: FederationDir) -> None:
    xline = {"engine": "xline", "version": "v0.7.0", "clusters": [{"id": "a", "replicas": 3}]}
    assert tls_spec(directory, federation(**xline)) is None
    assert tls_spec(directory, federation(**xline, tls={"enabled": True})) is not None


def test_a_federation_formed_in_plain_text_stays_so(directory: FederationDir) -> None:
    directory.write_facts(Facts(formed=True))
    assert tls_spec(directory, federation(tls={})) is None
    (directory.path / "pki").mkdir()
    (directory.path / "pki" / "ca.crt").write_text("formed with TLS")
    assert tls_spec(directory, federation(tls={})) is not None


def test_turning_tls_off_or_on_after_formation_is_refused() -> None:
    on, off = federation(tls={}).spec, federation(tls={"enabled": False}).spec
    assert [p.field for p in change_problems(on, off)] == ["spec.tls.enabled"]
    assert [p.field for p in change_problems(off, on)] == ["spec.tls.enabled"]
    assert change_problems(off, federation().spec) == []
    assert change_problems(on, off, formed=False) == []
