"""The pure core: `plan(desired, observed) -> Step`. No I/O, no clock, no randomness."""

from xlinefed.planner.model import Desired, DesiredMember, Observed, ObservedMember
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
    TransferLeadership,
    Wait,
)

__all__ = [
    "ALL_STEPS",
    "AddLearner",
    "Bootstrap",
    "DeleteMember",
    "Desired",
    "DesiredMember",
    "Done",
    "Observed",
    "ObservedMember",
    "PromoteLearner",
    "RemoveMember",
    "RestartMember",
    "StartMember",
    "StartMode",
    "Step",
    "TransferLeadership",
    "Wait",
    "plan",
]
