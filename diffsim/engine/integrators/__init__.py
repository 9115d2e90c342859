"""Integrators: strategy objects passed as `simulate(..., integrator=...)`.

One module per family: `_base` (the contract every integrator meets), `_fixed_step`
(Euler, RK4, semi-implicit Euler, leapfrog, Yoshida, with force reuse), `_explicit_rk`
(explicit Runge-Kutta tableaux), `_boris` (charged particles), `_sde` (stochastic),
`_events` (fixed-step event location), `_wisdom_holman` (near-Keplerian N-body),
`_adaptive` (diffrax's adaptive and stiff solvers, and `Diffrax` for any other diffrax
solver).
"""

from ._adaptive import (
    AbstractAdaptiveIntegrator as AbstractAdaptiveIntegrator,
    Diffrax as Diffrax,
    Dopri8 as Dopri8,
    Kvaerno5 as Kvaerno5,
    Tsit5 as Tsit5,
)
from ._base import (
    AbstractFixedStepIntegrator as AbstractFixedStepIntegrator,
    AbstractIntegrator as AbstractIntegrator,
)
from ._boris import Boris as Boris
from ._events import EventStep as EventStep
from ._explicit_rk import AbstractExplicitRK as AbstractExplicitRK, Tsit5Fixed as Tsit5Fixed
from ._fixed_step import (
    RK4 as RK4,
    Euler as Euler,
    Leapfrog as Leapfrog,
    SemiImplicitEuler as SemiImplicitEuler,
    Yoshida4 as Yoshida4,
)
from ._sde import (
    BAOAB as BAOAB,
    AbstractSDEIntegrator as AbstractSDEIntegrator,
    EulerMaruyama as EulerMaruyama,
)
from ._wisdom_holman import WisdomHolman as WisdomHolman
