"""The real Kubernetes + Karmada test stack (see docs/stack.md).

from tests.support.stack import Stack
stack = Stack.start(["member1", "member2"])
stack.karmada()                 # admin KubeClient of the Karmada API server
stack.member_kubeconfig("member1")
stack.stop()
"""

from tests.support.stack._client import ApiError, KubeClient
from tests.support.stack._stack import Stack, StackError, build, down

__all__ = ["ApiError", "KubeClient", "Stack", "StackError", "build", "down"]
