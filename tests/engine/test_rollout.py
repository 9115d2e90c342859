"""simulate(): saving, closed forms, batching, jit/vmap/grad composition."""

import logging

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import diffsim as ds
from tests.helpers import central_difference, tree_allclose

OSC = ds.systems.HarmonicOscillator(omega=2.0)
Y0 = ds.PhaseState(q=jnp.array(1.0), v=jnp.array(-0.5))


def test_default_saves_final_state_with_leading_axis():
    traj = ds.simulate(OSC, Y0, t1=1.0, dt=1e-3)
    assert traj.ts.shape == (1,) and traj.ys.q.shape == (1,)
    assert float(traj.ts[0]) == pytest.approx(1.0)
    exact = OSC.solution(1.0, Y0)
    assert np.allclose(traj.ys.q[0], exact.q, atol=1e-11)
    assert traj.result == ds.RESULTS.successful
    assert int(traj.stats["num_steps"]) == 1000


def test_t0_offset_and_n_steps_equivalent_to_t1():
    a = ds.simulate(OSC, Y0, t0=2.0, t1=3.0, dt=0.01)
    b = ds.simulate(OSC, Y0, t0=2.0, n_steps=100, dt=0.01)
    assert tree_allclose(a.ys, b.ys) and np.allclose(a.ts, [3.0])


def test_saveat_t0_t1():
    traj = ds.simulate(OSC, Y0, t1=1.0, dt=0.01, saveat=ds.SaveAt(t0=True, t1=True))
    assert np.allclose(traj.ts, [0.0, 1.0])
    assert float(traj.ys.q[0]) == 1.0


@pytest.mark.parametrize("every,n", [(10, 100), (7, 100), (1, 5), (100, 100)])
def test_saveat_every(every, n):
    dt = 0.01
    traj = ds.simulate(OSC, Y0, n_steps=n, dt=dt, saveat=ds.SaveAt(every=every))
    steps = list(range(0, n + 1, every))
    if steps[-1] != n:
        steps.append(n)
    assert np.allclose(traj.ts, np.array(steps) * dt)
    exact = jax.vmap(OSC.solution, in_axes=(0, None))(traj.ts, Y0)
    assert np.allclose(traj.ys.q, exact.q, atol=1e-9)
    assert np.allclose(traj.ys.v, exact.v, atol=1e-9)


@pytest.mark.parametrize("integrator", [ds.RK4(), ds.Leapfrog(), ds.Yoshida4(), ds.Euler()])
def test_saveat_ts_off_grid_has_integrator_order(integrator):
    # Times between grid points come from a partial step of the integrator, so the
    # saved values converge at the integrator's order, not the interpolation's.
    ts = jnp.array([0.0, 0.123, 0.5, 0.77777, 1.0, 1.3333, 2.0])
    exact = jax.vmap(OSC.solution, in_axes=(0, None))(ts, Y0)
    errors = []
    dts = [0.02, 0.01]
    for dt in dts:
        traj = ds.simulate(OSC, Y0, t1=2.0, dt=dt, integrator=integrator, saveat=ds.SaveAt(ts=ts))
        assert np.allclose(traj.ts, ts)
        errors.append(float(jnp.max(jnp.abs(traj.ys.q - exact.q))))
    order = np.log2(errors[0] / errors[1])
    assert abs(order - integrator.order) < 0.3, errors


def test_saveat_ts_on_grid_matches_every():
    a = ds.simulate(OSC, Y0, t1=1.0, dt=0.01, saveat=ds.SaveAt(every=10))
    b = ds.simulate(OSC, Y0, t1=1.0, dt=0.01, saveat=ds.SaveAt(ts=a.ts))
    assert tree_allclose(a.ys, b.ys, rtol=1e-12, atol=1e-13)


