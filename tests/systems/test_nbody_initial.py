"""solar_system() and plummer(): published data, bounded energy error, virial equilibrium."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import diffsim as ds
from tests.helpers import central_difference


def test_solar_system_table_and_orbits():
    # Hairer, Lubich & Wanner, Geometric Numerical Integration (2006), Table I.2.1.
    system, y0 = ds.systems.solar_system()
    assert ds.systems.SOLAR_SYSTEM_BODIES[1] == "Jupiter"
    assert float(system.G) == 2.95912208286e-4
    assert float(system.masses[0]) == 1.00000597682
    assert float(system.masses[5]) == 1 / 1.3e8
    np.testing.assert_array_equal(y0.q[1], [-3.5023653, -3.8169847, -1.5507963])
    np.testing.assert_array_equal(y0.v[4], [0.00288930, 0.00114527, 0.00039677])
    # The data describe the real planets: their osculating heliocentric orbits have the
    # semi-major axes (AU) and eccentricities of the planets (e.g. Murray & Dermott,
    # Solar System Dynamics, Table A.2): Jupiter 5.20/0.048, Saturn 9.55/0.056,
    # Uranus 19.2/0.046, Neptune 30.1/0.009, Pluto 39.5/0.25. Osculating elements
    # differ from mean ones by the planets' mutual perturbations: ~1% in a.
    mu = system.G * (system.masses[0] + system.masses[1:])
    rel = ds.PhaseState(q=y0.q[1:] - y0.q[0], v=y0.v[1:] - y0.v[0])
    elements = ds.systems.OrbitalElements.from_state(rel, mu)
    np.testing.assert_allclose(elements.semi_major_axis, [5.20, 9.55, 19.2, 30.1, 39.5], rtol=0.02)
    np.testing.assert_allclose(
        elements.eccentricity, [0.048, 0.056, 0.046, 0.009, 0.25], atol=0.015
    )
    bary_system, bary = ds.systems.solar_system(barycentric=True)
    np.testing.assert_allclose(bary_system.momentum(bary), 0.0, atol=1e-18)


def test_solar_system_energy_error_bounded_with_yoshida4():
    # 10^6 days (2700 years, 230 orbits of Jupiter) at h = 100 days. A symplectic method
    # keeps the energy error bounded (Hairer, Lubich & Wanner, ch. IX): its maximum over
    # the second half of the run is no larger than over the first. RK4's error grows
    # linearly, doubling from the first half to the second.
    system, y0 = ds.systems.solar_system()
    e0 = system.energy(y0)
    halves = {}
    for integrator in (ds.Yoshida4(), ds.RK4()):
        traj = ds.simulate(
            system,
            y0,
            n_steps=10_000,
            dt=100.0,
            integrator=integrator,
            saveat=ds.SaveAt(every=25, fn=lambda t, y: system.energy(y)),
        )
        err = np.abs(np.asarray(traj.ys) / e0 - 1)
        halves[type(integrator).__name__] = (err[: len(err) // 2].max(), err[len(err) // 2 :].max())
    first, second = halves["Yoshida4"]
    assert second < 5e-5 and second < 1.1 * first  # measured: 3.7e-5, ratio 1.02
    first_rk4, second_rk4 = halves["RK4"]
    assert second_rk4 > 1.8 * first_rk4 and second_rk4 > 30 * second  # a secular drift


@pytest.mark.slow  # over 5 s; run with `make test-slow`
def test_solar_system_gradient_wrt_masses_and_G():
    # Relative perturbations (masses span 1 to 1e-8): d/ds of Jupiter's and Saturn's
    # positions after 2000 days, with masses m exp(s_i) and G exp(s_G).
    system, y0 = ds.systems.solar_system()

    def loss(s):
        scaled = ds.systems.NBody(masses=system.masses * jnp.exp(s[:6]), G=system.G * jnp.exp(s[6]))
        q = ds.simulate(scaled, y0, t1=2000.0, dt=20.0, integrator=ds.Leapfrog()).ys.q[-1]
        return jnp.sum(q[1] + 0.3 * q[2])

    s = jnp.zeros(7)
    grad = jax.grad(loss)(s)
    fd = central_difference(jax.jit(loss), s, eps=1e-5)
    # Pluto's pull on Jupiter is ~1e-10 of the total: both sides are then round-off.
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-9)
    assert abs(grad[0]) > 1.0 and abs(grad[6]) > 1.0  # the Sun and G dominate


def test_plummer_virial_equilibrium_and_profile():
    # Plummer sphere (Aarseth, Henon & Wielen 1974): 2K + U = 0, E = -3 pi / 64 G M^2 / a,
    # and the mass fraction inside r = a is 2^(-3/2). Finite samples fluctuate as
    # n^(-1/2): the virial ratio has std 0.013 at n = 4000 (measured over 20 seeds), the
    # mean of 4 seeds 0.007, so 0.03 is a 4-sigma bound.
    ratios, energies, inside = [], [], []
    potential_energy = jax.jit(lambda system, q: system.potential_energy(q))
    for seed in range(4):
        system, y0 = ds.systems.plummer(4000, jax.random.key(seed))
        kinetic = 0.5 * jnp.sum(system.masses[:, None] * y0.v**2)
        potential = potential_energy(system, y0.q)
        ratios.append(float(2 * kinetic / -potential))
        energies.append(float(kinetic + potential))
        inside.append(float(jnp.mean(jnp.linalg.norm(y0.q, axis=-1) < 1.0)))
        np.testing.assert_allclose(system.momentum(y0), 0.0, atol=1e-14)
    assert abs(np.mean(ratios) - 1) < 0.03
    assert abs(np.mean(energies) / (-3 * math.pi / 64) - 1) < 0.03
    assert abs(np.mean(inside) - 2**-1.5) < 0.015  # binomial std 0.004 for 4 x 4000


@pytest.mark.slow  # ~20 s; run with make test-slow
@pytest.mark.slow  # over 5 s; run with `make test-slow`
def test_plummer_jit_vmap_and_dtypes():
    def sample(key):
        return ds.systems.plummer(64, key, total_mass=2.0, scale_radius=0.5, G=3.0)

    systems, states = jax.jit(jax.vmap(sample))(jax.random.split(jax.random.key(0), 3))
    assert states.q.shape == (3, 64, 3) and systems.masses.shape == (3, 64)
    single_system, single = sample(jax.random.split(jax.random.key(0), 3)[1])
    np.testing.assert_allclose(states.q[1], single.q, rtol=1e-12)
    np.testing.assert_allclose(float(systems.masses.sum(axis=1)[0]), 2.0, rtol=1e-12)
    f32_system, f32 = ds.systems.plummer(64, jax.random.key(1), dtype=jnp.float32)
    assert f32.q.dtype == jnp.float32 and f32_system.masses.dtype == jnp.float32
    sun32, y32 = ds.systems.solar_system(dtype=jnp.float32)
    assert y32.v.dtype == jnp.float32 and sun32.G.dtype == jnp.float32
