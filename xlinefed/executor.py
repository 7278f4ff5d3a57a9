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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

from xlinefed.consensus import errors
from xlinefed.consensus.client import (
    ChannelPool,
    ClientSettings,
    ConsensusClient,
    EndpointStatus,
    MemberInfo,
)
from xlinefed.consensus.lock import LOCK_KEY, Fence, MembershipLock, parse_holder
from xlinefed.logs import get_logger
from xlinefed.planner import (
    AddLearner,
    Bootstrap,
    DeleteMember,
    Desired,
    Done,
    FinishRecovery,
    Observed,
    PromoteLearner,
    RecoverFrom,
    RecoveryRecord,
    RemoveMember,
    RestartMember,
    StartMember,
    StartMode,
    Step,
    StopMember,
    TransferLeadership,
    Wait,
    WipeData,
    plan,
)
from xlinefed.planner.observation import (
    ListEntry,
    MemberRuntime,
    RawObservation,
    StatusAnswer,
    build_observed,
    candidate_leader,
    name_of,
    peers_by_url,
)
from xlinefed.platforms.protocol import Platform

log = get_logger(__name__)

#: Where each executor publishes the template its members run, for the other clusters.
REVISIONS_PREFIX = "/xlinefed/revisions/"
#: When each learner was added (wall-clock seconds), by the executor that added it.
JOINED_PREFIX = "/xlinefed/joined/"


#: A member that gave no answer is asked once more with this many times the deadline
#: before its silence is reported.
LATE_RETRY_FACTOR = 2.0
#: (federation, member) -> wall-clock time it first gave no answer; see `_silence`.
_SILENT_SINCE: dict[tuple[str, str], float] = {}
#: (federation, member) -> wall-clock time it last answered a status request (with a
#: leader or without), and federation -> since when this process has watched it: what
#: a quorum-loss recovery's grace period is counted from. In memory on purpose: a
#: restarted controller or operator starts the grace afresh (it errs on waiting).
_LAST_SEEN: dict[tuple[str, str], float] = {}
_WATCHING_SINCE: dict[str, float] = {}


def no_leader_only(status: EndpointStatus) -> bool:
    """It answered, and the only problem it reports is that it knows no leader (etcd
    3.4 puts "etcdserver: no leader" in StatusResponse.errors, with its raft indexes
    still filled in): alive but leaderless, what a survivor of a lost quorum says."""
    return (
        status.leader_id == 0
        and bool(status.errors)
        and all("no leader" in error for error in status.errors)
    )


def _answer(status: EndpointStatus) -> StatusAnswer:
    return StatusAnswer(
        member_id=status.member_id,
        leader_id=status.leader_id,
        term=status.raft_term,
        applied_index=status.raft_applied_index,
        version=status.version,
    )


def _entry(info: MemberInfo) -> ListEntry:
    return ListEntry(info.id, info.name, info.peer_urls, info.client_urls, info.is_learner)


@dataclass(frozen=True)
class Snapshot:
    """Everything one observation saw, for status reporting."""

    observed: Observed
    member_list: tuple[MemberInfo, ...]
    statuses: dict[str, EndpointStatus]
    runtimes: dict[str, MemberRuntime]
    lock_holder: str | None
    #: Members that answered but know no leader (see `no_leader_only`).
    leaderless: dict[str, EndpointStatus] = field(default_factory=dict)


