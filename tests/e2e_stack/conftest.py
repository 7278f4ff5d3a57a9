"""The stack tests use the session stack from tests/support/stack/fixtures.py
(see tests/conftest.py)."""
