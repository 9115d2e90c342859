"""Scalar distributions as priors: log_prob against jax.scipy.stats, normalisation,
consistency with from_unit, gradients, support and parameter checks."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.stats import norm, uniform

import diffsim as ds


def _lognormal_ref(x, m, s):
    inside = x > 0
    log_x = jnp.log(jnp.where(inside, x, 1.0))
    return jnp.where(inside, norm.logpdf(log_x, m, s) - log_x, -jnp.inf)


def _loguniform_ref(x, lo, hi):
    inside = x > 0
    log_x = jnp.log(jnp.where(inside, x, 1.0))
    ref = uniform.logpdf(log_x, math.log(lo), math.log(hi) - math.log(lo)) - log_x
    return jnp.where(inside, ref, -jnp.inf)


# (id, constructor, parameters, reference log density, points to test, integration grid);
# all of one length, so that eager ops and jitted functions compile once per shape.
CASES = [
    (
        "normal",
        ds.Normal,
        (1.5, 0.7),
        lambda x: norm.logpdf(x, 1.5, 0.7),
        [-3.0, 0.0, 1.5, 2.2, 4.0, 9.0],
        np.linspace(1.5 - 14 * 0.7, 1.5 + 14 * 0.7, 20_001),
    ),
    (
        "uniform",
        ds.Uniform,
        (-1.0, 2.0),
        lambda x: uniform.logpdf(x, -1.0, 3.0),
        [-1.5, -1.0, 0.3, 1.999, 2.0, 2.5],
        np.linspace(-1.0, 2.0, 20_001),
    ),
    (
        "loguniform",
        ds.LogUniform,
        (0.5, 8.0),
        lambda x: _loguniform_ref(x, 0.5, 8.0),
        [-1.0, 0.4, 0.5, 1.0, 8.0, 9.0],
        np.geomspace(0.5, 8.0, 20_001),
    ),
    (
        "halfnormal",
        ds.HalfNormal,
        (1.3,),
        lambda x: jnp.where(x >= 0, math.log(2.0) + norm.logpdf(x, 0.0, 1.3), -jnp.inf),
        [-2.0, -1e-9, 0.0, 0.5, 1.3, 6.0],
        np.linspace(0.0, 16 * 1.3, 20_001),
    ),
    (
        "lognormal",
        ds.LogNormal,
        (0.3, 0.6),
        lambda x: _lognormal_ref(x, 0.3, 0.6),
        [-1.0, 0.0, 0.05, 1.0, 1.35, 20.0],
        np.concatenate(
            [[0.0], np.geomspace(math.exp(0.3 - 12 * 0.6), math.exp(0.3 + 12 * 0.6), 20_000)]
        ),
    ),
]
IDS = [c[0] for c in CASES]
U = jnp.linspace(0.01, 0.99, 6)


# Jitted once per distribution class: eager ndtri alone takes seconds to dispatch.
_log_prob = jax.jit(lambda d, x: d.log_prob(x))
_from_unit = jax.jit(lambda d, u: d.from_unit(u))
_dx_du = jax.jit(lambda d, u: jax.vmap(jax.grad(d.from_unit))(u))
_grad_x = jax.jit(lambda d, x: jax.vmap(jax.grad(d.log_prob))(x))
_grad_params = jax.jit(jax.grad(lambda d, x: jnp.sum(d.log_prob(x))))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_log_prob_matches_jax_scipy_stats(case):
    _, make, params, ref, points, _ = case
    x, d = jnp.array(points), make(*params)
    got = d.log_prob(x)
    assert got.shape == x.shape and got.dtype == jnp.float64
    np.testing.assert_allclose(got, jax.jit(ref)(x), rtol=1e-12, atol=1e-12)
    assert np.isneginf(got).any() or case[0] == "normal"  # every case probes outside
    # The same under jit, vmap and in float32 (computed in the dtype of x).
    np.testing.assert_allclose(_log_prob(d, x), got, rtol=1e-12)
    np.testing.assert_allclose(jax.vmap(_log_prob, (None, 0))(d, x), got, rtol=1e-12)
    got32 = _log_prob(d, x.astype(jnp.float32))
    assert got32.dtype == jnp.float32
    np.testing.assert_allclose(got32, got, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_density_integrates_to_one_and_from_unit_inverts_its_cdf(case):
    """The density integrates to 1; its CDF at from_unit(u) is u, and dx/du = 1 / density."""
    _, make, params, _, _, grid = case
    d = make(*params)
    density = np.exp(np.asarray(_log_prob(d, jnp.asarray(grid))))
    cdf = np.concatenate([[0.0], np.cumsum(np.diff(grid) * (density[1:] + density[:-1]) / 2)])
    assert abs(cdf[-1] - 1) < 1e-3
    u = U
    x = _from_unit(d, u)
    np.testing.assert_allclose(np.interp(np.asarray(x), grid, cdf), u, atol=1e-4)
    np.testing.assert_allclose(_log_prob(d, x), -jnp.log(_dx_du(d, u)), rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_log_prob_gradients_match_finite_differences(case):
    _, make, params, _, points, _ = case
    h, d = 1e-6, make(*params)
    xs = _from_unit(d, U)  # inside, off the edges
    grads = jax.tree.leaves(_grad_params(d, xs))
    for i in range(len(params)):
        up, down = [*params], [*params]
        up[i] += h
        down[i] -= h
        fd = (_log_prob(make(*up), xs) - _log_prob(make(*down), xs)).sum() / (2 * h)
        np.testing.assert_allclose(grads[i], fd, rtol=1e-6, atol=1e-8)
    # In x: against finite differences inside; 0, not NaN, outside (safe for NUTS).
    fd = (_log_prob(d, xs + h) - _log_prob(d, xs - h)) / (2 * h)
    np.testing.assert_allclose(_grad_x(d, xs), fd, rtol=1e-6, atol=1e-8)
    x = jnp.array(points)
    outside = np.isneginf(np.asarray(_log_prob(d, x)))
    np.testing.assert_array_equal(np.asarray(_grad_x(d, x))[outside], 0.0)


def test_log_prob_broadcasts_parameters_against_x():
    d = ds.Normal(jnp.array([0.0, 1.0]), jnp.array([1.0, 2.0]))
    got = _log_prob(d, jnp.zeros((3, 1)))
    assert got.shape == (3, 2)
    half_log_2pi = 0.5 * math.log(2 * math.pi)
    np.testing.assert_allclose(got[1], [-half_log_2pi, -half_log_2pi - math.log(2) - 0.125])
    assert _log_prob(ds.Uniform(0.0, jnp.array([1.0, 2.0])), 0.5).shape == (2,)
    assert _log_prob(ds.HalfNormal(1.0), 1).dtype == jnp.float64  # an int x gives floats


def test_support():
    assert ds.Uniform(0, 2).support == (0.0, 2.0)
    assert ds.LogUniform(0.1, 10.0).support == (0.1, 10.0)
    assert ds.Normal(0.0, 1.0).support == (None, None)
    assert ds.HalfNormal(1.0).support == (0.0, None)
    assert ds.LogNormal(0.0, 1.0).support == (0.0, None)
    for lo, hi in [ds.Uniform(0, 2).support, ds.LogUniform(0.1, 10.0).support]:
        assert type(lo) is float and type(hi) is float
    # Array parameters: the widest bounds; traced ones: open, except the known 0.
    assert ds.Uniform(jnp.array([0.0, -1.0]), jnp.array([3.0, 5.0])).support == (-1.0, 5.0)
    assert ds.LogUniform(np.array([0.5, 1.0]), 20.0).support == (0.5, 20.0)
    seen = {}

    @jax.jit
    def build(p):
        seen["uniform"] = ds.Uniform(p, 5.0).support
        seen["loguniform"] = ds.LogUniform(0.1, p).support
        seen["halfnormal"] = ds.HalfNormal(p).support
        seen["lognormal"] = ds.LogNormal(p, p).support
        return p

    build(1.0)
    assert seen == {
        "uniform": (None, 5.0),
        "loguniform": (0.1, None),
        "halfnormal": (0.0, None),
        "lognormal": (0.0, None),
    }


def test_from_unit_edges():
    # In float32 (1 + u) / 2 rounds to 1 for the last u below 1: the draws stay finite.
    u = jnp.array([0.0, 0.5, 1 - jnp.finfo(jnp.float32).epsneg], jnp.float32)
    half = _from_unit(ds.HalfNormal(2.0), u)
    assert half.dtype == jnp.float32 and np.all(np.isfinite(half)) and np.all(np.diff(half) > 0)
    assert half[0] == 0.0 and not np.signbit(half[0])
    np.testing.assert_allclose(half[1], 2.0 * 0.6744897501960817, rtol=1e-6)
    log = _from_unit(ds.LogNormal(0.0, 1.0), u)
    assert np.all(np.isfinite(log)) and np.all(log > 0) and abs(log[1] - 1.0) < 1e-6


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda: ds.HalfNormal(0.0), "std"),
        (lambda: ds.HalfNormal(-1.0), "std"),
        (lambda: ds.HalfNormal(np.inf), "std"),
        (lambda: ds.HalfNormal(np.array([1.0, -2.0])), "std"),
        (lambda: ds.LogNormal(np.nan, 1.0), "mean"),
        (lambda: ds.LogNormal(0.0, 0.0), "std"),
        (lambda: ds.LogNormal(0.0, np.inf), "std"),
        (lambda: ds.Normal(0.0, -1.0), "std"),
    ],
)
def test_bad_parameters_raise_naming_the_parameter(make, name):
    with pytest.raises(ValueError, match=rf"\({name}=\.\.\.\)"):
        make()


def test_bad_parameter_types_and_shapes():
    with pytest.raises(TypeError, match=r"HalfNormal\(std=\.\.\.\)"):
        ds.HalfNormal("wide")
    with pytest.raises(ValueError, match="LogNormal: mean and std"):
        ds.LogNormal(np.zeros(2), np.ones(3))


def test_subclass_without_log_prob_samples_but_is_no_prior():
    class Exponential(ds.AbstractDistribution):
        rate: float

        def from_unit(self, u):
            return -jnp.log1p(-u) / self.rate

    d = Exponential(rate=2.0)
    batch = ds.sample(
        jax.random.key(0), ds.systems.Pendulum(length=1.0), 8, where=lambda p: p.damping, dist=d
    )
    assert batch.damping.shape == (8,)
    assert d.support == (None, None)
    with pytest.raises(NotImplementedError, match=r"Exponential\.log_prob.*ds\.posterior"):
        d.log_prob(1.0)
