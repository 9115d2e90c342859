"""The public names of `diffsim`, read by type checkers, IDEs and the documentation
builder; at run time `diffsim/__init__.py` loads them lazily from this list
(lazy_loader.attach_stub), so `import diffsim` and the `diffsim` command stay fast."""

from . import ml as ml, plot as plot, systems as systems
from ._version import __version__ as __version__
from .engine import (
    BAOAB as BAOAB,
    RESULTS as RESULTS,
    RK4 as RK4,
    AbstractAdaptiveIntegrator as AbstractAdaptiveIntegrator,
    AbstractAdjoint as AbstractAdjoint,
    AbstractExplicitRK as AbstractExplicitRK,
    AbstractFixedStepIntegrator as AbstractFixedStepIntegrator,
    AbstractIntegrator as AbstractIntegrator,
    AbstractSDEIntegrator as AbstractSDEIntegrator,
    Backsolve as Backsolve,
    Boris as Boris,
    Checkpointed as Checkpointed,
    Direct as Direct,
    Dopri8 as Dopri8,
    Euler as Euler,
    EulerMaruyama as EulerMaruyama,
    EventStep as EventStep,
    Kvaerno5 as Kvaerno5,
    Leapfrog as Leapfrog,
    MaxStepsError as MaxStepsError,
    NonFiniteStateError as NonFiniteStateError,
    Reversible as Reversible,
    SaveAt as SaveAt,
    SemiImplicitEuler as SemiImplicitEuler,
    SimulationError as SimulationError,
    StepSizeError as StepSizeError,
    Trajectory as Trajectory,
    Tsit5 as Tsit5,
    Tsit5Fixed as Tsit5Fixed,
    Yoshida4 as Yoshida4,
    simulate as simulate,
)
from .ensembles import (
    MAX_REPORTED_FAILURES as MAX_REPORTED_FAILURES,
    AbstractDesign as AbstractDesign,
    AbstractDistribution as AbstractDistribution,
    AbstractReducer as AbstractReducer,
    Count as Count,
    CountStats as CountStats,
    EnsembleResult as EnsembleResult,
    Histogram as Histogram,
    HistogramStats as HistogramStats,
    LatinHypercube as LatinHypercube,
    LogUniform as LogUniform,
    MinMax as MinMax,
    MinMaxStats as MinMaxStats,
    Moments as Moments,
    MomentStats as MomentStats,
    MonteCarlo as MonteCarlo,
    Normal as Normal,
    Quantiles as Quantiles,
    Sobol as Sobol,
    Uniform as Uniform,
    ensemble as ensemble,
    grid as grid,
    sample as sample,
)
from .fitting import (
    FitResult as FitResult,
    IdentifiabilityWarning as IdentifiabilityWarning,
    TrajectoryModel as TrajectoryModel,
    fit as fit,
)
from .ml import (
    TrainStep as TrainStep,
    make_train_step as make_train_step,
)
from .systems import (
    AbstractMechanicalSystem as AbstractMechanicalSystem,
    AbstractSystem as AbstractSystem,
    MechanicalSystem as MechanicalSystem,
    ODESystem as ODESystem,
    PhaseState as PhaseState,
)
