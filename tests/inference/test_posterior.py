"""`ds.posterior` against closed forms: a linear-Gaussian model (the conjugate case: the
posterior is Gaussian with known mean and covariance), a likelihood-free model (the
posterior is the prior: checks every change of variables and its Jacobian), inferred
noise, determinism for a key, and the posterior predictive. Each NUTS program compiles
for ~15 s, so the tests share a few models."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import diffsim as ds

X = np.stack([np.ones(30), np.linspace(-1.0, 1.0, 30)], axis=1)
THETA = np.array([0.5, -1.2])
SIGMA = 0.3
PRIOR_SD = 2.0
Y = X @ THETA + SIGMA * np.random.default_rng(0).standard_normal(30)


def linear(p):
    return jnp.asarray(X) @ p["theta"]


def _linear_posterior(key, **kw):
    prior = {"theta": ds.Normal(jnp.zeros(2), jnp.full(2, PRIOR_SD))}
    return ds.posterior(linear, {"theta": jnp.zeros(2)}, Y, prior=prior, key=key,
                        num_warmup=400, num_samples=1000, **kw)  # fmt: skip


@pytest.fixture(scope="module")
def conjugate():
    return _linear_posterior(jax.random.key(3), sigma=SIGMA)


def _within_mc_error(draws, mean, sd, ess, k=4.0):
    """Sample mean and sd agree with the exact ones within k Monte Carlo errors."""
    assert abs(draws.mean() - mean) < k * sd / np.sqrt(ess)
    assert abs(draws.std() / sd - 1) < k / np.sqrt(2 * ess)


def test_linear_gaussian_matches_the_conjugate_posterior(conjugate):
    precision = X.T @ X / SIGMA**2 + np.eye(2) / PRIOR_SD**2
    cov = np.linalg.inv(precision)
    mean = cov @ (X.T @ Y / SIGMA**2)
    draws = np.asarray(conjugate.samples["theta"]).reshape(-1, 2)
    for i in range(2):
        _within_mc_error(draws[:, i], mean[i], np.sqrt(cov[i, i]), float(conjugate.ess_bulk[i]))
    corr = cov[0, 1] / np.sqrt(cov[0, 0] * cov[1, 1])
    assert abs(np.corrcoef(draws.T)[0, 1] - corr) < 0.1
    assert conjugate.names == ("theta[0]", "theta[1]")
    assert np.all(np.asarray(conjugate.rhat) < 1.01)
    assert not np.asarray(conjugate.divergent).any()


def test_log_likelihood_is_that_of_each_draw(conjugate):
    theta = np.asarray(conjugate.samples["theta"])[1, 7]
    r = (Y - X @ theta) / SIGMA
    expected = -0.5 * np.sum(r**2) - Y.size * np.log(SIGMA * np.sqrt(2 * np.pi))
    np.testing.assert_allclose(conjugate.log_likelihood[1, 7], expected, rtol=1e-10)


def test_same_key_same_draws_other_key_other_draws(conjugate):
    again = _linear_posterior(jax.random.key(3), sigma=SIGMA, start=conjugate.fit)
    np.testing.assert_array_equal(again.draws, conjugate.draws)
    other = _linear_posterior(jax.random.key(4), sigma=SIGMA, start=conjugate.fit)
    assert not np.allclose(other.draws, conjugate.draws)


def test_predict_gives_the_quantiles_of_the_draws(conjugate):
    grid = jnp.linspace(-2.0, 2.0, 5)
    lower, median, upper = conjugate.predict(lambda p: p["theta"][0] + p["theta"][1] * grid)
    theta = np.asarray(conjugate.samples["theta"]).reshape(-1, 2)
    values = theta[:, :1] + theta[:, 1:] * np.asarray(grid)
    exact = np.quantile(values, [0.05, 0.5, 0.95], axis=0)
    width = (exact[2] - exact[0]).max()
    for got, want in zip((lower, median, upper), exact, strict=True):
        np.testing.assert_allclose(got, want, atol=0.02 * width)


@pytest.mark.slow  # a third NUTS program (~20 s of compile): make test keeps two
def test_inferred_noise_covers_the_truth():
    post = _linear_posterior(jax.random.key(5), noise=ds.HalfNormal(1.0))
    assert post.names[-1] == "sigma" and post.noise.shape == (4, 1000)
    noise = np.asarray(post.noise).ravel()
    assert abs(noise.mean() - SIGMA) < 3 * noise.std()
    # sigma ~ s sqrt(n / chi2_{n-2}): its posterior sd is about s / sqrt(2 (n - 2)).
    assert 0.5 < noise.std() / (SIGMA / np.sqrt(2 * 28)) < 2.0


@pytest.mark.slow  # 15 s; the conjugate-posterior tests check the sampler in make test
def test_prior_alone_is_recovered_through_every_change_of_variables():
    """With data that say nothing (the model ignores the parameters), the posterior is
    the prior: a HalfNormal (softplus onto (0, inf)), a Uniform (sigmoid onto (1, 3))
    and a LogNormal, each right only with its log-Jacobian in the density."""
    prior = {"a": ds.HalfNormal(2.0), "b": ds.Uniform(1.0, 3.0), "c": ds.LogNormal(0.0, 0.5)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unidentifiable start, by design
        post = ds.posterior(lambda p: 0.0 * (p["a"] + p["b"] + p["c"]) * jnp.ones(3),
                            {"a": 1.0, "b": 2.0, "c": 1.0}, np.zeros(3), prior=prior, sigma=1.0,
                            key=jax.random.key(0), num_warmup=400, num_samples=1000)  # fmt: skip
    exact = {
        "a": (2.0 * np.sqrt(2 / np.pi), 2.0 * np.sqrt(1 - 2 / np.pi)),
        "b": (2.0, 2.0 / np.sqrt(12)),
        "c": (np.exp(0.125), np.sqrt((np.exp(0.25) - 1) * np.exp(0.25))),
    }
    for i, name in enumerate(post.names):
        draws = np.asarray(post.samples[name]).ravel()
        _within_mc_error(draws, *exact[name], float(post.ess_bulk[i]), k=5.0)
    assert np.asarray(post.samples["b"]).min() > 1.0 and np.asarray(post.samples["b"]).max() < 3.0
