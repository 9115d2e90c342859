"""diffsim: differentiable physics simulation on JAX.

```python
import diffsim as ds
traj = ds.simulate(ds.systems.Pendulum(length=1.0), y0, t1=10.0, dt=0.01)
```
"""

from . import systems as systems
from .engine import (
    BAOAB as BAOAB,
    MAX_REPORTED_FAILURES as MAX_REPORTED_FAILURES,
    RESULTS as RESULTS,
    RK4 as RK4,
    AbstractAdaptiveIntegrator as AbstractAdaptiveIntegrator,
    AbstractAdjoint as AbstractAdjoint,
    AbstractDesign as AbstractDesign,
    AbstractDistribution as AbstractDistribution,
    AbstractExplicitRK as AbstractExplicitRK,
    AbstractFixedStepIntegrator as AbstractFixedStepIntegrator,
    AbstractIntegrator as AbstractIntegrator,
    AbstractReducer as AbstractReducer,
    AbstractSDEIntegrator as AbstractSDEIntegrator,
    Backsolve as Backsolve,
    Boris as Boris,
    Checkpointed as Checkpointed,
    Count as Count,
    CountStats as CountStats,
    Direct as Direct,
    Dopri8 as Dopri8,
    EnsembleResult as EnsembleResult,
    Euler as Euler,
    EulerMaruyama as EulerMaruyama,
    EventStep as EventStep,
    FitResult as FitResult,
    Histogram as Histogram,
    HistogramStats as HistogramStats,
    Kvaerno5 as Kvaerno5,
    LatinHypercube as LatinHypercube,
    Leapfrog as Leapfrog,
    LogUniform as LogUniform,
    MinMax as MinMax,
    MinMaxStats as MinMaxStats,
    Moments as Moments,
    MomentStats as MomentStats,
    MonteCarlo as MonteCarlo,
    Normal as Normal,
    Quantiles as Quantiles,
    Reversible as Reversible,
    SaveAt as SaveAt,
    SemiImplicitEuler as SemiImplicitEuler,
    SimulationError as SimulationError,
    Sobol as Sobol,
    TrainStep as TrainStep,
    Trajectory as Trajectory,
    TrajectoryModel as TrajectoryModel,
    Tsit5 as Tsit5,
    Tsit5Fixed as Tsit5Fixed,
    Uniform as Uniform,
    Yoshida4 as Yoshida4,
    ensemble as ensemble,
    fit as fit,
    grid as grid,
    make_train_step as make_train_step,
    sample as sample,
    simulate as simulate,
)
from .systems import (
    AbstractMechanicalSystem as AbstractMechanicalSystem,
    AbstractSystem as AbstractSystem,
    MechanicalSystem as MechanicalSystem,
    ODESystem as ODESystem,
    PhaseState as PhaseState,
)

__version__ = "0.1.0"
