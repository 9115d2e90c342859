"""Bad parameters of the systems' constructors: refused when the system is built, with a
short message naming the class and the field; and the checks leave `jax.jit`,
`jax.vmap` and `jax.grad` over systems built from traced parameters alone."""

import inspect
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import diffsim as ds
from diffsim.systems import (
    AllPairs,
    BouncingBall,
    Burgers1D,
    CartPole,
    CellList,
    ChargedParticle,
    DoublePendulum,
    HarmonicOscillator,
    Heat1D,
    Heat2D,
    Kepler,
    Langevin,
    LennardJones,
    Lorenz,
    NBody,
    OrbitalElements,
    OrnsteinUhlenbeck,
    Pendulum,
    Policy,
    Projectile,
    SoftBouncingBall,
    SpringMassNetwork,
    VanDerPol,
    Wave1D,
)
from tests.errors.helpers import assert_refused, case

NAN, INF = math.nan, math.inf
_EDGES = jnp.array([[0, 1], [1, 2]])


def _springs(**fields):
    base = dict(masses=jnp.ones(3), edges=_EDGES, rest_lengths=jnp.ones(2), stiffness=1.0)
    return SpringMassNetwork(**{**base, **fields})


def _net(x):
    return jnp.sum(x)


V, T = ValueError, TypeError

