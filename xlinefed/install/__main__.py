"""The one generator of every committed install file (CRDs included):

python -m xlinefed.install --write deploy     # or hack/gen_crds.sh
python -m xlinefed.install --check deploy     # exit 1 if anything differs
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from xlinefed.install.files import rendered_files


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m xlinefed.install",
        description="Generate xlinefed's install files (CRDs included) under deploy/.",
    )
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", metavar="DIR", type=Path, help="write the files under DIR")
    mode.add_argument("--check", metavar="DIR", type=Path, help="exit 1 if DIR's files differ")
    args = parser.parse_args(argv)
    files = rendered_files()
    if args.write:
        for name, text in files.items():
            path = args.write / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path}")
        return 0
    stale = [
        name
        for name, text in files.items()
        if not (args.check / name).is_file() or (args.check / name).read_text() != text
    ]
    for name in stale:
        print(
            f"{args.check / name} is stale; run: python -m xlinefed.install --write {args.check}",
            file=sys.stderr,
        )
    return 1 if stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
