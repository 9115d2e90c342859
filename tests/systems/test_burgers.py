"""Burgers1D: the Cole-Hopf exact solution (second-order convergence), exact momentum
conservation and energy decay, gradients."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import diffsim as ds
from diffsim.systems import Burgers1D
from tests.helpers import central_difference, convergence_slope
from tests.systems.conformance import check_precisions, check_vmap_matches_loop


def test_cole_hopf_exact_solution():
    # Cole-Hopf (Hopf 1950, Cole 1951): phi = a + exp(-nu t) cos x solves phi_t = nu phi_xx,
    # so u = -2 nu phi_x / phi = 2 nu exp(-nu t) sin x / (a + exp(-nu t) cos x) solves
    # Burgers' equation on the 2 pi-periodic line.
    nu, a, t1 = 0.1, 1.2, 2.0

    def exact(x, t):
        return 2 * nu * np.exp(-nu * t) * np.sin(x) / (a + np.exp(-nu * t) * np.cos(x))

    errors, hs = [], []
    for n in (32, 64, 128):
        burgers = Burgers1D(viscosity=nu, length=2 * math.pi, periodic=True)
        x = burgers.grid(n)
        traj = ds.simulate(burgers, jnp.asarray(exact(x, 0.0)), t1=t1, dt=1e-3)
        errors.append(np.abs(traj.ys[-1] - exact(x, t1)).max())
        hs.append(float(burgers.spacing(n)))
    assert errors[-1] < 2e-4  # of a solution of size 0.3 with a steep front
    assert abs(convergence_slope(hs, errors) - 2) < 0.3


def test_momentum_conserved_and_energy_decays_at_the_viscous_rate():
    n, nu = 50, 0.05
    burgers = Burgers1D(viscosity=nu, length=3.0, periodic=True)
    x = burgers.grid(n)
    u0 = jnp.sin(2 * math.pi * x / 3) + 0.5 * jnp.cos(4 * math.pi * x / 3) + 0.2
    traj = ds.simulate(burgers, u0, t1=1.0, dt=1e-3, saveat=ds.SaveAt(every=100))
    np.testing.assert_allclose(
        jax.vmap(burgers.momentum)(traj.ys), burgers.momentum(u0), rtol=1e-13
    )
    # dE/dt = -nu h sum((u_{i+1} - u_i) / h)^2 exactly: the skew-symmetric convective flux
    # does no work. Checked along the vector field, with and without viscosity.
    h = float(burgers.spacing(n))
    for visc in (nu, 0.0):
        b = Burgers1D(viscosity=visc, length=3.0, periodic=True)
        _, rate = jax.jvp(b.energy, (u0,), (b.vector_field(0.0, u0),))
        expected = -visc * h * np.sum(((jnp.roll(u0, -1) - u0) / h) ** 2)
        np.testing.assert_allclose(rate, expected, atol=1e-12)


def test_gradients_wrt_every_parameter():
    n = 6

    def loss(p):
        burgers = Burgers1D(viscosity=p[0], length=p[1], left=p[2], right=p[3])
        u1 = ds.simulate(burgers, jnp.linspace(0.5, -0.5, n) ** 3, t1=0.2, dt=1e-3).ys[-1]
        return jnp.sum(u1 * jnp.arange(1.0, n + 1))

    p = jnp.array([0.1, 1.3, 0.4, -0.3])
    grad = jax.grad(loss)(p)
    assert np.all(grad != 0)
    np.testing.assert_allclose(grad, central_difference(jax.jit(loss), p), rtol=1e-6)


@pytest.mark.slow  # over 5 s; run with `make test-slow`
def test_jit_vmap_and_precisions():
    burgers = Burgers1D(length=2 * math.pi, periodic=True)
    u0 = jnp.sin(burgers.grid(32))

    def make(nu):
        return Burgers1D(viscosity=nu, length=2 * math.pi, periodic=True)

    check_vmap_matches_loop(make, jnp.array([0.1, 0.2, 0.5]), u0, t1=0.5, dt=1e-2)
    check_precisions(make, jnp.asarray(0.2), u0, t1=0.5, dt=1e-2)
