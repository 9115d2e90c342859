"""The transformation engine: `simulate`, how it saves, how it is differentiated, how it
fails. Knows no physics and no use: nothing here imports `systems`, `fitting`,
`ensembles` or `ml`."""

from ._adjoints import (
    AbstractAdjoint as AbstractAdjoint,
    Backsolve as Backsolve,
    Checkpointed as Checkpointed,
    Direct as Direct,
    Reversible as Reversible,
)
from ._errors import (
    EventError as EventError,
    MaxStepsError as MaxStepsError,
    NonFiniteStateError as NonFiniteStateError,
    SimulationError as SimulationError,
    StepSizeError as StepSizeError,
)
from ._event import Event as Event, EventLog as EventLog
from ._rollout import simulate as simulate
from ._saveat import SaveAt as SaveAt
from ._solution import RESULTS as RESULTS, Trajectory as Trajectory
from ._trial import trial_rollouts as trial_rollouts
from .integrators import (
    BAOAB as BAOAB,
    RK4 as RK4,
    AbstractAdaptiveIntegrator as AbstractAdaptiveIntegrator,
    AbstractExplicitRK as AbstractExplicitRK,
    AbstractFixedStepIntegrator as AbstractFixedStepIntegrator,
    AbstractIntegrator as AbstractIntegrator,
    AbstractSDEIntegrator as AbstractSDEIntegrator,
    Boris as Boris,
    Diffrax as Diffrax,
    Dopri8 as Dopri8,
    Euler as Euler,
    EulerMaruyama as EulerMaruyama,
    EventStep as EventStep,
    Kvaerno5 as Kvaerno5,
    Leapfrog as Leapfrog,
    SemiImplicitEuler as SemiImplicitEuler,
    Tsit5 as Tsit5,
    Tsit5Fixed as Tsit5Fixed,
    WisdomHolman as WisdomHolman,
    Yoshida4 as Yoshida4,
)
