"""Fixed-step explicit Runge-Kutta from a Butcher tableau: Tsit5Fixed."""

import diffrax
import jax.numpy as jnp
import numpy as np

import diffsim as ds
from tests.helpers import convergence_slope

OSC = ds.systems.HarmonicOscillator(omega=1.3)
Y0 = ds.PhaseState(q=jnp.array([1.0, -0.4]), v=jnp.array([0.5, 0.2]))


def _final_error(integrator, dt, t1=2.0):
    traj = ds.simulate(OSC, Y0, t1=t1, dt=dt, integrator=integrator)
    exact = OSC.solution(t1, Y0)
    return max(
        float(jnp.max(jnp.abs(traj.ys.q[-1] - exact.q))),
        float(jnp.max(jnp.abs(traj.ys.v[-1] - exact.v))),
    )


def test_tsit5_fixed_convergence_order_5():
    # Steps where the error (~1e-4 .. 1e-8) is far above float64 round-off.
    dts = [0.2, 0.1, 0.05]
    errors = [_final_error(ds.Tsit5Fixed(), dt) for dt in dts]
    assert abs(convergence_slope(dts, errors) - 5) < 0.3, errors


def test_tsit5_fixed_is_diffrax_tsit5_at_constant_step():
    # The same tableau as diffrax's Tsit5: at a constant step the two agree to round-off
    # (diffrax sums b_i (h k_i), we sum h (b_i k_i)).
    lorenz = ds.systems.Lorenz()
    y0 = jnp.array([1.0, 0.0, 0.0])
    ours = ds.simulate(lorenz, y0, t1=0.5, dt=0.01, integrator=ds.Tsit5Fixed()).ys[-1]
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(lambda t, y, args: lorenz.vector_field(t, y)),
        diffrax.Tsit5(),
        0.0,
        0.5,
        0.01,
        y0,
        stepsize_controller=diffrax.ConstantStepSize(),
    )
    np.testing.assert_allclose(ours, sol.ys[-1], rtol=1e-12)


def test_six_evaluations_a_step_and_properties():
    # Tsit5 is FSAL: its seventh stage is only the next step's first, so it is skipped.
    calls = []

    class Counted(ds.AbstractSystem):
        def vector_field(self, t, y):
            calls.append(t)
            return -y

    ds.Tsit5Fixed().step(Counted(), 0.0, jnp.ones(2), 0.1)
    assert len(calls) == 6
    integrator = ds.Tsit5Fixed()
    assert (integrator.order, integrator.symplectic, integrator.reversible) == (5, False, False)
    assert not integrator.mechanical and isinstance(integrator, ds.AbstractFixedStepIntegrator)
    out = integrator.step(OSC, 0.0, Y0, 0.0)
    assert np.array_equal(out.q, Y0.q) and np.array_equal(out.v, Y0.v)


def test_custom_tableau_subclass_has_its_order():
    class Heun(ds.AbstractExplicitRK):
        tableau = diffrax.ButcherTableau(
            c=np.array([1.0]),
            b_sol=np.array([0.5, 0.5]),
            b_error=np.zeros(2),
            a_lower=(np.array([1.0]),),
        )
        order = 2

    dts = [0.04, 0.02, 0.01]
    errors = [_final_error(Heun(), dt) for dt in dts]
    assert abs(convergence_slope(dts, errors) - 2) < 0.3, errors


def test_float32():
    y0 = jnp.array([1.0, 0.0, 0.0], jnp.float32)
    traj = ds.simulate(ds.systems.Lorenz(), y0, n_steps=5, dt=0.01, integrator=ds.Tsit5Fixed())
    assert traj.ys.dtype == jnp.float32
    ref = ds.simulate(ds.systems.Lorenz(), y0.astype(jnp.float64), n_steps=5, dt=0.01)
    np.testing.assert_allclose(traj.ys, ref.ys, rtol=1e-5, atol=1e-6)  # float32 rounding
