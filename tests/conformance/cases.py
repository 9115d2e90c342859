"""The conformance matrix's declarations: which systems, which cells, one small test
configuration per system, and the cells each system refuses by design.

A system of the catalogue `ds.systems` is found by introspection (`discover_systems`); each
one needs a `Case` in `CASES`. A `Case` builds the system from one scalar parameter `p`
(`make(p)`), rolls it forward from `y0` with its natural integrator for a few dozen steps,
and lists the cells it does not support by design with a one-line reason. The test module
(`test_systems_matrix.py`) and the table generator (`table.py`) both read these
declarations, so `docs/conformance.md` never disagrees with what is tested.
"""

import dataclasses
import inspect
import math
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

import diffsim as ds

# The columns of the matrix, in order.
CELLS = (
    "eager",
    "jit",
    "vmap",
    "grad_Direct",
    "grad_Checkpointed",
    "grad_Reversible",
    "jvp",
    "jacfwd",
    "linearize",
    "fit",
    "posterior",
    "ensemble",
    "ensemble_refill",
    "ensemble_fused",
    "ensemble_checkpoint",
    "float32",
    "x64_float32_inputs",
)

# The cells run by default (CI); every other cell is marked `slow`.
DEFAULT_CELLS = ("grad_Checkpointed",)

# Classes of `ds.systems` that are helpers, not systems (for documentation: the
# `AbstractSystem` subclass test already leaves them out).
NOT_SYSTEMS = frozenset(
    {"PhaseState", "OrbitalElements", "Policy", "AllPairs", "CellList", "NeighbourList"}
)


def discover_systems() -> dict[str, type]:
    """Every concrete `ds.AbstractSystem` subclass exported by `ds.systems`, by name."""
    found = {}
    for name, obj in vars(ds.systems).items():
        if name.startswith("_") or name in NOT_SYSTEMS or not inspect.isclass(obj):
            continue
        if issubclass(obj, ds.AbstractSystem) and not inspect.isabstract(obj):
            found[name] = obj
    return dict(sorted(found.items()))


@dataclasses.dataclass(frozen=True)
class Case:
    """One system's test configuration.

    - `make`: `p -> system`, differentiable in the scalar `p`.
    - `p0`: the parameter value the cells run at.
    - `y0`: the initial state (float64).
    - `integrator`, `dt`, `n_steps`: the rollout.
    - `unsupported`: `{cell: one-line reason}` for cells refused by design.
    - `rtol`: per-cell tolerance overrides (`{"float32": 1e-3}`).
    """

    make: Callable[[Any], Any]
    p0: float
    y0: Any
    integrator: Any
    dt: float
    n_steps: int
    unsupported: dict[str, str] = dataclasses.field(default_factory=dict)
    rtol: dict[str, float] = dataclasses.field(default_factory=dict)

    def simulate(self, p, *, y0=None, adjoint=None, saveat=None, system=None):
        kwargs = {}
        if adjoint is not None:
            kwargs["adjoint"] = adjoint
        if saveat is not None:
            kwargs["saveat"] = saveat
        return ds.simulate(
            self.make(p) if system is None else system,
            self.y0 if y0 is None else y0,
            dt=self.dt,
            n_steps=self.n_steps,
            integrator=self.integrator,
            **kwargs,
        )


# Reasons shared by several systems.
NOT_REVERSIBLE = "its integrator ({}) is not time-reversible: ds.Reversible needs Leapfrog/Yoshida4"
VELOCITY = "velocity-dependent acceleration ({}): a backward step cannot undo a forward one"
NO_ADAPTIVE_SDE = (
    "stochastic: the refill schedule takes adaptive ODE solves, which would drop the noise"
)
NOISE_DTYPE = (
    "noise is drawn in the state's dtype: float32 and float64 follow different sample paths"
)


def _not_reversible(integrator_name: str) -> dict[str, str]:
    return {"grad_Reversible": NOT_REVERSIBLE.format(integrator_name)}


def _linear_feature(t, q, v):
    """A hybrid correction's input that depends on the position only (reversible)."""
    return jnp.reshape(q, (1,))


