"""`converged` asks for a stationary point: the Gauss-Newton step from where the solver
stopped must predict (almost) no further reduction of the loss."""

import jax
import jax.numpy as jnp
import numpy as np

import diffsim as ds
from diffsim.fitting._optimality import predicted_gain, stationary

T = jnp.linspace(0.0, 2.0, 30)
DATA = 2.0 * jnp.exp(-1.3 * T) + 0.01 * jax.random.normal(jax.random.key(1), (30,))


def residuals(p):
    return p["A"] * jnp.exp(-p["k"] * T) - DATA


def test_gain_is_the_gauss_newton_reduction_of_a_linear_model():
    # For a linear model r = J x - b the Gauss-Newton step lands on the minimum, so the
    # predicted gain is exactly the loss above the minimum.
    key1, key2 = jax.random.split(jax.random.key(0))
    jac = jax.random.normal(key1, (20, 3))
    b = jax.random.normal(key2, (20,))
    x_min = jnp.linalg.lstsq(jac, b)[0]
    x = x_min + jnp.array([0.3, -0.2, 0.5])
    loss = lambda x: 0.5 * jnp.sum((jac @ x - b) ** 2)  # noqa: E731
    assert np.isclose(predicted_gain(jac, jac @ x - b), loss(x) - loss(x_min), rtol=1e-10)
    assert abs(float(predicted_gain(jac, jac @ x_min - b))) < 1e-12


def test_stationary_at_the_minimum_not_away_from_it():
    fit = ds.fit(lambda p: p["A"] * jnp.exp(-p["k"] * T), {"A": 1.0, "k": 1.0}, DATA)
    assert bool(fit.converged)
    assert bool(stationary(residuals, fit.params, forward=True))
    away = {"A": fit.params["A"] * 1.01, "k": fit.params["k"]}
    assert not bool(stationary(residuals, away, forward=True))


def test_a_parameter_held_at_a_bound_is_stationary():
    # In the solver's coordinates a parameter pinned at its bound has a vanishing column:
    # the constrained minimum k = 2 (the unconstrained one is at k = 1.3) passes, with
    # k = 2 + softplus(u) and u far below zero.
    def res_u(z):
        k = 2.0 + jax.nn.softplus(z["u"])
        return z["A"] * jnp.exp(-k * T) - DATA

    u = -40.0
    a_best = jnp.sum(jnp.exp(-2.0 * T) * DATA) / jnp.sum(jnp.exp(-4.0 * T))
    assert bool(stationary(res_u, {"A": a_best, "u": jnp.asarray(u)}, forward=True))
