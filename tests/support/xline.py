"""Where the Xline tests get their binary, and how they say loudly that they did not run.

Xline is in no package registry this project's CI reaches, so it cannot be installed by
the test command. A test that needs it is marked `@pytest.mark.xline`; without a binary
it is skipped with one reason (below), and the summary line of the run counts them.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

XLINE_VERSION = "v0.7.0"

SKIP_REASON = (
    "Xline not available: set XLINEFED_XLINE_BIN=/path/to/xline (or put xline on PATH). "
    "Xline is in no registry here; take it from https://github.com/xline-kv/Xline/releases "
    f"or the image ghcr.io/xline-kv/xline:{XLINE_VERSION}"
)


def xline_binary() -> Path | None:
    """`$XLINEFED_XLINE_BIN`, else `$XLINEFED_BIN_DIR/xline-<version>`, else `xline` on PATH."""
    explicit = os.environ.get("XLINEFED_XLINE_BIN")
    if explicit:
        return Path(explicit) if Path(explicit).is_file() else None
    bin_dir = os.environ.get("XLINEFED_BIN_DIR")
    if bin_dir:
        for name in (f"xline-{XLINE_VERSION}", f"xline-{XLINE_VERSION.lstrip('v')}"):
            if (Path(bin_dir) / name).is_file():
                return Path(bin_dir) / name
    found = shutil.which("xline")
    return Path(found) if found else None