def test_saveat_ts_repeated_and_dense_times():
    # Several times inside one step, and repeated times, all land correctly.
    ts = jnp.array([0.0, 0.001, 0.002, 0.002, 0.0095, 0.5, 1.0])
    traj = ds.simulate(OSC, Y0, t1=1.0, dt=0.01, saveat=ds.SaveAt(ts=ts))
    exact = jax.vmap(OSC.solution, in_axes=(0, None))(ts, Y0)
    assert np.allclose(traj.ys.q, exact.q, atol=1e-10)


@pytest.mark.slow  # ~9 s of compilation for two layouts of one computation
def test_saveat_ts_flat_scan_equals_buffered_loop(monkeypatch):
    # With Direct, SaveAt(ts) runs one flat scan that keeps every state and gathers the
    # save steps; otherwise (Reversible, or too many state elements) a loop writes a
    # buffer row per save step. Both give the same values and forward-mode Jacobians.
    from diffsim.engine import _fixed as _rollout

    ts = jnp.array([0.0, 0.001, 0.002, 0.002, 0.0095, 0.5, 0.77777, 1.0])

    def run(params, adjoint):
        length, damping = params
        pendulum = ds.systems.Pendulum(length=length, damping=damping)
        traj = ds.simulate(
            pendulum, pendulum.initial_state(1.0), t1=1.0, dt=0.01,
            saveat=ds.SaveAt(ts=ts), adjoint=adjoint,
        )  # fmt: skip
        return traj.ys.q

    taken = []  # which path each trace took
    flat_or_not = _rollout._flat
    monkeypatch.setattr(_rollout, "_flat", lambda *a: taken.append(flat_or_not(*a)) or taken[-1])
    params = jnp.array([1.3, 0.2])
    jax.clear_caches()  # compiled rollouts would not be traced again
    flat = run(params, ds.Direct()), jax.jacfwd(run)(params, ds.Direct())
    assert taken and all(taken)
    for adjoint, limit in [(ds.Checkpointed(), 0), (ds.Direct(), 0)]:
        monkeypatch.setattr(_rollout, "_FLAT_EVERY_MAX_ELEMENTS", limit)
        jax.clear_caches()
        taken.clear()
        loop = run(params, adjoint), jax.jacfwd(run)(params, adjoint)
        assert taken and not any(taken)
        np.testing.assert_allclose(flat[0], loop[0], rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(flat[1], loop[1], rtol=1e-12, atol=1e-14)
    assert float(jnp.abs(flat[1]).max()) > 0.1  # the Jacobian is not trivial


@pytest.mark.parametrize(
    "saveat", [ds.SaveAt(t1=True), ds.SaveAt(every=25), ds.SaveAt(ts=jnp.linspace(0, 1, 9))]
)
def test_saveat_fn_saves_function_of_state(saveat):
    pendulum = ds.systems.Pendulum(length=1.0)
    y0 = pendulum.initial_state(1.0)
    full = ds.simulate(pendulum, y0, t1=1.0, dt=0.01, saveat=saveat)
    fn_saveat = ds.SaveAt(
        t0=saveat.t0,
        t1=saveat.t1,
        ts=saveat.ts,
        every=saveat.every,
        fn=lambda t, y: (t, pendulum.energy(y)),
    )
    saved = ds.simulate(pendulum, y0, t1=1.0, dt=0.01, saveat=fn_saveat)
    times, energies = saved.ys
    assert np.allclose(times, full.ts)
    assert np.allclose(energies, jax.vmap(pendulum.energy)(full.ys))


def test_jit_matches_eager_and_vmap_matches_loop():
    lengths = jnp.array([0.5, 1.0, 2.0])
    y0 = ds.PhaseState(q=jnp.array(0.3), v=jnp.array(0.0))

    def run(length):
        return ds.simulate(
            ds.systems.Pendulum(length=length, damping=0.1), y0, t1=2.0, dt=0.01
        ).ys.q[-1]

    loop = np.array([run(L) for L in lengths])
    assert np.allclose(jax.jit(run)(1.0), loop[1], rtol=1e-13)
    assert np.allclose(jax.vmap(run)(lengths), loop, rtol=1e-13)
    assert np.allclose(jax.jit(jax.vmap(run))(lengths), loop, rtol=1e-13)


def test_batched_system_fields_broadcast_like_vmap():
    # A system whose fields carry a leading batch axis, with elementwise physics, is a
    # batch of systems in one rollout; so is vmap over a batch of systems.
    lengths = jnp.array([0.5, 1.0, 2.0])
    batch = ds.systems.Pendulum(length=lengths)
    y0 = batch.initial_state(jnp.array([0.1, 0.2, 0.3]))
    broadcast = ds.simulate(batch, y0, t1=1.0, dt=0.01).ys
    # eqx.filter_vmap maps the array fields and broadcasts the Python floats (gravity...).
    vmapped = eqx.filter_vmap(lambda s, y: ds.simulate(s, y, t1=1.0, dt=0.01).ys)(batch, y0)
    assert np.allclose(broadcast.q[0], vmapped.q[:, 0], rtol=1e-13)


def test_custom_system_and_function_wrappers_agree_with_classes():
    pendulum = ds.systems.Pendulum(length=1.5, damping=0.2)
    y0 = pendulum.initial_state(0.8)
    ref = ds.simulate(pendulum, y0, t1=1.0, dt=0.01).ys
    mech = ds.MechanicalSystem(
        lambda t, q, v, p: -(9.81 / p["L"]) * jnp.sin(q) - p["c"] * v, {"L": 1.5, "c": 0.2}
    )
    assert tree_allclose(ds.simulate(mech, y0, t1=1.0, dt=0.01).ys, ref, rtol=1e-13)
    ode = ds.ODESystem(lambda t, y, p: (y[1], -(9.81 / p) * jnp.sin(y[0]) - 0.2 * y[1]), 1.5)
    ys = ds.simulate(ode, (y0.q, y0.v), t1=1.0, dt=0.01).ys
    assert np.allclose(ys[0], ref.q, rtol=1e-13)


def test_time_dependent_vector_field_sees_correct_times():
    # y' = cos(t) from t0 = 1: y(t) = y0 + sin(t) - sin(t0). RK4 integrates it exactly up
    # to the quadrature error of Simpson's rule.
    system = ds.ODESystem(lambda t, y, p: jnp.cos(t) * jnp.ones_like(y), None)
    traj = ds.simulate(system, jnp.array(0.0), t0=1.0, t1=3.0, dt=0.01, saveat=ds.SaveAt(every=50))
    assert np.allclose(traj.ys, np.sin(traj.ts) - np.sin(1.0), atol=1e-11)


def test_float32_state_stays_float32():
    y0 = ds.PhaseState(q=jnp.array(0.5, jnp.float32), v=jnp.array(0.0, jnp.float32))
    traj = ds.simulate(ds.systems.Pendulum(length=1.0), y0, t1=1.0, dt=0.01)
    assert traj.ys.q.dtype == jnp.float32 and traj.ts.dtype == jnp.float32
    ref = ds.simulate(
        ds.systems.Pendulum(length=1.0),
        jax.tree.map(lambda x: x.astype(float), y0),
        t1=1.0,
        dt=0.01,
    )
    assert np.allclose(traj.ys.q, ref.ys.q, atol=1e-5)


def test_integer_initial_state_becomes_float():
    traj = ds.simulate(OSC, ds.PhaseState(q=jnp.array(1), v=jnp.array(0)), t1=0.1, dt=0.01)
    assert jnp.issubdtype(traj.ys.q.dtype, jnp.floating)


def _pendulum_loss(adjoint, integrator, saveat=ds.SaveAt(t1=True)):
    def loss(params):
        length, damping, q0 = params
        p = ds.systems.Pendulum(length=length, damping=damping)
        traj = ds.simulate(
            p,
            p.initial_state(q0),
            t1=3.0,
            dt=0.01,
            integrator=integrator,
            adjoint=adjoint,
            saveat=saveat,
        )
        return jnp.sum(traj.ys.q**2) + jnp.sum(traj.ys.v)

    return loss


@pytest.mark.parametrize(
    "adjoint",
    [ds.Direct(), ds.Checkpointed(), ds.Checkpointed(every=7)],
    ids=["Direct", "Checkpointed", "Checkpointed7"],
)
@pytest.mark.parametrize("integrator", [ds.RK4(), ds.Leapfrog()], ids=["RK4", "Leapfrog"])
@pytest.mark.parametrize(
    "saveat",
    [ds.SaveAt(t1=True), ds.SaveAt(every=30), ds.SaveAt(ts=jnp.array([0.5, 1.234, 3.0]))],
    ids=["t1", "every", "ts"],
)
def test_gradient_matches_finite_differences(adjoint, integrator, saveat):
    params = jnp.array([1.3, 0.15, 0.9])
    loss = _pendulum_loss(adjoint, integrator, saveat)
    grad = jax.grad(loss)(params)
    fd = central_difference(jax.jit(loss), params)
    assert np.allclose(grad, fd, rtol=1e-6, atol=1e-9)


def test_adjoints_agree_and_compose_with_vmap_and_jit():
    params = jnp.array([[1.3, 0.15, 0.9], [0.7, 0.0, -0.4]])
    grads = [
        jax.jit(jax.vmap(jax.grad(_pendulum_loss(a, ds.RK4()))))(params)
        for a in (ds.Direct(), ds.Checkpointed())
    ]
    assert np.allclose(grads[0], grads[1], rtol=1e-12)
    # grad of a vmapped sum equals vmap of grad.
    summed = jax.grad(lambda p: jnp.sum(jax.vmap(_pendulum_loss(ds.Direct(), ds.RK4()))(p)))(params)
    assert np.allclose(summed, grads[0], rtol=1e-12)


def test_gradient_with_respect_to_traced_dt():
    # With n_steps, dt can be traced and differentiated: d q(T)/d dt where T = n dt.
    def final_q(dt):
        return ds.simulate(OSC, Y0, n_steps=200, dt=dt).ys.q[-1]

    grad = jax.grad(final_q)(0.01)
    fd = (final_q(0.01 + 1e-7) - final_q(0.01 - 1e-7)) / 2e-7
    assert np.allclose(grad, fd, rtol=1e-5)
    # exact: dq/dT * n, dq/dT = v(T)
    assert np.allclose(grad, 200 * OSC.solution(2.0, Y0).v, rtol=1e-6)


def test_no_recompilation_on_second_call(caplog):
    pendulum = ds.systems.Pendulum(length=1.0)
    y0 = pendulum.initial_state(0.3)
    ds.simulate(pendulum, y0, t1=1.0, dt=0.01)
    with jax.log_compiles(), caplog.at_level(logging.WARNING):
        caplog.clear()
        other = ds.systems.Pendulum(length=jnp.asarray(2.0), damping=jnp.asarray(0.0))
        ds.simulate(pendulum, pendulum.initial_state(0.7), t1=1.0, dt=0.01)
        ds.simulate(ds.systems.Pendulum(length=1.7), y0, t1=1.0, dt=0.01)
        ds.simulate(other, y0, t1=1.0, dt=0.01)
        ds.simulate(other, y0, t1=1.0, dt=0.01)
    compiles = [
        r
        for r in caplog.records
        if "Compiling" in r.getMessage() and "simulate_fixed" in r.getMessage()
    ]
    # Only the first call with array-valued fields compiles (Python floats are static).
    assert len(compiles) <= 1, [r.getMessage() for r in compiles]


def test_zero_steps_returns_initial_state():
    traj = ds.simulate(OSC, Y0, t1=0.0, dt=0.01, saveat=ds.SaveAt(ts=jnp.array([0.0, 0.0])))
    assert np.allclose(traj.ys.q, [1.0, 1.0])
