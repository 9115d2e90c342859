"""`ds.simulate`'s error model: bad input refused before anything runs, with a short
message naming the argument; failures at run time one `ds.SimulationError` subclass
naming the step and time, on the first call and on a cached compile alike, and
equinox's error with the same first line under a user's transformation."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import diffsim as ds

from .helpers import assert_refused, case

PENDULUM = ds.systems.Pendulum(length=1.0)
Y0 = PENDULUM.initial_state(0.5)
LORENZ = ds.systems.Lorenz()
XYZ = jnp.array([1.0, 1.0, 1.0])
NAN = float("nan")


def sim(system=PENDULUM, y0=Y0, **kwargs):
    kwargs.setdefault("t1", 1.0)
    kwargs.setdefault("dt", 0.1)
    return lambda: ds.simulate(system, y0, **kwargs)


def _typo_field(t, y, p):
    return -p * yy  # noqa: F821 - the typo a user makes


def _heat_at_50x_stable_step():
    heat = ds.systems.Heat1D(diffusivity=1.0)
    x = heat.grid(49)  # h = 1/50: RK4 is stable for dt <= 2.785 h^2 / 4 = 2.8e-4
    return lambda: ds.simulate(heat, jnp.sin(jnp.pi * x), n_steps=10, dt=0.014)


CASES = [
    # Step size and step count.
    case(sim(dt=0.0), ValueError, "dt", "positive", id="dt-zero"),
    case(sim(dt=-0.1), ValueError, "dt", "t1 > t0", "positive", id="dt-negative"),
    case(sim(dt=NAN), ValueError, "dt", "nan", id="dt-nan"),
    case(sim(dt=float("inf")), ValueError, "dt", "inf", id="dt-inf"),
    case(sim(dt=None), ValueError, "dt", "dt=0.01", id="dt-missing"),
    case(sim(dt=jnp.array([0.1, 0.2])), ValueError, "dt", "scalar", id="dt-array"),
    case(sim(n_steps=10), ValueError, "t1=", "n_steps=", id="t1-and-n_steps"),
    case(sim(t1=None), ValueError, "t1=", "n_steps=", id="neither-t1-nor-n_steps"),
    case(sim(t1=None, n_steps=-1), ValueError, "n_steps", "-1", id="n_steps-negative"),
    case(sim(t1=None, n_steps=1.5), ValueError, "n_steps", "int", id="n_steps-float"),
    case(sim(t1=None, n_steps=True), ValueError, "n_steps", id="n_steps-bool"),
    case(sim(t1=0.95), ValueError, "whole number of steps", id="t1-not-whole-steps"),
    case(sim(max_steps=5), ValueError, "max_steps=5", id="fixed-more-than-max_steps"),
    case(sim(max_steps=0), ValueError, "max_steps", id="max_steps-zero"),
    # Times.
    case(sim(t0=1.0, t1=0.5, dt=-0.3), ValueError, "whole number", id="t1-before-t0-bad-dt"),
    case(sim(t0=NAN, t1=None, n_steps=10), ValueError, "t0", "finite", id="t0-nan"),
    case(sim(t0=float("inf"), t1=None, n_steps=10), ValueError, "t0", id="t0-inf"),
    case(sim(t1=NAN), ValueError, "t1", "finite", id="t1-nan"),
    case(sim(t1=float("inf")), ValueError, "t1", "finite", id="t1-inf"),
    case(
        sim(LORENZ, XYZ, t1=NAN, dt=None, integrator=ds.Tsit5()),
        ValueError,
        "t1",
        "finite",
        id="adaptive-t1-nan",
    ),  # fmt: skip
    case(sim(t0=jnp.zeros(2)), ValueError, "t0", "scalar", id="t0-array"),
    # Save times.
    case(
        sim(saveat=ds.SaveAt(ts=jnp.array([0.1, NAN, 0.5]))),
        ValueError,
        "SaveAt(ts=...)",
        "finite",
        "entry 1",
        id="saveat-ts-nan",
    ),  # fmt: skip
    case(
        sim(saveat=ds.SaveAt(ts=jnp.array([0.5, 2.0]))),
        ValueError,
        "SaveAt(ts=...)",
        "within",
        id="saveat-ts-after-t1",
    ),  # fmt: skip
    case(
        sim(saveat=ds.SaveAt(ts=jnp.array([0.5, 0.1]))),
        ValueError,
        "non-decreasing",
        id="saveat-ts-unsorted",
    ),  # fmt: skip
    case(
        sim(t0=1.0, t1=0.0, saveat=ds.SaveAt(ts=jnp.array([0.1, 0.5]))),
        ValueError,
        "non-increasing",
        "backwards",
        id="saveat-ts-backward-increasing",
    ),  # fmt: skip
    case(sim(saveat=ds.SaveAt(ts=jnp.array([]))), ValueError, "empty", id="saveat-ts-empty"),
    case(
        sim(LORENZ, XYZ, dt=None, integrator=ds.Tsit5(), saveat=ds.SaveAt(every=2)),
        ValueError,
        "SaveAt(every=k)",
        "SaveAt(ts=",
        id="saveat-every-adaptive",
    ),  # fmt: skip
    # Strategy objects.
    case(sim(integrator="rk4"), TypeError, "integrator", "ds.RK4()", id="integrator-string"),
    case(sim(saveat="t1"), TypeError, "saveat", id="saveat-string"),
    case(sim(adjoint="direct"), TypeError, "adjoint", id="adjoint-string"),
    case(
        sim(integrator=ds.RK4(), adjoint=ds.Reversible()),
        ValueError,
        "Reversible",
        "Leapfrog",
        id="reversible-with-rk4",
    ),  # fmt: skip
    case(
        sim(
            ds.systems.Pendulum(length=1.0, damping=0.3),
            integrator=ds.Leapfrog(),
            adjoint=ds.Reversible(),
        ),
        ValueError,
        "Pendulum",
        "velocity",
        "Checkpointed",
        id="reversible-with-damping",
    ),  # fmt: skip
    case(sim(adjoint=ds.Backsolve()), ValueError, "Backsolve", "adaptive", id="backsolve-fixed"),
    case(
        sim(LORENZ, XYZ, integrator=ds.Leapfrog()),
        TypeError,
        "Leapfrog",
        "mechanical",
        id="symplectic-on-first-order",
    ),  # fmt: skip
    case(
        sim(LORENZ, XYZ, t1=None, n_steps=10, integrator=ds.Tsit5()),
        ValueError,
        "t1=",
        "n_steps",
        id="adaptive-with-n_steps",
    ),  # fmt: skip
    case(
        sim(LORENZ, XYZ, dt=-0.1, integrator=ds.Tsit5()),
        ValueError,
        "dt",
        "t1 > t0",
        id="adaptive-dt-negative",
    ),  # fmt: skip
    # The system and the state.
    case(
        sim(y0=jnp.array([0.5, 0.0])),
        ValueError,
        "y0",
        "ds.PhaseState",
        "Pendulum",
        id="pendulum-y0-not-phase-state",
    ),  # fmt: skip
    case(sim(LORENZ, jnp.ones(2)), ValueError, "y0", "Lorenz", id="lorenz-y0-wrong-shape"),
    case(sim(LORENZ, {"x": "a"}), TypeError, "y0", "str", id="y0-string-leaf"),
    case(
        sim(ds.ODESystem(lambda t, y, p: (y, y), None), jnp.ones(2)),
        ValueError,
        "structure",
        id="vector-field-wrong-structure",
    ),  # fmt: skip
    case(
        sim(ds.ODESystem(lambda t, y, p: jnp.ones(3), None), jnp.ones(2)),
        ValueError,
        "shape (2,)",
        "shape (3,)",
        id="vector-field-wrong-shape",
    ),  # fmt: skip
    case(sim(object(), XYZ), TypeError, "vector_field", id="system-without-vector-field"),
    case(
        sim(ds.systems.OrnsteinUhlenbeck(theta=1.0, sigma=0.5), jnp.zeros(2)),
        ValueError,
        "OrnsteinUhlenbeck",
        "EulerMaruyama",
        id="stochastic-with-rk4",
    ),  # fmt: skip
    case(
        _heat_at_50x_stable_step(),
        ValueError,
        "dt=0.014",
        "Heat1D",
        "stability limit",
        id="heat-past-stability-limit",
    ),  # fmt: skip
]


@pytest.mark.parametrize("call, exc, mentions", CASES)
def test_refused_before_running(call, exc, mentions):
    assert_refused(call, exc, *mentions)


def test_refused_after_a_cached_compile():
    # The same shapes as a successful call: the refusal comes before the cache.
    ds.simulate(PENDULUM, Y0, t1=1.0, dt=0.1)
    for call, exc, mentions in [
        (sim(dt=-0.1), ValueError, ("dt",)),
        (sim(t0=NAN, t1=None, n_steps=10), ValueError, ("t0",)),
        (sim(saveat=ds.SaveAt(ts=jnp.array([0.1, NAN]))), ValueError, ("SaveAt",)),
    ]:
        assert_refused(call, exc, *mentions)


def test_user_code_error_propagates_as_itself():
    # A typo in the user's vector field is a NameError, not a complaint about y0; a note
    # names where it was evaluated.
    system = ds.ODESystem(_typo_field, 1.0)
    with pytest.raises(NameError, match="yy") as info:
        ds.simulate(system, jnp.ones(2), t1=1.0, dt=0.1)
    assert any("ODESystem.vector_field" in note for note in info.value.__notes__)


def test_traced_bad_values_checked_at_run_time():
    run = eqx.filter_jit(lambda dt: ds.simulate(PENDULUM, Y0, n_steps=10, dt=dt).ys)
    with pytest.raises(eqx.EquinoxRuntimeError, match="dt must be a finite non-zero"):
        run(jnp.asarray(0.0))
    run_t0 = eqx.filter_jit(lambda t0: ds.simulate(PENDULUM, Y0, t0=t0, n_steps=10, dt=0.1).ys)
    with pytest.raises(eqx.EquinoxRuntimeError, match="t0 must be finite"):
        run_t0(jnp.asarray(NAN))
    run_ts = eqx.filter_jit(
        lambda ts: ds.simulate(PENDULUM, Y0, t1=1.0, dt=0.1, saveat=ds.SaveAt(ts=ts)).ys
    )
    with pytest.raises(eqx.EquinoxRuntimeError, match="SaveAt\\(ts=...\\) must be finite"):
        run_ts(jnp.array([0.1, NAN]))


def test_forward_mode_through_reversible_is_refused():
    def final(length):
        system = ds.systems.Pendulum(length=length)
        traj = ds.simulate(
            system, Y0, t1=1.0, dt=0.1, integrator=ds.Leapfrog(), adjoint=ds.Reversible()
        )
        return traj.ys.q[-1]

    assert_refused(lambda: jax.jvp(final, (1.0,), (1.0,)), TypeError, "Reversible", "Direct")


# --------------------------------------------------------------------------------------
# Failures at run time.


def _blows_up(p=1.0):
    # y' = p y^2 from y0 = 1 blows up at t = 1/p.
    return ds.ODESystem(lambda t, y, p: p * y**2, p)


FIRST_LINE = "ds.simulate: the state became non-finite (NaN or inf)."


def test_nonfinite_raises_the_same_exception_on_a_cached_compile():
    for _ in range(3):  # compile, then the cached program twice
        error = assert_refused(
            lambda: ds.simulate(_blows_up(), jnp.array(1.0), t1=2.0, dt=0.01),
            ds.NonFiniteStateError, FIRST_LINE, "At step", "(t = 1.",
        )  # fmt: skip
        assert isinstance(error, ds.SimulationError) and str(error).startswith(FIRST_LINE)
    # A successful call with the same shapes between failures changes nothing.
    ok = ds.simulate(_blows_up(0.1), jnp.array(1.0), t1=2.0, dt=0.01)
    assert np.isfinite(ok.ys).all()
    with pytest.raises(ds.NonFiniteStateError):
        ds.simulate(_blows_up(), jnp.array(1.0), t1=2.0, dt=0.01)


def test_adaptive_max_steps_is_a_max_steps_error():
    for _ in range(2):
        assert_refused(
            lambda: ds.simulate(LORENZ, XYZ, t1=10.0, integrator=ds.Tsit5(), max_steps=20),
            ds.MaxStepsError, "ds.simulate: the adaptive solve reached max_steps", "20 steps",
            "max_steps=",
        )  # fmt: skip
    traj = ds.simulate(LORENZ, XYZ, t1=10.0, integrator=ds.Tsit5(), max_steps=20, throw=False)
    assert traj.result == ds.RESULTS.max_steps_reached


def test_adaptive_nan_is_reported_not_returned():
    # A vector field that turns NaN: diffrax rejects every step until its step size
    # collapses or it runs out of steps; either way a SimulationError, never a result.
    system = ds.ODESystem(lambda t, y, p: jnp.where(t > 0.5, jnp.nan, -y), None)
    with pytest.raises(ds.SimulationError, match="^ds.simulate: the adaptive solve"):
        ds.simulate(system, jnp.ones(2), t1=1.0, integrator=ds.Tsit5(), max_steps=200)


def test_under_user_transformations():
    def run(y0):
        return ds.simulate(_blows_up(), y0, t1=2.0, dt=0.01).ys

    y0s = jnp.array([0.1, 1.0])
    # Under jit the error is equinox's (JAX's runtime error under jax.jit), carrying the
    # eager exception's first line.
    for transform, exc in [(eqx.filter_jit, eqx.EquinoxRuntimeError), (jax.jit, Exception)]:
        with pytest.raises(exc) as info:
            transform(jax.vmap(run))(y0s)
        assert FIRST_LINE in str(info.value)
    # An eager vmap or grad is seen by Python: the library exception.
    with pytest.raises(ds.NonFiniteStateError, match="^ds.simulate"):
        jax.vmap(run)(y0s)
    with pytest.raises(ds.NonFiniteStateError, match="^ds.simulate"):
        jax.grad(lambda y0: run(y0).sum())(1.0)


def test_throw_false_never_raises_and_reports():
    traj = ds.simulate(_blows_up(), jnp.array(1.0), t1=2.0, dt=0.01, throw=False)
    assert traj.result == ds.RESULTS.nonfinite and int(traj.stats["nonfinite_step"]) > 90
    traj = jax.jit(lambda y0: ds.simulate(_blows_up(), y0, t1=2.0, dt=0.01, throw=False))(
        jnp.array(1.0)
    )
    assert traj.result == ds.RESULTS.nonfinite


def test_nothing_on_stderr_when_the_caller_handles_it(capfd):
    for _ in range(2):
        with pytest.raises(ds.SimulationError):
            ds.simulate(_blows_up(), jnp.array(1.0), t1=2.0, dt=0.01)
        with pytest.raises(ds.SimulationError):
            ds.simulate(LORENZ, XYZ, t1=10.0, integrator=ds.Tsit5(), max_steps=20)
    out, err = capfd.readouterr()
    assert out == "" and err == ""
