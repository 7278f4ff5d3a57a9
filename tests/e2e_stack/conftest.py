"""The stack tests use the session stack from tests/stack/fixtures.py."""

from tests.stack.fixtures import karmada, namespace, stack, stack_bin  # noqa: F401
