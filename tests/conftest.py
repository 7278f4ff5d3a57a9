"""Shared by every test directory: the session-wide Kubernetes + Karmada stack fixtures
(started lazily, only by tests that ask for them)."""

import os

# gRPC's c-ares resolver may not read /etc/hosts, where the hostlets publish pod names;
# set before anything imports grpc.
os.environ.setdefault("GRPC_DNS_RESOLVER", "native")

pytest_plugins = ["tests.support.stack.fixtures"]


import pytest  # noqa: E402

from tests.support.simulation import stats  # noqa: E402
from tests.support.xline import SKIP_REASON, xline_binary  # noqa: E402

_XLINE_SKIPPED: list[str] = []


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `xline` run only where a binary is given; elsewhere they are skipped
    with one reason that says how to get one."""
    if xline_binary() is not None:
        return
    skip = pytest.mark.skip(reason=SKIP_REASON)
    for item in items:
        if "xline" in item.keywords:
            item.add_marker(skip)
            _XLINE_SKIPPED.append(item.nodeid)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    # How many cases the planner suites ran (nothing when none of them did).
    stats.report(terminalreporter.write_line)
    path = os.path.join(os.path.dirname(os.path.dirname(__file__)), ".state", "xline-skipped")
    if not _XLINE_SKIPPED:
        if os.path.exists(path):
            os.remove(path)
        return
    line = (
        f"XLINE: {len(_XLINE_SKIPPED)} Xline test(s) did NOT run: no xline binary "
        "(set XLINEFED_XLINE_BIN=/path/to/xline)"
    )
    terminalreporter.write_sep("!", line, red=True, bold=True)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as out:
        out.write(line + "\n")
