"""ds.fit: recovery of known parameters, error bars, subsets, bounds, missing data, every
solver, and clear errors. Multiple shooting: test_shooting.py."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import optimistix as optx
import pytest

import diffsim as ds

from .helpers import TS, noisy, pendulum_model


class Line(eqx.Module):
    a: jax.Array
    b: jax.Array


def test_linear_model_matches_ordinary_least_squares_exactly():
    # For a linear model the Gauss-Newton covariance is the OLS covariance
    # s^2 (X^T X)^{-1}, s^2 = RSS / (n - 2): a closed form for value and error bars.
    x = jnp.linspace(0, 1, 30)
    y = 2.0 * x - 0.5 + 0.1 * jax.random.normal(jax.random.key(1), x.shape)
    res = ds.fit(lambda p: p.a * x + p.b, Line(jnp.array(0.0), jnp.array(0.0)), y)
    X = np.stack([np.asarray(x), np.ones(30)], axis=1)
    coef, rss, *_ = np.linalg.lstsq(X, np.asarray(y), rcond=None)
    cov = rss[0] / (30 - 2) * np.linalg.inv(X.T @ X)
    assert np.allclose([res.params.a, res.params.b], coef, rtol=1e-8)
    assert np.allclose(res.covariance, cov, rtol=1e-6)
    assert np.allclose([res.stderr.a, res.stderr.b], np.sqrt(np.diag(cov)), rtol=1e-6)
    assert res.names == ("a", "b")
    assert np.isclose(res.loss, 0.5 * rss[0], rtol=1e-8)


def test_known_sigma_sets_error_bars():
    x = jnp.linspace(0, 1, 30)
    y = 2.0 * x - 0.5
    res = ds.fit(lambda p: p.a * x + p.b, Line(jnp.array(0.0), jnp.array(0.0)), y, sigma=0.1)
    X = np.stack([np.asarray(x), np.ones(30)], axis=1)
    assert np.allclose(res.covariance, 0.01 * np.linalg.inv(X.T @ X), rtol=1e-8)


@pytest.mark.slow  # 20 fits, ~9 s; the fast tests fit pendulums with every solver
def test_pendulum_recovery_and_error_bars_over_20_seeds():
    # One vmapped fit over 20 noisy datasets: every estimate within 3 stderr of the
    # truth, and the reported stderr within 30% of the spread of the estimates.
    start = ds.systems.Pendulum(length=1.0, damping=0.05)
    keys = jax.random.split(jax.random.key(0), 20)

    def one(key):
        res = ds.fit(
            pendulum_model,
            start,
            noisy(key),
            where=lambda p: (p.length, p.damping),
            bounds=((0.0, None), (0.0, None)),
        )
        return (
            res.params.length,
            res.params.damping,
            res.stderr.length,
            res.stderr.damping,
            res.converged,
        )

    L, c, sL, sc, ok = jax.jit(jax.vmap(one))(keys)
    assert bool(ok.all())
    assert np.all(np.abs(L - 1.3) < 3 * sL) and np.all(np.abs(c - 0.2) < 3 * sc)
    assert abs(np.std(L, ddof=1) / np.mean(sL) - 1) < 0.3
    assert abs(np.std(c, ddof=1) / np.mean(sc) - 1) < 0.3


def test_where_fits_a_subset_and_keeps_the_rest():
    data = noisy(jax.random.key(3))
    res = ds.fit(
        pendulum_model, ds.systems.Pendulum(length=1.0, damping=0.2), data, where=lambda p: p.length
    )
    assert abs(float(res.params.length) - 1.3) < 3 * float(res.stderr.length)
    assert float(res.params.damping) == 0.2 and float(res.params.gravity) == 9.81
    assert float(res.stderr.damping) == 0.0
    assert res.names == ("length",)
    assert res.covariance.shape == (1, 1)


def test_bounds_are_respected():
    # The truth (damping 0.2) lies outside the bounds: the fit stays inside them.
    data = noisy(jax.random.key(4))
    res = ds.fit(
        pendulum_model,
        ds.systems.Pendulum(length=1.2, damping=0.05),
        data,
        where=lambda p: (p.length, p.damping),
        bounds=((1.0, 2.0), (0.0, 0.1)),
        throw=False,
    )
    assert 1.0 < float(res.params.length) < 2.0
    assert 0.0 < float(res.params.damping) < 0.1
    assert float(res.params.damping) > 0.09  # pressed against the upper bound


@pytest.mark.slow  # 30-60 s on the 2-core CI machine; run with make test-slow
def test_missing_data_is_masked():
    data = noisy(jax.random.key(5))
    keep = np.ones(TS.shape, bool)
    keep[::3] = False
    masked = jnp.where(keep, data, jnp.nan)
    res = ds.fit(
        pendulum_model,
        ds.systems.Pendulum(length=1.0, damping=0.05),
        masked,
        where=lambda p: (p.length, p.damping),
    )
    # The same fit on only the kept points, with a model that predicts only those.
    sub = ds.fit(
        lambda p: pendulum_model(p)[keep],
        ds.systems.Pendulum(length=1.0, damping=0.05),
        data[keep],
        where=lambda p: (p.length, p.damping),
    )
    assert np.allclose(res.params.length, sub.params.length, rtol=1e-7)
    assert np.allclose(res.covariance, sub.covariance, rtol=1e-5)


@pytest.mark.parametrize(
    "solver,max_steps",
    [
        (optx.LevenbergMarquardt(rtol=1e-8, atol=1e-8), 256),
        # GaussNewton and Dogleg share LM's machinery; slow-marked to keep CI short.
        pytest.param(optx.GaussNewton(rtol=1e-8, atol=1e-8), 256, marks=pytest.mark.slow),
        pytest.param(optx.Dogleg(rtol=1e-8, atol=1e-8), 256, marks=pytest.mark.slow),
        (optx.BFGS(rtol=1e-8, atol=1e-8), 256),
        (optax.adam(0.02), 1500),
    ],
    ids=["LM", "GaussNewton", "Dogleg", "BFGS", "adam"],
)
def test_every_solver_recovers_the_parameters(solver, max_steps):
    data = noisy(jax.random.key(6))
    ref = ds.fit(
        pendulum_model,
        ds.systems.Pendulum(length=1.2, damping=0.1),
        data,
        where=lambda p: (p.length, p.damping),
    )
    res = ds.fit(
        pendulum_model,
        ds.systems.Pendulum(length=1.2, damping=0.1),
        data,
        where=lambda p: (p.length, p.damping),
        solver=solver,
        max_steps=max_steps,
        throw=False,
    )
    # Adam's fixed learning rate stops near, not at, the optimum: compare in units of
    # the statistical error instead of to machine precision.
    assert abs(float(res.params.length - ref.params.length)) < 0.05 * float(ref.stderr.length) or (
        not isinstance(solver, optax.GradientTransformation)
        and np.isclose(res.params.length, ref.params.length, rtol=1e-6)
    )
    assert np.all(
        np.diff(np.asarray(res.history)) <= 1e-12 * np.asarray(res.history)[0]
    ) or isinstance(solver, optax.GradientTransformation)


@pytest.mark.slow  # 30-60 s on the 2-core CI machine; run with make test-slow
def test_general_loss_with_minimiser_and_laplace_covariance():
    # A Gaussian negative log-likelihood: its inverse Hessian is the same covariance as
    # Gauss-Newton's with known sigma (they agree up to the curvature of the residuals).
    data = noisy(jax.random.key(7))
    sigma = 0.02

    def nll(pred):
        return 0.5 * jnp.sum(((pred - data) / sigma) ** 2)

    res = ds.fit(
        pendulum_model,
        ds.systems.Pendulum(length=1.2, damping=0.1),
        loss=nll,
        where=lambda p: (p.length, p.damping),
        bounds=((0.0, None), (0.0, None)),
    )
    ls = ds.fit(
        pendulum_model,
        ds.systems.Pendulum(length=1.2, damping=0.1),
        data,
        where=lambda p: (p.length, p.damping),
        sigma=sigma,
    )
    assert np.allclose(res.params.length, ls.params.length, rtol=1e-6)
    assert np.allclose(res.covariance, ls.covariance, rtol=0.05)


def test_prior_residuals_regularise():
    # A strong prior pulls the estimate to the prior mean.
    data = noisy(jax.random.key(8))
    res = ds.fit(
        pendulum_model,
        ds.systems.Pendulum(length=1.2, damping=0.1),
        data,
        where=lambda p: p.length,
        prior=lambda p: 1e4 * (p.length - 1.25),
    )
    assert abs(float(res.params.length) - 1.25) < 1e-3


def test_history_and_summary_and_progress(capsys):
    data = noisy(jax.random.key(9))
    res = ds.fit(
        pendulum_model,
        ds.systems.Pendulum(length=1.0, damping=0.05),
        data,
        where=lambda p: (p.length, p.damping),
        progress=True,
    )
    history = np.asarray(res.history)
    assert history.shape == (int(res.n_steps) + 1,)
    assert history[0] > 100 * history[-1] and np.isclose(history[-1], res.loss)
    out = capsys.readouterr().out
    assert "fit iteration" in out and out.count("\n") >= int(res.n_steps)
    table = res.summary()
    assert "length" in table and "damping" in table and "converged" in table


def test_bad_input_errors():
    start = ds.systems.Pendulum(length=1.0, damping=0.05)
    data = noisy(jax.random.key(10))
    with pytest.raises(ValueError, match="shape \\(120,\\) where observed has shape \\(50,\\)"):
        ds.fit(pendulum_model, start, data[:50])
    with pytest.raises(ValueError, match="all NaN"):
        ds.fit(pendulum_model, start, jnp.full(TS.shape, jnp.nan))
    # A NaN start built past Pendulum's own check (which refuses length=nan).
    nan_start = eqx.tree_at(lambda p: p.length, start, jnp.nan)
    with pytest.raises(ValueError, match="non-finite values in the fitted parameter length"):
        ds.fit(pendulum_model, nan_start, data, where=lambda p: p.length)
    with pytest.raises(ValueError, match="not strictly inside its bounds"):
        ds.fit(pendulum_model, start, data, where=lambda p: p.length, bounds=(2.0, 3.0))
    with pytest.raises(ValueError, match="exactly one of observed"):
        ds.fit(pendulum_model, start)
    with pytest.raises(ValueError, match="different structures"):
        ds.fit(pendulum_model, start, (data, data))
    with pytest.raises(ValueError, match="sigma must be positive"):
        ds.fit(pendulum_model, start, data, sigma=-1.0)
    with pytest.raises(RuntimeError, match="did not converge in max_steps=2"):
        ds.fit(pendulum_model, start, data, where=lambda p: p.length, max_steps=2)


def test_second_fit_with_new_where_lambda_does_not_recompile(caplog):
    import logging

    start = ds.systems.Pendulum(length=1.0, damping=0.05)
    data = noisy(jax.random.key(12))
    ds.fit(pendulum_model, start, noisy(jax.random.key(11)), where=lambda p: (p.length, p.damping))
    with jax.log_compiles(), caplog.at_level(logging.WARNING):
        caplog.clear()
        res = ds.fit(pendulum_model, start, data, where=lambda p: (p.length, p.damping))
        # A new Python-float start is a new value, not a new program.
        other = ds.systems.Pendulum(length=1.1, damping=0.1)
        res_other = ds.fit(pendulum_model, other, data, where=lambda p: (p.length, p.damping))
    compiled = [
        r.getMessage()
        for r in caplog.records
        if "Compiling" in r.getMessage() and "_fit" in r.getMessage()
    ]
    assert compiled == []
    assert abs(float(res.params.length) - 1.3) < 3 * float(res.stderr.length)
    # Python floats and arrays as the start give the same fit (and the same program).
    as_arrays = ds.systems.Pendulum(length=jnp.asarray(1.1), damping=jnp.asarray(0.1))
    res_arrays = ds.fit(pendulum_model, as_arrays, data, where=lambda p: (p.length, p.damping))
    np.testing.assert_allclose(res_other.values, res_arrays.values, rtol=1e-12)
    np.testing.assert_allclose(res_other.values, res.values, rtol=1e-6)


def test_least_squares_fit_of_a_model_with_a_reverse_mode_adjoint():
    # Levenberg-Marquardt takes forward-mode Jacobians; a model written with
    # adjoint=ds.Reversible() (a custom VJP, no forward mode) or ds.Checkpointed() still
    # fits, because ds.fit runs fixed-step rollouts with plain forward-mode
    # differentiation. Same data, same answer for every adjoint.
    ts_every = 5

    def model(adjoint):
        def f(p):
            traj = ds.simulate(
                p, p.initial_state(1.0), n_steps=300, dt=0.02, integrator=ds.Leapfrog(),
                saveat=ds.SaveAt(every=ts_every), adjoint=adjoint,
            )  # fmt: skip
            return traj.ys.q

        return f

    truth = ds.systems.Pendulum(length=1.3)
    data = model(ds.Direct())(truth) + 0.01 * jax.random.normal(jax.random.key(3), (61,))
    start = ds.systems.Pendulum(length=1.0)
    fits = [
        ds.fit(model(a), start, data, where=lambda p: p.length)
        for a in (ds.Direct(), ds.Checkpointed(), ds.Reversible())
    ]
    for res in fits:
        assert res.converged
        assert abs(float(res.params.length) - 1.3) < 3 * float(res.stderr.length)
        assert np.isclose(float(res.params.length), float(fits[0].params.length), rtol=1e-10)
