"""The pure core: `plan(desired, observed) -> Step`. No I/O, no clock, no randomness."""

from xlinefed.planner.model import Desired, DesiredMember, Formation, Observed, ObservedMember
from xlinefed.planner.rules import plan
from xlinefed.planner.steps import (
    ALL_STEPS,
    AddLearner,
    Bootstrap,
    DeleteMember,
    Done,
    PromoteLearner,
    RemoveMember,
    RestartMember,
    StartMember,
    StartMode,
    Step,
    StopMember,
    TransferLeadership,
    Wait,
    WaitCode,
    WipeData,
)

__all__ = [
    "ALL_STEPS",
    "AddLearner",
    "Bootstrap",
    "DeleteMember",
    "Desired",
    "DesiredMember",
    "Done",
    "Formation",
    "Observed",
    "ObservedMember",
    "PromoteLearner",
    "RemoveMember",
    "RestartMember",
    "StartMember",
    "StartMode",
    "Step",
    "StopMember",
    "TransferLeadership",
    "Wait",
    "WaitCode",
    "WipeData",
    "plan",
]
