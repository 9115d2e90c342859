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
from ._boris import Boris as Boris
from ._ensemble import (
    MAX_REPORTED_FAILURES as MAX_REPORTED_FAILURES,
    EnsembleResult as EnsembleResult,
    ensemble as ensemble,
)
from ._errors import SimulationError as SimulationError
from ._events import EventStep as EventStep
from ._explicit_rk import AbstractExplicitRK as AbstractExplicitRK, Tsit5Fixed as Tsit5Fixed
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
from ._reducers import (
    AbstractReducer as AbstractReducer,
    Count as Count,
    CountStats as CountStats,
    Histogram as Histogram,
    HistogramStats as HistogramStats,
    MinMax as MinMax,
    MinMaxStats as MinMaxStats,
    Moments as Moments,
    MomentStats as MomentStats,
    Quantiles as Quantiles,
)
from ._rollout import simulate as simulate
from ._sampling import (
    AbstractDesign as AbstractDesign,
    AbstractDistribution as AbstractDistribution,
    LatinHypercube as LatinHypercube,
    LogUniform as LogUniform,
    MonteCarlo as MonteCarlo,
    Normal as Normal,
    Sobol as Sobol,
    Uniform as Uniform,
    grid as grid,
    sample as sample,
)
from ._saveat import SaveAt as SaveAt
from ._sde import (
    BAOAB as BAOAB,
    AbstractSDEIntegrator as AbstractSDEIntegrator,
    EulerMaruyama as EulerMaruyama,
)
from ._shooting import TrajectoryModel as TrajectoryModel
from ._solution import RESULTS as RESULTS, Trajectory as Trajectory
from ._training import TrainStep as TrainStep, make_train_step as make_train_step
