"""xlinefed: one Xline/etcd consensus cluster across many Kubernetes clusters."""

__version__ = "0.1.0"
