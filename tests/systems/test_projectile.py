"""Projectile: drag-free parabola, quadratic-drag closed forms, energy loss, gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import diffsim as ds
from tests.helpers import central_difference
from tests.systems.conformance import check_precisions, check_vmap_matches_loop


def test_drag_free_parabola_and_range():
    # Range on level ground R = v^2 sin(2 alpha) / g, flight time 2 v sin(alpha) / g
    # (any mechanics text, e.g. Taylor, Classical Mechanics, sec. 2.3).
    g, speed, angle = 9.81, 20.0, 0.6
    ball = ds.systems.Projectile(gravity=g)
    y0 = ball.initial_state(speed, angle)
    flight = 2 * speed * np.sin(angle) / g
    n = 1000
    # Leapfrog is exact for a constant acceleration: only round-off remains.
    traj = ds.simulate(
        ball, y0, n_steps=n, dt=flight / n, integrator=ds.Leapfrog(), saveat=ds.SaveAt(every=100)
    )
    np.testing.assert_allclose(traj.ys.q, ball.solution(traj.ts, y0).q, atol=1e-12)
    np.testing.assert_allclose(traj.ys.q[-1], [speed**2 * np.sin(2 * angle) / g, 0.0], atol=1e-12)
    energy = jax.vmap(ball.energy)(traj.ys)
    np.testing.assert_allclose(energy, 0.5 * speed**2, rtol=1e-13)


def test_vertical_fall_with_drag_closed_form():
    # Falling from rest with a = -g + k v^2: v = -v_t tanh(g t / v_t),
    # z = z0 - (v_t^2 / g) log cosh(g t / v_t), v_t = sqrt(g / k) (Taylor, sec. 2.4).
    g, k, z0 = 9.81, 0.05, 100.0
    ball = ds.systems.Projectile(gravity=g, drag=k)
    vt = float(ball.terminal_speed())
    y0 = ds.PhaseState(q=jnp.array([z0]), v=jnp.array([0.0]))
    traj = ds.simulate(ball, y0, t1=4.0, dt=1e-3, saveat=ds.SaveAt(every=500))
    t = np.asarray(traj.ts)
    np.testing.assert_allclose(traj.ys.v[:, 0], -vt * np.tanh(g * t / vt), rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(
        traj.ys.q[:, 0], z0 - vt**2 / g * np.log(np.cosh(g * t / vt)), rtol=1e-11
    )


def test_horizontal_drag_closed_form_and_energy_loss():
    # No gravity, a = -k |v| v: v = v0 / (1 + k v0 t), x = log(1 + k v0 t) / k; the
    # energy falls at the rate -m k |v|^3.
    k, v0, m = 0.3, 5.0, 2.0
    ball = ds.systems.Projectile(gravity=0.0, drag=k, mass=m)
    y0 = ds.PhaseState(q=jnp.zeros(3), v=jnp.array([v0 * 0.6, v0 * 0.8, 0.0]))
    traj = ds.simulate(ball, y0, t1=2.0, dt=1e-3, saveat=ds.SaveAt(every=400))
    t = np.asarray(traj.ts)[:, None]
    direction = np.array([0.6, 0.8, 0.0])
    np.testing.assert_allclose(traj.ys.v, v0 / (1 + k * v0 * t) * direction, rtol=1e-11)
    np.testing.assert_allclose(traj.ys.q, np.log1p(k * v0 * t) / k * direction, atol=1e-11)
    # dE/dt along the flow, by forward-mode autodiff of the energy.
    y = ds.PhaseState(q=jnp.array([0.0, 1.0, 2.0]), v=jnp.array([1.0, -2.0, 0.5]))
    _, rate = jax.jvp(ball.energy, (y,), (ball.vector_field(0.0, y),))
    np.testing.assert_allclose(rate, -m * k * np.linalg.norm(y.v) ** 3, rtol=1e-13)


def test_gradient_wrt_every_parameter_through_the_apex():
    # A vertical throw passes through v = 0, where |v| has no derivative; the drag
    # |v| v does (it is zero), and the safe norm keeps the gradient finite there.
    def loss(p):
        gravity, drag, mass = p
        ball = ds.systems.Projectile(gravity=gravity, drag=drag, mass=mass)
        y0 = ds.PhaseState(q=jnp.array([0.0, 0.0]), v=jnp.array([0.0, 15.0]))
        traj = ds.simulate(ball, y0, t1=2.5, dt=1e-2, integrator=ds.Leapfrog())
        y1 = jax.tree.map(lambda x: x[-1], traj.ys)
        return y1.q[-1] + 0.01 * ball.energy(y1)

    p = jnp.array([9.81, 0.02, 1.5])
    grad = jax.grad(loss)(p)
    assert np.isfinite(grad).all() and np.all(grad != 0)
    np.testing.assert_allclose(grad, central_difference(jax.jit(loss), p), rtol=1e-7)


@pytest.mark.slow  # over 5 s; run with `make test-slow`
def test_jit_vmap_and_precisions():
    y0 = ds.systems.Projectile().initial_state(30.0, 0.9)

    def make(p):
        return ds.systems.Projectile(gravity=9.81, drag=p)

    check_vmap_matches_loop(make, jnp.array([0.0, 0.01, 0.1]), y0, t1=3.0, dt=1e-2)
    check_precisions(make, jnp.asarray(0.02), y0, t1=3.0, dt=1e-2)