CASES = [
    # The examples: blamed on y0 before, now on the parameter.
    case(lambda: Pendulum(length=0.0), V, "Pendulum", "`length`", "positive", id="pendulum-length-0"),
    case(lambda: Pendulum(length=-1.0), V, "Pendulum", "`length`", "-1.0", id="pendulum-length-neg"),
    case(lambda: NBody(masses=jnp.ones((2, 2))), V, "NBody", "`masses`", "1-d", "(2, 2)", id="nbody-masses-2d"),
    case(lambda: NBody(masses=jnp.array([1.0, -1.0])), V, "NBody", "`masses`", "index (1,)", id="nbody-mass-neg"),
    # Finiteness and types.
    case(lambda: Pendulum(length=NAN), V, "Pendulum", "`length`", "finite", "nan", id="pendulum-length-nan"),
    case(lambda: Pendulum(length=INF), V, "Pendulum", "`length`", "finite", id="pendulum-length-inf"),
    case(lambda: Pendulum(length="1.0"), T, "Pendulum", "`length`", "real number", id="pendulum-length-str"),
    case(lambda: Pendulum(length=None), T, "Pendulum", "`length`", "NoneType", id="pendulum-length-none"),
    case(lambda: Pendulum(length=jnp.array([1.0, -2.0])), V, "`length`", "index (1,)", id="pendulum-batch"),
    case(lambda: Pendulum(length=1.0, gravity=-9.81), V, "Pendulum", "`gravity`", "magnitude", id="pendulum-g"),
    case(lambda: Pendulum(length=1.0, damping=-0.1), V, "Pendulum", "`damping`", id="pendulum-damping"),
    case(lambda: Pendulum(length=1.0, mass=0.0), V, "Pendulum", "`mass`", id="pendulum-mass"),
    case(lambda: DoublePendulum(length2=0.0), V, "DoublePendulum", "`length2`", id="double-length2"),
    case(lambda: DoublePendulum(mass1=-1.0), V, "DoublePendulum", "`mass1`", id="double-mass1"),
    case(lambda: HarmonicOscillator(omega=NAN), V, "HarmonicOscillator", "`omega`", id="oscillator-nan"),
    case(lambda: HarmonicOscillator(omega=-2.0), V, "HarmonicOscillator", "`omega`", id="oscillator-neg"),
    case(lambda: Lorenz(rho=NAN), V, "Lorenz", "`rho`", "finite", id="lorenz-rho"),
    case(lambda: Lorenz(sigma=INF), V, "Lorenz", "`sigma`", "finite", id="lorenz-sigma"),
    case(lambda: VanDerPol(mu=NAN), V, "VanDerPol", "`mu`", id="vdp-mu"),
    case(lambda: Kepler(mu=0.0), V, "Kepler", "`mu`", "positive", id="kepler-mu"),
    case(lambda: OrbitalElements(-1.0), V, "OrbitalElements", "`semi_major_axis`", id="elements-a"),
    case(lambda: OrbitalElements(1.0, 1.0), V, "OrbitalElements", "`eccentricity`", "[0, 1)", id="elements-e"),
    case(lambda: OrbitalElements(1.0, inclination=NAN), V, "`inclination`", id="elements-i"),
    case(lambda: BouncingBall(restitution=1.5), V, "BouncingBall", "`restitution`", "[0, 1]", id="ball-e"),
    case(lambda: BouncingBall(drag=-1.0), V, "BouncingBall", "`drag`", id="ball-drag"),
    case(lambda: SoftBouncingBall(stiffness=0.0), V, "SoftBouncingBall", "`stiffness`", id="soft-k"),
    case(lambda: SoftBouncingBall(smoothing=0.0), V, "SoftBouncingBall", "`smoothing`", id="soft-w"),
    case(lambda: SoftBouncingBall.from_restitution(0.0), V, "from_restitution", "`restitution`", id="soft-e"),
    case(lambda: Pendulum(length=1.0 + 2.0j), T, "Pendulum", "`length`", "complex", id="pendulum-complex"),
    case(lambda: CartPole(pole_length=0.0), V, "CartPole", "`pole_length`", id="cartpole-length"),
    case(lambda: CartPole(cart_mass=-1.0), V, "CartPole", "`cart_mass`", id="cartpole-mass"),
    case(lambda: CartPole(force=3.0), T, "CartPole", "`force`", "callable", id="cartpole-force"),
    case(lambda: ChargedParticle(mass=0.0), V, "ChargedParticle", "`mass`", id="charge-mass"),
    case(lambda: ChargedParticle(charge=NAN), V, "ChargedParticle", "`charge`", id="charge-nan"),
    case(lambda: ChargedParticle(magnetic_field=(0.0, 1.0)), V, "`magnetic_field`", "(3,)", id="charge-B-shape"),
    case(lambda: ChargedParticle(electric_field=(NAN, 0, 0)), V, "`electric_field`", id="charge-E-nan"),
    case(lambda: Heat1D(diffusivity=-1.0), V, "Heat1D", "`diffusivity`", "positive", id="heat-D-neg"),
    case(lambda: Heat1D(diffusivity=0.0), V, "Heat1D", "`diffusivity`", id="heat-D-0"),
    case(lambda: Heat1D(length=0.0), V, "Heat1D", "`length`", id="heat-length"),
    case(lambda: Heat1D(left=NAN), V, "Heat1D", "`left`", id="heat-left"),
    case(lambda: Heat2D(length_y=-1.0), V, "Heat2D", "`length_y`", id="heat2d-length"),
    case(lambda: Heat2D(diffusivity=jnp.array([[1.0, -1.0]])), V, "Heat2D", "index (0, 1)", id="heat2d-field"),
    case(lambda: Wave1D(wave_speed=0.0), V, "Wave1D", "`wave_speed`", id="wave-c"),
    case(lambda: Wave1D(length=INF), V, "Wave1D", "`length`", id="wave-length"),
    case(lambda: Burgers1D(viscosity=-0.01), V, "Burgers1D", "`viscosity`", id="burgers-nu"),
    case(lambda: LennardJones(box=-10.0), V, "LennardJones", "`box`", id="lj-box"),
    case(lambda: LennardJones(box=10.0, sigma=0.0), V, "LennardJones", "`sigma`", id="lj-sigma"),
    case(lambda: LennardJones(box=10.0, masses=jnp.ones((2, 2))), V, "`masses`", id="lj-masses"),
    case(lambda: LennardJones(box=10.0, onset=3.0), V, "LennardJones", "`onset`", id="lj-onset"),
    case(lambda: CellList(grid=(3, 3, 3), capacity=0), V, "CellList", "`capacity`", id="cells-capacity"),
    case(lambda: AllPairs(block_size=0), V, "AllPairs", "`block_size`", id="allpairs-block"),
    case(lambda: NBody(masses=jnp.ones(2), G=0.0), V, "NBody", "`G`", id="nbody-G"),
    case(lambda: NBody(masses=jnp.ones(2), G=NAN), V, "NBody", "`G`", "finite", id="nbody-G-nan"),
    case(lambda: NBody(masses=jnp.ones(2), softening=-0.1), V, "NBody", "`softening`", id="nbody-eps"),
    case(lambda: _springs(edges=jnp.array([[0, 3]])), V, "SpringMassNetwork", "`edges`", "0 to 2", id="springs-index"),
    case(lambda: _springs(edges=jnp.ones((2, 2))), T, "SpringMassNetwork", "`edges`", "integer", id="springs-dtype"),
    case(lambda: _springs(stiffness=-1.0), V, "SpringMassNetwork", "`stiffness`", id="springs-k"),
    case(lambda: _springs(rest_lengths=jnp.ones(3)), V, "`rest_lengths`", "(2,)", id="springs-rest"),
    case(lambda: _springs(masses=1.0), V, "SpringMassNetwork", "`masses`", "1-d", id="springs-masses"),
    case(lambda: _springs(drag=-1.0), V, "SpringMassNetwork", "`drag`", id="springs-drag"),
    case(lambda: OrnsteinUhlenbeck(theta=0.0, sigma=1.0), V, "OrnsteinUhlenbeck", "`theta`", id="ou-theta"),
    case(lambda: OrnsteinUhlenbeck(theta=1.0, sigma=-1.0), V, "OrnsteinUhlenbeck", "`sigma`", id="ou-sigma"),
    case(lambda: Langevin(Lorenz(), friction=1.0, kT=1.0), T, "Langevin", "`system`", id="langevin-system"),
    case(lambda: Langevin(Pendulum(length=1.0), friction=-1.0, kT=1.0), V, "`friction`", id="langevin-gamma"),
    case(lambda: Langevin(Pendulum(length=1.0), friction=1.0, kT=-1.0), V, "`kT`", id="langevin-kT"),
    case(lambda: Projectile(drag=-0.1), V, "Projectile", "`drag`", id="projectile-drag"),
    case(lambda: Policy(_net, bound=INF), V, "Policy", "`bound`", id="policy-bound"),
    case(lambda: Policy(_net, shape=2), T, "Policy", "`shape`", id="policy-shape"),
    case(lambda: ds.ODESystem("f", {}), T, "ODESystem", "`fn`", "callable", id="odesystem-fn"),
    case(lambda: ds.MechanicalSystem(None, {}), T, "MechanicalSystem", "`fn`", id="mechanical-fn"),
    case(lambda: ds.PhaseState(q=jnp.zeros(3), v=jnp.zeros(2)), V, "PhaseState", "`v`", id="phase-shapes"),
]  # fmt: skip


