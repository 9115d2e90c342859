"""Adaptive and stiff integrators through diffrax, behind the same simulate call."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import diffsim as ds
from tests.helpers import central_difference

OSC = ds.systems.HarmonicOscillator(omega=2.0)
Y0 = ds.PhaseState(q=jnp.array(1.0), v=jnp.array(-0.5))


@pytest.mark.parametrize(
    "integrator", [ds.Tsit5(rtol=1e-10, atol=1e-10), ds.Dopri8(), ds.Kvaerno5(rtol=1e-8, atol=1e-8)]
)
def test_adaptive_matches_closed_form(integrator):
    ts = jnp.linspace(0.0, 3.0, 7)
    traj = ds.simulate(OSC, Y0, t1=3.0, integrator=integrator, saveat=ds.SaveAt(ts=ts))
    exact = jax.vmap(OSC.solution, in_axes=(0, None))(ts, Y0)
    assert np.allclose(traj.ys.q, exact.q, atol=1e-6)
    assert int(traj.stats["num_steps"]) > 0


def test_tighter_tolerance_is_more_accurate():
    exact = OSC.solution(3.0, Y0).q
    errors = [
        abs(
            float(
                ds.simulate(OSC, Y0, t1=3.0, integrator=ds.Tsit5(rtol=tol, atol=tol)).ys.q[-1]
                - exact
            )
        )
        for tol in (1e-4, 1e-8)
    ]
    assert errors[1] < errors[0] / 100


def test_kvaerno5_on_stiff_problem():
    # y' = -lam (y - cos t): stiff for lam = 1e4; the solution hugs cos t. An explicit
    # method would need ~lam steps; the L-stable Kvaerno5 takes few.
    lam = 1e4
    system = ds.ODESystem(lambda t, y, p: -p * (y - jnp.cos(t)), lam)
    traj = ds.simulate(system, jnp.array(0.0), t1=2.0, integrator=ds.Kvaerno5(rtol=1e-6, atol=1e-8))
    # Exact: y = (lam^2 cos t + lam sin t)/(lam^2 + 1) - lam^2/(lam^2+1) e^{-lam t}
    t = 2.0
    exact = (lam**2 * np.cos(t) + lam * np.sin(t)) / (lam**2 + 1)
    assert np.allclose(traj.ys[-1], exact, rtol=1e-5)
    assert int(traj.stats["num_steps"]) < 500


@pytest.mark.parametrize(
    "adjoint", [ds.Direct(), ds.Checkpointed()], ids=["Direct", "Checkpointed"]
)
def test_adaptive_gradient_matches_finite_differences(adjoint):
    def loss(params):
        length, q0 = params
        p = ds.systems.Pendulum(length=length, damping=0.1)
        traj = ds.simulate(
            p,
            p.initial_state(q0),
            t1=2.0,
            integrator=ds.Tsit5(rtol=1e-10, atol=1e-10),
            adjoint=adjoint,
        )
        return traj.ys.q[-1]

    params = jnp.array([1.2, 0.4])
    assert np.allclose(jax.grad(loss)(params), central_difference(jax.jit(loss), params), rtol=1e-5)


def test_adaptive_saveat_fn_and_t0():
    traj = ds.simulate(
        OSC,
        Y0,
        t1=1.0,
        integrator=ds.Tsit5(),
        saveat=ds.SaveAt(t0=True, t1=True, fn=lambda t, y: OSC.energy(y)),
    )
    assert traj.ys.shape == (2,) and np.allclose(traj.ys, OSC.energy(Y0), rtol=1e-5)


def test_adaptive_refuses_every_and_n_steps():
    with pytest.raises(ValueError, match="SaveAt\\(ts=times\\)"):
        ds.simulate(OSC, Y0, t1=1.0, integrator=ds.Tsit5(), saveat=ds.SaveAt(every=2))
    with pytest.raises(ValueError, match="needs t1="):
        ds.simulate(OSC, Y0, n_steps=10, dt=0.1, integrator=ds.Tsit5())


def test_adaptive_max_steps_result_code():
    traj = ds.simulate(
        OSC, Y0, t1=100.0, integrator=ds.Tsit5(rtol=1e-12, atol=1e-12), max_steps=10, throw=False
    )
    assert traj.result == ds.RESULTS.max_steps_reached
    with pytest.raises(Exception, match="max_steps"):
        ds.simulate(OSC, Y0, t1=100.0, integrator=ds.Tsit5(), max_steps=10)


def test_bad_tolerance():
    with pytest.raises(ValueError, match="rtol=...\\) must be a positive number"):
        ds.Tsit5(rtol=-1.0)
