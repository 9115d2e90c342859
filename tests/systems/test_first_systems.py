"""The first systems against known answers: closed forms, conservation laws, fixed points."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import ellipk

import diffsim as ds
from tests.helpers import central_difference


def _crossing_times(ts, x):
    """Times where x crosses zero upwards, by linear interpolation."""
    ts, x = np.asarray(ts), np.asarray(x)
    idx = np.nonzero((x[:-1] < 0) & (x[1:] >= 0))[0]
    return ts[idx] - x[idx] * (ts[idx + 1] - ts[idx]) / (x[idx + 1] - x[idx])


@pytest.mark.parametrize("amplitude", [0.1, 1.0, 2.5])
def test_pendulum_period_exact(amplitude):
    # Exact period of the undamped pendulum: T = 4 sqrt(L/g) K(k^2), k = sin(theta0/2),
    # with K the complete elliptic integral of the first kind (scipy's ellipk takes m = k^2).
    length, g = 0.8, 9.81
    pendulum = ds.systems.Pendulum(length=length, gravity=g)
    exact = 4 * np.sqrt(length / g) * ellipk(np.sin(amplitude / 2) ** 2)
    traj = ds.simulate(
        pendulum,
        pendulum.initial_state(amplitude),
        t1=20.0,
        dt=1e-3,
        integrator=ds.Yoshida4(),
        saveat=ds.SaveAt(every=1, fn=lambda t, y: y.v),
    )
    crossings = _crossing_times(traj.ts, traj.ys)
    periods = np.diff(crossings)
    assert np.allclose(periods, exact, rtol=1e-6)


def test_pendulum_energy_conserved_and_damping_dissipates():
    pendulum = ds.systems.Pendulum(length=1.2, mass=0.5)
    y0 = pendulum.initial_state(1.5, 0.5)
    e = jax.vmap(pendulum.energy)(
        ds.simulate(pendulum, y0, t1=10.0, dt=1e-3, saveat=ds.SaveAt(every=100)).ys
    )
    assert np.allclose(e, pendulum.energy(y0), rtol=1e-10)
    # With damping c, dE/dt = -c m L^2 v^2 <= 0: energy decreases monotonically.
    damped = ds.systems.Pendulum(length=1.2, mass=0.5, damping=0.3)
    e = jax.vmap(damped.energy)(
        ds.simulate(damped, y0, t1=10.0, dt=1e-3, saveat=ds.SaveAt(every=100)).ys
    )
    assert np.all(np.diff(e) < 0) and e[-1] < 0.1 * e[0]


def test_pendulum_small_angle_damped_closed_form():
    # Linearised damped oscillator: theta = A e^{-ct/2} cos(w_d t), w_d^2 = g/L - c^2/4.
    length, c, a = 1.0, 0.4, 1e-4
    pendulum = ds.systems.Pendulum(length=length, damping=c)
    wd = np.sqrt(9.81 / length - c**2 / 4)
    traj = ds.simulate(
        pendulum,
        pendulum.initial_state(a, -a * c / 2),
        t1=5.0,
        dt=1e-3,
        saveat=ds.SaveAt(every=250),
    )
    t = np.asarray(traj.ts)
    exact = a * np.exp(-c * t / 2) * np.cos(wd * t)
    # The sin nonlinearity contributes O(a^3) = 1e-12 relative to a.
    assert np.allclose(traj.ys.q, exact, atol=1e-11)


def test_pendulum_gradient_wrt_every_parameter():
    def final(params):
        length, gravity, damping = params
        p = ds.systems.Pendulum(length=length, gravity=gravity, damping=damping)
        return ds.simulate(p, p.initial_state(0.7), t1=2.0, dt=1e-2).ys.q[-1]

    params = jnp.array([1.1, 9.0, 0.2])
    assert np.allclose(
        jax.grad(final)(params), central_difference(jax.jit(final), params), rtol=1e-6
    )


def test_harmonic_energy_and_solution():
    osc = ds.systems.HarmonicOscillator(omega=3.0)
    y0 = osc.initial_state(jnp.array([1.0, 0.0]), jnp.array([0.0, 3.0]))
    assert float(osc.energy(y0)) == pytest.approx(0.5 * 9 + 0.5 * 9)
    y = osc.solution(2 * np.pi / 3.0, y0)  # one full period
    assert np.allclose(y.q, y0.q, atol=1e-12) and np.allclose(y.v, y0.v, atol=1e-12)


def _kepler_circular(G=1.0, m1=1.0, m2=0.001, a=1.0):
    body = ds.systems.NBody(masses=jnp.array([m1, m2]), G=G)
    M = m1 + m2
    vc = np.sqrt(G * M / a)
    # centre-of-mass frame
    q = jnp.array([[-m2 / M * a, 0.0], [m1 / M * a, 0.0]])
    v = jnp.array([[0.0, -m2 / M * vc], [0.0, m1 / M * vc]])
    return body, ds.PhaseState(q=q, v=v), 2 * np.pi * np.sqrt(a**3 / (G * M))


def test_nbody_kepler_circular_orbit_period():
    # Kepler's third law: T = 2 pi sqrt(a^3 / (G M)). After one period the bodies return.
    body, y0, period = _kepler_circular()
    n = 2000
    traj = ds.simulate(body, y0, n_steps=n, dt=period / n, integrator=ds.Yoshida4())
    assert np.allclose(traj.ys.q[-1], y0.q, atol=1e-8)


def test_nbody_conservation_three_dimensions():
    masses = jnp.array([1.0, 0.3, 0.2, 0.05])
    body = ds.systems.NBody(masses=masses, softening=0.0)
    key1, key2 = jax.random.split(jax.random.key(1))
    q = jax.random.normal(key1, (4, 3)) * 1.5
    v = jax.random.normal(key2, (4, 3)) * 0.3
    y0 = ds.PhaseState(q=q, v=v)
    traj = ds.simulate(
        body, y0, t1=2.0, dt=1e-3, integrator=ds.Yoshida4(), saveat=ds.SaveAt(every=200)
    )
    energies = jax.vmap(body.energy)(traj.ys)
    momenta = jax.vmap(body.momentum)(traj.ys)
    assert np.allclose(energies, body.energy(y0), rtol=1e-8)
    assert np.allclose(momenta, body.momentum(y0), atol=1e-12)


def test_nbody_force_is_minus_gradient_of_potential():
    body = ds.systems.NBody(masses=jnp.array([1.0, 2.0, 0.5]), G=0.7, softening=0.1)
    q = jnp.array([[0.0, 0.0, 0.0], [1.0, 0.2, 0.0], [0.3, -0.8, 0.5]])
    accel = body.acceleration(0.0, q, jnp.zeros_like(q))
    force = -jax.grad(body.potential_energy)(q)
    assert np.allclose(accel * body.masses[:, None], force, rtol=1e-12)
    # Newton's third law: the total force vanishes.
    assert np.allclose(force.sum(axis=0), 0.0, atol=1e-14)


def test_nbody_gradients_finite_with_zero_softening():
    body = ds.systems.NBody(masses=jnp.array([1.0, 1.0, 1.0]), softening=0.0)
    q = jnp.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    y0 = ds.PhaseState(q=q, v=jnp.zeros_like(q))

    def loss(masses, q):
        b = ds.systems.NBody(masses=masses, softening=0.0)
        traj = ds.simulate(b, ds.PhaseState(q=q, v=y0.v), t1=0.2, dt=1e-3, integrator=ds.Leapfrog())
        return jnp.sum(traj.ys.q[-1] ** 2)

    gm, gq = jax.grad(loss, argnums=(0, 1))(body.masses, q)
    assert np.isfinite(gm).all() and np.isfinite(gq).all()
    assert np.allclose(
        gm, central_difference(jax.jit(lambda m: loss(m, q)), body.masses), rtol=1e-6
    )
    assert np.isfinite(jax.grad(body.energy)(y0).q).all()


def test_lorenz_fixed_points_have_zero_velocity():
    lorenz = ds.systems.Lorenz(sigma=10.0, rho=28.0, beta=8 / 3)
    c = np.sqrt(8 / 3 * 27)
    for point in ([0.0, 0.0, 0.0], [c, c, 27.0], [-c, -c, 27.0]):
        assert np.allclose(lorenz.vector_field(0.0, jnp.array(point)), 0.0, atol=1e-12)


def test_lorenz_chaos_and_batch():
    # Two starts 1e-9 apart separate by seven orders of magnitude on the chaotic
    # attractor (the separation stays ~1e-8 until t ~ 20 from this start, then grows
    # at the Lyapunov rate ~0.9). Both members of the batch run in one rollout.
    lorenz = ds.systems.Lorenz()
    y0 = jnp.array([[1.0, 0.0, 0.0], [1.0 + 1e-9, 0.0, 0.0]])
    traj = ds.simulate(lorenz, y0, t1=40.0, dt=1e-3)
    assert np.linalg.norm(traj.ys[-1, 0] - traj.ys[-1, 1]) > 1e-2
    # rho < 1: the origin attracts everything.
    decay = ds.simulate(ds.systems.Lorenz(rho=0.5), y0, t1=20.0, dt=1e-2)
    assert np.allclose(decay.ys[-1], 0.0, atol=1e-3)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_systems_in_both_precisions(dtype):
    pendulum = ds.systems.Pendulum(length=1.0)
    y0 = jax.tree.map(lambda x: x.astype(dtype), pendulum.initial_state(1.0))
    traj = ds.simulate(pendulum, y0, t1=1.0, dt=1e-2)
    assert traj.ys.q.dtype == dtype
    lorenz = ds.simulate(ds.systems.Lorenz(), jnp.ones(3, dtype), t1=0.1, dt=1e-3)
    assert lorenz.ys.dtype == dtype


def test_lorenz_tuple_state_matches_array_state():
    # The tuple (x, y, z) form is the structure-of-arrays layout for ensembles; it must
    # give the array form's numbers, values and gradients, and refuse a wrong length.
    def final(rho, tuple_form):
        lorenz = ds.systems.Lorenz(rho=rho)
        y0 = (1.0, 0.0, 0.0) if tuple_form else jnp.array([1.0, 0.0, 0.0])
        ys = ds.simulate(lorenz, y0, t1=2.0, dt=1e-3, integrator=ds.Tsit5Fixed()).ys
        return jnp.stack([c[-1] for c in ys]) if tuple_form else ys[-1]

    rhos = jnp.array([5.0, 15.0, 28.0])
    a = jax.vmap(lambda r: final(r, False))(rhos)
    t = jax.vmap(lambda r: final(r, True))(rhos)
    assert np.allclose(t, a, rtol=1e-12, atol=1e-12)
    ga = jax.grad(lambda r: final(r, False)[2])(15.0)
    gt = jax.grad(lambda r: final(r, True)[2])(15.0)
    assert np.isfinite(ga) and np.allclose(gt, ga, rtol=1e-10)
    with pytest.raises(ValueError, match="tuple state must be \\(x, y, z\\)"):
        ds.systems.Lorenz().vector_field(0.0, (1.0, 0.0))
    with pytest.raises(ValueError, match="last axis of size 3"):
        ds.systems.Lorenz().vector_field(0.0, jnp.ones(4))
