"""Bad input: malformed and dangerous CLI calls against a running federation are refused
with exit code 2 (bad input) or 1 (nothing to act on) and a message naming the field or
argument and the fix; the spec is left alone and the federation stays Available and
writable. Removing two of three clusters at once is carried out one safe step at a time."""

from __future__ import annotations

import asyncio
import itertools
import random
import re
import threading
import time
from pathlib import Path

import pytest
import yaml

from tests.chaos._federation import ChaosFederation, observed_run, spec_of
from tests.chaos._stats import STATS
from tests.chaos.conftest import BASE
from tests.chaos.test_process_faults import ensure_shape
from xlinefed.consensus.client import ConsensusClient

pytestmark = pytest.mark.slow

N = "chaos"  # the shared federation's name (conftest)

#: (id, argv after `xlinefed local`, exit code, regexes that must all appear in stderr)
CASES: list[tuple[str, list[str], int, list[str]]] = [
    ("scale-not-a-number", ["scale", N, "a=x"], 2, [r"\ba\b", "whole number", "a=N"]),
    ("scale-negative", ["scale", N, "a=-1"], 2, ["whole number", "N >= 0"]),
    ("scale-fraction", ["scale", N, "a=1.5"], 2, ["whole number"]),
    ("scale-without-equals", ["scale", N, "a"], 2, ["CLUSTER=N", "not KEY=VALUE"]),
    ("scale-empty-cluster", ["scale", N, "=2"], 2, ["CLUSTER=N"]),
    ("scale-no-assignment", ["scale", N], 2, ["Missing argument", "assignments"]),
    ("scale-to-zero-total", ["scale", N, "a=0", "b=0", "c=0"], 2, ["spec.clusters", "at least"]),
    ("scale-bad-cluster-id", ["scale", N, "Bad_Cluster=1"], 2, [r"spec\.clusters\[3\]\.id", "DNS"]),
    ("scale-too-many", ["scale", N, "a=100"], 2, [r"replicas", "lower it"]),
    ("scale-unknown-federation", ["scale", "nosuch", "a=2"], 1, ["nosuch", "local up -f"]),
    ("upgrade-nothing", ["upgrade", N], 2, ["--version/--set", "pass --version"]),
    (
        "upgrade-major-downgrade",
        ["upgrade", N, "--version", "2.3.8"],
        2,
        ["spec.version", "major", "keep 3.4.23"],
    ),
    (
        "upgrade-minor-downgrade",
        ["upgrade", N, "--version", "3.3.0"],
        2,
        ["spec.version", "minor", "keep"],
    ),
    (
        "upgrade-skip-minor",
        ["upgrade", N, "--version", "3.6.17"],
        2,
        ["spec.version", "skips a minor", "3.5 release first"],
    ),
    ("upgrade-not-a-version", ["upgrade", N, "--version", "banana"], 2, ["spec.version", "match"]),
    ("upgrade-set-without-equals", ["upgrade", N, "--set", "foo"], 2, ["--set KEY=VALUE"]),
    (
        "upgrade-unknown-federation",
        ["upgrade", "nosuch", "--version", "3.4.24"],
        1,
        ["nosuch", "local up -f"],
    ),
    ("status-output-yaml", ["status", N, "--output", "yaml"], 2, ["--output", "table or json"]),
    ("status-unknown-federation", ["status", "nosuch"], 1, ["nosuch", "local list"]),
    ("up-missing-file", ["up", "-f", "{tmp}/missing.yaml"], 1, ["does not exist", "-f"]),
    ("up-not-yaml", ["up", "-f", "{tmp}/broken.yaml"], 2, ["not valid YAML", "fix the syntax"]),
    ("up-not-a-mapping", ["up", "-f", "{tmp}/string.yaml"], 2, ["document", "mapping"]),
    ("up-typo-field", ["up", "-f", "{tmp}/typo.yaml"], 2, ["spec.verison", "spelling"]),
    (
        "up-number-engine-arg",
        ["up", "-f", "{tmp}/intarg.yaml"],
        2,
        ["spec.engineArgs.snapshot-count", "string"],
    ),
    ("up-all-zero", ["up", "-f", "{tmp}/zero.yaml"], 2, ["spec.clusters", "at least"]),
    # The refused change is named before any missing binary (whether or not xline is here).
    (
        "up-engine-change",
        ["up", "-f", "{tmp}/xline.yaml"],
        2,
        ["spec.engine", "cannot change from etcd to xline", "create a new federation"],
    ),
    ("up-major-downgrade", ["up", "-f", "{tmp}/old.yaml"], 2, ["spec.version", "major"]),
    ("logs-unknown-member", ["logs", N, "chaos-z-9"], 1, ["chaos-z-9", "members: chaos-a-0"]),
    ("logs-unknown-federation", ["logs", "nosuch", "x"], 1, ["nosuch"]),
    ("down-unknown-federation", ["down", "nosuch"], 1, ["nosuch", "local list"]),
]


