"""ds.fit: parameters the data cannot identify (the model ignores them, or only a
combination enters) get stderr inf and an IdentifiabilityWarning naming them; the others
keep their exact error bars. The rule: diffsim/fitting/_identifiability.py."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
import pytest

import diffsim as ds
from diffsim.fitting import IdentifiabilityWarning

X = jnp.linspace(0.0, 1.0, 20)
Y = 2.0 * X + 1.0 + 0.05 * jax.random.normal(jax.random.key(0), X.shape)
START = {"a": 1.0, "b": 0.5, "c": 0.0}


def line_ignoring_c(p):
    return p["a"] * X + p["b"]


def only_the_sum(p):
    return (p["a"] + p["c"]) * X + p["b"]


def ols_stderr(design, y):
    """Ordinary least squares error bars, s^2 (X^T X)^{-1} with s^2 = RSS / (n - p)."""
    coef, rss, *_ = np.linalg.lstsq(design, y, rcond=None)
    cov = rss[0] / (design.shape[0] - design.shape[1]) * np.linalg.inv(design.T @ design)
    return np.sqrt(np.diag(cov))


def test_an_ignored_parameter_gets_inf_and_the_others_their_exact_errors():
    with pytest.warns(IdentifiabilityWarning, match=r"\['c'\]") as record:
        res = ds.fit(line_ignoring_c, START, Y)
    assert issubclass(record[0].category, RuntimeWarning)
    assert "['a']" not in str(record[0].message) and "['b']" not in str(record[0].message)
    assert np.isinf(res.stderr["c"])
    # a and b: the OLS error bars of the identifiable model, with n - 2 degrees of freedom.
    design = np.stack([np.asarray(X), np.ones(20)], axis=1)
    expected = ols_stderr(design, np.asarray(Y))
    np.testing.assert_allclose([res.stderr["a"], res.stderr["b"]], expected, rtol=1e-8)
    assert float(res.stderr["c"]) != 0.0
    assert "inf" in res.summary()


def test_two_parameters_entering_only_as_a_sum_are_both_unidentifiable():
    with pytest.warns(IdentifiabilityWarning, match=r"\['a'\], \['c'\]"):
        res = ds.fit(only_the_sum, START, Y)
    assert np.isinf(res.stderr["a"]) and np.isinf(res.stderr["c"])
    # b is identifiable: the same error bar as in the model a * x + b.
    design = np.stack([np.asarray(X), np.ones(20)], axis=1)
    np.testing.assert_allclose(res.stderr["b"], ols_stderr(design, np.asarray(Y))[1], rtol=1e-8)
    # The fit itself is fine: a + c is determined.
    assert abs(float(res.params["a"] + res.params["c"]) - 2.0) < 0.2


def test_known_sigma_and_an_array_parameter():
    # One element of an array parameter is ignored: named by its index.
    def model(p):
        return p["w"][0] * X + p["w"][2]

    with pytest.warns(IdentifiabilityWarning, match=r"\['w'\]\[1\]"):
        res = ds.fit(model, {"w": jnp.array([1.0, 1.0, 0.0])}, Y, sigma=0.05)
    errors = np.asarray(res.stderr["w"])
    assert np.isinf(errors[1]) and np.all(np.isfinite(errors[[0, 2]]))
    assert np.isinf(res.covariance[1, 1]) and np.isnan(res.covariance[0, 1])


def test_a_prior_makes_the_ignored_parameter_identifiable():
    with warnings.catch_warnings():
        warnings.simplefilter("error", IdentifiabilityWarning)
        res = ds.fit(line_ignoring_c, START, Y, sigma=0.05, prior=lambda p: p["c"] / 2.0)
    # Only the prior constrains c: its error bar is the prior's width.
    np.testing.assert_allclose(res.stderr["c"], 2.0, rtol=1e-10)


def test_identifiable_parameters_in_very_different_units_are_not_flagged():
    # Columns of J differ by 1e18, beyond the rank tolerance (20 eps ~ 4e-15) of the raw
    # Jacobian: the rank decision is made on unit-norm columns.
    def model(p):
        return 1e9 * p["a"] * X + 1e-9 * p["b"]

    with warnings.catch_warnings():
        warnings.simplefilter("error", IdentifiabilityWarning)
        res = ds.fit(model, {"a": 1e-9, "b": 0.5e9}, Y)
    design = np.stack([np.asarray(X), np.ones(20)], axis=1)
    expected = ols_stderr(design, np.asarray(Y)) / np.array([1e9, 1e-9])
    np.testing.assert_allclose([res.stderr["a"], res.stderr["b"]], expected, rtol=1e-6)


def test_general_loss_uses_the_same_rule_on_the_hessian():
    def nll(prediction):
        return 0.5 * jnp.sum(((prediction - Y) / 0.05) ** 2)

    with pytest.warns(IdentifiabilityWarning, match=r"\['c'\]"):
        res = ds.fit(line_ignoring_c, START, loss=nll, solver=optx.BFGS(rtol=1e-8, atol=1e-8))
    assert np.isinf(res.stderr["c"])
    assert np.isfinite(res.stderr["a"]) and np.isfinite(res.stderr["b"])


def test_under_jit_the_stderr_is_inf_without_a_warning():
    def run(y):
        return ds.fit(line_ignoring_c, START, y).stderr

    with warnings.catch_warnings():
        warnings.simplefilter("error", IdentifiabilityWarning)
        stderr = jax.jit(run)(Y)
    assert np.isinf(stderr["c"]) and np.isfinite(stderr["a"])