def _mlp(in_size, out_size, seed):
    return eqx.nn.MLP(in_size, out_size, 4, 1, activation=jnp.tanh, key=jax.random.key(seed))


def _scaled(module, scale):
    """`module` with every floating array leaf multiplied by `scale` (small corrections)."""
    return jax.tree.map(lambda x: x * scale if eqx.is_inexact_array(x) else x, module)


_CORRECTION_1D = _scaled(_mlp(1, "scalar", 1), 0.1)
_CORRECTION_2D = _scaled(_mlp(2, 2, 2), 0.1)


def _anharmonic(t, q, v, p):
    return -p * q - 0.5 * q**3


def _damped_linear(t, y, p):
    return jnp.stack([y[1], -p * y[0] - 0.3 * y[1]])


def _spring_chain():
    chain, y0 = ds.systems.SpringMassNetwork.chain(
        4, spacing=0.1, direction=(1.0, 0.0), pinned=(0,)
    )
    # A stretched chain so the springs act from the start.
    q = y0.q * jnp.array([1.2, 1.0])
    return chain, ds.PhaseState(q=q, v=y0.v)


_CHAIN, _CHAIN_Y0 = _spring_chain()


def _spring_make(k):
    return ds.systems.SpringMassNetwork(
        masses=_CHAIN.masses,
        edges=_CHAIN.edges,
        rest_lengths=_CHAIN.rest_lengths,
        stiffness=k * jnp.ones_like(_CHAIN.rest_lengths),
        damping=_CHAIN.damping,
        gravity=_CHAIN.gravity,
        pinned=_CHAIN.pinned,
    )


def _lj_state():
    system, y0 = ds.systems.LennardJones.lattice(
        2, density=0.05, temperature=1.0, key=jax.random.key(7)
    )
    q = y0.q + 0.1 * jax.random.normal(jax.random.key(8), y0.q.shape)
    return system.box, ds.PhaseState(q=q, v=y0.v)


_LJ_BOX, _LJ_Y0 = _lj_state()

_KEY = jax.random.key(0)

