"""Where the Xline tests get their binary, and how they say loudly that they did not run.

Xline is in no package registry this project's CI reaches, so it cannot be installed by
the test command. A test that needs it is marked `@pytest.mark.xline`; without a binary
it is skipped with one reason (below), and the summary line of the run counts them.
"""

from __future__ import annotations

from pathlib import Path

from xlinefed.api.engines import Engine
from xlinefed.platforms.local.platform import EngineNotFound, find_binary

XLINE_VERSION = "v0.7.0"

SKIP_REASON = (
    "Xline not available: set XLINEFED_XLINE_BIN=/path/to/xline (or put xline on PATH). "
    "Xline is in no registry here; take it from https://github.com/xline-kv/Xline/releases "
    f"or the image ghcr.io/xline-kv/xline:{XLINE_VERSION}"
)


def xline_binary() -> Path | None:
    """The binary local mode would run (`find_binary`: `$XLINEFED_XLINE_BIN`, else
    `$XLINEFED_BIN_DIR/xline-<version>`, else `xline` on PATH), or None."""
    try:
        return Path(find_binary(Engine.XLINE, XLINE_VERSION)[0])
    except EngineNotFound:
        return None
