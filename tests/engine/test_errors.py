"""Bad input gets a clear error naming the argument; runtime failures name step and member."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import diffsim as ds

PENDULUM = ds.systems.Pendulum(length=1.0)
Y0 = PENDULUM.initial_state(0.5)


@pytest.mark.parametrize("dt", [0.0, float("nan"), float("inf")])
def test_bad_dt(dt):
    with pytest.raises(ValueError, match="dt must be a finite non-zero number"):
        ds.simulate(PENDULUM, Y0, t1=1.0, dt=dt)


def test_negative_dt_forwards():
    with pytest.raises(ValueError, match="dt=-0.1 is negative but t1 > t0"):
        ds.simulate(PENDULUM, Y0, t1=1.0, dt=-0.1)


def test_missing_dt():
    with pytest.raises(ValueError, match="dt is required"):
        ds.simulate(PENDULUM, Y0, t1=1.0)


def test_traced_bad_dt_fires_under_jit():
    f = jax.jit(lambda dt: ds.simulate(PENDULUM, Y0, n_steps=10, dt=dt).ys.q)
    assert np.isfinite(f(0.01)).all()
    assert np.isfinite(f(-0.01)).all()  # backwards
    with pytest.raises(Exception, match="dt must be a finite non-zero number"):
        f(0.0).block_until_ready()


def test_t1_before_t0_runs_backwards():
    traj = ds.simulate(PENDULUM, Y0, t0=1.0, t1=0.5, dt=0.1)
    assert np.allclose(traj.ts, [0.5]) and int(traj.stats["num_steps"]) == 5


@pytest.mark.parametrize("kwargs", [{}, {"t1": 1.0, "n_steps": 10}])
def test_t1_and_n_steps_exactly_one(kwargs):
    with pytest.raises(ValueError, match="exactly one of t1= .* and n_steps="):
        ds.simulate(PENDULUM, Y0, dt=0.1, **kwargs)


def test_t1_not_whole_number_of_steps():
    with pytest.raises(ValueError, match="not a whole number of steps"):
        ds.simulate(PENDULUM, Y0, t1=1.0, dt=0.3)


def test_traced_t1_asks_for_n_steps():
    with pytest.raises(ValueError, match="pass n_steps="):
        jax.jit(lambda t1: ds.simulate(PENDULUM, Y0, t1=t1, dt=0.1).ys)(1.0)


def test_state_structure_mismatch():
    with pytest.raises(ValueError, match="y0 must be a ds.PhaseState.* Pendulum"):
        ds.simulate(PENDULUM, jnp.array([0.5, 0.0]), t1=1.0, dt=0.1)
    body = ds.systems.NBody(masses=jnp.ones(3))
    bad = ds.PhaseState(q=jnp.zeros((4, 2)), v=jnp.zeros((4, 2)))  # 4 bodies, 3 masses
    with pytest.raises(ValueError, match="y0 does not fit the state of NBody"):
        ds.simulate(body, bad, t1=1.0, dt=0.1)


def test_vector_field_returning_wrong_structure():
    system = ds.ODESystem(lambda t, y, p: (y, y), None)
    with pytest.raises(ValueError, match="does not match the state structure"):
        ds.simulate(system, jnp.ones(2), t1=1.0, dt=0.1)
    shape = ds.ODESystem(lambda t, y, p: jnp.ones(3), None)
    with pytest.raises(
        ValueError, match="has shape \\(2,\\) but its time derivative has shape \\(3,\\)"
    ):
        ds.simulate(shape, jnp.ones(2), t1=1.0, dt=0.1)


def test_wrong_strategy_types():
    with pytest.raises(TypeError, match="integrator must be"):
        ds.simulate(PENDULUM, Y0, t1=1.0, dt=0.1, integrator="rk4")
    with pytest.raises(TypeError, match="saveat must be"):
        ds.simulate(PENDULUM, Y0, t1=1.0, dt=0.1, saveat=[1.0])
    with pytest.raises(TypeError, match="adjoint must be"):
        ds.simulate(PENDULUM, Y0, t1=1.0, dt=0.1, adjoint=None)


@pytest.mark.parametrize("ts", [[0.0, 2.0], [-0.5, 0.5]])
def test_saveat_ts_outside_interval(ts):
    with pytest.raises(ValueError, match="within \\[t0, t1\\]"):
        ds.simulate(PENDULUM, Y0, t1=1.0, dt=0.1, saveat=ds.SaveAt(ts=jnp.array(ts)))


def test_saveat_ts_unsorted():
    with pytest.raises(ValueError, match="non-decreasing"):
        ds.simulate(PENDULUM, Y0, t1=1.0, dt=0.1, saveat=ds.SaveAt(ts=jnp.array([0.5, 0.2])))


def test_traced_saveat_ts_outside_interval_fires_under_jit():
    f = jax.jit(lambda ts: ds.simulate(PENDULUM, Y0, t1=1.0, dt=0.1, saveat=ds.SaveAt(ts=ts)).ys.q)
    assert f(jnp.array([0.1, 0.9])).shape == (2,)
    with pytest.raises(Exception, match="within \\[t0, t1\\]"):
        f(jnp.array([0.1, 1.5])).block_until_ready()


def test_saveat_invalid_construction():
    with pytest.raises(ValueError, match="exactly one way"):
        ds.SaveAt()
    with pytest.raises(ValueError, match="exactly one way"):
        ds.SaveAt(t1=True, every=3)
    with pytest.raises(ValueError, match="positive int"):
        ds.SaveAt(every=0)


def test_max_steps_for_fixed_step():
    with pytest.raises(ValueError, match="more than max_steps=5"):
        ds.simulate(PENDULUM, Y0, t1=1.0, dt=0.1, max_steps=5)


def _blows_up():
    # y' = y^2 from y0 = 1 blows up at t = 1: a real finite-time singularity.
    system = ds.ODESystem(lambda t, y, p: p * y**2, 1.0)
    return system


def test_nonfinite_state_raises_with_step():
    with pytest.raises(ds.NonFiniteStateError, match=r"non-finite[\s\S]* step \d+ \(t = 1\.\d+\)"):
        ds.simulate(_blows_up(), jnp.array(1.0), t1=2.0, dt=0.01)


def test_nonfinite_state_under_jit_and_vmap():
    def run(y0):
        return ds.simulate(_blows_up(), y0, t1=2.0, dt=0.01).ys

    # Members 0 and 2 stay finite for t < 2 (y0 < 0.5); member 1 blows up. Under a
    # user's jit the error is equinox's, with the eager exception's first line; an eager
    # vmap is seen by Python and raises the library exception.
    y0s = jnp.array([0.1, 1.0, 0.2])
    first = "ds.simulate: the state became non-finite (NaN or inf)."
    with pytest.raises(eqx.EquinoxRuntimeError) as info:
        eqx.filter_jit(jax.vmap(run))(y0s)
    assert first in str(info.value)
    with pytest.raises(ds.NonFiniteStateError, match=r"^ds\.simulate: the state became"):
        jax.vmap(run)(y0s)
    ok = jax.jit(jax.vmap(run))(jnp.array([0.1, 0.2]))
    assert np.isfinite(ok).all()


def test_nonfinite_under_grad():
    def loss(p):
        system = ds.ODESystem(lambda t, y, p: p * y**2, p)
        return ds.simulate(system, jnp.array(1.0), t1=2.0, dt=0.01).ys[-1]

    with pytest.raises(Exception, match="non-finite"):
        jax.grad(loss)(1.0)

    # A finite case differentiates normally through the check: y(t) = 1/(1/y0 - p t).
    def loss_ok(p):
        system = ds.ODESystem(lambda t, y, p: p * y**2, p)
        return ds.simulate(system, jnp.array(0.1), t1=2.0, dt=0.001).ys[-1]

    exact = 2.0 / (10 - 2 * 0.5) ** 2  # d/dp of 1/(10 - 2p) at p = 0.5
    assert np.allclose(jax.grad(loss_ok)(0.5), exact, rtol=1e-8)


def test_throw_false_returns_result_code_and_step():
    traj = ds.simulate(_blows_up(), jnp.array(1.0), t1=2.0, dt=0.01, throw=False)
    assert traj.result == ds.RESULTS.nonfinite
    step = int(traj.stats["nonfinite_step"])
    assert 95 <= step <= 105  # the singularity is at t = 1, i.e. near step 100
    ok = ds.simulate(PENDULUM, Y0, t1=1.0, dt=0.1, throw=False)
    assert ok.result == ds.RESULTS.successful and int(ok.stats["nonfinite_step"]) == -1


def test_throw_false_under_vmap_reports_each_member():
    f = jax.vmap(lambda y0: ds.simulate(_blows_up(), y0, t1=2.0, dt=0.01, throw=False))
    trajs = f(jnp.array([0.1, 1.0, 0.2, 3.0]))
    failed = np.asarray(trajs.result == ds.RESULTS.nonfinite)
    assert failed.tolist() == [False, True, False, True]
    assert np.isfinite(trajs.ys[~failed]).all()


def test_eqx_filter_jit_user_code():
    # The check composes with equinox's own jit too.
    f = eqx.filter_jit(lambda y0: ds.simulate(_blows_up(), y0, t1=2.0, dt=0.01).ys)
    with pytest.raises(Exception, match="non-finite"):
        f(jnp.array(1.0))


def test_nonfinite_step_located_per_member_under_vmap():
    # Only the final state is checked on the hot path; the cold path re-runs the steps
    # to find where each failed member went non-finite. y' = p y^2 from 1 blows up at
    # t = 1/p, i.e. near step 100/p at dt = 0.01; the finite members report -1.
    def run(p):
        system = ds.ODESystem(lambda t, y, p: p * y**2, p)
        return ds.simulate(system, jnp.array(1.0), t1=2.0, dt=0.01, throw=False)

    trajs = jax.jit(jax.vmap(run))(jnp.array([0.1, 1.0, 0.2, 2.0]))
    steps = np.asarray(trajs.stats["nonfinite_step"])
    assert steps[0] == -1 and steps[2] == -1
    assert 90 <= steps[1] <= 105 and 40 <= steps[3] <= 55
    assert steps[3] < steps[1]
    assert np.asarray(trajs.result == ds.RESULTS.nonfinite).tolist() == [False, True, False, True]


def test_nonfinite_reported_at_the_first_bad_step():
    # The vector field turns NaN for t > 0.5: RK4's step from t = 0.5 evaluates it at
    # t = 0.55 (its midpoint stages), so step 5 is the first with a non-finite result.
    def field(t, y, p):
        return jnp.where(t > 0.5, jnp.nan, 0.0) * y

    traj = ds.simulate(ds.ODESystem(field, None), jnp.array(1.0), t1=1.0, dt=0.1, throw=False)
    assert traj.result == ds.RESULTS.nonfinite
    assert int(traj.stats["nonfinite_step"]) == 5
