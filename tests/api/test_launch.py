"""The engine command line and the pod a member runs in, per engine (pure)."""

from __future__ import annotations

from typing import Any

from xlinefed.api.engines import Engine, profile
from xlinefed.api.loading import parse
from xlinefed.api.models import XlineCluster
from xlinefed.launch import LaunchSpec, command
from xlinefed.planner.steps import StartMode
from xlinefed.platforms.kubernetes import manifests
from xlinefed.topology import Member


def _launch(engine: Engine, **extra: Any) -> LaunchSpec:
    return LaunchSpec(
        engine=engine,
        binary=profile(engine).binary,
        name="m-0",
        data_dir="/d",
        listen_client_url="http://0.0.0.0:2379",
        advertise_client_url="http://m-0:2379",
        listen_peer_url="http://0.0.0.0:2380",
        advertise_peer_url="http://m-0:2380",
        initial_cluster=[("m-0", "http://m-0:2380")],
        mode=StartMode.NEW,
        cluster_token="t",
        **extra,
    )


def test_xline_local_members_push_metrics_to_a_loopback_port_of_their_own() -> None:
    argv = command(_launch(Engine.XLINE, metrics_port=21005))
    assert "--metrics-push" in argv
    assert "--metrics-push-endpoint=http://127.0.0.1:21005" in argv
    assert not any(a.startswith("--metrics-port") for a in argv)


def test_xline_pod_members_serve_metrics_on_the_declared_port() -> None:
    argv = command(_launch(Engine.XLINE, metrics_listen_port=9100))
    assert "--metrics-port=9100" in argv and "--metrics-push" not in argv


def test_etcd_gets_no_metrics_flag() -> None:
    argv = command(_launch(Engine.ETCD, metrics_listen_port=9100))
    assert not any("metrics" in a for a in argv)


def _cluster(engine: str, version: str) -> XlineCluster:
    return parse(
        XlineCluster,
        {
            "apiVersion": "xlinefed.io/v1alpha1",
            "kind": "XlineCluster",
            "metadata": {"name": "f-c1", "namespace": "ns", "uid": "u"},
            "spec": {
                "engine": engine,
                "version": version,
                "federation": "f",
                "clusterId": "c1",
                "replicas": 3,
                "clusters": [{"id": "c1", "replicas": 3}],
            },
        },
    )


def _pod(engine: str, version: str) -> dict[str, Any]:
    member = Member(
        "c1", 0, "f-c1-0", "f-c1-0.c1", "http://f-c1-0.c1:2380", "http://f-c1-0.c1:2379"
    )
    return manifests.pod(
        _cluster(engine, version),
        member,
        StartMode.NEW,
        [("f-c1-0", member.peer_url)],
        "rev",
        "token",
        initial_leader=True,
    )


def test_an_xline_pod_declares_its_metrics_port_and_probes_readiness_over_grpc() -> None:
    container = _pod("xline", "v0.7.0")["spec"]["containers"][0]
    assert container["image"] == "ghcr.io/xline-kv/xline:v0.7.0"
    assert {"name": "metrics", "containerPort": 9100} in container["ports"]
    assert "--metrics-port=9100" in container["args"]
    assert "--is-leader" in container["args"]
    # Xline's client port speaks gRPC only; an HTTP GET /health would never pass.
    assert container["readinessProbe"]["grpc"] == {"port": 2379}
    assert "httpGet" not in container["readinessProbe"]


