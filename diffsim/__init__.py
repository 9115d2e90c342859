"""diffsim: differentiable physics simulation on JAX.

```python
import diffsim as ds
traj = ds.simulate(ds.systems.Pendulum(length=1.0), y0, t1=10.0, dt=0.01)
```
"""

from . import systems as systems
from .engine import (
    RESULTS as RESULTS,
    RK4 as RK4,
    AbstractAdaptiveIntegrator as AbstractAdaptiveIntegrator,
    AbstractAdjoint as AbstractAdjoint,
    AbstractFixedStepIntegrator as AbstractFixedStepIntegrator,
    AbstractIntegrator as AbstractIntegrator,
    Backsolve as Backsolve,
    Checkpointed as Checkpointed,
    Direct as Direct,
    Dopri8 as Dopri8,
    Euler as Euler,
    FitResult as FitResult,
    Kvaerno5 as Kvaerno5,
    Leapfrog as Leapfrog,
    Reversible as Reversible,
    SaveAt as SaveAt,
    SemiImplicitEuler as SemiImplicitEuler,
    SimulationError as SimulationError,
    Trajectory as Trajectory,
    TrajectoryModel as TrajectoryModel,
    Tsit5 as Tsit5,
    Yoshida4 as Yoshida4,
    fit as fit,
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
