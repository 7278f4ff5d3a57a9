"""Shared by every test directory: the session-wide Kubernetes + Karmada stack fixtures
(started lazily, only by tests that ask for them)."""

import os

# gRPC's c-ares resolver may not read /etc/hosts, where the hostlets publish pod names;
# set before anything imports grpc.
os.environ.setdefault("GRPC_DNS_RESOLVER", "native")

pytest_plugins = ["tests.stack.fixtures"]
