"""DoublePendulum: Euler-Lagrange equations, energy, normal modes, chaos, gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import diffsim as ds
from tests.helpers import central_difference
from tests.systems.conformance import check_precisions, check_vmap_matches_loop


def _lagrangian_acceleration(dp, q, v):
    """Accelerations from L = T - V by autodiff: M(q) a = dL/dq - (d/dq dL/dv) v."""

    def lagrangian(q, v):
        y = ds.PhaseState(q=q, v=v)
        return dp.kinetic_energy(y) - dp.potential_energy(q)

    mass_matrix = jax.hessian(lagrangian, argnums=1)(q, v)
    mixed = jax.jacfwd(jax.grad(lagrangian, argnums=1), argnums=0)(q, v)
    force = jax.grad(lagrangian, argnums=0)(q, v) - mixed @ v
    return jnp.linalg.solve(mass_matrix, force)


def test_acceleration_solves_euler_lagrange_equations():
    dp = ds.systems.DoublePendulum(mass1=1.3, mass2=0.4, length1=0.7, length2=1.1, gravity=9.5)
    q, v = jax.random.normal(jax.random.key(3), (2, 5, 2)) * 2.0
    ours = jax.jit(jax.vmap(lambda q, v: dp.acceleration(0.0, q, v)))(q, v)
    ref = jax.jit(jax.vmap(lambda q, v: _lagrangian_acceleration(dp, q, v)))(q, v)
    np.testing.assert_allclose(ours, ref, rtol=1e-12)


def test_energy_conserved_long_run():
    dp = ds.systems.DoublePendulum(mass1=1.0, mass2=0.5, length1=1.0, length2=0.8)
    y0 = dp.initial_state(2.0, -1.0, 0.5, 0.0)  # chaotic regime, E ~ 2 m g l
    traj = ds.simulate(dp, y0, t1=50.0, dt=1e-3, saveat=ds.SaveAt(every=500))
    energy = jax.vmap(dp.energy)(traj.ys)
    # RK4 is not symplectic: its energy error grows ~ t h^4; at h = 1e-3 over 50 s it is
    # ~1e-9 relative on this chaotic orbit.
    np.testing.assert_allclose(energy, dp.energy(y0), rtol=1e-8)


def test_small_oscillation_normal_modes():
    # Equal masses and lengths: omega^2 = (2 -+ sqrt 2) g / l with mode shapes
    # theta2 / theta1 = +-sqrt 2 (e.g. Goldstein, Classical Mechanics, sec. 6.4).
    g, length, amp = 9.81, 0.9, 1e-5
    dp = ds.systems.DoublePendulum(length1=length, length2=length, gravity=g)
    for sign in (1.0, -1.0):
        omega = np.sqrt((2 - sign * np.sqrt(2)) * g / length)
        y0 = dp.initial_state(amp, sign * np.sqrt(2) * amp)
        ts = np.linspace(0.0, 10.0, 11)
        traj = ds.simulate(dp, y0, t1=10.0, dt=1e-3, integrator=ds.RK4(), saveat=ds.SaveAt(ts=ts))
        exact = np.cos(omega * ts)[:, None] * np.asarray(y0.q)
        # Nonlinear corrections are O(amp^3) relative to amp: 1e-10 * amp.
        np.testing.assert_allclose(traj.ys.q, exact, atol=1e-13)


def test_chaos_at_high_energy_regular_at_low_energy():
    dp = ds.systems.DoublePendulum()
    starts = lambda a: jnp.stack(  # noqa: E731
        [dp.initial_state(a, a).q, dp.initial_state(a + 1e-9, a).q]
    )
    for angle, grows in ((2.0, True), (0.05, False)):
        q = starts(angle)
        y0 = ds.PhaseState(q=q, v=jnp.zeros_like(q))
        traj = ds.simulate(dp, y0, t1=20.0, dt=1e-3)
        separation = float(jnp.abs(traj.ys.q[-1, 0] - traj.ys.q[-1, 1]).max())
        if grows:
            assert separation > 1e-2  # positive Lyapunov exponent: 1e-9 -> O(1)
        else:
            assert separation < 1e-7  # near-linear motion: errors grow at most linearly


def test_gradient_wrt_every_parameter():
    def final(p):
        dp = ds.systems.DoublePendulum(*p)
        y0 = dp.initial_state(0.8, -0.4, 0.3, 0.0)
        # Any integrator checks the gradient; Leapfrog's is the quickest to compile.
        ys = ds.simulate(dp, y0, t1=1.0, dt=1e-2, integrator=ds.Leapfrog()).ys
        return jnp.sum(ys.q[-1] * jnp.array([1.0, 0.7])) + 0.1 * jnp.sum(ys.v[-1])

    p = jnp.array([1.2, 0.6, 0.9, 0.7, 9.81])
    grad = jax.grad(final)(p)
    assert np.all(grad != 0)
    np.testing.assert_allclose(grad, central_difference(jax.jit(final), p), rtol=1e-6)


@pytest.mark.slow  # over 5 s; run with `make test-slow`
def test_jit_vmap_and_precisions():
    lengths = jnp.linspace(0.5, 1.5, 4)

    def make(p):
        return ds.systems.DoublePendulum(length1=p, length2=1.0)

    y0 = ds.systems.DoublePendulum().initial_state(1.0, 0.5)
    check_vmap_matches_loop(make, lengths, y0, t1=1.0, dt=1e-2)
    # float32 round-off (1e-7) grows on this mildly unstable 1 s orbit to ~1e-5.
    check_precisions(make, jnp.asarray(0.8), y0, t1=1.0, dt=1e-2, rtol=1e-4)
