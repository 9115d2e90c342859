"""simulate() backwards in time: t1 < t0 (or a negative dt with n_steps=), fixed-step and
adaptive; closed forms, round trips, every save mode and adjoint, gradients, errors."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import diffsim as ds
from tests.helpers import central_difference

OSC = ds.systems.HarmonicOscillator(omega=1.3)
Y0 = ds.PhaseState(q=jnp.array(0.7), v=jnp.array(-0.2))
PENDULUM = ds.systems.Pendulum(length=1.0)


def _exact(ts, t0=1.0):
    """The oscillator's state at times `ts`, from Y0 at t0."""
    return jax.vmap(lambda t: OSC.solution(t - t0, Y0))(jnp.atleast_1d(jnp.asarray(ts)))


def _final(traj):
    return jax.tree.map(lambda x: x[-1], traj.ys)


@pytest.mark.parametrize(
    "integrator,tol",
    [(ds.RK4(), 1e-8), (ds.Tsit5Fixed(), 1e-8), (ds.Leapfrog(), 1e-14), (ds.Yoshida4(), 1e-14)],
)
def test_forward_then_backward_returns_to_start(integrator, tol):
    y0 = PENDULUM.initial_state(1.2, 0.3)
    there = ds.simulate(PENDULUM, y0, t1=3.0, dt=0.01, integrator=integrator)
    back = ds.simulate(PENDULUM, _final(there), t0=3.0, t1=0.0, dt=0.01, integrator=integrator)
    # RK4/Tsit5: the integrator's error, twice; Leapfrog/Yoshida4 are time-reversible, so
    # a backward step undoes a forward one up to round-off.
    assert abs(float(back.ys.q[0]) - 1.2) < tol and abs(float(back.ys.v[0]) - 0.3) < tol
    assert np.allclose(back.ts, [0.0], atol=1e-14)


@pytest.mark.parametrize("dt", [0.01, -0.01])
def test_dt_as_magnitude_or_signed(dt):
    a = ds.simulate(OSC, Y0, t0=1.0, t1=-1.0, dt=dt)
    assert int(a.stats["num_steps"]) == 200
    assert np.allclose(a.ys.q, _exact([-1.0]).q, atol=1e-9)


def test_n_steps_with_negative_dt_runs_backwards():
    a = ds.simulate(OSC, Y0, t0=1.0, n_steps=200, dt=-0.01)
    b = ds.simulate(OSC, Y0, t0=1.0, t1=-1.0, dt=0.01)
    assert np.allclose(a.ys.q, b.ys.q, atol=1e-14)
    assert np.allclose(a.ts, [-1.0], atol=1e-14)


SAVES = {
    "t1": ds.SaveAt(t1=True),
    "t0t1": ds.SaveAt(t0=True, t1=True),
    "every": ds.SaveAt(every=7),
    "ts": ds.SaveAt(ts=jnp.array([1.0, 0.87, 0.5, 0.0, -0.33, -1.0])),
    "fn": ds.SaveAt(ts=jnp.array([0.3, -1.0]), fn=lambda t, y: y.q),
    "dense": ds.SaveAt(ts=jnp.array([0.5, -0.2]), dense=True),
}


@pytest.mark.parametrize("save", SAVES)
@pytest.mark.parametrize("adjoint", [ds.Direct(), ds.Checkpointed()], ids=["Direct", "Ckpt"])
def test_fixed_step_backward_matches_closed_form(save, adjoint):
    traj = ds.simulate(OSC, Y0, t0=1.0, t1=-1.0, dt=0.01, saveat=SAVES[save], adjoint=adjoint)
    assert np.all(np.diff(np.asarray(traj.ts)) <= 0)  # in the order reached
    exact = _exact(traj.ts)
    q = traj.ys if save == "fn" else traj.ys.q
    np.testing.assert_allclose(q, exact.q, atol=1e-9)
    if save == "every":
        np.testing.assert_allclose(traj.ts[:3], [1.0, 0.93, 0.86], atol=1e-12)
        assert traj.ts.shape == (30,)  # 0, 7, ..., 196, and 200


def test_adaptive_backward_matches_closed_form():
    ts = jnp.array([1.0, 0.6, -0.4, -1.0])
    tsit5 = ds.Tsit5(rtol=1e-10, atol=1e-10)
    for dt in (None, -0.1):  # diffrax picks the first step / a signed one
        traj = ds.simulate(OSC, Y0, t0=1.0, t1=-1.0, dt=dt, integrator=tsit5,
                           saveat=ds.SaveAt(ts=ts))  # fmt: skip
        np.testing.assert_allclose(traj.ts, ts)
        np.testing.assert_allclose(traj.ys.q, _exact(ts).q, atol=1e-8)


@pytest.mark.parametrize(
    "integrator", [ds.Leapfrog(), pytest.param(ds.Yoshida4(), marks=pytest.mark.slow)]
)
def test_reversible_adjoint_backwards(integrator):
    def loss(omega, adjoint):
        osc = ds.systems.HarmonicOscillator(omega=omega)
        traj = ds.simulate(osc, Y0, t0=1.0, t1=-1.0, dt=0.01, integrator=integrator,
                           adjoint=adjoint, saveat=ds.SaveAt(ts=jnp.array([0.3, -1.0])))  # fmt: skip
        return jnp.sum(traj.ys.q**2)

    reversible = jax.grad(loss)(1.3, ds.Reversible())
    np.testing.assert_allclose(reversible, jax.grad(loss)(1.3, ds.Direct()), rtol=1e-10)