@dataclass
class Outcome:
    step: Step
    snapshot: Snapshot
    applied: bool
    error: str | None = None
    seconds: float = 0.0
    lock_wait: float = 0.0
    #: Where the pass's time went, seconds: "observe" (both observations, when a locked
    #: step looks again under the lock), "lock" (acquire, record, finish, release; the
    #: wait for another holder included) and "apply".
    phases: dict[str, float] = field(default_factory=dict)

    def requeue_after(self, idle: float, *, after_step: float) -> float:
        """Seconds until the next pass, one rule for every loop: soon after a step (to
        observe its effect), when the planner asked for a wait (never longer than
        `idle`), else `idle`."""
        if self.applied:
            return after_step
        if isinstance(self.step, Wait):
            return min(self.step.retry_after, idle)
        return idle


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
    #: The planner's `now` (compared with times recorded in specs and in the store).
    wall_clock: Callable[[], float] = time.time
    _lock_ttl: int = field(default=10)
    #: Channels kept open across passes by whoever runs the passes (the local controller,
    #: the member operator); None: every client opens and closes its own.
    channels: ChannelPool | None = None
    #: Called right before a step is applied; raises to refuse it (the member operator
    #: passes its Lease check: a replica that lost its Lease while it observed does not
    #: act). None: always act.
    may_act: Callable[[], None] | None = None

    # --- observation ---------------------------------------------------------------
    def _endpoints(self, names: Sequence[str]) -> list[str]:
        return [self.platform.client_url(n) for n in names]

    async def observe(self, desired: Desired) -> Snapshot:
        """Ask everyone, interpret nothing: `build_observed` decides what it means."""
        names = sorted({m.name for m in desired.members} | set(await self.platform.known_members()))
        runtimes = dict(
            zip(
                names, await asyncio.gather(*(self.platform.runtime(n) for n in names)), strict=True
            )
        )
        # Our running members, and every member we cannot see ourselves (its health can
        # only come over gRPC).
        probe = [n for n in names if runtimes[n].running or not self.platform.sees(n)]
        peer_urls = {n: self.platform.peer_url(n) for n in names}
        member_list: tuple[MemberInfo, ...] | None = None
        list_source: str | None = None
        confirmed = False
        other_lists: dict[str, tuple[MemberInfo, ...]] = {}
        published: dict[str, dict[str, str]] = {}
        joined: dict[str, float] = {}
        statuses: dict[str, EndpointStatus] = {}
        leaderless: dict[str, EndpointStatus] = {}
        unanswered: dict[str, float] = {}
        lock_holder: str | None = None
        if probe:
            # Observation must be quick: one short attempt per member, then "not known".
            settings = ClientSettings(
                rpc_timeout=self.request_timeout / 3, retry_deadline=self.request_timeout
            )
            timeout = self.request_timeout / 3
            async with ConsensusClient(
                self._endpoints(probe), settings=settings, pool=self.channels
            ) as client:
                unanswered = await self._statuses(client, probe, statuses, timeout, leaderless)
                other_lists = await self._other_lists(client, [*statuses, *leaderless], timeout)
                await self._probe_unlisted(client, other_lists, names, peer_urls, statuses, timeout)
                # The leader serves the list destructive steps act on; any member's list
                # is still enough to heal (start what crashed) when no leader is known.
                candidate = candidate_leader({n: _answer(s) for n, s in statuses.items()})
                sources = [candidate] if candidate else []
                sources += [n for n in statuses if n != candidate]
                for source in sources:
                    url = statuses[source].endpoint
                    try:
                        # Its list was read above already; reading it again would change
                        # nothing: the linearizable read that follows, through the same
                        # endpoint, is what proves a quorum stands behind that view (etcd
                        # 3.4 serves lists from local state).
                        listed = other_lists.get(source) or tuple(
                            await client.member_list_at(url, timeout=timeout)
                        )
                        holder = parse_holder(await client.get_at(url, LOCK_KEY, timeout=timeout))
                    except errors.ConsensusError as error:
                        log.debug("member list not confirmed", source=source, error=str(error))
                        continue
                    member_list, list_source, confirmed = listed, source, True
                    if holder is not None and holder.holder != self.holder_id:
                        lock_holder = holder.holder
                    client.set_endpoints([url])
                    try:
                        published = await self._published(client, runtimes)
                        joined = await self._joined(client)
                    except errors.ConsensusError as error:
                        log.debug("store records unreadable", error=str(error))
                    break
        if confirmed and not await self.platform.formed():
            await self.platform.mark_formed()
        formation = await self.platform.formation(desired)
        now = self.wall_clock()
        watching_since = _WATCHING_SINCE.setdefault(self.federation, now)
        for name in (*statuses, *leaderless):
            _LAST_SEEN[(self.federation, name)] = now
        last_seen = {
            name: seen for (fed, name), seen in _LAST_SEEN.items() if fed == self.federation
        }
        raw = RawObservation(
            now=self.wall_clock(),
            federation=self.federation,
            names=tuple(names),
            seen=frozenset(n for n in names if self.platform.sees(n)),
            runtimes=runtimes,
            statuses={n: _answer(s) for n, s in statuses.items()},
            member_list=None if member_list is None else tuple(map(_entry, member_list)),
            list_source=list_source,
            confirmed=confirmed,
            other_lists={
                n: tuple(map(_entry, lst)) for n, lst in other_lists.items() if n != list_source
            },
            published=published,
            joined=joined,
            lock_holder=lock_holder,
            formed=confirmed or await self.platform.formed(),
            formation=formation,
            peer_urls=peer_urls,
            unanswered=unanswered,
            unanswered_since=self._silence(unanswered, [*statuses, *leaderless]),
            leaderless={n: _answer(s) for n, s in leaderless.items()},
            last_seen=last_seen,
            watching_since=watching_since,
            recovery=await self.platform.recovery(),
        )
        observed = build_observed(raw)
        for name in names:
            if not self.platform.sees(name) and (m := observed.member(name)) is not None:
                record = published.get(name, {})
                runtimes[name] = MemberRuntime(
                    present=m.present,
                    running=m.running,
                    has_data=m.has_data,
                    revision=m.revision,
                    version=record.get("version"),
                )
        return Snapshot(
            observed, member_list or (), statuses, runtimes, lock_holder, leaderless=leaderless
        )

    async def _statuses(
        self,
        client: ConsensusClient,
        names: Sequence[str],
        statuses: dict[str, EndpointStatus],
        timeout: float,
        leaderless: dict[str, EndpointStatus] | None = None,
    ) -> dict[str, float]:
        """Ask each member for its status; returns those that gave no answer in time
        (not a refusal) even when asked again with a longer deadline, and how long
        they were waited for."""
        late: list[str] = []
        # What was really waited: a member whose port is open but whose server is not
        # serving yet fails in a tenth of a second, long before the deadline.
        waited: dict[str, float] = {}

        async def ask(name: str, deadline: float) -> EndpointStatus | BaseException:
            began = self.clock()
            try:
                return await client.status(self.platform.client_url(name), timeout=deadline)
            except Exception as error:
                return error
            finally:
                waited[name] = waited.get(name, 0.0) + self.clock() - began

        for attempt, deadline in enumerate((timeout, timeout * LATE_RETRY_FACTOR)):
            asked = list(names) if attempt == 0 else late
            results = await asyncio.gather(*(ask(n, deadline) for n in asked))
            late = []
            for name, result in zip(asked, results, strict=True):
                if isinstance(result, EndpointStatus) and not result.errors:
                    statuses[name] = result
                elif isinstance(result, EndpointStatus) and no_leader_only(result):
                    if leaderless is not None:
                        leaderless[name] = result
                elif isinstance(result, errors.NoAnswer):
                    late.append(name)
            if not late:
                break
        return {name: waited[name] for name in late}

    def _silence(self, unanswered: dict[str, float], answered: Iterable[str]) -> dict[str, float]:
        """When each silent member first stopped answering (this process's memory: a
        restarted operator starts the grace afresh, erring on the side of waiting). Only
        an answer ends a silence: a cut link alternates timeouts with other errors."""
        now = self.wall_clock()
        for name in answered:
            _SILENT_SINCE.pop((self.federation, name), None)
        return {n: _SILENT_SINCE.setdefault((self.federation, n), now) for n in unanswered}

    async def _other_lists(
        self, client: ConsensusClient, names: Sequence[str], timeout: float
    ) -> dict[str, tuple[MemberInfo, ...]]:
        """Every other member's own view of the list: a member some view still has is
        never wiped or re-added."""
        results = await asyncio.gather(
            *(client.member_list_at(self.platform.client_url(n), timeout=timeout) for n in names),
            return_exceptions=True,
        )
        return {
            name: tuple(result)
            for name, result in zip(names, results, strict=True)
            if isinstance(result, list)
        }

    async def _probe_unlisted(
        self,
        client: ConsensusClient,
        lists: dict[str, tuple[MemberInfo, ...]],
        names: Sequence[str],
        peer_urls: dict[str, str],
        statuses: dict[str, EndpointStatus],
        timeout: float,
    ) -> None:
        """Members some answering member lists that nobody asked yet: another cluster's
        member that the spec no longer wants (being scaled in, perhaps still leading)
        must be seen too, or the leader is unknown and nothing can proceed."""
        extra: dict[str, str] = {}
        by_peer = peers_by_url(peer_urls)
        for entries in lists.values():
            for info in entries:
                name = name_of(_entry(info), by_peer)
                if info.client_urls and name not in names and name not in statuses:
                    extra[name] = info.client_urls[0]
        results = await asyncio.gather(
            *(client.status(url, timeout=timeout) for url in extra.values()),
            return_exceptions=True,
        )
        for name, result in zip(extra, results, strict=True):
            if isinstance(result, EndpointStatus) and not result.errors:
                statuses[name] = result
        more = [n for n in extra if n in statuses]
        lists.update(await self._other_lists(client, more, timeout))

    def _revision_key(self, member: str) -> str:
        return f"{REVISIONS_PREFIX}{self.federation}/{member}"

    def _joined_key(self, member: str) -> str:
        return f"{JOINED_PREFIX}{self.federation}/{member}"

    async def _joined(self, client: ConsensusClient) -> dict[str, float]:
        """When each learner was added (for the grace period of a cluster that never
        starts its learner)."""
        prefix = f"{JOINED_PREFIX}{self.federation}/"
        return {
            kv.key.decode()[len(prefix) :]: float(kv.value)
            for kv in await client.get_prefix(prefix)
        }

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
        phases = {"observe": self.clock() - started}
        step = plan(desired, snapshot.observed)
        if isinstance(step, Wait | Done):
            return Outcome(step, snapshot, applied=False, seconds=phases["observe"], phases=phases)
        if self.may_act is not None:
            self.may_act()
        try:
            if step.needs_lock:
                outcome = await self._apply_locked(desired, step, snapshot, phases)
            else:
                applying = self.clock()
                await self.apply(step, snapshot, desired)
                phases["apply"] = self.clock() - applying
                outcome = Outcome(step, snapshot, applied=True, phases=phases)
        except Exception as error:
            log.warning(
                "step failed", step=step.kind, member=step.member, error=str(error) or repr(error)
            )
            return Outcome(
                step, snapshot, applied=False, error=str(error) or repr(error), phases=phases
            )
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
        """The leader first, then members that answered: a member cut off from the quorum
        would time out the lease grant and stall every locked step."""
        running = [n for n, r in snapshot.runtimes.items() if r.running]
        leader = snapshot.observed.leader
        ordered = [leader] if leader else []
        ordered += [n for n in running if n in snapshot.statuses and n != leader]
        return self._endpoints(ordered + [n for n in running if n not in ordered])

    async def _apply_locked(
        self, desired: Desired, step: Step, snapshot: Snapshot, phases: dict[str, float]
    ) -> Outcome:
        endpoints = self._running_endpoints(snapshot)

        def spent(phase: str, since: float) -> float:
            now = self.clock()
            phases[phase] = phases.get(phase, 0.0) + now - since
            return now

        async with ConsensusClient(
            endpoints, timeout=self.request_timeout, pool=self.channels
        ) as client:
            lock = MembershipLock(client, self.holder_id, ttl=self._lock_ttl)
            waited_from = self.clock()
            token = await lock.acquire(timeout=self.lock_timeout)
            lock_wait = self.clock() - waited_from
            mark = spent("lock", waited_from)
            try:
                pending = await lock.pending_step()
                if pending is not None and pending.holder != self.holder_id:
                    # The planner is level-triggered: observing again and planning from the
                    # real state finishes (or supersedes) whatever was left half done; see
                    # README "How it works" for each half-done case.
                    log.info(
                        "a previous holder left a step unfinished; re-planning",
                        holder=pending.holder,
                        step=pending.step,
                    )
                mark = spent("lock", mark)
                # Plan again under the lock: the view that chose `step` may be stale.
                fresh = await self.observe(desired)
                mark = spent("observe", mark)
                again = plan(desired, fresh.observed)
                if again != step:
                    log.info("the plan changed under the lock", planned=repr(step), now=repr(again))
                    return Outcome(again, fresh, applied=False, lock_wait=lock_wait, phases=phases)
                record = {"kind": step.kind, "member": step.member, "what": step.describe()}
                if self.may_act is not None:
                    self.may_act()  # the lock wait may have outlasted our Lease
                await lock.record_step(token, record)
                mark = spent("lock", mark)
                await self.apply(step, fresh, desired, Fence(lock, token))
                mark = spent("apply", mark)
                await lock.finish_step(token, record)
                return Outcome(step, fresh, applied=True, lock_wait=lock_wait, phases=phases)
            finally:
                releasing = self.clock()
                await lock.release(token)
                spent("lock", releasing)

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

    async def apply(
        self, step: Step, snapshot: Snapshot, desired: Desired, fence: Fence | None = None
    ) -> None:
        """Carry out `step` exactly as it says; every choice was made by the planner.

        Changes the store cannot fence (membership RPCs, stopping or starting a voter)
        are each preceded by a fresh proof that the lock is held, and bounded by it."""
        platform = self.platform

        async def prove(what: str, client: ConsensusClient | None = None) -> float:
            """Re-prove the lock; the client then sends nothing past the proof's end."""
            if fence is None:
                if step.needs_lock:
                    raise AssertionError(f"{step.kind} needs the membership lock")
                return self.request_timeout
            budget = await fence.prove(what)
            if client is not None:
                client.not_after = fence.not_after
            return min(self.request_timeout, budget)

        def still_proved(what: str) -> None:
            """Right before a platform action: the proof must still be good (a pause since
            `prove` counts against it)."""
            if fence is not None:
                fence.remaining(what)

        voter = (m := snapshot.observed.member(step.member or "")) is not None and m.is_voter
        match step:
            case Bootstrap(members=members, initial_members=initial, revision=revision):
                cluster = [(m, platform.peer_url(m)) for m in initial]
                for member in members:
                    leads = member == step.initial_leader
                    await platform.start(
                        member, StartMode.NEW, cluster, revision, initial_leader=leads
                    )
            case StartMember(name=name, mode=StartMode.NEW, revision=revision, initial_members=ini):
                cluster = [(m, platform.peer_url(m)) for m in ini]
                await platform.start(
                    name, StartMode.NEW, cluster, revision, initial_leader=step.initial_leader
                )
            case StartMember(name=name, mode=mode, revision=revision):
                await platform.start(
                    name,
                    mode,
                    self._initial_from_list(snapshot, name),
                    revision,
                    require_data=step.require_data,
                )
            case AddLearner(name=name):
                async with self._client(snapshot) as client:
                    # Recorded first: a learner added by an executor that dies right after
                    # must still carry the time the others' grace period counts from.
                    await client.put(self._joined_key(name), repr(self.wall_clock()))
                    budget = await prove(step.describe(), client)
                    await client.member_add(
                        [platform.peer_url(name)], learner=True, deadline=budget
                    )
            case PromoteLearner(name=name):
                async with self._client(snapshot) as client:
                    budget = await prove(step.describe(), client)
                    await client.member_promote(self._member_id(snapshot, name), deadline=budget)
            case TransferLeadership(target=target):
                async with self._client(snapshot) as client:
                    budget = await prove(step.describe(), client)
                    await client.move_leader(self._member_id(snapshot, target), deadline=budget)
            case RemoveMember(name=name, member_id=member_id, stop_after=stop_after):
                async with self._client(snapshot) as client:
                    budget = await prove(step.describe(), client)
                    await client.member_remove(member_id, deadline=budget)
                if stop_after:
                    await platform.stop(name)
            case StopMember(name=name):
                await prove(step.describe())
                still_proved(step.describe())
                await platform.stop(name)
            case WipeData(name=name):
                await prove(step.describe())
                still_proved(step.describe())
                await platform.wipe_data(name)
            case DeleteMember(name=name, delete_data=delete_data):
                await platform.delete(name, delete_data)
            case RestartMember(name=name, revision=revision):
                if voter:
                    await prove(f"stop {name}")
                    still_proved(f"stop {name}")
                await platform.stop(name)
                if voter:
                    await prove(f"start {name}")
                    still_proved(f"start {name}")
                await platform.start(
                    name,
                    StartMode.EXISTING,
                    self._initial_from_list(snapshot, name),
                    revision,
                    require_data=True,
                )
            case RecoverFrom(name=name, revision=revision, lost=lost):
                # No quorum, so no lock: the planner's refusals (every lost voter silent
                # for the grace period) are the fence. The dropped members this platform
                # runs are stopped first (their data is the old cluster's), the record
                # is written before the forced start (so nothing restarts them on that
                # data, even after a crash right here), then the survivor starts alone.
                for dropped in lost:
                    if platform.sees(dropped) and (await platform.runtime(dropped)).running:
                        await platform.stop(dropped)
                await platform.stop(name)
                await platform.record_recovery(
                    RecoveryRecord(
                        from_member=name,
                        at=self.wall_clock(),
                        lost=lost,
                        lost_ids=step.lost_ids,
                        applied_index=step.applied_index,
                        request=step.request,
                    )
                )
                await platform.start_forced(name, revision)
            case FinishRecovery(name=name, revision=revision):
                record = await platform.recovery()
                async with ConsensusClient(
                    [platform.client_url(name)], timeout=self.request_timeout, pool=self.channels
                ) as client:
                    reached = (await client.status(platform.client_url(name))).revision
                if record is not None:
                    await platform.record_recovery(replace(record, revision=reached))
                await prove(f"stop {name}")
                still_proved(f"stop {name}")
                await platform.stop(name)
                # No second proof: the lock lives in this one member's store, which is
                # down now (its lease cannot be kept alive); nobody can take the lock
                # until it is back, and it must come back.
                await platform.start(
                    name,
                    StartMode.EXISTING,
                    [(name, platform.peer_url(name))],
                    revision,
                    require_data=True,
                )
            case _:
                raise AssertionError(f"not an actionable step: {step}")

    def _client(self, snapshot: Snapshot) -> ConsensusClient:
        return ConsensusClient(
            self._running_endpoints(snapshot), timeout=self.request_timeout, pool=self.channels
        )

    @staticmethod
    def _member_id(snapshot: Snapshot, name: str) -> int:
        member = snapshot.observed.member(name)
        if member is None or member.member_id is None:
            raise LookupError(f"{name} is not in the member list")
        return member.member_id
