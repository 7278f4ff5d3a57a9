"""`python -m tests.support.stack up|down|env|build|status` — the test stack by hand."""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from tests.support.stack._stack import DEFAULT_STATE, Stack, StackError, build, down


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.stack", description=__doc__)
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="build (cached) and start a stack; prints its env")
    up.add_argument("--members", default="member1,member2", help="comma-separated names")
    sub.add_parser("down", help="stop everything the stack in --state-dir started")
    sub.add_parser("env", help="print shell exports for a running stack")
    build_parser = sub.add_parser("build", help="run hack/stack/build.sh")
    build_parser.add_argument("--force", action="store_true")
    sub.add_parser("status", help="show the stack's processes")
    args = parser.parse_args(argv)

    if args.command == "build":
        print(build(force=args.force))
        return 0
    if args.command == "down":
        stopped = down(args.state_dir)
        print(f"stopped {len(stopped)} processes", file=sys.stderr)
        return 0
    if args.command == "up":
        members = [m for m in args.members.split(",") if m]
        began = time.monotonic()
        try:
            stack = Stack.start(members, state_dir=args.state_dir)
        except StackError as error:
            print(error, file=sys.stderr)
            return 1
        print(f"stack up in {time.monotonic() - began:.1f}s", file=sys.stderr)
        _print_env(stack)
        return 0
    try:
        stack = Stack.attach(args.state_dir)
    except StackError as error:
        print(error, file=sys.stderr)
        return 1
    if args.command == "env":
        _print_env(stack)
    else:
        from tests.support.stack import _procs

        for record in _procs.pidfiles_under(stack.state_dir / "pids"):
            state = "running" if record.alive() else "dead"
            print(f"{record.path.stem:45} {record.pid:>8} {state}")
    return 0


def _print_env(stack: Stack) -> None:
    for key, value in stack.env().items():
        print(f"export {key}={shlex.quote(value)}")


if __name__ == "__main__":
    sys.exit(main())
