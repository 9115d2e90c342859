"""ds.fit with bounds against scipy.optimize.least_squares from the same starts: wherever
SciPy reaches a minimum, ds.fit's default (Levenberg-Marquardt in the unconstrained
space of the bound transforms) must reach a loss at least as low."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import diffsim as ds

from .helpers import noisy, pendulum_model

so = pytest.importorskip("scipy.optimize")


def _scipy_loss(resid, x0, bounds):
    resid = jax.jit(resid)
    jac = jax.jit(jax.jacfwd(resid))
    costs = []
    for method, kw in (("trf", {"bounds": bounds}), ("lm", {})):
        sol = so.least_squares(
            lambda x: np.asarray(resid(jnp.asarray(x))),
            np.asarray(x0, float),
            jac=lambda x: np.asarray(jac(jnp.asarray(x))),
            method=method,
            ftol=1e-10,
            xtol=1e-10,
            gtol=1e-10,
            **kw,
        )
        inside = np.all(sol.x > bounds[0]) and np.all(sol.x < bounds[1])
        if inside:
            costs.append(sol.cost)
    return min(costs)


def _check(res, scipy_loss):
    assert bool(res.converged)
    assert float(res.loss) <= scipy_loss * (1 + 1e-6) + 1e-12, (float(res.loss), scipy_loss)


# ------------------------------------------------------------------ exponential decay

T_DECAY = jnp.linspace(0.0, 4.0, 40)
DECAY_DATA = 2.0 * jnp.exp(-1.5 * T_DECAY) + 0.02 * jax.random.normal(jax.random.key(5), (40,))


def decay_model(p):
    return p["A"] * jnp.exp(-p["k"] * T_DECAY)


# One start in make test, the others with make test-slow.
@pytest.mark.parametrize(
    "factor",
    [(0.2, 5.0)]
    + [
        pytest.param(f, marks=pytest.mark.slow)
        for f in [(0.5, 0.5), (2.0, 2.0), (5.0, 5.0), (5.0, 0.1)]
    ],
)
def test_exponential_decay_positive_bounds(factor):
    x0 = np.array([2.0, 1.5]) * np.array(factor)
    res = ds.fit(
        decay_model,
        {"A": float(x0[0]), "k": float(x0[1])},
        DECAY_DATA,
        where=lambda p: (p["A"], p["k"]),
        bounds=((0.0, None), (0.0, None)),
    )
    resid = lambda x: decay_model({"A": x[0], "k": x[1]}) - DECAY_DATA  # noqa: E731
    _check(res, _scipy_loss(resid, x0, (0.0, np.inf)))


@pytest.mark.parametrize(
    "k0",
    [9.0, pytest.param(0.3, marks=pytest.mark.slow), pytest.param(3.0, marks=pytest.mark.slow)],
)
def test_exponential_decay_two_sided_bound(k0):
    res = ds.fit(
        decay_model,
        {"A": 1.0, "k": k0},
        DECAY_DATA,
        where=lambda p: (p["A"], p["k"]),
        bounds=((0.0, None), (0.0, 10.0)),
    )
    resid = lambda x: decay_model({"A": x[0], "k": x[1]}) - DECAY_DATA  # noqa: E731
    _check(res, _scipy_loss(resid, [1.0, k0], ([0.0, 0.0], [np.inf, 10.0])))


# ------------------------------------------------------------------ damped pendulum

PENDULUM_DATA = noisy(jax.random.key(11))


@pytest.mark.slow
@pytest.mark.parametrize("factor", [(0.5, 0.5), (2.0, 2.0), (0.8, 5.0)])
def test_pendulum_length_damping(factor):
    x0 = np.array([1.3, 0.2]) * np.array(factor)
    res = ds.fit(
        pendulum_model,
        ds.systems.Pendulum(length=float(x0[0]), damping=float(x0[1])),
        PENDULUM_DATA,
        where=lambda p: (p.length, p.damping),
        bounds=((0.0, None), (0.0, None)),
    )

    def resid(x):
        return pendulum_model(ds.systems.Pendulum(length=x[0], damping=x[1])) - PENDULUM_DATA

    _check(res, _scipy_loss(resid, x0, (0.0, np.inf)))


# ------------------------------------------------------------------ Lotka-Volterra

LV_TRUE = np.array([1.0, 0.1, 1.5, 0.075])
LV_TS = jnp.linspace(0.0, 6.0, 51)


def _lv(t, y, p):
    x, z = y[0], y[1]
    return jnp.stack([p["a"] * x - p["b"] * x * z, -p["c"] * z + p["d"] * x * z])


def lv_model(p):
    y0 = jnp.array([10.0, 5.0])
    saveat = ds.SaveAt(ts=LV_TS)
    return ds.simulate(ds.ODESystem(_lv, p), y0, t1=6.0, dt=0.012, saveat=saveat, throw=False).ys


LV_KEYS = ("a", "b", "c", "d")
LV_DATA = lv_model(dict(zip(LV_KEYS, LV_TRUE, strict=True))) + 0.5 * jax.random.normal(
    jax.random.key(0), (51, 2)
)


@pytest.mark.slow
@pytest.mark.parametrize(
    "factor",
    [(0.5,) * 4, (2, 0.5, 0.5, 2), (0.5, 2, 2, 0.5), (3, 0.3, 3, 0.3), (1.5, 0.7, 0.6, 1.4)],
)
def test_lotka_volterra_positive_rates(factor):
    x0 = LV_TRUE * np.array(factor)
    res = ds.fit(
        lv_model,
        dict(zip(LV_KEYS, map(float, x0), strict=True)),
        LV_DATA,
        where=lambda p: (p["a"], p["b"], p["c"], p["d"]),
        bounds=((0.0, None),) * 4,
    )

    def resid(x):
        r = (lv_model(dict(zip(LV_KEYS, x, strict=True))) - LV_DATA).ravel()
        return jnp.where(jnp.isfinite(r), r, 1e8)

    _check(res, _scipy_loss(resid, x0, (0.0, np.inf)))
