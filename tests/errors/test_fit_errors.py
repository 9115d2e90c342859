"""ds.fit and ds.TrajectoryModel refuse bad input up front, naming the argument, and a
fit that fails at run time names the real cause (the simulation inside the model), not
its own iteration limit. Identifiability: tests/fitting/test_identifiability.py."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
import pytest

import diffsim as ds

from .helpers import assert_refused, case

X = np.linspace(0.0, 1.0, 8)
Y = 2.0 * X + 1.0
P0 = {"a": 1.0, "b": 0.0}
TS = jnp.linspace(0.0, 1.0, 6)


# Module-level models: one compiled fit program each, shared by the cases that run.
def line(p):
    return p["a"] * X + p["b"]


def log_line(p):
    return jnp.log(p["a"]) * X + p["b"]


def oscillator(p):
    """Tsit5 limited to 8 steps: it simulates for omega <~ 2 and fails above."""
    system = ds.systems.HarmonicOscillator(omega=p["w"])
    traj = ds.simulate(
        system, system.initial_state(1.0), t1=1.0, integrator=ds.Tsit5(), max_steps=8,
        saveat=ds.SaveAt(ts=TS),
    )  # fmt: skip
    return traj.ys.q


def oscillator_data(omega):
    """The exact record, q = cos(omega t): no rollout to compile."""
    return jnp.cos(omega * TS)


def fit_line(**kwargs):
    return lambda: ds.fit(line, kwargs.pop("params0", P0), kwargs.pop("observed", Y), **kwargs)


def raising_model(p):
    raise KeyError("no parameter called 'c' in my model")


def own_value_error(p):
    raise ValueError("my model needs a positive a")


def _inf_at(i):
    y = Y.copy()
    y[i] = np.inf
    return y


def trajectory(**kwargs):
    args = dict(build=lambda p: (p, p.initial_state(1.0)), ts=TS, dt=0.1)
    return lambda: ds.TrajectoryModel(**{**args, **kwargs})


SIGMA = [
    case(fit_line(sigma=np.inf), ValueError, "sigma", "inf", "positive and finite", id="sigma-inf"),
    case(fit_line(sigma=0.0), ValueError, "sigma", "0.0", id="sigma-zero"),
    case(fit_line(sigma=-1.0), ValueError, "sigma", "-1.0", id="sigma-negative"),
    case(fit_line(sigma=np.nan), ValueError, "sigma", "nan", id="sigma-nan"),
    case(fit_line(sigma=np.ones(3)), ValueError, "sigma", "(3,)", "(8,)", id="sigma-shape"),
    # (8, 1) against (8,) would broadcast the residuals to an (8, 8) matrix.
    case(fit_line(sigma=np.ones((8, 1))), ValueError, "sigma", "(8, 1)", id="sigma-broadcast"),
    case(fit_line(sigma={"q": 1.0, "v": 1.0}), ValueError, "sigma", "pytree", id="sigma-tree"),
    case(
        fit_line(sigma=np.array([1, 1, 0, 1, 1, 1, 1, 1.0])),
        ValueError,
        "sigma",
        "index 2",
        id="sigma-zero-element",
    ),
]

OBSERVED = [
    case(
        fit_line(observed=_inf_at(3)), ValueError, "observed", "index 3", "NaN", id="observed-inf"
    ),  # fmt: skip
    case(
        lambda: ds.fit(lambda p: {"q": line(p)}, P0, {"q": -_inf_at(1)}),
        ValueError,
        "observed['q']",
        "-inf",
        id="observed-tree-inf",
    ),
    case(fit_line(observed=np.full(8, np.nan)), ValueError, "observed", "all NaN", id="all-nan"),
    case(fit_line(observed=Y[:5]), ValueError, "observed", "(8,)", "(5,)", id="observed-shape"),
    case(fit_line(observed=(Y, Y)), ValueError, "observed", "structure", id="observed-structure"),
    case(fit_line(observed=np.array(["a"] * 8)), TypeError, "observed", id="observed-strings"),
    case(lambda: ds.fit(line, P0), ValueError, "observed=", "loss=", id="no-observed-no-loss"),
]

SELECTION = [
    case(fit_line(where=lambda p: ()), ValueError, "where", "nothing", id="where-nothing"),
    case(fit_line(where=lambda p: p["c"]), ValueError, "where", "KeyError", id="where-fails"),
    case(
        fit_line(params0={"a": 1.0, "b": 0.0, "n": 3}, where=lambda p: p["n"]),
        ValueError,
        "where",
        "floating-point",
        id="where-int-leaf",
    ),
    case(
        fit_line(where=lambda p: p["a"], bounds=(2.0, 0.0)),
        ValueError,
        "bounds[0]",
        "lo < hi",
        id="bounds-inverted",
    ),  # fmt: skip
    case(
        fit_line(where=lambda p: p["a"], bounds=(0.0, np.inf)),
        ValueError,
        "bounds[0]",
        "None",
        id="bounds-infinite",
    ),  # fmt: skip
    case(
        fit_line(where=lambda p: p["a"], bounds=("low", 1)),
        TypeError,
        "bounds[0]",
        id="bounds-not-numbers",
    ),  # fmt: skip
    case(fit_line(bounds=(0.0, 1.0)), ValueError, "bounds", "where", id="bounds-without-where"),
    case(
        fit_line(where=lambda p: (p["a"], p["b"]), bounds=((0.0, None),)),
        ValueError,
        "bounds",
        "2 of them",
        id="bounds-count",
    ),
    case(
        fit_line(where=lambda p: p["a"], bounds=(2.0, 3.0)),
        ValueError,
        "params0",
        "['a']",
        "bounds",
        id="start-outside-bounds",
    ),
    case(
        fit_line(params0={"a": np.nan, "b": 0.0}), ValueError, "params0", "['a']", id="start-nan"
    ),  # fmt: skip
]

SETTINGS = [
    case(fit_line(max_steps=0), ValueError, "max_steps", "positive", id="max-steps-zero"),
    case(fit_line(max_steps=2.5), ValueError, "max_steps", id="max-steps-float"),
    case(fit_line(max_steps=True), ValueError, "max_steps", id="max-steps-bool"),
    case(fit_line(rtol=-1.0), ValueError, "rtol", id="rtol-negative"),
    case(fit_line(atol=np.nan), ValueError, "atol", id="atol-nan"),
    case(fit_line(options={"foo": 1}), ValueError, "options", "'foo'", "'jac'", id="option-key"),
    case(
        fit_line(options={"jac": "forward"}),
        ValueError,
        "options['jac']",
        "'fwd'",
        id="option-value",
    ),  # fmt: skip
    case(fit_line(options=[("jac", "fwd")]), TypeError, "options", "dict", id="options-type"),
    case(fit_line(solver="lm"), TypeError, "solver", "'lm'", id="solver-string"),
    case(
        fit_line(solver=optx.LevenbergMarquardt), TypeError, "solver", "instance", id="solver-class"
    ),  # fmt: skip
    case(
        lambda: ds.fit(line, P0, loss=jnp.sum, solver=optx.LevenbergMarquardt(1e-8, 1e-8)),
        ValueError,
        "least-squares solver",
        "loss=",
        id="solver-kind",
    ),
    case(lambda: ds.fit("line", P0, Y), TypeError, "model", "callable", id="model-not-callable"),
    case(fit_line(prior=1.0), TypeError, "prior", "callable", id="prior-not-callable"),
    case(lambda: ds.fit(line, P0, loss="sum"), TypeError, "loss", id="loss-not-callable"),
    case(fit_line(shooting=2), TypeError, "shooting", "TrajectoryModel", id="shooting-model"),
    case(
        fit_line(shooting=2, shooting_weight=0.0),
        ValueError,
        "shooting_weight",
        id="shooting-weight",
    ),  # fmt: skip
]

USER_CODE = [
    # The user's own error, as itself: not rewrapped, its message intact.
    case(lambda: ds.fit(raising_model, P0, Y), KeyError, "no parameter called", id="model-raises"),
    case(
        lambda: ds.fit(own_value_error, P0, Y),
        ValueError,
        "my model needs a positive a",
        id="model-raises-valueerror",
    ),  # fmt: skip
]

TRAJECTORY_MODEL = [
    case(trajectory(ts=TS[::-1]), ValueError, "ts", "increasing", id="tm-ts-decreasing"),
    case(trajectory(ts=TS.at[2].set(jnp.nan)), ValueError, "ts", "finite", id="tm-ts-nan"),
    case(trajectory(ts=jnp.ones((2, 3))), ValueError, "ts", "(2, 3)", id="tm-ts-2d"),
    case(
        trajectory(ts=TS.at[2].set(TS[1]), integrator=ds.Tsit5()),
        ValueError,
        "ts",
        "repeated",
        id="tm-ts-repeated-adaptive",
    ),  # fmt: skip
    case(trajectory(dt=-0.1), ValueError, "dt", "positive", id="tm-dt-negative"),
    case(trajectory(dt=None), ValueError, "dt", "RK4", id="tm-dt-missing"),
    case(trajectory(t0=np.nan), ValueError, "t0", id="tm-t0-nan"),
    case(trajectory(build=None), TypeError, "build", "callable", id="tm-build"),
    case(trajectory(observe="q"), TypeError, "observe", "callable", id="tm-observe"),
    case(trajectory(integrator="rk4"), TypeError, "integrator", "ds.RK4()", id="tm-integrator"),
    case(trajectory(adjoint=ds.RK4()), TypeError, "adjoint", id="tm-adjoint"),
]


@pytest.mark.parametrize(
    "call,exc,mentions", SIGMA + OBSERVED + SELECTION + SETTINGS + USER_CODE + TRAJECTORY_MODEL
)
def test_refused(call, exc, mentions):
    assert_refused(call, exc, *mentions)


def test_shooting_refuses_a_segment_count_out_of_range():
    model = ds.TrajectoryModel(build=lambda p: (p, p.initial_state(1.0)), ts=TS, dt=0.1)
    start = ds.systems.HarmonicOscillator(omega=1.0)
    assert_refused(lambda: ds.fit(model, start, TS, shooting=0), ValueError, "shooting=", "got 0")


# ---------------------------------------------------------------- failures at run time


def test_model_non_finite_at_the_start_names_the_model_output():
    assert_refused(
        lambda: ds.fit(log_line, {"a": -1.0, "b": 0.0}, Y), ValueError, "model(params0)", "nan"
    )


def test_prior_non_finite_at_the_start_names_the_prior():
    prior = lambda p: jnp.log(p["b"])  # noqa: E731
    assert_refused(fit_line(params0={"a": 1.0, "b": -1.0}, prior=prior), ValueError, "prior")


def test_inner_simulate_failure_at_the_start_is_named():
    # Was "fit did not converge in max_steps=15 iterations (loss inf)". First a fit that
    # succeeds with the same shapes, so the failing one reuses its compiled program.
    res = ds.fit(oscillator, {"w": 1.2}, oscillator_data(1.5), max_steps=15)
    # Tsit5's default tolerances against the exact record: close, not exact.
    assert bool(res.converged) and abs(float(res.params["w"]) - 1.5) < 1e-4
    error = assert_refused(
        lambda: ds.fit(oscillator, {"w": 4.0}, oscillator_data(1.5), max_steps=15),
        ds.MaxStepsError,  # the cause's own class, a ds.SimulationError
        "params0",
        "simulation inside the model",
        "max_steps",
        "After 8 steps",
    )
    assert "throw=False returns traj.result" not in str(error)  # simulate's, not fit's


def test_inner_simulate_failure_where_the_fit_stalls_is_named():
    # From omega = 1 towards data at omega = 3, every trial beyond ~2 fails to simulate:
    # Levenberg-Marquardt is stuck at the edge. The message names the simulation.
    error = assert_refused(
        lambda: ds.fit(oscillator, {"w": 1.0}, oscillator_data(3.0), max_steps=15),
        ds.MaxStepsError,
        "did not converge in 15 iterations",
        "next trial point",
        "max_steps",
    )
    assert isinstance(error, RuntimeError)  # `except RuntimeError` still catches it
    res = ds.fit(oscillator, {"w": 1.0}, oscillator_data(3.0), max_steps=15, throw=False)
    assert not bool(res.converged)


def test_failing_start_with_throw_false_returns_not_converged():
    res = ds.fit(log_line, {"a": -1.0, "b": 0.0}, Y, throw=False)
    assert not bool(res.converged) and int(res.n_steps) == 0
    assert not np.isfinite(res.history[0])
    assert np.isnan(res.stderr["a"])  # no error bars from a failed point


# ------------------------------------------------------------ under a user's jit


@pytest.mark.parametrize(
    "kwargs,word",
    [({"sigma": jnp.inf}, "sigma"), ({"observed": jnp.asarray(_inf_at(2))}, "observed")],
    ids=["sigma-inf", "observed-inf"],
)
def test_traced_data_checked_at_run_time(kwargs, word):
    def run(values):
        args = {"observed": Y, **values}
        return ds.fit(line, P0, args.pop("observed"), **args).params["a"]

    with pytest.raises((eqx.EquinoxRuntimeError, jax.errors.JaxRuntimeError)) as info:
        jax.block_until_ready(jax.jit(run)(kwargs))
    assert word in str(info.value)