def test_an_etcd_pod_keeps_its_http_health_probe_and_two_ports() -> None:
    container = _pod("etcd", "3.4.23")["spec"]["containers"][0]
    assert [p["name"] for p in container["ports"]] == ["client", "peer"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"


def test_etcd_flags_follow_the_release() -> None:
    """`--enable-v2` exists on 3.4 and 3.5 only: 3.6 refuses to start with it."""
    assert "--enable-v2=false" in command(_launch(Engine.ETCD, version="3.4.23"))
    assert "--enable-v2=false" in command(_launch(Engine.ETCD, version="v3.5.36"))
    assert not any("enable-v2" in a for a in command(_launch(Engine.ETCD, version="3.6.17")))


def test_etcd_compaction_and_quota_defaults_are_overridable_by_engine_args() -> None:
    argv = command(_launch(Engine.ETCD, version="3.5.36"))
    assert "--auto-compaction-mode=periodic" in argv
    assert "--auto-compaction-retention=1h" in argv
    assert f"--quota-backend-bytes={2 * 1024**3}" in argv
    argv = command(
        _launch(
            Engine.ETCD,
            version="3.5.36",
            extra_args={"quota-backend-bytes": "1048576", "auto-compaction-retention": "5m"},
        )
    )
    assert "--quota-backend-bytes=1048576" in argv and "--auto-compaction-retention=5m" in argv
    assert sum(a.startswith("--quota-backend-bytes") for a in argv) == 1


def test_xline_gets_no_etcd_defaults() -> None:
    argv = command(_launch(Engine.XLINE, version="0.7.0"))
    assert not any("compaction" in a or "quota" in a or "v2" in a for a in argv)


def test_tls_flags_are_engine_data_and_every_member_demands_certificates() -> None:
    from xlinefed.launch import TLSFiles

    files = TLSFiles(ca="/p/ca.crt", cert="/p/m.crt", key="/p/m.key")
    etcd = command(_launch(Engine.ETCD, tls=files))
    for flag in (
        "--trusted-ca-file=/p/ca.crt",
        "--cert-file=/p/m.crt",
        "--key-file=/p/m.key",
        "--peer-trusted-ca-file=/p/ca.crt",
        "--peer-cert-file=/p/m.crt",
        "--peer-key-file=/p/m.key",
        "--client-cert-auth=true",
        "--peer-client-cert-auth=true",
    ):
        assert flag in etcd
    xline = command(_launch(Engine.XLINE, tls=files))
    for flag in (
        "--peer-ca-cert-path=/p/ca.crt",
        "--peer-cert-path=/p/m.crt",
        "--peer-key-path=/p/m.key",
        "--client-ca-cert-path=/p/ca.crt",
        "--client-cert-path=/p/m.crt",
        "--client-key-path=/p/m.key",
    ):
        assert flag in xline
    assert not any("cert" in a for a in command(_launch(Engine.ETCD)))


def test_a_client_certificate_of_its_own_and_a_plain_health_port() -> None:
    from xlinefed.launch import TLSFiles

    peer = TLSFiles(ca="/peer/ca.crt", cert="/peer/tls.crt", key="/peer/tls.key")
    client = TLSFiles(ca="/client/ca.crt", cert="/client/tls.crt", key="/client/tls.key")
    etcd = command(_launch(Engine.ETCD, tls=peer, client_tls=client, plain_health_port=2381))
    assert "--cert-file=/client/tls.crt" in etcd and "--trusted-ca-file=/client/ca.crt" in etcd
    assert "--peer-cert-file=/peer/tls.crt" in etcd and "--peer-key-file=/peer/tls.key" in etcd
    assert "--listen-metrics-urls=http://0.0.0.0:2381" in etcd
    # Xline serves both listeners with one certificate: the peer one.
    xline = command(_launch(Engine.XLINE, tls=peer, client_tls=client, plain_health_port=2381))
    assert not any("/client/" in a for a in xline)
    assert not any("listen-metrics" in a for a in xline)


def test_tls_peers_are_not_matched_by_the_address_they_dial_from() -> None:
    from xlinefed.launch import TLSFiles

    files = TLSFiles(ca="/p/ca.crt", cert="/p/m.crt", key="/p/m.key")
    old = command(_launch(Engine.ETCD, tls=files, version="3.5.17"))
    new = command(_launch(Engine.ETCD, tls=files, version="3.6.4"))
    assert "--experimental-peer-skip-client-san-verification=true" in old
    assert "--peer-skip-client-san-verification=true" in new
    assert not any("skip-client-san" in a for a in command(_launch(Engine.ETCD, version="3.6.4")))
