"""CartPole: Euler-Lagrange equations, energy and momentum laws, the linearisation,
feedback control through the force input, gradients."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.signal import place_poles

import diffsim as ds
from diffsim.systems import CartPole
from tests.helpers import central_difference
from tests.systems.conformance import check_precisions, check_vmap_matches_loop


class Feedback(eqx.Module):
    """Linear state feedback F = -K (x, theta, dx, dtheta)."""

    gain: jax.Array

    def __call__(self, t, q, v):
        return -jnp.sum(self.gain * jnp.concatenate([q, v], -1), -1)


class Constant(eqx.Module):
    value: jax.Array

    def __call__(self, t, q, v):
        return self.value * jnp.ones_like(q[..., 0])


def _linearisation(M, m, L, g):
    # About upright, from the equations of motion (e.g. Astrom & Murray, Feedback
    # Systems, 2008, sec. 2.1, with a point-mass pole, J = 0 and no friction).
    A = np.array(
        [[0, 0, 1, 0], [0, 0, 0, 1], [0, -m * g / M, 0, 0], [0, (M + m) * g / (M * L), 0, 0]]
    )
    B = np.array([0, 0, 1 / M, -1 / (M * L)])
    return A, B


def test_acceleration_solves_euler_lagrange_equations_with_force():
    M, m, L, g, F = 1.3, 0.4, 0.7, 9.5, 2.5
    cp = CartPole(M, m, L, g, force=Constant(jnp.asarray(F)))

    def lagrangian(q, v):
        dx, dth, c = v[0], v[1], jnp.cos(q[1])
        kinetic = 0.5 * (M + m) * dx**2 + m * L * dx * dth * c + 0.5 * m * L**2 * dth**2
        return kinetic - m * g * L * c

    def reference(q, v):
        mass = jax.hessian(lagrangian, argnums=1)(q, v)
        mixed = jax.jacfwd(jax.grad(lagrangian, argnums=1), argnums=0)(q, v)
        generalised = jax.grad(lagrangian)(q, v) - mixed @ v + jnp.array([F, 0.0])
        return jnp.linalg.solve(mass, generalised)

    q, v = jax.random.normal(jax.random.key(0), (2, 5, 2)) * 2
    ours = jax.jit(jax.vmap(lambda q, v: cp.acceleration(0.0, q, v)))(q, v)
    np.testing.assert_allclose(ours, jax.jit(jax.vmap(reference))(q, v), rtol=1e-12)


def test_energy_conserved_without_force_and_momentum_law_with_force():
    cp = CartPole(cart_mass=1.0, pole_mass=0.3, pole_length=0.6)
    y0 = cp.initial_state(0.0, 2.5, 0.3, -1.0)  # swinging over the top
    traj = ds.simulate(cp, y0, t1=20.0, dt=1e-3, saveat=ds.SaveAt(every=500))
    # RK4 (not symplectic) error ~ t h^4: ~1e-12 relative here.
    np.testing.assert_allclose(jax.vmap(cp.energy)(traj.ys), cp.energy(y0), rtol=1e-10)
    np.testing.assert_allclose(jax.vmap(cp.momentum)(traj.ys), cp.momentum(y0), rtol=1e-10)
    # A constant push F: the horizontal momentum grows as p0 + F t, and dE/dt = F dx/dt.
    F = 0.7
    pushed = CartPole(cart_mass=1.0, pole_mass=0.3, pole_length=0.6, force=Constant(jnp.asarray(F)))
    traj = ds.simulate(pushed, y0, t1=5.0, dt=1e-3, saveat=ds.SaveAt(every=500))
    np.testing.assert_allclose(
        jax.vmap(pushed.momentum)(traj.ys), pushed.momentum(y0) + F * traj.ts, rtol=1e-11
    )
    _, rate = jax.jvp(pushed.energy, (y0,), (pushed.vector_field(0.0, y0),))
    np.testing.assert_allclose(rate, F * y0.v[0], rtol=1e-12)


def test_linearised_dynamics_about_upright():
    M, m, L, g = 1.2, 0.2, 0.8, 9.81
    A, B = _linearisation(M, m, L, g)

    def f(state, F):
        cp = CartPole(M, m, L, g, force=Constant(F))
        dy = cp.vector_field(0.0, ds.PhaseState(q=state[:2], v=state[2:]))
        return jnp.concatenate([dy.q, dy.v])

    state0, F0 = jnp.zeros(4), jnp.asarray(0.0)
    np.testing.assert_allclose(jax.jacfwd(f, argnums=0)(state0, F0), A, atol=1e-14)
    np.testing.assert_allclose(jax.jacfwd(f, argnums=1)(state0, F0), B, atol=1e-14)
    assert np.allclose(f(state0, F0), 0.0)  # upright at rest is an equilibrium


def test_feedback_stabilises_the_upright_pole():
    # Pole placement on the linearisation puts the closed-loop eigenvalues at -2..-5; from
    # 0.2 rad the nonlinear cart-pole then returns upright like exp(-2 t).
    M, m, L, g = 1.0, 0.1, 0.5, 9.81
    A, B = _linearisation(M, m, L, g)
    gain = place_poles(A, B[:, None], [-2.0, -3.0, -4.0, -5.0]).gain_matrix[0]
    cp = CartPole(M, m, L, g, force=Feedback(jnp.asarray(gain)))
    traj = ds.simulate(cp, cp.initial_state(angle=0.2), t1=8.0, dt=1e-2)
    assert float(jnp.abs(traj.ys.q[-1]).max()) < 2e-5
    free = ds.simulate(CartPole(M, m, L, g), cp.initial_state(angle=0.2), t1=1.0, dt=1e-2)
    assert float(free.ys.q[-1, 1]) > 1.0  # without the force it falls


def test_gradients_wrt_every_parameter_and_the_controller():
    A, B = _linearisation(1.0, 0.1, 0.5, 9.81)
    gain0 = place_poles(A, B[:, None], [-2.0, -3.0, -4.0, -5.0]).gain_matrix[0]

    def loss(p):
        cp = CartPole(*p[:4], force=Feedback(p[4:]))
        ys = ds.simulate(cp, cp.initial_state(0.1, 0.3), t1=1.0, dt=1e-2).ys
        return jnp.sum(ys.q[-1] ** 2) + 0.1 * jnp.sum(ys.v[-1] ** 2)

    p = jnp.concatenate([jnp.array([1.0, 0.1, 0.5, 9.81]), jnp.asarray(gain0)])
    grad = jax.grad(loss)(p)
    assert np.all(grad != 0)
    np.testing.assert_allclose(grad, central_difference(jax.jit(loss), p), rtol=1e-6)


@pytest.mark.slow  # over 5 s; run with `make test-slow`
def test_jit_vmap_and_precisions():
    y0 = CartPole().initial_state(0.0, 0.5)

    def make(pole_length):
        return CartPole(pole_length=pole_length, force=Constant(jnp.asarray(0.5)))

    check_vmap_matches_loop(make, jnp.array([0.3, 0.5, 1.0]), y0, t1=1.0, dt=1e-2)
    check_precisions(make, jnp.asarray(0.5), y0, t1=1.0, dt=1e-2)
