"""The consensus shell: an etcd v3 gRPC client and the global membership lock."""