@pytest.mark.parametrize("call, exc, mentions", CASES)
def test_bad_parameter_is_refused_naming_the_field(call, exc, mentions):
    assert_refused(call, exc, *mentions)


def test_refused_inside_jit_when_the_value_is_a_constant():
    # A bad value closed over (concrete inside the trace) is refused at trace time.
    def accel(q):
        return Pendulum(length=0.0).acceleration(0.0, q, q)

    assert_refused(lambda: jax.jit(accel)(1.0), ValueError, "Pendulum", "`length`")
    y0 = ds.PhaseState(q=jnp.array([[0.0, 0.0], [1.0, 0.0]]), v=jnp.zeros((2, 2)))
    run = lambda: ds.simulate(NBody(masses=jnp.ones((2, 2))), y0, t1=0.1, dt=0.01)  # noqa: E731
    assert_refused(run, ValueError, "NBody", "`masses`", "(2, 2)")


def test_every_exported_system_class_checks_its_parameters():
    # Every concrete eqx.Module class of the catalogue has a __check_init__ of its own
    # (or from the grid base) rather than inheriting none.
    for name, cls in vars(ds.systems).items():
        if not (inspect.isclass(cls) and issubclass(cls, eqx.Module)) or inspect.isabstract(cls):
            continue
        if name.startswith("Abstract"):
            continue
        owners = [k for k in cls.__mro__ if "__check_init__" in vars(k)]
        assert owners, f"{name} checks nothing"


