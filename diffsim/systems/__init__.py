"""The physics: each module one family of systems; no loops, no solvers."""

from ._base import (
    AbstractMechanicalSystem as AbstractMechanicalSystem,
    AbstractSystem as AbstractSystem,
    MechanicalSystem as MechanicalSystem,
    ODESystem as ODESystem,
    PhaseState as PhaseState,
)
from ._harmonic import HarmonicOscillator as HarmonicOscillator
from ._lorenz import Lorenz as Lorenz
from ._nbody import NBody as NBody
from ._pendulum import Pendulum as Pendulum
