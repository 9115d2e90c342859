"""Dense output: SaveAt(dense=True) and traj.evaluate(t), fixed-step (cubic Hermite) and
adaptive (diffrax's interpolant); accuracy, order, gradients, batching, repeated knots,
backward time and errors."""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import diffsim as ds
from diffsim.engine._interpolation import HermiteInterpolation
from tests.helpers import central_difference, convergence_slope

OSC = ds.systems.HarmonicOscillator(omega=1.3)
Y0 = ds.PhaseState(q=jnp.array(0.7), v=jnp.array(-0.2))
TSIT5 = ds.Tsit5(rtol=1e-10, atol=1e-10)


def _exact(ts, t0=0.0):
    return jax.vmap(lambda t: OSC.solution(t - t0, Y0))(jnp.ravel(jnp.asarray(ts)))


def test_hermite_is_exact_for_a_cubic_solution():
    # y' = 3t^2 - 2t + 1: RK4 integrates it exactly, and the interpolant is a cubic.
    cubic = ds.ODESystem(lambda t, y, p: (3 * t**2 - 2 * t + 1) * jnp.ones_like(y), None)
    traj = ds.simulate(cubic, jnp.array([0.5]), t1=2.0, dt=0.25, saveat=ds.SaveAt(dense=True))
    t = jnp.linspace(0.0, 2.0, 37)
    exact = t**3 - t**2 + t + 0.5
    np.testing.assert_allclose(traj.evaluate(t)[:, 0], exact, atol=1e-13)


def test_hermite_error_is_fourth_order():
    t = jnp.linspace(0.0, 3.0, 301)
    dts = [0.1, 0.05, 0.025]
    errors = []
    for dt in dts:
        traj = ds.simulate(OSC, Y0, t1=3.0, dt=dt, saveat=ds.SaveAt(dense=True))
        errors.append(float(jnp.max(jnp.abs(traj.evaluate(t).q - _exact(t).q))))
    assert abs(convergence_slope(dts, errors) - 4) < 0.3, errors


@pytest.mark.parametrize("integrator", [ds.RK4(), ds.Leapfrog(), ds.Euler()])
def test_equals_saved_states_at_the_knots(integrator):
    traj = ds.simulate(OSC, Y0, t1=1.0, dt=0.01, integrator=integrator,
                       saveat=ds.SaveAt(every=1, dense=True))  # fmt: skip
    at_knots = traj.evaluate(traj.ts)
    np.testing.assert_allclose(at_knots.q, traj.ys.q, rtol=0, atol=1e-15)
    np.testing.assert_allclose(at_knots.v, traj.ys.v, rtol=0, atol=1e-15)


@pytest.mark.parametrize(
    "saveat",
    [
        ds.SaveAt(t1=True),
        ds.SaveAt(t0=True, t1=True),
        ds.SaveAt(every=7),
        ds.SaveAt(ts=jnp.array([0.0, 0.13, 0.5, 1.0])),
        ds.SaveAt(ts=jnp.array([0.3, 1.0]), fn=lambda t, y: y.q * y.v),
    ],
    ids=["t1", "t0t1", "every", "ts", "fn"],
)
def test_dense_leaves_the_saved_values_unchanged(saveat):
    plain = ds.simulate(OSC, Y0, t1=1.0, dt=0.01, saveat=saveat)
    dense = ds.simulate(OSC, Y0, t1=1.0, dt=0.01,
                        saveat=ds.SaveAt(t0=saveat.t0, t1=saveat.t1, ts=saveat.ts,
                                         every=saveat.every, fn=saveat.fn, dense=True))  # fmt: skip
    np.testing.assert_allclose(dense.ts, plain.ts, atol=1e-15)
    for a, b in zip(jax.tree.leaves(dense.ys), jax.tree.leaves(plain.ys), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-14)
    assert plain.interpolation is None and dense.interpolation is not None


def test_dense_alone_saves_the_final_state():
    saveat = ds.SaveAt(dense=True)
    assert saveat.t1 and saveat.dense
    traj = ds.simulate(OSC, Y0, t1=1.0, dt=0.01, saveat=saveat)
    assert traj.ts.shape == (1,) and traj.ys.q.shape == (1,)


