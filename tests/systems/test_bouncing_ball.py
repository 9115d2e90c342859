"""BouncingBall (events, ds.EventStep) against the analytic bounce, with gradients that
include the time-of-impact correction; SoftBouncingBall (penalty contact) against the
restitution of the linear contact law."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import diffsim as ds
from diffsim.systems import BouncingBall, SoftBouncingBall
from tests.helpers import central_difference
from tests.systems.conformance import check_precisions, check_vmap_matches_loop

_Y0 = ds.PhaseState(q=jnp.array([0.0, 1.0]), v=jnp.array([0.5, 0.8]))


@pytest.mark.slow  # 8 s; the event tests check bounce times against the closed form
def test_event_model_matches_the_analytic_bounce():
    # Free flight between impacts and v_z -> -e v_z at z = 0: six bounces in 2 s.
    ball = BouncingBall(restitution=0.7)
    ts = jnp.linspace(0.0, 2.0, 41)
    traj = ds.simulate(
        ball, _Y0, t1=2.0, dt=1e-2, integrator=ds.EventStep(), saveat=ds.SaveAt(ts=ts)
    )
    exact = jax.vmap(ball.solution, in_axes=(0, None))(ts, _Y0)
    # RK4 is exact on the quadratic flight and the impact is located to round-off.
    np.testing.assert_allclose(traj.ys.q, exact.q, atol=1e-12)
    np.testing.assert_allclose(traj.ys.v, exact.v, atol=1e-12)
    # Apex heights fall by e^2 per bounce: the energy of vertical motion after k bounces.
    u1 = math.sqrt(0.8**2 + 2 * 9.81)
    assert float(jnp.min(traj.ys.q[:, 1])) >= -1e-12
    e_vertical = 0.5 * traj.ys.v[-1, 1] ** 2 + 9.81 * traj.ys.q[-1, 1]
    bounces = [n for n in range(1, 20) if abs(e_vertical - 0.5 * (0.7**n * u1) ** 2) < 1e-9]
    assert len(bounces) == 1


@pytest.mark.slow  # ~12 s; ds.Event's gradients through event times: tests/engine/test_events.py
def test_event_gradients_include_the_time_of_impact_correction():
    # d/d(g, e, z0, drag) of the final height. Through the custom JVP of the impact time the
    # simulated gradient equals the closed form's (drag = 0) and central differences, in
    # reverse and in forward mode.
    def simulated(p):
        ball = BouncingBall(gravity=p[0], restitution=p[1], drag=p[3])
        y0 = ds.PhaseState(q=jnp.array([0.0, p[2]]), v=_Y0.v)
        return ds.simulate(ball, y0, t1=1.0, dt=1e-2, integrator=ds.EventStep()).ys.q[-1, 1]

    def closed(p):
        ball = BouncingBall(gravity=p[0], restitution=p[1])
        return ball.solution(1.0, ds.PhaseState(q=jnp.array([0.0, p[2]]), v=_Y0.v)).q[1]

    p = jnp.array([9.81, 0.7, 1.0, 0.0])
    grad = jax.grad(simulated)(p)
    np.testing.assert_allclose(grad[:3], jax.grad(closed)(p)[:3], rtol=1e-10)
    np.testing.assert_allclose(grad, central_difference(jax.jit(simulated), p), rtol=1e-6)
    np.testing.assert_allclose(jax.jacfwd(simulated)(p), grad, rtol=1e-12)
    # With drag (no closed form) against central differences only.
    p = jnp.array([9.81, 0.7, 1.0, 0.05])
    grad = jax.grad(simulated)(p)
    assert np.all(grad != 0)
    np.testing.assert_allclose(grad, central_difference(jax.jit(simulated), p), rtol=1e-6)


def test_soft_contact_restitution_and_convergence_to_the_event_model():
    # Linear spring-dashpot contact: e = exp(-zeta pi / sqrt(1 - zeta^2)), zeta = c / 2 sqrt(k)
    # (e.g. Schwager & Poeschel, Phys. Rev. E 78, 2008). Dropped from 1 m the first apex
    # is e^2 m, up to gravity acting during the contact (pi / sqrt(k) = 1 ms here).
    e = 0.8
    soft = SoftBouncingBall.from_restitution(e, stiffness=1e7, smoothing=1e-6)
    np.testing.assert_allclose(soft.restitution(), e, rtol=1e-12)
    y0 = ds.PhaseState(q=jnp.array([1.0]), v=jnp.array([0.0]))
    traj = ds.simulate(soft, y0, t1=1.2, dt=2e-5, saveat=ds.SaveAt(every=10))
    z = np.asarray(traj.ys.q[:, 0])
    after = np.asarray(traj.ts) > 0.5  # the first impact is at 0.45 s
    contact_time = math.pi / math.sqrt(1e7)
    # Gravity during the contact changes the rebound speed by ~g t_c relative to 4.4 m/s.
    rel = 2 * 9.81 * contact_time / math.sqrt(2 * 9.81)
    np.testing.assert_allclose(z[after].max(), e**2, rtol=rel)
    hard = BouncingBall(restitution=e).solution(
        1.2, ds.PhaseState(q=jnp.array([0.0, 1.0]), v=jnp.array([0.0, 0.0]))
    )
    np.testing.assert_allclose(z[-1], hard.q[1], atol=0.02)


def test_soft_contact_gradients_wrt_every_parameter():
    def loss(p):
        g, k, c, w = p
        ball = SoftBouncingBall(gravity=g, stiffness=k, damping=c, smoothing=w)
        y0 = ds.PhaseState(q=jnp.array([0.3, 0.1]), v=jnp.array([1.0, -1.0]))
        return ds.simulate(ball, y0, t1=0.3, dt=1e-4, integrator=ds.Leapfrog()).ys.q[-1, 1]

    p = jnp.array([9.81, 1e4, 30.0, 1e-3])
    grad = jax.grad(loss)(p)
    assert np.all(grad != 0)

    # Parameters span 1e-3 to 1e4: finite differences in relative steps.
    def scaled(s):
        return loss(s * p)

    fd = central_difference(jax.jit(scaled), jnp.ones(4), eps=1e-6) / p
    np.testing.assert_allclose(grad, fd, rtol=1e-5)


@pytest.mark.slow  # ~11 s; run with make test-slow
def test_jit_vmap_and_precisions():
    def make_event(e):
        return BouncingBall(restitution=e)

    kw = dict(t1=1.0, dt=1e-2, integrator=ds.EventStep())
    check_vmap_matches_loop(make_event, jnp.array([0.5, 0.7, 0.9]), _Y0, **kw)
    check_precisions(make_event, jnp.asarray(0.7), _Y0, **kw)

    def make_soft(k):
        return SoftBouncingBall(stiffness=k, smoothing=1e-3)

    y0 = ds.PhaseState(q=jnp.array([[0.0, 0.2], [1.0, 0.5]]), v=jnp.zeros((2, 2)))
    kw = dict(t1=0.5, dt=1e-3, integrator=ds.Leapfrog())
    check_vmap_matches_loop(make_soft, jnp.array([1e3, 1e4]), y0, **kw)
    check_precisions(make_soft, jnp.asarray(1e4), y0, rtol=1e-3, **kw)


def test_soft_contact_gradient_is_finite_far_above_the_floor():
    """Dropped from 1 m (10^4 smoothing lengths), the contact weight sigma(-z/w) must not
    overflow: 1/(1 + exp(z/w)) did, and its derivative became inf/inf = NaN."""

    def final_height(damping):
        ball = SoftBouncingBall(damping=damping)
        y0 = ds.PhaseState(jnp.array([1.0]), jnp.array([0.0]))
        return ds.simulate(ball, y0, t1=0.6, dt=1e-4).ys.q.sum()

    c = jnp.asarray(SoftBouncingBall().damping, jnp.float64)
    grad = jax.grad(final_height)(c)
    assert np.isfinite(grad)
    np.testing.assert_allclose(grad, central_difference(final_height, c, 1e-3 * c), rtol=1e-5)