# Each builder makes a valid system from a scalar parameter, and a state to evaluate at.
_Y1 = ds.PhaseState(q=jnp.array(0.3), v=jnp.array(0.1))
_Y3 = ds.PhaseState(q=jnp.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.5]]), v=jnp.zeros((3, 2)))
BUILDERS = {
    "pendulum": (lambda p: Pendulum(length=p, damping=0.1 * p), _Y1),
    "double": (lambda p: DoublePendulum(length2=p), DoublePendulum().initial_state(0.1, 0.2)),
    "kepler": (lambda p: Kepler(mu=p), Kepler().initial_state(1.0, 0.3, dim=2)),
    "nbody": (lambda p: NBody(masses=p * jnp.array([1.0, 2.0, 3.0]), softening=0.1 * p), _Y3),
    "heat": (lambda p: Heat1D(diffusivity=p * jnp.linspace(1.0, 2.0, 8)), jnp.sin(jnp.arange(8.0))),
    "wave": (lambda p: Wave1D(wave_speed=p), Wave1D().initial_state(jnp.sin(jnp.arange(8.0)))),
    "ou": (lambda p: OrnsteinUhlenbeck(theta=p, sigma=p), jnp.array(0.5)),
    "langevin": (lambda p: Langevin(HarmonicOscillator(omega=p), friction=p, kT=p), _Y1),
    "charged": (lambda p: ChargedParticle(mass=p, magnetic_field=jnp.array([0.0, 0.0, p])),
                ds.PhaseState(q=jnp.zeros(3), v=jnp.ones(3))),
}  # fmt: skip


def _output(name, p):
    make, y = BUILDERS[name]
    return sum(jnp.sum(leaf) for leaf in jax.tree.leaves(make(p).vector_field(0.0, y)))


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_checks_leave_jit_vmap_and_grad_alone(name):
    eager = _output(name, 1.5)
    assert np.isclose(jax.jit(lambda p: _output(name, p))(1.5), eager, rtol=1e-12)
    batch = jax.vmap(lambda p: _output(name, p))(jnp.array([1.0, 1.5, 2.0]))
    assert np.isclose(batch[1], eager, rtol=1e-12)
    assert np.isfinite(jax.grad(lambda p: _output(name, p))(1.5))


def test_traced_values_are_not_checked():
    # Inside a transformation the value is unknown: no error, and no cost (the contract).
    assert jax.jit(lambda L: Pendulum(length=L).length)(-1.0) == -1.0


def test_batched_fields_pass_elementwise():
    # A system whose fields carry a leading batch axis, mapped by eqx.filter_vmap.
    lengths = jnp.array([0.5, 1.0, 2.0])
    batch = Pendulum(length=lengths, damping=jnp.zeros(3))
    y0 = batch.initial_state(jnp.array([0.1, 0.2, 0.3]))
    out = eqx.filter_vmap(lambda s, y: s.acceleration(0.0, y.q, y.v))(batch, y0)
    assert out.shape == (3,)
    Heat1D(diffusivity=jnp.ones((4, 8)))  # a batch of four fields
    OrbitalElements(jnp.array([1.0, 2.0]), eccentricity=jnp.array([0.0, 0.9]))