def test_evaluate_shapes():
    batch = ds.PhaseState(q=jnp.ones((4, 2)), v=jnp.zeros((4, 2)))
    wide = ds.simulate(OSC, batch, t1=1.0, dt=0.01, saveat=ds.SaveAt(dense=True))
    assert wide.evaluate(0.5).q.shape == (4, 2)
    assert wide.evaluate(jnp.zeros((2, 3))).q.shape == (2, 3, 4, 2)


def test_outside_the_range_is_clamped():
    traj = ds.simulate(OSC, Y0, t1=1.0, dt=0.01, saveat=ds.SaveAt(t0=True, t1=True, dense=True))
    out = traj.evaluate(jnp.array([-1.0, 2.0]))
    np.testing.assert_allclose(out.q, traj.ys.q, atol=1e-15)


@pytest.mark.slow  # ~10 s: two diffrax compiles; test_backward_dense covers Tsit5 quickly
def test_adaptive_dense_is_diffrax_interpolant():
    ts = jnp.array([0.0, 0.37, 1.1, 2.0])
    traj = ds.simulate(OSC, Y0, t1=2.0, integrator=TSIT5,
                       saveat=ds.SaveAt(ts=ts, dense=True))  # fmt: skip
    # diffrax saves at ts through the same interpolant.
    np.testing.assert_allclose(traj.evaluate(ts).q, traj.ys.q, rtol=0, atol=1e-14)
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(lambda t, y, args: OSC.vector_field(t, y)), diffrax.Tsit5(), 0.0, 2.0,
        None, Y0, saveat=diffrax.SaveAt(dense=True),
        stepsize_controller=diffrax.PIDController(rtol=1e-10, atol=1e-10),
    )  # fmt: skip
    t = jnp.linspace(0.0, 2.0, 33)
    ours, theirs = traj.evaluate(t), jax.vmap(sol.evaluate)(t)
    # Equal with today's controller; 1e-9 leaves room for a change of step-size controller.
    np.testing.assert_allclose(ours.q, theirs.q, atol=1e-9)
    np.testing.assert_allclose(ours.q, _exact(t).q, atol=1e-8)


@pytest.mark.parametrize(
    "integrator",
    [ds.RK4(), pytest.param(TSIT5, marks=pytest.mark.slow)],  # ~9 s: diffrax compiles
    ids=["RK4", "Tsit5"],
)
def test_gradients_wrt_parameter_and_time(integrator):
    def loss(x):
        osc = ds.systems.HarmonicOscillator(omega=x[0])
        traj = ds.simulate(osc, osc.initial_state(0.7, -0.2), t1=2.0, dt=0.01,
                           integrator=integrator, saveat=ds.SaveAt(dense=True))  # fmt: skip
        y = traj.evaluate(jnp.array([x[1], x[1] + 0.61]))
        return jnp.sum(y.q * jnp.array([1.0, -2.0]) + 0.3 * y.v)

    x = jnp.array([1.3, 0.427])
    fd = central_difference(jax.jit(loss), x)
    # adaptive: step-size control makes the solve piecewise smooth (see the matrix test)
    rtol = 1e-6 if isinstance(integrator, ds.RK4) else 1e-4
    np.testing.assert_allclose(jax.grad(loss)(x), fd, rtol=rtol, atol=1e-8)


def test_time_derivative_is_the_vector_field():
    traj = ds.simulate(OSC, Y0, t1=2.0, dt=0.01, saveat=ds.SaveAt(dense=True))
    dq = jax.grad(lambda t: traj.evaluate(t).q)(0.734)
    np.testing.assert_allclose(dq, _exact(0.734).v[0], atol=1e-6)