def test_fsal_backwards():
    # Leapfrog on a velocity-independent force carries the acceleration (FSAL).
    there = ds.simulate(OSC, Y0, t0=1.0, t1=-1.0, dt=0.01, integrator=ds.Leapfrog(),
                        adjoint=ds.Checkpointed())  # fmt: skip
    np.testing.assert_allclose(there.ys.q, _exact([-1.0]).q, atol=1e-4)


@pytest.mark.parametrize(
    "integrator,dt",
    [
        (ds.RK4(), 0.01),
        # ~7 s: diffrax compiles the solve and its gradient
        pytest.param(ds.Tsit5(rtol=1e-10, atol=1e-10), None, marks=pytest.mark.slow),
    ],
)
def test_gradients_backward_match_finite_differences(integrator, dt):
    def loss(x):
        osc = ds.systems.HarmonicOscillator(omega=x[0])
        traj = ds.simulate(osc, osc.initial_state(x[1], x[2]), t0=0.5, t1=-1.0, dt=dt,
                           integrator=integrator, saveat=ds.SaveAt(ts=jnp.array([0.1, -1.0])))  # fmt: skip
        return jnp.sum(jnp.array([1.0, -2.0]) * traj.ys.q + 0.3 * traj.ys.v)

    x = jnp.array([1.3, 0.7, -0.2])
    fd = central_difference(jax.jit(loss), x)
    # adaptive: step-size control makes the solve piecewise smooth (see the matrix test)
    rtol = 1e-6 if dt else 1e-4
    np.testing.assert_allclose(jax.grad(loss)(x), fd, rtol=rtol, atol=1e-8)


def test_traced_t0_and_dt_under_jit():
    @jax.jit
    def run(t0, dt):
        traj = ds.simulate(OSC, Y0, t0=t0, n_steps=200, dt=dt,
                           saveat=ds.SaveAt(ts=jnp.array([0.5, -1.0]), dense=True))  # fmt: skip
        return traj.ys.q, traj.evaluate(jnp.array(0.0)).q

    q, q_mid = run(1.0, -0.01)
    np.testing.assert_allclose(q, _exact([0.5, -1.0]).q, atol=1e-9)
    np.testing.assert_allclose(q_mid, _exact(0.0).q, atol=1e-6)
    with pytest.raises(Exception, match="order of integration"):  # increasing ts, dt < 0
        increasing = ds.SaveAt(ts=jnp.array([-1.0, 0.5]))
        run = jax.jit(
            lambda dt: ds.simulate(OSC, Y0, t0=1.0, n_steps=200, dt=dt, saveat=increasing)
        )
        run(-0.01).ys.q.block_until_ready()
    with pytest.raises(Exception, match="non-zero"):
        jax.jit(lambda dt: ds.simulate(OSC, Y0, n_steps=10, dt=dt).ys.q)(0.0).block_until_ready()


def test_traced_adaptive_backwards():
    run = eqx.filter_jit(
        lambda t0, t1: ds.simulate(OSC, Y0, t0=t0, t1=t1, dt=0.1, integrator=ds.Tsit5()).ys.q
    )
    np.testing.assert_allclose(run(1.0, -1.0), _exact([-1.0]).q, atol=1e-4)


# Errors.


@pytest.mark.parametrize("integrator", [ds.RK4(), ds.Tsit5()])
def test_negative_dt_with_t1_after_t0_is_refused(integrator):
    with pytest.raises(ValueError, match="dt=-0.1 is negative but t1 > t0.*dt=0.1"):
        ds.simulate(OSC, Y0, t1=1.0, dt=-0.1, integrator=integrator)


@pytest.mark.parametrize("integrator", [ds.RK4(), ds.Tsit5()])
def test_increasing_ts_backwards_is_refused(integrator):
    with pytest.raises(ValueError, match="non-increasing when integrating backwards"):
        ds.simulate(OSC, Y0, t0=1.0, t1=-1.0, dt=0.1, integrator=integrator,
                    saveat=ds.SaveAt(ts=jnp.array([-1.0, 0.0])))  # fmt: skip
    with pytest.raises(ValueError, match=r"within \[t1, t0\]"):
        ds.simulate(OSC, Y0, t0=1.0, t1=-1.0, dt=0.1, integrator=integrator,
                    saveat=ds.SaveAt(ts=jnp.array([1.5, 0.0])))  # fmt: skip


def test_n_steps_ts_checked_backwards():
    with pytest.raises(ValueError, match="non-increasing"):
        ds.simulate(OSC, Y0, t0=1.0, n_steps=20, dt=-0.1,
                    saveat=ds.SaveAt(ts=jnp.array([-1.0, 0.0])))  # fmt: skip


@pytest.mark.parametrize("dt", [0.0, float("nan"), float("inf")])
def test_bad_dt_names_dt(dt):
    with pytest.raises(ValueError, match="dt must be a finite non-zero number"):
        ds.simulate(OSC, Y0, t1=1.0, dt=dt)


def test_stochastic_and_event_integrators_refuse_backwards():
    ou = ds.systems.OrnsteinUhlenbeck(theta=1.0, mu=0.0, sigma=0.3)
    with pytest.raises(ValueError, match="forwards only"):
        ds.simulate(ou, jnp.array(1.0), t0=1.0, t1=0.0, dt=0.01,
                    integrator=ds.EulerMaruyama(key=jax.random.key(0)))  # fmt: skip
    ball = ds.systems.BouncingBall()
    with pytest.raises(ValueError, match="EventStep.*forwards only"):
        ds.simulate(ball, ds.PhaseState(q=jnp.array([0.0, 1.0]), v=jnp.zeros(2)), t0=1.0, t1=0.0, dt=0.01,
                    integrator=ds.EventStep())  # fmt: skip
