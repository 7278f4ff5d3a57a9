"""observe → plan → apply one step → observe again (level-triggered, idempotent).

The executor is the imperative shell around the pure planner. It reads the platform
(processes or pods) and the consensus store (member list, per-member status, the lock),
builds `Observed`, asks `plan`, and carries out the one step it gets. Steps that need the
global membership lock are applied only while holding it, after observing and planning
again under it, so two executors can never act on a stale view at the same time.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from xlinefed.consensus.client import (
    ClientSettings,
    ConsensusClient,
    EndpointStatus,
    MemberInfo,
)
from xlinefed.consensus.lock import MembershipLock
from xlinefed.logs import get_logger
from xlinefed.planner import (
    AddLearner,
    Bootstrap,
    DeleteMember,
    Desired,
    Done,
    Observed,
    ObservedMember,
    PromoteLearner,
    RemoveMember,
    RestartMember,
    StartMember,
    StartMode,
    Step,
    TransferLeadership,
    Wait,
    plan,
)
from xlinefed.platform import MemberRuntime, Platform
from xlinefed.topology import parse_member_name

log = get_logger(__name__)

#: Where each executor publishes the template its members run, for the other clusters.
REVISIONS_PREFIX = "/xlinefed/revisions/"


@dataclass(frozen=True)
class Snapshot:
    """Everything one observation saw, for status reporting."""

    observed: Observed
    member_list: tuple[MemberInfo, ...]
    statuses: dict[str, EndpointStatus]
    runtimes: dict[str, MemberRuntime]
    lock_holder: str | None


@dataclass
class Outcome:
    step: Step
    snapshot: Snapshot
    applied: bool
    error: str | None = None
    seconds: float = 0.0
    lock_wait: float = 0.0


@dataclass
class Executor:
    platform: Platform
    federation: str
    holder_id: str
    #: Per-call deadline for consensus requests, in seconds.
    request_timeout: float = 3.0
    #: How long a lock-needing step waits for the lock before giving up this pass.
    lock_timeout: float = 5.0
    clock: Callable[[], float] = time.monotonic
    _lock_ttl: int = field(default=10)

    # --- observation ---------------------------------------------------------------
    def _endpoints(self, names: Sequence[str]) -> list[str]:
        return [self.platform.client_url(n) for n in names]

    def _name_of(self, info: MemberInfo, desired: Desired, names: Sequence[str]) -> str:
        if info.name:
            return info.name
        by_peer = {self.platform.peer_url(n): n for n in names}
        for url in info.peer_urls:
            if url in by_peer:
                return by_peer[url]
        return f"unknown-{info.id:x}"

    async def observe(self, desired: Desired) -> Snapshot:
        names = sorted({m.name for m in desired.members} | set(await self.platform.known_members()))
        runtimes = dict(
            zip(
                names, await asyncio.gather(*(self.platform.runtime(n) for n in names)), strict=True
            )
        )
        # Our running members, and every member we cannot see ourselves (its health can
        # only come over gRPC).
        probe = [n for n in names if runtimes[n].running or not self.platform.sees(n)]
        member_list: tuple[MemberInfo, ...] = ()
        published: dict[str, dict[str, str]] = {}
        statuses: dict[str, EndpointStatus] = {}
        lock_holder: str | None = None
        known = False
        if probe:
            # Observation must be quick: a short retry budget, then "not known".
            # Several attempts fit in the budget, so one member that does not answer in
            # time (partitioned, electing) does not hide the others.
            settings = ClientSettings(
                rpc_timeout=self.request_timeout / 3, retry_deadline=self.request_timeout
            )
            async with ConsensusClient(self._endpoints(probe), settings=settings) as client:
                results = await asyncio.gather(
                    *(client.status(self.platform.client_url(n)) for n in probe),
                    return_exceptions=True,
                )
                for name, result in zip(probe, results, strict=True):
                    if isinstance(result, EndpointStatus) and not result.errors:
                        statuses[name] = result
                # Ask members that know a leader first: a partitioned one would hold the
                # linearizable read below until the deadline and fake "no quorum".
                answered = [n for n in probe if n in statuses]
                client.set_endpoints(
                    self._endpoints(answered + [n for n in probe if n not in statuses])
                )
                try:
                    member_list = tuple(await client.member_list(deadline=self.request_timeout))
                    # etcd 3.4 answers a member list from one member's local view; the
                    # linearizable read of the lock key is what proves a quorum answered.
                    holder = await MembershipLock(client, self.holder_id).holder()
                    known = True
                    if holder is not None and holder.holder != self.holder_id:
                        lock_holder = holder.holder
                    published = await self._published(client, runtimes)
                except Exception as error:  # any failure means "no quorum answered"
                    log.debug("store unreadable", error=str(error))
                await self._probe_unlisted(client, member_list, desired, names, statuses)
        if known and not await self.platform.formed():
            await self.platform.mark_formed()
        formed = known or await self.platform.formed()
        by_id = {info.id: info for info in member_list}
        leader_ids = {s.leader_id for s in statuses.values() if s.leader_id}
        leader: str | None = None
        if len(leader_ids) == 1:
            leader_info = by_id.get(next(iter(leader_ids)))
            if leader_info is not None:
                leader = self._name_of(leader_info, desired, names)
        listed = {self._name_of(info, desired, names): info for info in member_list}
        members = []
        for name in sorted(set(names) | set(listed)):
            info = listed.get(name)
            status = statuses.get(name)
            runtime = runtimes.get(name, MemberRuntime())
            if not self.platform.sees(name):
                # Another cluster's member: its health comes over gRPC, its template from
                # what its own operator published in the store.
                record = published.get(name, {})
                runtime = MemberRuntime(
                    present=status is not None,
                    running=status is not None,
                    has_data=info is not None,
                    revision=record.get("revision"),
                    version=record.get("version"),
                )
                runtimes[name] = runtime
            place = parse_member_name(self.federation, name)
            members.append(
                ObservedMember(
                    name=name,
                    cluster=place[0] if place else None,
                    ordinal=place[1] if place else None,
                    member_id=info.id if info else None,
                    is_learner=bool(info and info.is_learner),
                    ever_started=bool(info and info.name),
                    present=runtime.present,
                    running=runtime.running,
                    has_data=runtime.has_data,
                    healthy=status is not None,
                    applied_index=status.raft_applied_index if status else None,
                    revision=runtime.revision,
                )
            )
        observed = Observed(
            now=self.clock(),
            members=tuple(members),
            member_list_known=known,
            formed=formed,
            leader=leader,
            lock_holder=lock_holder,
        )
        return Snapshot(observed, member_list, statuses, runtimes, lock_holder)

    async def _probe_unlisted(
        self,
        client: ConsensusClient,
        member_list: Sequence[MemberInfo],
        desired: Desired,
        names: Sequence[str],
        statuses: dict[str, EndpointStatus],
    ) -> None:
        """Members in the list that nobody asked yet: another cluster's member that the
        spec no longer wants (being scaled in, perhaps still leading) must be seen too, or
        the leader's index is unknown and no learner could ever count as caught up."""
        extra = {
            name: info.client_urls[0]
            for info in member_list
            if info.client_urls
            and (name := self._name_of(info, desired, names)) not in statuses
            and name not in names
        }
        results = await asyncio.gather(
            *(client.status(url) for url in extra.values()), return_exceptions=True
        )
        for name, result in zip(extra, results, strict=True):
            if isinstance(result, EndpointStatus) and not result.errors:
                statuses[name] = result

    def _revision_key(self, member: str) -> str:
        return f"{REVISIONS_PREFIX}{self.federation}/{member}"

    async def _published(
        self, client: ConsensusClient, runtimes: dict[str, MemberRuntime]
    ) -> dict[str, dict[str, str]]:
        """Read every member's published template; publish ours where it changed."""
        prefix = f"{REVISIONS_PREFIX}{self.federation}/"
        records = {
            kv.key.decode()[len(prefix) :]: json.loads(kv.value)
            for kv in await client.get_prefix(prefix)
        }
        for name, runtime in runtimes.items():
            if not (self.platform.sees(name) and runtime.running and runtime.revision):
                continue
            mine = {"revision": runtime.revision, "version": runtime.version or ""}
            if records.get(name) != mine:
                await client.put(self._revision_key(name), json.dumps(mine, sort_keys=True))
                records[name] = mine
        return records

    # --- one pass ------------------------------------------------------------------
    async def reconcile_once(self, desired: Desired) -> Outcome:
        started = self.clock()
        snapshot = await self.observe(desired)
        step = plan(desired, snapshot.observed)
        if isinstance(step, Wait | Done):
            return Outcome(step, snapshot, applied=False)
        try:
            if step.needs_lock:
                outcome = await self._apply_locked(desired, step, snapshot)
            else:
                await self.apply(step, snapshot, desired)
                outcome = Outcome(step, snapshot, applied=True)
        except Exception as error:
            log.warning("step failed", step=step.kind, member=step.member, error=str(error))
            return Outcome(step, snapshot, applied=False, error=str(error))
        outcome.seconds = self.clock() - started
        if outcome.applied:
            log.info(
                "step applied",
                step=step.kind,
                member=step.member,
                detail=step.describe(),
                seconds=round(outcome.seconds, 3),
            )
        return outcome

    def _running_endpoints(self, snapshot: Snapshot) -> list[str]:
        """Running members' URLs, those that answered with a leader first: a member cut off
        from the quorum would time out the lease grant and stall every locked step."""
        running = [n for n, r in snapshot.runtimes.items() if r.running]
        ordered = [n for n in running if n in snapshot.statuses]
        return self._endpoints(ordered + [n for n in running if n not in snapshot.statuses])

    async def _apply_locked(self, desired: Desired, step: Step, snapshot: Snapshot) -> Outcome:
        endpoints = self._running_endpoints(snapshot)
        async with ConsensusClient(endpoints, timeout=self.request_timeout) as client:
            lock = MembershipLock(client, self.holder_id, ttl=self._lock_ttl)
            waited_from = self.clock()
            token = await lock.acquire(timeout=self.lock_timeout)
            lock_wait = self.clock() - waited_from
            try:
                pending = await lock.pending_step()
                if pending is not None:
                    # The planner is level-triggered: observing again and planning from the
                    # real state finishes (or supersedes) whatever was left half done.
                    log.info(
                        "a previous holder left a step unfinished; re-planning",
                        holder=pending.holder,
                        step=pending.step,
                    )
                # Plan again under the lock: the view that chose `step` may be stale.
                fresh = await self.observe(desired)
                again = plan(desired, fresh.observed)
                if again != step:
                    return Outcome(again, fresh, applied=False, lock_wait=lock_wait)
                record = {"kind": step.kind, "member": step.member, "what": step.describe()}
                await lock.record_step(token, record)
                await lock.ensure_held(token)
                await self.apply(step, fresh, desired)
                await lock.finish_step(token, record)
                return Outcome(step, fresh, applied=True, lock_wait=lock_wait)
            finally:
                await lock.release(token)

    # --- applying one step -----------------------------------------------------------
    def _initial_from_list(self, snapshot: Snapshot, member: str) -> list[tuple[str, str]]:
        pairs = []
        names = list(snapshot.runtimes)
        for info in snapshot.member_list:
            name = info.name or next(
                (n for n in names if self.platform.peer_url(n) in info.peer_urls), ""
            )
            if name and info.peer_urls:
                pairs.append((name, info.peer_urls[0]))
        if all(name != member for name, _ in pairs):
            pairs.append((member, self.platform.peer_url(member)))
        return pairs

    async def apply(self, step: Step, snapshot: Snapshot, desired: Desired) -> None:
        platform = self.platform
        revision = desired.revision
        match step:
            case Bootstrap(members=members, initial_members=initial):
                cluster = [(m, platform.peer_url(m)) for m in initial]
                for member in members:
                    await platform.start(member, StartMode.NEW, cluster, revision)
            case StartMember(name=name, mode=StartMode.NEW):
                cluster = [(m.name, platform.peer_url(m.name)) for m in desired.members]
                await platform.start(name, StartMode.NEW, cluster, revision)
            case StartMember(name=name, mode=mode):
                # A crashed member comes back on the template it ran, not the desired
                # one: partitions and the rolling order decide when it moves on.
                runtime = snapshot.runtimes.get(name)
                await platform.start(
                    name,
                    mode,
                    self._initial_from_list(snapshot, name),
                    (runtime.revision if runtime else None) or revision,
                )
            case AddLearner(name=name):
                # A previous incarnation's process or data would confuse the new member.
                await platform.stop(name)
                await platform.wipe_data(name)
                async with self._client(snapshot) as client:
                    await client.member_add([platform.peer_url(name)], learner=True)
            case PromoteLearner(name=name):
                async with self._client(snapshot) as client:
                    await client.member_promote(self._member_id(snapshot, name))
            case TransferLeadership(target=target):
                async with self._client(snapshot) as client:
                    await client.move_leader(self._member_id(snapshot, target))
            case RemoveMember(name=name, member_id=member_id):
                async with self._client(snapshot) as client:
                    await client.member_remove(member_id)
                if name in {m.name for m in desired.members}:
                    # A desired member removed for data loss comes back through AddLearner.
                    await platform.stop(name)
            case DeleteMember(name=name, delete_data=delete_data):
                await platform.delete(name, delete_data)
            case RestartMember(name=name, revision=revision):
                await platform.stop(name)
                await platform.start(
                    name, StartMode.EXISTING, self._initial_from_list(snapshot, name), revision
                )
            case _:
                raise AssertionError(f"not an actionable step: {step}")

    def _client(self, snapshot: Snapshot) -> ConsensusClient:
        return ConsensusClient(self._running_endpoints(snapshot), timeout=self.request_timeout)

    @staticmethod
    def _member_id(snapshot: Snapshot, name: str) -> int:
        member = snapshot.observed.member(name)
        if member is None or member.member_id is None:
            raise LookupError(f"{name} is not in the member list")
        return member.member_id
