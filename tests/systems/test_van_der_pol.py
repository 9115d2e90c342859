"""VanDerPol: limit-cycle period against asymptotic formulas and an independent solver;
stiffness at large mu handled by Kvaerno5; gradients."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

import diffsim as ds
from tests.helpers import central_difference
from tests.systems.conformance import check_precisions, check_vmap_matches_loop


def _crossings(ts, x, level, direction):
    """Times where x crosses `level` in `direction` (+1 up, -1 down), linearly interpolated."""
    ts, x = np.asarray(ts), np.asarray(x) - level
    if direction < 0:
        x = -x
    i = np.nonzero((x[:-1] < 0) & (x[1:] >= 0))[0]
    return ts[i] - x[i] * (ts[i + 1] - ts[i]) / (x[i + 1] - x[i])


def test_small_mu_period_lindstedt_poincare():
    # T = 2 pi (1 + mu^2/16 - 5 mu^4/3072 + O(mu^6)) (Lindstedt-Poincare; e.g. Nayfeh,
    # Perturbation Methods, 1973, sec. 4.2); the next term is ~1e-8 relative at mu = 0.1.
    mu = 0.1
    vdp = ds.systems.VanDerPol(mu=mu)
    traj = ds.simulate(vdp, vdp.initial_state(2.0), t1=60.0, dt=1e-3, saveat=ds.SaveAt(every=1))
    periods = np.diff(_crossings(traj.ts, traj.ys[:, 0], 0.0, +1))[-3:]
    expected = 2 * math.pi * (1 + mu**2 / 16 - 5 * mu**4 / 3072)
    np.testing.assert_allclose(periods, expected, rtol=1e-7)


def test_mu_one_period_matches_independent_solver():
    # Period at mu = 1: 6.6632868593... . The reference is scipy's DOP853 at rtol 1e-13
    # with event location, an implementation independent of ours and of diffrax.
    def f(t, y):
        return [y[1], (1 - y[0] ** 2) * y[1] - y[0]]

    def up(t, y):
        return y[0]

    up.direction = 1
    ref = solve_ivp(f, (0, 40), [2.0, 0.0], method="DOP853", rtol=1e-13, atol=1e-13, events=up)
    ref_period = np.diff(ref.t_events[0])[-1]
    assert abs(ref_period - 6.6632868593) < 1e-9

    vdp = ds.systems.VanDerPol(mu=1.0)
    traj = ds.simulate(vdp, vdp.initial_state(2.0), t1=40.0, dt=2e-3, saveat=ds.SaveAt(every=1))
    # Locate each upward zero of x from the grid point before it by the second-order
    # Taylor step x + v d + a d^2 / 2 = 0: the error is O(d^3) ~ 1e-9 on a 2e-3 grid.
    ts, x, v = np.asarray(traj.ts), np.asarray(traj.ys[:, 0]), np.asarray(traj.ys[:, 1])
    i = np.nonzero((x[:-1] < 0) & (x[1:] >= 0))[0]
    a = (1 - x[i] ** 2) * v[i] - x[i]
    d = -x[i] / v[i]
    d = d - 0.5 * a * d**2 / v[i]
    period = np.diff(ts[i] + d)[-1]
    assert abs(period - ref_period) < 1e-8


def test_stiff_large_mu_with_kvaerno5():
    # mu = 1000: relaxation oscillations. Dorodnitsyn's (1947) asymptotic period
    # T = (3 - 2 ln 2) mu + 3 alpha mu^(-1/3) - (2/3) ln(mu) / mu + O(1/mu), alpha =
    # 2.33811 (first zero of Ai), is 1614.4024; the O(1/mu) rest is ~1e-3 here.
    mu = 1000.0
    vdp = ds.systems.VanDerPol(mu=mu)
    y0 = vdp.initial_state(2.0)
    ts = jnp.arange(0.0, 3500.0, 0.5)
    traj = ds.simulate(
        vdp,
        y0,
        t1=3500.0,
        integrator=ds.Kvaerno5(rtol=1e-8, atol=1e-8),
        saveat=ds.SaveAt(ts=ts),
        max_steps=20_000,
    )
    # Time it between successive downward passes of x = 1.5, on the slow branch where
    # x changes by ~1e-3 per unit time, so interpolating on a 0.5 grid is accurate.
    period = np.diff(_crossings(ts, traj.ys[:, 0], 1.5, -1))[-1]
    asymptotic = (3 - 2 * math.log(2)) * mu + 3 * 2.338107410 * mu ** (-1 / 3)
    asymptotic -= 2 / 3 * math.log(mu) / mu
    np.testing.assert_allclose(period, asymptotic, rtol=1e-5)
    assert 1.99 < float(traj.ys[:, 0].max()) < 2.01  # the limit cycle's amplitude ~2
    # The problem is stiff: an explicit method exhausts the same step budget over 100
    # time units that the implicit one needed for 3500.
    explicit = ds.simulate(
        vdp,
        y0,
        t1=100.0,
        integrator=ds.Tsit5(rtol=1e-8, atol=1e-8),
        max_steps=int(traj.stats["num_steps"]),
        throw=False,
    )
    assert explicit.result == ds.RESULTS.max_steps_reached


def test_gradient_wrt_mu():
    def final(mu):
        vdp = ds.systems.VanDerPol(mu=mu)
        return jnp.sum(ds.simulate(vdp, vdp.initial_state(1.0, 0.5), t1=5.0, dt=1e-2).ys[-1])

    mu = jnp.array(1.3)
    grad = jax.grad(final)(mu)
    np.testing.assert_allclose(grad, central_difference(jax.jit(final), mu), rtol=1e-7)


@pytest.mark.slow  # over 5 s; run with `make test-slow`
def test_jit_vmap_and_precisions():
    y0 = ds.systems.VanDerPol().initial_state(1.0)

    def make(mu):
        return ds.systems.VanDerPol(mu=mu)

    check_vmap_matches_loop(make, jnp.array([0.1, 1.0, 3.0]), y0, t1=5.0, dt=1e-2)
    check_precisions(make, jnp.asarray(2.0), y0, t1=5.0, dt=1e-2)
