"""The physics: each module one family of systems; no loops, no solvers."""

from ._base import (
    AbstractMechanicalSystem as AbstractMechanicalSystem,
    AbstractSystem as AbstractSystem,
    MechanicalSystem as MechanicalSystem,
    ODESystem as ODESystem,
    PhaseState as PhaseState,
)
from ._bouncing_ball import (
    BouncingBall as BouncingBall,
    SoftBouncingBall as SoftBouncingBall,
)
from ._burgers import Burgers1D as Burgers1D
from ._cartpole import CartPole as CartPole
from ._charged_particle import ChargedParticle as ChargedParticle
from ._control import Policy as Policy
from ._double_pendulum import DoublePendulum as DoublePendulum
from ._harmonic import HarmonicOscillator as HarmonicOscillator
from ._heat import Heat1D as Heat1D, Heat2D as Heat2D
from ._hybrid import HybridODE as HybridODE, HybridSystem as HybridSystem
from ._kepler import (
    Kepler as Kepler,
    OrbitalElements as OrbitalElements,
    solve_kepler as solve_kepler,
)
from ._lennard_jones import (
    AllPairs as AllPairs,
    CellList as CellList,
    LennardJones as LennardJones,
    NeighbourList as NeighbourList,
)
from ._lorenz import Lorenz as Lorenz
from ._nbody import NBody as NBody
from ._nbody_initial import (
    SOLAR_SYSTEM_BODIES as SOLAR_SYSTEM_BODIES,
    plummer as plummer,
    solar_system as solar_system,
)
from ._pendulum import Pendulum as Pendulum
from ._projectile import Projectile as Projectile
from ._spring_mass import SpringMassNetwork as SpringMassNetwork
from ._stochastic import Langevin as Langevin, OrnsteinUhlenbeck as OrnsteinUhlenbeck
from ._van_der_pol import VanDerPol as VanDerPol
from ._wave import Wave1D as Wave1D
