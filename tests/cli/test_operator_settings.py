"""The operators' settings: one frozen object from the CLI's options and the environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from xlinefed.operators.settings import FederationOperatorSettings, MemberOperatorSettings


def test_member_settings_come_from_options_and_the_environment() -> None:
    settings = MemberOperatorSettings.build(
        cluster_id="member1",
        kubeconfig=Path("/k"),
        metrics_port=9000,
        environ={"XLINEFED_RECONCILE_INTERVAL": "0.5"},
    )
    assert settings.cluster_id == "member1" and settings.metrics_port == 9000
    assert settings.idle_interval == 0.5 and settings.kubeconfig == Path("/k")
    assert MemberOperatorSettings.build(cluster_id="m", environ={}).idle_interval == 2.0


def test_federation_settings_default_to_a_slow_safety_net() -> None:
    assert FederationOperatorSettings.build(environ={}).idle_interval == 30.0
    assert (
        FederationOperatorSettings.build(environ={"XLINEFED_FEDERATION_RESYNC": "2"}).idle_interval
        == 2.0
    )


@pytest.mark.parametrize("value", ["soon", "0", "-1"])
def test_a_bad_interval_names_the_variable(value: str) -> None:
    with pytest.raises(ValueError, match="XLINEFED_RECONCILE_INTERVAL"):
        MemberOperatorSettings.build(cluster_id="m", environ={"XLINEFED_RECONCILE_INTERVAL": value})


def test_the_cli_refuses_a_bad_interval_in_one_line() -> None:
    env = {**os.environ, "XLINEFED_FEDERATION_RESYNC": "soon"}
    result = subprocess.run(
        [sys.executable, "-m", "xlinefed.cli", "federation-operator", "--kubeconfig", "/none"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "XLINEFED_FEDERATION_RESYNC='soon'" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_cli_refuses_lease_timing_that_could_elect_two_leaders() -> None:
    """A renew deadline not shorter than the lease would let a cut-off leader act after
    a standby took over (docs/operators.md): refused before anything runs."""
    env = {**os.environ, "XLINEFED_LEASE_DURATION": "10", "XLINEFED_LEASE_RENEW_DEADLINE": "10"}
    result = subprocess.run(
        [sys.executable, "-m", "xlinefed.cli", "member-operator", "--cluster-id", "m"],
        env={**env, "KUBECONFIG": "/none"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "XLINEFED_LEASE_RENEW_DEADLINE=10" in result.stderr
    assert "renew deadline < lease duration" in result.stderr
    assert "Traceback" not in result.stderr


def test_leader_election_is_on_by_default_for_both_tiers() -> None:
    member = MemberOperatorSettings.build(cluster_id="m", environ={}).leader
    federation = FederationOperatorSettings.build(environ={}).leader
    assert member.enabled and federation.enabled
    assert (member.name, federation.name) == (
        "xlinefed-member-operator",
        "xlinefed-federation-operator",
    )
    off = MemberOperatorSettings.build(
        cluster_id="m", environ={"XLINEFED_LEADER_ELECTION": "false"}
    )
    assert not off.leader.enabled


def test_the_guard_image_is_a_setting_not_an_import_time_read() -> None:
    """A registry mirror sets XLINEFED_OPERATOR_IMAGE; it reaches the member pods'
    init container through the settings object, whatever the environment was at import."""
    mirrored = MemberOperatorSettings.build(
        cluster_id="m", environ={"XLINEFED_OPERATOR_IMAGE": "mirror.example/xlinefed:1"}
    )
    assert mirrored.guard_image == "mirror.example/xlinefed:1"
    assert MemberOperatorSettings.build(cluster_id="m", environ={}).guard_image.startswith(
        "xlinefed/operator:"
    )
    env = {**os.environ, "XLINEFED_OPERATOR_IMAGE": "set-before-import/x:1"}
    probe = "from xlinefed.platforms.kubernetes import manifests; print(manifests.GUARD_IMAGE)"
    imported = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60
    )
    assert imported.stdout.strip().startswith("xlinefed/operator:"), imported.stdout


def test_the_metrics_address_is_a_setting_loopback_unless_told() -> None:
    """The Deployment sets XLINEFED_METRICS_ADDRESS=0.0.0.0 so its Service can scrape the
    pod; anywhere else metrics stay on loopback. Read once, in `build`, like the rest."""
    assert MemberOperatorSettings.build(cluster_id="m", environ={}).metrics_address == ("127.0.0.1")
    pod = MemberOperatorSettings.build(
        cluster_id="m", environ={"XLINEFED_METRICS_ADDRESS": "0.0.0.0"}
    )
    assert pod.metrics_address == "0.0.0.0"
