"""Stochastic systems and SDE integrators: Ornstein-Uhlenbeck, Langevin, Euler-Maruyama,
BAOAB; determinism for a given key; ensembles of paths."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import diffsim as ds
from diffsim.systems._stochastic import Langevin, OrnsteinUhlenbeck

OU = OrnsteinUhlenbeck(theta=2.0, sigma=1.0)


def ou_final(key, dt=0.002, n_steps=1500):
    # float32: the noise costs half as much as in float64, and the statistics below are
    # far coarser than float32 rounding.
    x0 = jnp.zeros((), jnp.float32)
    integrator = ds.EulerMaruyama(key=key)
    return ds.simulate(OU, x0, n_steps=n_steps, dt=dt, integrator=integrator).ys[-1]


@pytest.mark.slow  # 8 s; the BAOAB Boltzmann test checks a stationary law in make test
def test_ou_stationary_variance_from_1e5_members():
    # 10^5 members from x0 = 0 to t = 3 = 6 / theta (the transient e^{-2 theta t} ~ 6e-6).
    # Euler-Maruyama's stationary variance is sigma^2 / (theta (2 - theta dt)), 0.2% above
    # sigma^2 / (2 theta) at dt = 0.002; the sampling error of a variance from 10^5
    # members is sqrt(2 / 10^5) = 0.45%.
    keys = jax.random.split(jax.random.key(0), 100_000)
    res = ds.ensemble(ou_final, keys, batch_size=25_000, reduce=ds.Moments(ddof=1))
    var = float(res.values.variance)
    assert int(res.values.count) == 100_000
    assert var == pytest.approx(OU.stationary_variance, rel=0.01)
    discrete = 1.0 / (2.0 * (2.0 - 2.0 * 0.002))
    assert abs(var / discrete - 1) < 3 * np.sqrt(2 / 100_000)
    assert abs(float(res.values.mean)) < 4 * np.sqrt(var / 100_000)


def test_ou_transient_mean_and_variance():
    # From x0 = 1 with mu = 0.5, at t = 0.25: the closed forms, within sampling error.
    ou = OrnsteinUhlenbeck(theta=2.0, sigma=0.5, mu=0.5)
    n, t = 20_000, 0.25

    def run(key):
        x0 = jnp.ones((), jnp.float32)
        return ds.simulate(ou, x0, t1=t, dt=1e-3, integrator=ds.EulerMaruyama(key=key)).ys[-1]

    x = np.asarray(ds.ensemble(run, jax.random.split(jax.random.key(1), n)).values)
    var = float(ou.variance(t))
    assert abs(x.mean() - float(ou.mean(t, 1.0))) < 4 * np.sqrt(var / n)
    assert x.var() == pytest.approx(var, rel=4 * np.sqrt(2 / n) + 2e-3)


def test_same_key_same_path_and_keys_independent():
    key = jax.random.key(7)
    saveat = ds.SaveAt(every=10)
    integrator = ds.EulerMaruyama(key=key)
    a = ds.simulate(OU, jnp.zeros(3), t1=1.0, dt=0.01, integrator=integrator, saveat=saveat)
    b = ds.simulate(OU, jnp.zeros(3), t1=1.0, dt=0.01, integrator=integrator, saveat=saveat)
    np.testing.assert_array_equal(a.ys, b.ys)
    # The elements of the state get independent noise, and another key another path.
    assert not np.allclose(a.ys[-1, 0], a.ys[-1, 1])
    other = ds.simulate(
        OU, jnp.zeros(3), t1=1.0, dt=0.01, integrator=ds.EulerMaruyama(key=jax.random.key(8))
    )
    assert not np.allclose(other.ys[-1], a.ys[-1])
    # Saving differently or another adjoint does not change the path.
    c = ds.simulate(OU, jnp.zeros(3), t1=1.0, dt=0.01, integrator=integrator, adjoint=ds.Direct())
    np.testing.assert_allclose(c.ys[-1], a.ys[-1], rtol=1e-14)


def test_ensemble_of_paths_independent_of_chunking():
    keys = jax.random.split(jax.random.key(2), 50)

    def short(key):
        return ou_final(key, n_steps=200)

    whole = ds.ensemble(short, keys).values
    chunked = ds.ensemble(short, keys, batch_size=7).values
    np.testing.assert_allclose(chunked, whole, rtol=1e-6)
    alone = short(keys[13])
    np.testing.assert_allclose(whole[13], alone, rtol=1e-6)
    assert np.std(np.asarray(whole)) > 0.3  # 50 different paths


def test_pathwise_gradient_matches_finite_differences():
    # With the key fixed (common random numbers) the final state is a smooth function of
    # the parameters; its gradient is the pathwise (reparameterised) derivative.
    key = jax.random.key(3)

    def final(sigma):
        ou = OrnsteinUhlenbeck(theta=1.0, sigma=sigma)
        return ds.simulate(
            ou, jnp.ones(()), n_steps=200, dt=0.01, integrator=ds.EulerMaruyama(key=key)
        ).ys[-1]

    g = jax.grad(final)(0.7)
    fd = (final(0.7 + 1e-6) - final(0.7 - 1e-6)) / 2e-6
    assert float(g) == pytest.approx(float(fd), rel=1e-7)
    # OU is linear in sigma from x0 with mu = 0: x_T = e^{-T}-like drift + sigma * noise.
    assert float(final(0.7) - final(0.0)) == pytest.approx(0.7 * float(g), rel=1e-10)


def test_baoab_samples_the_boltzmann_distribution():
    # A harmonic oscillator in a heat bath: <q^2> = kT / omega^2, <v^2> = kT. At this
    # large step (omega h = 0.4) BAOAB's positions are still exact for the harmonic
    # oscillator and its velocities have variance kT (1 - (omega h)^2 / 4) (Leimkuhler and
    # Matthews 2013); Euler-Maruyama's variances are several times too large.
    omega, kT, h = 2.0, 0.5, 0.2
    bath = Langevin(ds.systems.HarmonicOscillator(omega=omega), friction=1.0, kT=kT)
    y0 = ds.PhaseState(q=jnp.zeros((), jnp.float32), v=jnp.zeros((), jnp.float32))

    def run(key, integrator_cls):
        # 100 steps = 20 time units, 20 relaxation times of the friction.
        traj = ds.simulate(bath, y0, n_steps=100, dt=h, integrator=integrator_cls(key=key))
        return jax.tree.map(lambda x: x[-1] ** 2, traj.ys)

    n = 40_000
    keys = jax.random.split(jax.random.key(4), n)
    baoab = ds.ensemble(lambda k: run(k, ds.BAOAB), keys, reduce=ds.Moments()).values.mean
    # A few members show Euler-Maruyama's error, many times the sampling error.
    euler = ds.ensemble(lambda k: run(k, ds.EulerMaruyama), keys[:2000], reduce=ds.Moments())
    euler = euler.values
    rel_se = np.sqrt(2 / n)  # of a mean of squares of n normals
    assert float(baoab.q) == pytest.approx(kT / omega**2, rel=4 * rel_se)
    assert float(baoab.v) == pytest.approx(kT * (1 - (omega * h) ** 2 / 4), rel=4 * rel_se)
    assert float(euler.mean.q) > 2 * kT / omega**2


def test_langevin_drift_and_noise():
    bath = Langevin(ds.systems.HarmonicOscillator(omega=2.0), friction=0.5, kT=2.0, mass=4.0)
    y = ds.PhaseState(q=jnp.array(1.0), v=jnp.array(3.0))
    assert float(bath.acceleration(0.0, y.q, y.v)) == pytest.approx(-4.0 - 1.5)
    assert float(bath.conservative_acceleration(0.0, y.q, y.v)) == pytest.approx(-4.0)
    g = bath.diffusion(0.0, y)
    assert float(g.q) == 0.0 and float(g.v) == pytest.approx(np.sqrt(2 * 0.5 * 2.0 / 4.0))
    assert float(bath.energy(y)) == pytest.approx(0.5 * 9 + 0.5 * 4 * 1)


def test_zero_step_is_identity():
    key = jax.random.key(0)
    y = ds.PhaseState(q=jnp.array(0.3), v=jnp.array(-0.2))
    bath = Langevin(ds.systems.HarmonicOscillator(omega=1.0), friction=1.0, kT=1.0)
    step = eqx.filter_jit(lambda integrator, *args: integrator.step(*args))
    out = step(ds.BAOAB(key=key), bath, 0.0, y, 0.0)
    assert float(out.q) == 0.3 and float(out.v) == -0.2
    assert float(step(ds.EulerMaruyama(key=key), OU, 0.0, jnp.array(0.4), 0.0)) == 0.4


def test_errors():
    key = jax.random.key(0)
    with pytest.raises(TypeError, match="needs a stochastic system with `diffusion`.*Lorenz"):
        ds.simulate(
            ds.systems.Lorenz(), jnp.ones(3), t1=0.1, dt=0.01, integrator=ds.EulerMaruyama(key=key)
        )
    with pytest.raises(TypeError, match="BAOAB.*conservative_acceleration"):
        ds.simulate(
            ds.systems.HarmonicOscillator(omega=1.0),
            ds.PhaseState(q=jnp.array(1.0), v=jnp.array(0.0)),
            t1=0.1,
            dt=0.01,
            integrator=ds.BAOAB(key=key),
        )
    with pytest.raises(TypeError, match="must be a JAX PRNG key"):
        ds.EulerMaruyama(key=3)
    with pytest.raises(ValueError, match="single PRNG key"):
        ds.EulerMaruyama(key=jax.random.split(key, 2))
    with pytest.raises(ValueError, match="Reversible"):
        ds.simulate(
            OU, jnp.zeros(()), t1=0.1, dt=0.01, integrator=ds.EulerMaruyama(key=key),
            adjoint=ds.Reversible(),
        )  # fmt: skip
