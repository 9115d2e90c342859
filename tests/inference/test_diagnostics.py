"""The rank-normalised split R-hat and the bulk/tail ESS of Vehtari et al. (2021): their
behaviour on chains with known properties, and a NumPy reference implementation written
out loop by loop as in Stan / ArviZ / posterior."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffsim.inference._diagnostics import ess, ess_bulk, ess_tail, mcse_mean, split_rhat

# Each (function, shape, dtype) is a compilation of about a second: the tests share shapes.
FUNCTIONS = (split_rhat, ess_bulk, ess_tail, ess, mcse_mean)


def _ar1(rng, rho, shape, burn=200):
    """Stationary-ish AR(1) chains `x_t = rho x_{t-1} + e_t` along the last axis."""
    e = rng.standard_normal(shape[:-1] + (shape[-1] + burn,))
    x = np.zeros_like(e)
    for t in range(1, e.shape[-1]):
        x[..., t] = rho * x[..., t - 1] + e[..., t]
    return x[..., burn:]


# --- NumPy reference: the published algorithm, one loop at a time -----------------------


def _ref_split(x):
    half = x.shape[1] // 2
    return np.concatenate([x[:, :half], x[:, x.shape[1] - half :]])  # middle draw dropped


def _ref_z(y):
    stats = pytest.importorskip("scipy.stats")
    r = stats.rankdata(y, method="average", axis=None).reshape(y.shape)
    return stats.norm.ppf((r - 0.375) / (y.size + 0.25))


def _ref_rhat(y):
    n = y.shape[1]
    b = n * y.mean(1).var(ddof=1)
    w = y.var(1, ddof=1).mean()
    return np.sqrt(((n - 1) / n * w + b / n) / w)


def _ref_ess(y):
    m, n = y.shape
    if np.all(y == y.flat[0]):
        return float(y.size)
    c = y - y.mean(1, keepdims=True)
    acov = np.array([[c[j, : n - t] @ c[j, t:] / n for t in range(n)] for j in range(m)])
    mean_var = acov[:, 0].mean() * n / (n - 1)
    var_plus = mean_var * (n - 1) / n + y.mean(1).var(ddof=1)

    def rho(t):
        return 1.0 - (mean_var - acov[:, t].mean()) / var_plus

    r = np.zeros(n)
    even, odd = 1.0, rho(1)
    r[0], r[1] = even, odd
    t = 1
    while t < n - 3 and even + odd > 0:  # Geyer's initial positive sequence
        even, odd = rho(t + 1), rho(t + 2)
        if even + odd >= 0:
            r[t + 1], r[t + 2] = even, odd
        t += 2
    max_t = t - 2
    if even > 0:
        r[max_t + 1] = even
    t = 1
    while t <= max_t - 2:  # initial monotone sequence
        if r[t + 1] + r[t + 2] > r[t - 1] + r[t]:
            r[t + 1] = r[t + 2] = (r[t - 1] + r[t]) / 2
        t += 2
    tau = -1.0 + 2.0 * r[: max_t + 1].sum() + r[max_t + 1]
    return m * n / max(tau, 1.0 / np.log10(m * n))


def _reference(x):
    folded = np.abs(x - np.median(x))
    rhat = max(_ref_rhat(_ref_z(_ref_split(x))), _ref_rhat(_ref_z(_ref_split(folded))))
    tail = min(_ref_ess(_ref_split(x <= np.quantile(x, p)).astype(float)) for p in (0.05, 0.95))
    basic = _ref_ess(_ref_split(x))
    return rhat, _ref_ess(_ref_z(_ref_split(x))), tail, basic, np.sqrt(x.var(ddof=1) / basic)


def _cases(rng, draws):
    """Correlated, antithetic and tied (chains offset) draws, 4 chains."""
    ties = np.round(rng.standard_normal((4, draws)) * 2) / 2 + np.arange(4)[:, None] * 0.1
    return {
        "ar1_0.7": _ar1(rng, 0.7, (4, draws)),
        "ar1_-0.5": _ar1(rng, -0.5, (4, draws)),
        "ties": ties,
    }


# (4, 1000) like the behaviour tests below, so that they share compilations.
REFERENCE_CASES = _cases(np.random.default_rng(7), 1000)


@pytest.mark.parametrize("name", sorted(REFERENCE_CASES))
def test_matches_numpy_reference(name):
    x = REFERENCE_CASES[name]
    got = [float(f(x)) for f in FUNCTIONS]
    np.testing.assert_allclose(got, _reference(x), rtol=1e-8)


# --- behaviour on chains with known properties ---------------------------------------


def test_iid_normal():
    x = np.random.default_rng(0).standard_normal((4, 1000))
    assert abs(float(split_rhat(x)) - 1.0) < 0.01
    assert float(ess_bulk(x)) == pytest.approx(4000, rel=0.15)
    assert float(ess_tail(x)) == pytest.approx(4000, rel=0.15)


def test_ar1_bulk_ess():
    rho = 0.9
    x = _ar1(np.random.default_rng(1), rho, (4, 10_000))
    assert float(ess_bulk(x)) == pytest.approx(x.size * (1 - rho) / (1 + rho), rel=0.2)


def test_shifted_chain_is_flagged():
    # 2 chains, one shifted by 1 sd (with 4 chains and one shifted by 1 sd the expected
    # R-hat is only about 1.10).
    x = np.random.default_rng(2).standard_normal((2, 1000))
    x[1] += 1.0
    assert float(split_rhat(x)) > 1.1


def test_variance_difference_caught_by_folding():
    x = np.random.default_rng(3).standard_normal((4, 1000))
    x[3] *= 3.0  # same mean, three times the sd
    bulk = _ref_rhat(_ref_z(_ref_split(x)))  # the bulk component (reference = module)
    assert abs(bulk - 1.0) < 0.01
    assert float(split_rhat(x)) > 1.05


def test_cauchy_rank_normalisation():
    x = np.random.default_rng(4).standard_cauchy((4, 1000))
    rhat = float(split_rhat(x))
    assert np.isfinite(rhat) and abs(rhat - 1.0) < 0.01
    assert float(ess_bulk(x)) == pytest.approx(4000, rel=0.15)
    assert float(ess_tail(x)) == pytest.approx(4000, rel=0.2)


def test_constant_draws():
    x = np.full((4, 1000), 2.5)
    assert np.isnan(float(split_rhat(x)))  # documented: R-hat 0/0 is NaN
    for f in (ess, ess_bulk, ess_tail):
        assert float(f(x)) == 4000  # documented: the number of split draws
    assert float(mcse_mean(x)) == 0.0


def test_nan_draw_gives_nan():
    x = REFERENCE_CASES["ar1_0.7"].copy()
    x[2, 10] = np.nan
    assert all(np.isnan(float(f(x))) for f in FUNCTIONS)


def _all(x):
    return jnp.stack([f(x) for f in FUNCTIONS])


def test_vmap_with_odd_draws_matches_reference_loop():
    # As `_result.diagnostics` calls them, vmapped over parameters; an odd number of draws
    # (the middle one is dropped). Compared with the NumPy reference looped over the
    # parameters, which the unbatched functions match above.
    cases = _cases(np.random.default_rng(8), 1001)
    batch = np.stack([cases[k] for k in sorted(cases)])
    looped = np.array([_reference(x)[:3] for x in batch])
    for i, f in enumerate((split_rhat, ess_bulk, ess_tail)):
        np.testing.assert_allclose(jax.vmap(f)(batch), looped[:, i], rtol=1e-8)


def test_jit_and_float32():
    x = REFERENCE_CASES["ar1_0.7"]
    out32 = jax.jit(_all)(jnp.asarray(x, jnp.float32))
    assert out32.dtype == jnp.float32
    np.testing.assert_allclose(out32, [f(x) for f in FUNCTIONS], rtol=1e-3)
