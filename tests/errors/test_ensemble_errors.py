"""`ds.ensemble`'s error model: bad arguments refused before anything runs; a failed
member raised as the `SimulationError` subclass of its failure, naming the member by
its index in the ensemble (eagerly, on a cached compile, and under a user's jit), or
reported with `throw=False`, never returned silently as NaN."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import diffsim as ds

from .helpers import assert_refused, case

XS = jnp.arange(4.0)


def ident(x):
    return x


def ens(*args, fn=ident, **kwargs):
    return lambda: ds.ensemble(fn, *args, **kwargs)


CASES = [
    case(ens(XS, fn="f"), TypeError, "fn must be callable", id="fn-not-callable"),
    case(ens(), ValueError, "at least one batched argument", id="no-batched-args"),
    case(
        ens(XS, jnp.arange(3.0)),
        ValueError,
        "batched_args[1]",
        "leading axis 3",
        id="leading-axes-differ",
    ),  # fmt: skip
    case(ens(jnp.asarray(1.0)), ValueError, "batched_args[0]", "0-d", id="zero-d-array"),
    case(ens(jnp.zeros((0, 2))), ValueError, "0 members", id="no-members"),
    case(ens(2.0), ValueError, "leading member axis", id="only-python-floats"),
    case(ens(XS, batch_size=0), ValueError, "batch_size", id="batch_size-zero"),
    case(ens(XS, batch_size=-2), ValueError, "batch_size", id="batch_size-negative"),
    case(ens(XS, batch_size=1.5), ValueError, "batch_size", id="batch_size-float"),
    case(ens(XS, batch_size=True), ValueError, "batch_size", id="batch_size-bool"),
    case(ens(XS, reduce="mean"), TypeError, "reduce", id="reduce-string"),
    case(ens(XS, throw="yes"), TypeError, "throw", id="throw-not-bool"),
    case(ens(XS, progress=1), TypeError, "progress", id="progress-not-bool"),
    case(ens(XS, devices="cpu"), TypeError, "devices", id="devices-string"),
    case(ens(XS, devices=[]), TypeError, "devices", id="devices-empty"),
    case(
        ens(XS, devices=[jax.devices()[0]] * 2),
        ValueError,
        "devices",
        "more than once",
        id="devices-repeated",
    ),  # fmt: skip
    case(ens(XS, fn=lambda x: "done"), TypeError, "fn returned a str", id="fn-returns-string"),
    case(
        ens(XS, fn=lambda x: {"y": x, "tag": object()}),
        TypeError,
        "fn returned a object",
        "['tag']",
        id="fn-returns-object",
    ),  # fmt: skip
    case(
        ens(XS, {"opts": {1, 2}}, fn=lambda x, o: x),
        TypeError,
        "batched_args",
        "set",
        "hashed",
        id="unhashable-setting",
    ),  # fmt: skip
    case(
        lambda: ds.ensemble(ident, XS, reduce=ds.Histogram(bins=4, low=1.0, high=0.0)),
        ValueError,
        "low < high",
        id="histogram-inverted-range",
    ),  # fmt: skip
    case(
        lambda: ds.ensemble(ident, XS, reduce=ds.Quantiles(q=(0.5, 1.5), low=0.0, high=4.0)),
        ValueError,
        "Quantiles",
        id="quantile-q",
    ),  # fmt: skip
]


@pytest.mark.parametrize("call, exc, mentions", CASES)
def test_refused_before_running(call, exc, mentions):
    assert_refused(call, exc, *mentions)


# --------------------------------------------------------------------------------------
# Failed members.


def _blows_up(y0):
    # y' = y^2 blows up at t = 1/y0: members with y0 > 0.5 fail before t = 2.
    system = ds.ODESystem(lambda t, y, p: y**2, None)
    return ds.simulate(system, y0, t1=2.0, dt=0.01, throw=False)


Y0 = jnp.array([0.1, 0.2, 0.3, 1.0, 0.2, 3.0])  # members 3 and 5 fail


@pytest.mark.parametrize("kwargs", [{}, {"batch_size": 4, "reduce": ds.Moments()}])
def test_failed_member_raises_on_every_call(kwargs):
    step = int(_blows_up(Y0[3]).stats["nonfinite_step"])
    for _ in range(2):  # compile, then the cached program
        assert_refused(
            lambda: ds.ensemble(_blows_up, Y0, **kwargs),
            ds.NonFiniteStateError, "ds.ensemble: member 3 failed", f"at step {step}",
            "2 of 6 members failed", "throw=False",
        )  # fmt: skip


def test_adaptive_member_hitting_max_steps():
    def solve(rho):
        system = ds.systems.Lorenz(rho=rho)
        return ds.simulate(
            system, jnp.ones(3), t1=5.0, integrator=ds.Tsit5(), max_steps=60, throw=False
        )

    # Only the chaotic member (rho = 28) needs more than 60 steps to reach t = 5.
    assert_refused(
        lambda: ds.ensemble(solve, jnp.array([0.5, 28.0])),
        ds.MaxStepsError, "member 1 failed", "max_steps",
    )  # fmt: skip


def test_under_user_jit_names_the_member():
    run = eqx.filter_jit(lambda y0: ds.ensemble(_blows_up, y0, batch_size=4).values.ys)
    assert np.isfinite(run(jnp.full(6, 0.1))).all()
    with pytest.raises(eqx.EquinoxRuntimeError, match="ds.ensemble: member 3 failed"):
        run(Y0)


def test_throw_false_reports_every_failed_member():
    res = ds.ensemble(_blows_up, Y0, throw=False)
    assert int(res.num_failed) == 2
    assert np.asarray(res.failed_indices)[:2].tolist() == [3, 5]
    assert np.asarray(res.failed).tolist() == [False, False, False, True, False, True]
    # The failed members' NaN values are flagged, the others finite.
    ys = np.asarray(res.values.ys)
    assert np.isfinite(ys[~np.asarray(res.failed)]).all()


def test_nan_output_without_a_trajectory_is_a_failure():
    # fn returns a plain array that is NaN for one member: reported, not returned.
    assert_refused(
        lambda: ds.ensemble(lambda x: jnp.log(x), jnp.array([1.0, -1.0, 2.0])),
        ds.NonFiniteStateError, "member 1 failed", "output is non-finite",
    )  # fmt: skip


def test_python_number_outputs_become_arrays():
    # A constant in fn's output is kept per member and reduced like any output.
    res = ds.ensemble(lambda x: {"x": x, "c": 2.0}, XS, reduce=ds.Moments())
    assert np.allclose(res.values.mean["c"], 2.0) and np.allclose(res.values.mean["x"], 1.5)
    res = ds.ensemble(lambda x: {"x": x, "c": 2.0}, XS)
    assert np.asarray(res.values["c"]).tolist() == [2.0] * 4