def write_inputs(tmp: Path) -> None:
    (tmp / "broken.yaml").write_text("a: [1, 2\n  b: }\n")
    (tmp / "string.yaml").write_text("just a string\n")
    typo = spec_of(N, BASE)
    typo["spec"]["verison"] = typo["spec"].pop("version")
    (tmp / "typo.yaml").write_text(yaml.safe_dump(typo))
    (tmp / "intarg.yaml").write_text(
        yaml.safe_dump(spec_of(N, BASE, engineArgs={"snapshot-count": 5}))
    )
    (tmp / "zero.yaml").write_text(yaml.safe_dump(spec_of(N, {c: 0 for c in BASE})))
    xline = spec_of(N, BASE)
    xline["spec"]["engine"] = "xline"
    (tmp / "xline.yaml").write_text(yaml.safe_dump(xline))
    old = spec_of(N, BASE)
    old["spec"]["version"] = "2.3.8"
    (tmp / "old.yaml").write_text(yaml.safe_dump(old))


def writable(federation: ChaosFederation) -> bool:
    async def roundtrip() -> bool:
        value = f"{time.time()}"
        async with ConsensusClient(
            federation.voter_endpoints(), timeout=2.0, tls=federation.admin_tls()
        ) as client:
            await client.put("/chaos/bad-input/probe", value, deadline=5.0)
            kv = await client.get("/chaos/bad-input/probe", deadline=5.0)
        return kv is not None and kv.text == value

    return asyncio.run(roundtrip())


def test_bad_cli_calls_are_refused_and_harm_nothing(
    federation: ChaosFederation, tmp_path: Path
) -> None:
    assert len(CASES) >= 15
    ensure_shape(federation, BASE)
    write_inputs(tmp_path)
    before = federation.dir.spec_path.read_text()
    pid = federation.controller_record()
    failures = []
    for case, argv, code, patterns in CASES:
        args = [a.replace("{tmp}", str(tmp_path)) for a in argv]
        result = federation.cli("local", *args, check=False, timeout=60)
        message = " ".join((result.stderr + result.stdout).split())
        missing = [p for p in patterns if not re.search(p, message)]
        if result.returncode != code or missing or "Traceback" in message:
            failures.append(
                f"{case}: exit {result.returncode} (want {code}), missing {missing}: "
                f"{message[:300]}"
            )
        STATS.fault("bad-input")
    assert not failures, "\n".join(failures)
    # Nothing already running was harmed: same spec, same controller, Available, writable.
    assert federation.dir.spec_path.read_text() == before
    assert federation.controller_record() == pid
    federation.assert_available()
    assert writable(federation)


class MembershipMonitor:
    """Samples the member list; every change between two samples must be one member."""

    def __init__(self, federation: ChaosFederation) -> None:
        self.federation = federation
        self.samples: list[frozenset[tuple[str, bool]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._loop()), daemon=True)

    async def _loop(self) -> None:
        # One client kept open: a fresh client per sample (a new connection each time)
        # made samples slow enough that two removals a few tens of ms apart fell between
        # two of them, and the monitor could not tell one step at a time from two at once.
        client: ConsensusClient | None = None
        endpoints: list[str] = []
        try:
            while not self._stop.is_set():
                current = self.federation.client_endpoints()
                if client is None or current != endpoints:
                    if client is not None:
                        await client.close()
                    endpoints = current
                    client = ConsensusClient(
                        endpoints, timeout=1.0, tls=self.federation.admin_tls()
                    )
                try:
                    members = await client.member_list(deadline=1.0)
                except Exception:
                    await asyncio.sleep(0.005)
                    continue
                sample = frozenset((m.name or f"id-{m.id:x}", m.is_learner) for m in members)
                if not self.samples or self.samples[-1] != sample:
                    self.samples.append(sample)
                await asyncio.sleep(0.005)
        finally:
            if client is not None:
                await client.close()

    def __enter__(self) -> MembershipMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def violations(self) -> list[str]:
        bad = []
        for before, after in itertools.pairwise(self.samples):
            names_before = {n for n, _ in before}
            names_after = {n for n, _ in after}
            changed = len(names_before ^ names_after) + len(
                {n for n, learner in before ^ after if n in names_before & names_after}
            )
            if changed > 1 and not (names_before == names_after and len(before ^ after) == 2):
                bad.append(f"{sorted(before)} -> {sorted(after)}")
        return bad


def test_two_of_three_clusters_removed_at_once_one_step_at_a_time(
    federation: ChaosFederation, rng: random.Random
) -> None:
    ensure_shape(federation, BASE)
    keep = rng.choice(sorted(BASE))
    gone = [c for c in sorted(BASE) if c != keep]
    with (
        MembershipMonitor(federation) as monitor,
        observed_run(
            federation, "two of three clusters removed at once", rng.randrange(2**31)
        ) as run,
    ):
        since = time.time()
        federation.cli("local", "scale", N, *(f"{c}=0" for c in gone))
        run.fault("dangerous-edit")
        federation.wait_converged(since)
    assert federation.desired() == {keep: 1}
    assert len(monitor.samples) >= 3, "the monitor saw no intermediate membership"
    assert monitor.violations() == [], "more than one membership change between samples"
    sizes = [len(s) for s in monitor.samples]
    assert (
        sizes[0] == 3
        and sizes[-1] == 1
        and all(abs(a - b) == 1 for a, b in itertools.pairwise(sizes))
    )
    # Put the shared federation back for the tests that follow.
    ensure_shape(federation, BASE)
