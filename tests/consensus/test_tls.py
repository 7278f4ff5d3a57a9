"""Mutual TLS against a real etcd started with the command line `xlinefed.launch` builds:
the client with the federation's certificate works; no certificate, a certificate of
another CA and plain text are refused."""

from __future__ import annotations

import asyncio
import datetime
import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import grpc.aio
import pytest

from tests.support.etcd_cluster import ETCD, free_port
from tests.support.wait import wait_until_async
from xlinefed import certificates
from xlinefed.api.engines import Engine
from xlinefed.consensus import errors
from xlinefed.consensus._proto import rpc_pb2, rpc_pb2_grpc
from xlinefed.consensus.client import ChannelPool, ClientTLS, ConsensusClient
from xlinefed.launch import LaunchSpec, TLSFiles, command
from xlinefed.planner.steps import StartMode

pytestmark = pytest.mark.timeout(120)

NOW = datetime.datetime.now(datetime.UTC)


@dataclass
class TLSMember:
    url: str
    client: ClientTLS
    authority: certificates.Issued
    pid: int


def _write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    path.chmod(0o600)
    return str(path)


@pytest.fixture
def tls_member(tmp_path: Path) -> Iterator[TLSMember]:
    authority = certificates.new_authority("test-ca", now=NOW, days=30)
    member = certificates.issue(authority, "m-0", names=["127.0.0.1"], now=NOW, days=30)
    client = certificates.issue(authority, "operator", now=NOW, days=30, server=False)
    files = TLSFiles(
        ca=_write(tmp_path / "ca.crt", authority.cert),
        cert=_write(tmp_path / "m.crt", member.cert),
        key=_write(tmp_path / "m.key", member.key),
    )
    client_port, peer_port = free_port(), free_port()
    url = f"https://127.0.0.1:{client_port}"
    peer = f"https://127.0.0.1:{peer_port}"
    argv = command(
        LaunchSpec(
            engine=Engine.ETCD,
            binary=ETCD,
            name="m-0",
            data_dir=str(tmp_path / "data"),
            listen_client_url=url,
            advertise_client_url=url,
            listen_peer_url=peer,
            advertise_peer_url=peer,
            initial_cluster=[("m-0", peer)],
            mode=StartMode.NEW,
            cluster_token="tls-test",
            version="3.4.23",
            tls=files,
        )
    )
    with open(tmp_path / "m.log", "wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield TLSMember(
            url, ClientTLS(authority.cert, client.cert, client.key), authority, process.pid
        )
    finally:
        os.kill(process.pid, signal.SIGCONT)
        process.terminate()
        process.wait(timeout=10)


async def _serving(member: TLSMember) -> None:
    async def answers() -> bool:
        async with ConsensusClient([member.url], tls=member.client, timeout=1.0) as client:
            return (await client.status(member.url)).leader_id != 0

    await wait_until_async(answers, timeout=20, what="the TLS member answers")


def test_the_federation_certificate_reads_and_writes(tls_member: TLSMember) -> None:
    asyncio.run(_the_federation_certificate_reads_and_writes(tls_member))


async def _the_federation_certificate_reads_and_writes(tls_member: TLSMember) -> None:
    await _serving(tls_member)
    pool = ChannelPool(tls_member.client)
    try:
        async with ConsensusClient([tls_member.url], pool=pool) as client:
            await client.put("/app/k", "v")
            got = await client.get("/app/k")
        assert got is not None and got.value == b"v"
    finally:
        await pool.close()


async def _raw_put(url: str, credentials: grpc.ChannelCredentials | None) -> None:
    target = url.removeprefix("https://")
    channel = (
        grpc.aio.secure_channel(target, credentials)
        if credentials is not None
        else grpc.aio.insecure_channel(target)
    )
    async with channel:
        stub = rpc_pb2_grpc.KVStub(channel)
        await stub.Put(rpc_pb2.PutRequest(key=b"/app/x", value=b"y"), timeout=3)


def test_a_client_without_a_certificate_is_refused(tls_member: TLSMember) -> None:
    asyncio.run(_a_client_without_a_certificate_is_refused(tls_member))


async def _a_client_without_a_certificate_is_refused(tls_member: TLSMember) -> None:
    await _serving(tls_member)
    with pytest.raises(grpc.RpcError) as refused:
        await _raw_put(
            tls_member.url,
            grpc.ssl_channel_credentials(root_certificates=tls_member.authority.cert),
        )
    assert refused.value.code() is grpc.StatusCode.UNAVAILABLE


def test_a_certificate_of_another_ca_is_refused(tls_member: TLSMember) -> None:
    asyncio.run(_a_certificate_of_another_ca_is_refused(tls_member))


async def _a_certificate_of_another_ca_is_refused(tls_member: TLSMember) -> None:
    await _serving(tls_member)
    other = certificates.new_authority("other-ca", now=NOW, days=30)
    stranger = certificates.issue(other, "stranger", now=NOW, days=30, server=False)
    with pytest.raises(grpc.RpcError) as refused:
        await _raw_put(
            tls_member.url,
            grpc.ssl_channel_credentials(
                root_certificates=tls_member.authority.cert,
                private_key=stranger.key,
                certificate_chain=stranger.cert,
            ),
        )
    assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
    # Through our client the same refusal is "no endpoint answered", not a hang.
    with pytest.raises(errors.Unavailable):
        tls = ClientTLS(tls_member.authority.cert, stranger.cert, stranger.key)
        async with ConsensusClient([tls_member.url], tls=tls, timeout=2.0) as client:
            await client.put("/app/x", "y", deadline=0)


def test_plain_text_is_refused(tls_member: TLSMember) -> None:
    asyncio.run(_plain_text_is_refused(tls_member))


async def _plain_text_is_refused(tls_member: TLSMember) -> None:
    await _serving(tls_member)
    with pytest.raises(grpc.RpcError):
        await _raw_put(tls_member.url, None)


def test_the_client_refuses_to_mix_tls_and_plain_text(tls_member: TLSMember) -> None:
    with pytest.raises(ValueError, match="has no certificates"):
        ConsensusClient(["https://127.0.0.1:1"])
    with pytest.raises(ValueError, match="plain-text endpoint"):
        ConsensusClient(["http://127.0.0.1:1"], tls=tls_member.client)


def test_a_paused_member_is_silent_not_down_on_a_fresh_tls_channel(tls_member: TLSMember) -> None:
    asyncio.run(_a_paused_member_is_silent(tls_member))


async def _a_paused_member_is_silent(tls_member: TLSMember) -> None:
    """Stopped (SIGSTOP), the member's port still accepts but no ServerHello comes: gRPC
    says "Handshake read failed", which is silence (NoAnswer), not a refusal. Seen as a
    refusal before, the operator took a paused member for a dead one."""
    await _serving(tls_member)
    os.kill(tls_member.pid, signal.SIGSTOP)
    for _ in range(3):
        async with ConsensusClient([tls_member.url], tls=tls_member.client) as client:
            with pytest.raises(errors.NoAnswer):
                await client.status(tls_member.url, timeout=0.5)
