"""The stack tests use the session stack from tests/stack/fixtures.py (see tests/conftest.py)."""