CASES: dict[str, Case] = {
    "BouncingBall": Case(
        make=lambda p: ds.systems.BouncingBall(restitution=p),
        p0=0.7,
        y0=ds.PhaseState(q=jnp.array([0.0, 1.0]), v=jnp.array([0.5, 0.8])),
        integrator=ds.EventStep(),
        dt=1e-2,
        n_steps=60,  # the first impact is at t = 0.54
        unsupported=_not_reversible("EventStep"),
    ),
    "Burgers1D": Case(
        make=lambda p: ds.systems.Burgers1D(viscosity=p, length=2 * math.pi, periodic=True),
        p0=0.2,
        y0=jnp.sin(ds.systems.Burgers1D(length=2 * math.pi, periodic=True).grid(12)),
        integrator=ds.RK4(),
        dt=1e-2,
        n_steps=30,
        unsupported=_not_reversible("RK4"),
    ),
    "CartPole": Case(
        make=lambda p: ds.systems.CartPole(pole_length=p),
        p0=0.5,
        y0=ds.systems.CartPole().initial_state(0.0, 0.5),
        integrator=ds.RK4(),
        dt=1e-2,
        n_steps=30,
        unsupported=_not_reversible("RK4"),
    ),
    "ChargedParticle": Case(
        make=lambda p: ds.systems.ChargedParticle(
            charge=p, electric_field=jnp.array([0.1, 0.0, 0.0])
        ),
        p0=1.0,
        y0=ds.PhaseState(q=jnp.zeros(3), v=jnp.array([0.0, 1.0, 0.1])),
        integrator=ds.Boris(),
        dt=5e-2,
        n_steps=30,
        unsupported={"grad_Reversible": VELOCITY.format("magnetic force; Boris pusher")},
    ),
    "DoublePendulum": Case(
        make=lambda p: ds.systems.DoublePendulum(length1=p, length2=1.0),
        p0=0.8,
        y0=ds.systems.DoublePendulum().initial_state(1.0, 0.5),
        integrator=ds.RK4(),
        dt=1e-2,
        n_steps=30,
        unsupported=_not_reversible("RK4"),
    ),
    "HarmonicOscillator": Case(
        make=lambda p: ds.systems.HarmonicOscillator(omega=p),
        p0=2.0,
        y0=ds.systems.HarmonicOscillator(omega=1.0).initial_state(1.0, 0.5),
        integrator=ds.Leapfrog(),
        dt=2e-2,
        n_steps=40,
    ),
    "Heat1D": Case(
        make=lambda p: ds.systems.Heat1D(diffusivity=p),
        p0=0.2,
        y0=jnp.sin(math.pi * ds.systems.Heat1D().grid(8)) + 0.1 * jnp.arange(8.0),
        integrator=ds.RK4(),
        dt=1e-3,
        n_steps=30,
        unsupported=_not_reversible("RK4"),
    ),
    "Heat2D": Case(
        make=lambda p: ds.systems.Heat2D(diffusivity=p),
        p0=0.2,
        y0=jnp.ones((5, 4)) + 0.1 * jnp.arange(20.0).reshape(5, 4),
        integrator=ds.RK4(),
        dt=1e-3,
        n_steps=20,
        unsupported=_not_reversible("RK4"),
    ),
    "HybridODE": Case(
        make=lambda p: ds.systems.HybridODE(
            physics=ds.systems.VanDerPol(mu=p), correction=_CORRECTION_2D
        ),
        p0=1.0,
        y0=ds.systems.VanDerPol().initial_state(1.0),
        integrator=ds.RK4(),
        dt=2e-2,
        n_steps=30,
        unsupported=_not_reversible("RK4"),
    ),
    "HybridSystem": Case(
        make=lambda p: ds.systems.HybridSystem(
            physics=ds.systems.Pendulum(length=p),
            correction=_CORRECTION_1D,
            features=_linear_feature,
        ),
        p0=1.0,
        y0=ds.systems.Pendulum(length=1.0).initial_state(0.8),
        integrator=ds.Leapfrog(),
        dt=2e-2,
        n_steps=30,
    ),
    "Kepler": Case(
        make=lambda p: ds.systems.Kepler(mu=p),
        p0=1.1,
        y0=ds.systems.Kepler(mu=1.0).initial_state(1.0, 0.3, dim=2),
        integrator=ds.Yoshida4(),
        dt=5e-2,
        n_steps=30,
    ),
    "Langevin": Case(
        make=lambda p: ds.systems.Langevin(
            ds.systems.HarmonicOscillator(omega=p), friction=1.0, kT=0.5
        ),
        p0=2.0,
        y0=ds.PhaseState(q=jnp.array([0.5, -0.2]), v=jnp.array([0.0, 0.3])),
        integrator=ds.BAOAB(key=_KEY),
        dt=5e-2,
        n_steps=30,
        unsupported={
            "grad_Reversible": "stochastic integrator (BAOAB) with friction: not reversible",
            "float32": NOISE_DTYPE,
            "ensemble_refill": NO_ADAPTIVE_SDE,
        },
    ),
    "LennardJones": Case(
        make=lambda p: ds.systems.LennardJones(box=_LJ_BOX, epsilon=p),
        p0=1.0,
        y0=_LJ_Y0,
        integrator=ds.Leapfrog(),
        dt=1e-2,
        n_steps=20,
    ),
    "Lorenz": Case(
        make=lambda p: ds.systems.Lorenz(rho=p),
        p0=28.0,
        y0=jnp.array([1.0, 0.0, 0.0]),
        integrator=ds.RK4(),
        dt=1e-2,
        n_steps=30,
        unsupported=_not_reversible("RK4"),
    ),
    "MechanicalSystem": Case(
        make=lambda p: ds.MechanicalSystem(_anharmonic, p),
        p0=1.5,
        y0=ds.PhaseState(q=jnp.array([0.7, -0.3]), v=jnp.array([0.0, 0.4])),
        integrator=ds.Leapfrog(),
        dt=2e-2,
        n_steps=40,
    ),
    "NBody": Case(
        make=lambda p: ds.systems.NBody(masses=jnp.array([1.0, 0.5, 0.3]), G=p, softening=0.1),
        p0=1.0,
        y0=ds.PhaseState(
            q=jnp.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.2]]),
            v=jnp.array([[0.0, -0.1], [0.0, 0.8], [-0.6, 0.0]]),
        ),
        integrator=ds.Leapfrog(),
        dt=1e-2,
        n_steps=40,
    ),
    "ODESystem": Case(
        make=lambda p: ds.ODESystem(_damped_linear, p),
        p0=2.0,
        y0=jnp.array([1.0, 0.0]),
        integrator=ds.RK4(),
        dt=2e-2,
        n_steps=40,
        unsupported=_not_reversible("RK4"),
    ),
    "OrnsteinUhlenbeck": Case(
        make=lambda p: ds.systems.OrnsteinUhlenbeck(theta=p, sigma=0.5, mu=0.2),
        p0=2.0,
        y0=jnp.array([1.0, -0.5]),
        integrator=ds.EulerMaruyama(key=_KEY),
        dt=1e-2,
        n_steps=40,
        unsupported={
            "grad_Reversible": NOT_REVERSIBLE.format("EulerMaruyama"),
            "float32": NOISE_DTYPE,
            "ensemble_refill": NO_ADAPTIVE_SDE,
        },
    ),
    "Pendulum": Case(
        make=lambda p: ds.systems.Pendulum(length=p),
        p0=1.1,
        y0=ds.systems.Pendulum(length=1.0).initial_state(0.7),
        integrator=ds.Yoshida4(),
        dt=2e-2,
        n_steps=30,
    ),
    "Projectile": Case(
        make=lambda p: ds.systems.Projectile(drag=p),
        p0=0.02,
        y0=ds.systems.Projectile().initial_state(30.0, 0.9),
        integrator=ds.RK4(),
        dt=5e-2,
        n_steps=30,
        unsupported=_not_reversible("RK4"),
    ),
    "SoftBouncingBall": Case(
        make=lambda p: ds.systems.SoftBouncingBall(stiffness=p, smoothing=1e-3),
        p0=1e4,
        y0=ds.PhaseState(q=jnp.array([0.3, 0.02]), v=jnp.array([1.0, -1.0])),
        integrator=ds.Leapfrog(),
        dt=1e-3,
        n_steps=40,
        unsupported={"grad_Reversible": VELOCITY.format("contact damping")},
    ),
    "SpringMassNetwork": Case(
        make=_spring_make,
        p0=100.0,
        y0=_CHAIN_Y0,
        integrator=ds.Leapfrog(),
        dt=2e-3,
        n_steps=30,
    ),
    "VanDerPol": Case(
        make=lambda p: ds.systems.VanDerPol(mu=p),
        p0=2.0,
        y0=ds.systems.VanDerPol().initial_state(1.0),
        integrator=ds.RK4(),
        dt=2e-2,
        n_steps=30,
        unsupported=_not_reversible("RK4"),
    ),
    "Wave1D": Case(
        make=lambda p: ds.systems.Wave1D(wave_speed=p),
        p0=1.0,
        y0=ds.systems.Wave1D().initial_state(jnp.sin(math.pi * ds.systems.Wave1D().grid(10))),
        integrator=ds.Leapfrog(),
        dt=1e-2,
        n_steps=30,
    ),
}


def is_supported(system: str, cell: str) -> bool:
    return cell not in CASES[system].unsupported


# The fused GPU kernel (`schedule="fused"`) takes states and system fields of one number
# per member (in each leaf): the systems with a scalar-leaf (tuple) form of their state.
# Every other system is refused with a ValueError that says why.
FUSED = frozenset({"HarmonicOscillator", "Lorenz", "Pendulum"})
_NOT_FUSED = (
    "array state or fields per member: the fused kernel takes one number per member in "
    "each state leaf and system field (e.g. Lorenz's tuple form)"
)
_NOISE_NOT_FUSED = "stochastic: the fused kernel runs explicit Runge-Kutta methods"
for _name, _case in CASES.items():
    if _name not in FUSED:
        _stochastic = "ensemble_refill" in _case.unsupported
        _case.unsupported.setdefault(
            "ensemble_fused", _NOISE_NOT_FUSED if _stochastic else _NOT_FUSED
        )
