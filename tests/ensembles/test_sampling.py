"""Sampling designs and distributions: ds.sample, ds.grid, Sobol, Latin hypercube."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import diffsim as ds
from diffsim.systems._stochastic import Langevin

# --------------------------------------------------------------------------------------
# Sampling helpers.


def test_sample_distributions_and_determinism():
    template = ds.systems.Lorenz()
    kwargs = dict(
        where=lambda s: (s.rho, s.sigma, s.beta),
        dist=(ds.Uniform(0.0, 21.0), ds.Normal(10.0, 2.0), ds.LogUniform(0.1, 10.0)),
    )
    batch = ds.sample(jax.random.key(0), template, 20_000, **kwargs)
    again = ds.sample(jax.random.key(0), template, 20_000, **kwargs)
    other = ds.sample(jax.random.key(1), template, 20_000, **kwargs)
    np.testing.assert_array_equal(batch.rho, again.rho)
    assert not np.allclose(batch.rho, other.rho)
    rho, sigma, logb = np.asarray(batch.rho), np.asarray(batch.sigma), np.log(batch.beta)
    # Moments within ~4 standard errors of 20,000 draws.
    assert rho.min() >= 0.0 and rho.max() < 21.0 and abs(rho.mean() - 10.5) < 0.2
    assert abs(sigma.mean() - 10.0) < 0.06 and abs(sigma.std() - 2.0) < 0.05
    assert abs(logb.mean()) < 0.07 and logb.min() >= np.log(0.1) and logb.max() < np.log(10)


def test_latin_hypercube_stratifies_every_marginal():
    n = 64
    batch = ds.sample(
        jax.random.key(2),
        ds.systems.Lorenz(),
        n,
        where=lambda s: (s.rho, s.beta),
        dist=(ds.Uniform(0.0, 1.0), ds.Uniform(10.0, 20.0)),
        design=ds.LatinHypercube(),
    )
    # Each of the n strata of each coordinate holds exactly one point.
    assert sorted(np.floor(np.asarray(batch.rho) * n).astype(int)) == list(range(n))
    strata = np.floor((np.asarray(batch.beta) - 10.0) / 10.0 * n).astype(int)
    assert sorted(strata) == list(range(n))


def test_sobol_unscrambled_equals_scipy():
    qmc = pytest.importorskip("scipy.stats.qmc")
    for d in (1, 3, 40, ds.ensembles._sampling.SOBOL_MAX_DIM):
        ours = ds.Sobol(scramble=False).unit(jax.random.key(0), 512, d, jnp.float64)
        np.testing.assert_array_equal(ours, qmc.Sobol(d, scramble=False).random(512))


@pytest.mark.slow  # 7 s; the unscrambled net is checked against SciPy in make test
def test_sobol_scrambled_is_a_net_and_integrates_better_than_monte_carlo():
    n = 256
    u = np.asarray(ds.Sobol().unit(jax.random.key(2), n, 2, jnp.float64))
    # The first two Sobol' coordinates form a (0, 8, 2)-net, and the linear scramble and
    # digital shift keep it: every 2^a x 2^(8-a) box holds exactly one point.
    for a in range(9):
        cells = np.floor(u[:, 0] * 2**a) * 2 ** (8 - a) + np.floor(u[:, 1] * 2 ** (8 - a))
        assert len(np.unique(cells)) == n
    # A smooth integrand with mean 1 in 5-d: RMS error over 8 keys of 4096 points.
    f = lambda u: jnp.prod(jnp.pi / 2 * jnp.sin(jnp.pi * u), -1)  # noqa: E731
    err = {
        name: np.sqrt(np.mean([
            float(f(design.unit(jax.random.key(k), 4096, 5, jnp.float64)).mean() - 1) ** 2
            for k in range(8)
        ]))
        for name, design in [("sobol", ds.Sobol()), ("mc", ds.MonteCarlo())]
    }  # fmt: skip
    assert err["sobol"] < 0.05 * err["mc"], err  # measured 5.8e-4 vs 3.8e-2
    # Different keys give different scrambles; the same key the same points.
    again = ds.Sobol().unit(jax.random.key(2), n, 2, jnp.float64)
    np.testing.assert_array_equal(u, again)
    assert not np.allclose(u, ds.Sobol().unit(jax.random.key(3), n, 2, jnp.float64))


def test_sobol_float32_sample_and_errors():
    n = 128
    batch = ds.sample(
        jax.random.key(4),
        ds.systems.Lorenz(rho=jnp.float32(28.0)),
        n,
        where=lambda s: s.rho,
        dist=ds.Uniform(0.0, 1.0),
        design=ds.Sobol(),
    )
    rho = np.asarray(batch.rho)
    assert rho.dtype == np.float32 and rho.min() >= 0.0 and rho.max() < 1.0
    assert sorted(np.floor(rho * n).astype(int)) == list(range(n))
    # Traced keys work (jit), no value rounds up to 1 in float32.
    u = jax.jit(lambda k: ds.Sobol().unit(k, 4096, 3, jnp.float32))(jax.random.key(0))
    assert u.dtype == jnp.float32 and float(u.max()) < 1.0
    with pytest.raises(ValueError, match="up to 1024 dimensions"):
        ds.Sobol().unit(jax.random.key(0), 8, 1025, jnp.float32)
    with pytest.raises(TypeError, match="scramble"):
        ds.Sobol(scramble=1)


def test_sample_array_field_and_nested_where():
    bath = Langevin(ds.systems.HarmonicOscillator(omega=jnp.ones(3)), friction=1.0, kT=1.0)
    batch = ds.sample(
        jax.random.key(5),
        bath,
        8,
        where=lambda s: s.system.omega,
        dist=ds.Uniform(1.0, 2.0),
    )
    assert batch.system.omega.shape == (8, 3)
    assert batch.friction == 1.0  # a Python float: shared, not broadcast
    assert len(np.unique(np.asarray(batch.system.omega))) == 24


def test_grid_is_cartesian_product():
    batch = ds.grid(
        ds.systems.Lorenz(),
        where=lambda s: (s.rho, s.beta),
        values=(jnp.array([1.0, 2.0, 3.0]), jnp.array([10.0, 20.0])),
    )
    assert np.asarray(batch.rho).tolist() == [1.0, 1.0, 2.0, 2.0, 3.0, 3.0]
    assert np.asarray(batch.beta).tolist() == [10.0, 20.0] * 3
    assert batch.sigma == 10.0
    res = ds.ensemble(lambda s: s.rho * s.beta, batch)
    np.testing.assert_array_equal(res.values, [10.0, 20.0, 20.0, 40.0, 30.0, 60.0])


def test_sampling_errors():
    lorenz = ds.systems.Lorenz()
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="one distribution .* per field"):
        ds.sample(key, lorenz, 4, where=lambda s: (s.rho, s.beta), dist=ds.Uniform(0.0, 1.0))
    with pytest.raises(ValueError, match="n must be a positive int"):
        ds.sample(key, lorenz, 0, where=lambda s: s.rho, dist=ds.Uniform(0.0, 1.0))
    with pytest.raises(ValueError, match="LogUniform needs low > 0"):
        ds.LogUniform(0.0, 1.0)
    with pytest.raises(ValueError, match="Uniform needs finite low < high"):
        ds.Uniform(2.0, 1.0)
    with pytest.raises(ValueError, match="values must give one 1-d array per field"):
        ds.grid(lorenz, where=lambda s: (s.rho, s.beta), values=(jnp.ones(2),))
