"""The transformation engine: integrators, rollouts, adjoints. Knows no physics."""

from ._adaptive import (
    AbstractAdaptiveIntegrator as AbstractAdaptiveIntegrator,
    Dopri8 as Dopri8,
    Kvaerno5 as Kvaerno5,
    Tsit5 as Tsit5,
)
from ._adjoints import (
    AbstractAdjoint as AbstractAdjoint,
    Backsolve as Backsolve,
    Checkpointed as Checkpointed,
    Direct as Direct,
    Reversible as Reversible,
)
from ._errors import SimulationError as SimulationError
from ._fit import FitResult as FitResult, fit as fit
from ._integrators import (
    RK4 as RK4,
    AbstractFixedStepIntegrator as AbstractFixedStepIntegrator,
    AbstractIntegrator as AbstractIntegrator,
    Euler as Euler,
    Leapfrog as Leapfrog,
    SemiImplicitEuler as SemiImplicitEuler,
    Yoshida4 as Yoshida4,
)
from ._rollout import simulate as simulate
from ._saveat import SaveAt as SaveAt
from ._shooting import TrajectoryModel as TrajectoryModel
from ._solution import RESULTS as RESULTS, Trajectory as Trajectory
