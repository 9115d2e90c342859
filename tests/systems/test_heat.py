"""Heat1D / Heat2D: eigenmode decay, a variable-diffusivity steady state, conservation,
stiffness (Kvaerno5), gradients with respect to the diffusivity field."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import diffsim as ds
from diffsim.systems import Heat1D, Heat2D
from tests.helpers import central_difference
from tests.systems.conformance import check_precisions, check_vmap_matches_loop


def test_heat1d_eigenmode_decay_with_kvaerno5():
    # u = sin(k pi x / L) decays as exp(-D (k pi / L)^2 t) (e.g. Strauss, Partial
    # Differential Equations, sec. 4.1). The semi-discrete mode decays exactly at
    # lambda_h = (4 D / h^2) sin^2(k pi h / 2L), within (k pi h)^2 / 12 of the continuum.
    D, L, n, k, t1 = 0.3, 2.0, 63, 2, 1.0
    heat = Heat1D(diffusivity=D, length=L)
    x, h = heat.grid(n), float(heat.spacing(n))
    mode = jnp.sin(k * math.pi * x / L)
    traj = ds.simulate(heat, mode, t1=t1, integrator=ds.Kvaerno5(rtol=1e-10, atol=1e-12))
    lam_h = 4 * D / h**2 * math.sin(k * math.pi * h / (2 * L)) ** 2
    np.testing.assert_allclose(traj.ys[-1], np.exp(-lam_h * t1) * mode, atol=1e-9)
    lam = D * (k * math.pi / L) ** 2
    spatial = lam * t1 * (k * math.pi * h / L) ** 2 / 12 * math.exp(-lam * t1)  # O(h^2)
    np.testing.assert_allclose(traj.ys[-1], np.exp(-lam * t1) * mode, atol=1.1 * spatial)
    assert spatial > 1e-6
    # Stiff: the fastest mode decays at 4 D / h^2 ~ 1200 /s. The implicit method took
    # few steps; an explicit one needs dt < h^2 / 2D and runs out of that budget.
    steps = int(traj.stats["num_steps"])
    assert steps < 100
    explicit = ds.simulate(
        heat,
        mode,
        t1=t1,
        integrator=ds.Tsit5(rtol=1e-10, atol=1e-12),
        max_steps=4 * steps,
        throw=False,
    )
    assert explicit.result == ds.RESULTS.max_steps_reached


@pytest.mark.slow  # over 5 s; run with `make test-slow`
def test_heat1d_variable_diffusivity_steady_state():
    # D(x) = 1 + x on [0, 1], u(0) = 1, u(1) = 0: the steady flux D u' is constant, so
    # u = 1 - log(1 + x) / log 2. The scheme is second order; its error constant is set
    # by the boundary faces, which take the adjacent node's D (D(h) for D(h/2)): 7e-5 here.
    n = 99
    heat = Heat1D(diffusivity=1.0 + Heat1D().grid(n), left=1.0, right=0.0)
    x = heat.grid(n)
    traj = ds.simulate(heat, jnp.zeros(n), t1=5.0, integrator=ds.Kvaerno5(rtol=1e-8, atol=1e-8))
    np.testing.assert_allclose(traj.ys[-1], 1 - np.log1p(x) / np.log(2), atol=1e-4)


def test_heat1d_periodic_conserves_total_heat():
    n = 40
    heat = Heat1D(
        diffusivity=0.05 + 0.04 * jnp.sin(jnp.linspace(0, 6, n)), length=3.0, periodic=True
    )
    x = heat.grid(n)
    u0 = jnp.exp(-10 * (x - 1.0) ** 2)
    traj = ds.simulate(heat, u0, t1=2.0, dt=1e-3, saveat=ds.SaveAt(every=200))
    np.testing.assert_allclose(jax.vmap(heat.total_heat)(traj.ys), heat.total_heat(u0), rtol=1e-13)
    assert float(traj.ys[-1].max()) < 0.9 * float(u0.max())  # and it spreads


@pytest.mark.slow  # over 5 s; run with `make test-slow`
def test_heat2d_eigenmode_decay_with_kvaerno5():
    D, Lx, Ly, nx, ny, t1 = 0.2, 2.0, 1.0, 11, 9, 0.5
    heat = Heat2D(diffusivity=D, length_x=Lx, length_y=Ly)
    X, Y = heat.grid(nx, ny)
    hx, hy = (float(h) for h in heat.spacing(nx, ny))
    mode = jnp.sin(math.pi * X / Lx) * jnp.sin(2 * math.pi * Y / Ly)
    traj = ds.simulate(heat, mode, t1=t1, integrator=ds.Kvaerno5(rtol=1e-10, atol=1e-12))
    lam_h = (
        4
        * D
        * (
            math.sin(math.pi * hx / (2 * Lx)) ** 2 / hx**2
            + math.sin(math.pi * hy / Ly) ** 2 / hy**2
        )
    )
    np.testing.assert_allclose(traj.ys[-1], np.exp(-lam_h * t1) * mode, atol=1e-9)
    # Against the continuum, exp(-D pi^2 (1/Lx^2 + 4/Ly^2) t): each direction's rate is
    # off by its (k pi h / L)^2 / 12, to leading order.
    kx, ky = math.pi / Lx, 2 * math.pi / Ly
    lam = D * (kx**2 + ky**2)
    spatial = t1 * D * (kx**4 * hx**2 + ky**4 * hy**2) / 12 * math.exp(-lam * t1)
    np.testing.assert_allclose(traj.ys[-1], np.exp(-lam * t1) * mode, atol=1.1 * spatial)
    assert spatial > 1e-4  # the continuum check is not vacuous on this coarse grid


@pytest.mark.slow  # ~20 s; run with make test-slow
def test_gradients_wrt_every_parameter():
    n = 6

    def loss1(p):
        heat = Heat1D(diffusivity=p[:n], length=p[n], left=p[n + 1], right=p[n + 2])
        u0 = jnp.linspace(0.0, 1.0, n) ** 2
        u1 = ds.simulate(heat, u0, t1=0.1, dt=1e-3).ys[-1]
        return jnp.sum(u1 * jnp.arange(1.0, n + 1))

    p = jnp.array([0.5, 0.7, 0.4, 0.9, 0.6, 0.8, 1.5, 0.3, -0.2])
    grad = jax.grad(loss1)(p)
    assert np.all(grad != 0)
    np.testing.assert_allclose(grad, central_difference(jax.jit(loss1), p), rtol=1e-6)

    def loss2(p):
        heat = Heat2D(
            diffusivity=p[:12].reshape(4, 3), length_x=p[12], length_y=p[13], boundary=p[14]
        )
        u0 = jnp.outer(jnp.arange(1.0, 5.0), jnp.array([1.0, 2.0, 0.5]))
        u1 = ds.simulate(heat, u0, t1=0.02, dt=2e-4).ys[-1]
        return jnp.sum(u1 * jnp.arange(12.0).reshape(4, 3))

    p = jnp.concatenate([jnp.linspace(0.2, 0.6, 12), jnp.array([1.2, 0.9, 0.4])])
    grad = jax.grad(loss2)(p)
    assert np.all(grad != 0)
    np.testing.assert_allclose(grad, central_difference(jax.jit(loss2), p), rtol=1e-6)


@pytest.mark.slow  # over 5 s; run with `make test-slow`
def test_jit_vmap_and_precisions():
    u0 = jnp.sin(math.pi * Heat1D().grid(16))

    def make(D):
        return Heat1D(diffusivity=D)

    check_vmap_matches_loop(make, jnp.array([0.1, 0.2, 0.3]), u0, t1=0.1, dt=1e-3)
    check_precisions(make, jnp.asarray(0.2), u0, t1=0.1, dt=1e-3)
    u0 = jnp.ones((8, 6))
    check_precisions(lambda D: Heat2D(diffusivity=D), jnp.asarray(0.2), u0, t1=0.05, dt=1e-3)