def test_vmap_and_ensemble():
    omegas = jnp.array([0.5, 1.3, 2.0])
    t = jnp.array([0.25, 0.8])

    def run(omega):
        osc = ds.systems.HarmonicOscillator(omega=omega)
        return ds.simulate(osc, Y0, t1=1.0, dt=0.01, saveat=ds.SaveAt(dense=True))

    one_by_one = jnp.stack([run(w).evaluate(t).q for w in omegas])
    np.testing.assert_allclose(jax.vmap(lambda w: run(w).evaluate(t).q)(omegas), one_by_one)
    batched = jax.vmap(run)(omegas)  # the interpolant is batched like ys
    assert batched.interpolation.ts.shape == (3, 101)
    np.testing.assert_allclose(jax.vmap(lambda tr: tr.evaluate(t).q)(batched), one_by_one)
    res = ds.ensemble(lambda w: run(w).evaluate(t).q, omegas)
    np.testing.assert_allclose(res.values, one_by_one)


def test_repeated_knots_take_the_right_side():
    # A jump at t = 1 (the state before and after it, as an event emits) and a repeated
    # final knot (after a terminal event).
    ts = jnp.array([0.0, 1.0, 1.0, 2.0, 2.0])
    ys = jnp.array([0.0, 1.0, 5.0, 6.0, 6.0])
    interp = HermiteInterpolation(ts=ts, ys=ys, fs=jnp.ones(5))
    out = interp.evaluate(jnp.array([0.5, 1.0 - 1e-9, 1.0, 1.5, 2.0, 3.0]))
    np.testing.assert_allclose(out, [0.5, 1.0 - 1e-9, 5.0, 5.5, 6.0, 6.0], atol=1e-12)
    grads = jax.vmap(jax.grad(interp.evaluate))(jnp.array([1.0, 1.5, 2.0]))
    assert np.all(np.isfinite(grads))
    np.testing.assert_allclose(grads[:2], [1.0, 1.0])
    # Backwards (decreasing knots): at the jump the later knot, the state after it.
    back = HermiteInterpolation(ts=-ts[:4] + 2.0, ys=ys[:4], fs=-jnp.ones(4))
    np.testing.assert_allclose(back.evaluate(jnp.array([1.5, 1.0, 0.5])), [0.5, 5.0, 5.5])


@pytest.mark.parametrize("integrator", [ds.RK4(), TSIT5], ids=["RK4", "Tsit5"])
def test_backward_dense(integrator):
    traj = ds.simulate(OSC, Y0, t0=1.0, t1=-1.0, dt=0.01, integrator=integrator,
                       saveat=ds.SaveAt(dense=True))  # fmt: skip
    t = jnp.linspace(-1.0, 1.0, 41)
    np.testing.assert_allclose(traj.evaluate(t).q, _exact(t, t0=1.0).q, atol=1e-8)
    np.testing.assert_allclose(traj.evaluate(5.0).q, Y0.q, atol=1e-15)  # clamped to t0


def test_failure_check_kept_when_only_evaluate_is_used():
    blowup = ds.ODESystem(lambda t, y, p: y**2, None)
    run = jax.jit(lambda y0: ds.simulate(blowup, y0, t1=1.5, dt=0.01,
                                         saveat=ds.SaveAt(dense=True)).evaluate(0.5))  # fmt: skip
    assert np.isfinite(run(jnp.array(0.2)))
    with pytest.raises(Exception, match="non-finite"):
        run(jnp.array(1.0)).block_until_ready()


def test_errors():
    traj = ds.simulate(OSC, Y0, t1=1.0, dt=0.01)
    with pytest.raises(ValueError, match=r"SaveAt\(dense=True\)"):
        traj.evaluate(0.5)
    with pytest.raises(ValueError, match="dense=True.*Reversible"):
        ds.simulate(OSC, Y0, t1=1.0, dt=0.01, integrator=ds.Leapfrog(),
                    adjoint=ds.Reversible(), saveat=ds.SaveAt(dense=True))  # fmt: skip
    with pytest.raises(ValueError, match="dense=True.*Backsolve"):
        ds.simulate(OSC, Y0, t1=1.0, integrator=ds.Tsit5(), adjoint=ds.Backsolve(),
                    saveat=ds.SaveAt(dense=True))  # fmt: skip
    with pytest.raises(TypeError, match="dense"):
        ds.SaveAt(dense="yes")
