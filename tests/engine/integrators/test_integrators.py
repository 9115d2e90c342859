"""Fixed-step integrators: order of convergence, symplecticity, reversibility."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import diffsim as ds
from tests.helpers import convergence_slope

OSC = ds.systems.HarmonicOscillator(omega=1.3)
Y0 = ds.PhaseState(q=jnp.array([1.0, -0.4]), v=jnp.array([0.5, 0.2]))

FIXED = [ds.Euler(), ds.SemiImplicitEuler(), ds.Leapfrog(), ds.Yoshida4(), ds.RK4()]
# Step sizes where each method is in its asymptotic regime and well above round-off.
DTS = {
    1: [0.02, 0.01, 0.005, 0.0025],
    2: [0.04, 0.02, 0.01, 0.005],
    3: [0.04, 0.02, 0.01, 0.005],
    4: [0.2, 0.1, 0.05, 0.025],
}


def _final_error(system, y0, integrator, dt, t1, exact):
    traj = ds.simulate(system, y0, t1=t1, dt=dt, integrator=integrator)
    final = jax.tree.map(lambda x: x[-1], traj.ys)
    diffs = jax.tree.map(lambda a, b: jnp.max(jnp.abs(a - b)), final, exact)
    return float(max(jax.tree.leaves(diffs)))


@pytest.mark.parametrize("integrator", FIXED, ids=lambda i: type(i).__name__)
def test_convergence_order_harmonic(integrator):
    t1 = 2.0
    exact = OSC.solution(t1, Y0)
    dts = DTS[integrator.order]
    errors = [_final_error(OSC, Y0, integrator, dt, t1, exact) for dt in dts]
    assert abs(convergence_slope(dts, errors) - integrator.order) < 0.3, errors


@pytest.mark.parametrize("integrator", [ds.Euler(), ds.RK4()], ids=lambda i: type(i).__name__)
def test_convergence_order_first_order_system(integrator):
    # Lorenz below the pitchfork (rho < 1): smooth decay, a clean test of order on a
    # non-mechanical, nonlinear system. Reference: RK4 at a 64x finer step.
    lorenz = ds.systems.Lorenz(rho=0.5)
    y0 = jnp.array([1.0, 0.5, 2.0])
    exact = ds.simulate(lorenz, y0, t1=1.0, dt=1e-4, integrator=ds.RK4()).ys[-1]
    dts = {1: [0.01, 0.005, 0.0025, 0.00125], 4: [0.04, 0.02, 0.01, 0.005]}[integrator.order]
    errors = [_final_error(lorenz, y0, integrator, dt, 1.0, exact) for dt in dts]
    assert abs(convergence_slope(dts, errors) - integrator.order) < 0.3, errors


@pytest.mark.parametrize(
    "integrator,order",
    [(ds.Leapfrog(), 2), (ds.Yoshida4(), 3), (ds.SemiImplicitEuler(), 1), (ds.RK4(), 4)],
    ids=lambda x: type(x).__name__ if not isinstance(x, int) else str(x),
)
def test_convergence_with_velocity_dependent_force(integrator, order):
    # Damping makes the force depend on v. Leapfrog keeps order 2 through its velocity
    # predictor; Yoshida4's base step is then not symmetric, so the triple jump lifts
    # order 2 to 3 only (as its docstring says).
    pendulum = ds.systems.Pendulum(length=1.0, damping=0.7)
    y0 = pendulum.initial_state(1.2, 0.3)
    ref = ds.simulate(pendulum, y0, t1=2.0, integrator=ds.Dopri8(rtol=1e-13, atol=1e-13))
    exact = jax.tree.map(lambda x: x[-1], ref.ys)
    dts = DTS[order] if order != 4 else [0.1, 0.05, 0.025, 0.0125]
    errors = [_final_error(pendulum, y0, integrator, dt, 2.0, exact) for dt in dts]
    assert abs(convergence_slope(dts, errors) - order) < 0.3, errors


@pytest.mark.parametrize(
    "integrator",
    [ds.SemiImplicitEuler(), ds.Leapfrog(), ds.Yoshida4()],
    ids=lambda i: type(i).__name__,
)
def test_symplectic_energy_error_bounded(integrator):
    # 10^5 steps of a large-amplitude pendulum: a symplectic method's energy error
    # oscillates but does not grow, so the worst error of the last tenth of the run is
    # no larger than that of the first tenth.
    pendulum = ds.systems.Pendulum(length=1.0)
    y0 = pendulum.initial_state(2.0)
    n = 100_000
    traj = ds.simulate(
        pendulum,
        y0,
        n_steps=n,
        dt=0.05,
        integrator=integrator,
        saveat=ds.SaveAt(every=10, fn=lambda t, y: pendulum.energy(y)),
    )
    err = np.abs(np.asarray(traj.ys) - float(pendulum.energy(y0)))
    tenth = len(err) // 10
    early, late = err[:tenth].max(), err[-tenth:].max()
    assert late < 1.5 * early
    assert err.max() < {1: 0.5, 2: 0.05, 4: 1e-3}[integrator.order] * float(pendulum.energy(y0))


def test_rk4_energy_drifts_where_symplectic_does_not():
    # The same measure catches a non-symplectic method: RK4's error grows secularly.
    pendulum = ds.systems.Pendulum(length=1.0)
    y0 = pendulum.initial_state(2.0)
    traj = ds.simulate(
        pendulum,
        y0,
        n_steps=100_000,
        dt=0.05,
        integrator=ds.RK4(),
        saveat=ds.SaveAt(every=10, fn=lambda t, y: pendulum.energy(y)),
    )
    err = np.abs(np.asarray(traj.ys) - float(pendulum.energy(y0)))
    tenth = len(err) // 10
    assert err[-tenth:].max() > 5 * err[:tenth].max()


@pytest.mark.parametrize(
    "integrator", [ds.Leapfrog(), ds.Yoshida4()], ids=lambda i: type(i).__name__
)
def test_time_reversible(integrator):
    body = ds.systems.NBody(masses=jnp.array([1.0, 0.5, 0.2]))
    y = ds.PhaseState(
        q=jnp.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.5]]),
        v=jnp.array([[0.0, -0.1], [0.0, 0.9], [-0.7, 0.0]]),
    )
    forward = integrator.step(body, 0.0, y, 0.01)
    back = integrator.step(body, 0.01, forward, -0.01)
    assert np.allclose(back.q, y.q, atol=1e-14) and np.allclose(back.v, y.v, atol=1e-14)
    assert not np.allclose(forward.q, y.q)


def test_zero_step_is_identity():
    for integrator in FIXED:
        out = integrator.step(OSC, 0.0, Y0, 0.0)
        assert np.array_equal(out.q, Y0.q) and np.array_equal(out.v, Y0.v)


def test_integrator_properties():
    assert [i.order for i in FIXED] == [1, 1, 2, 4, 4]
    assert [i.symplectic for i in FIXED] == [False, True, True, True, False]
    assert [i.reversible for i in FIXED] == [False, False, True, True, False]


@pytest.mark.parametrize("integrator", [ds.SemiImplicitEuler(), ds.Leapfrog(), ds.Yoshida4()])
def test_symplectic_refuses_first_order_system(integrator):
    with pytest.raises(TypeError, match="mechanical systems.*Lorenz.*RK4"):
        ds.simulate(ds.systems.Lorenz(), jnp.ones(3), t1=1.0, dt=0.1, integrator=integrator)


def test_symplectic_refuses_state_without_q_v():
    with pytest.raises(TypeError, match="PhaseState"):
        ds.simulate(OSC, jnp.ones(2), t1=1.0, dt=0.1, integrator=ds.Leapfrog())
