"""Stiff solving (ds.Kvaerno5's defaults against SciPy) and ds.Diffrax, any diffrax solver.

Figures, float64: Van der Pol at mu = 1000 over [0, 3000] at tolerances 1e-6 took 403
accepted and 102 rejected steps (SciPy's Radau: 919 steps; diffrax's Kvaerno5 defaults:
1738 and 1731). Robertson's kinetics to t = 1e11: see `test_robertson_matches_reference`.
"""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

import diffsim as ds
from tests.helpers import central_difference

VERY_CHORD = diffrax.with_stepsize_controller_tols(diffrax.VeryChord)()
OLD_DEFAULTS = dict(root_finder=VERY_CHORD, pcoeff=0.0, icoeff=1.0, safety=0.9)


def test_van_der_pol_steps_rival_scipy_radau():
    mu, t1 = 1000.0, 3000.0
    vdp = ds.systems.VanDerPol(mu=mu)
    traj = ds.simulate(
        vdp, vdp.initial_state(2.0), t1=t1, integrator=ds.Kvaerno5(), max_steps=10_000
    )
    accepted = int(traj.stats["num_accepted_steps"])
    rejected = int(traj.stats["num_rejected_steps"])

    def f(t, y):
        return [y[1], mu * (1 - y[0] ** 2) * y[1] - y[0]]

    radau = solve_ivp(f, (0.0, t1), [2.0, 0.0], method="Radau", rtol=1e-6, atol=1e-6)
    radau_steps = radau.t.size - 1  # 919 measured
    # Targets: accepted <= 2x Radau's, rejected <= 30% of accepted. Measured 403 and 102:
    # the guard leaves 25% headroom on the step count.
    assert accepted <= 2 * radau_steps
    assert accepted <= 500, accepted
    assert rejected <= 0.3 * accepted, (accepted, rejected)
    # The solution at t1 (on the slow branch) agrees with Radau's to the tolerance's scale.
    np.testing.assert_allclose(traj.ys[-1], radau.y[:, -1], rtol=1e-4, atol=1e-6)


def _robertson(t, y, rates):
    k1, k2, k3 = rates
    return jnp.stack(
        [
            -k1 * y[0] + k3 * y[1] * y[2],
            k1 * y[0] - k3 * y[1] * y[2] - k2 * y[1] ** 2,
            k2 * y[1] ** 2,
        ]
    )


# Robertson (1966) at t = 1e11, from the Bari IVP test set (Mazzia and Magherini, problem
# ROBER, computed by RADAU5 at tolerances 1e-12; a SciPy Radau run at rtol 1e-12 agrees to
# 1e-12 relative).
ROBERTSON_T1 = np.array([0.2083340149701255e-07, 0.8333360770334713e-13, 0.9999999791665050])


def test_robertson_matches_reference():
    rates = (0.04, 3e7, 1e4)
    rob = ds.ODESystem(_robertson, rates)
    # Log-spaced save times: the solution evolves on every scale from 1e-5 to 1e11.
    ts = np.logspace(-5, 11, 17)
    traj = ds.simulate(
        rob, jnp.array([1.0, 0.0, 0.0]), t1=1e11, dt=1e-6, saveat=ds.SaveAt(ts=jnp.asarray(ts)),
        integrator=ds.Kvaerno5(rtol=1e-9, atol=1e-11), max_steps=10_000,
    )  # fmt: skip
    ys = np.asarray(traj.ys)
    assert abs(ys[-1, 2] - ROBERTSON_T1[2]) <= 1e-7 * ROBERTSON_T1[2]
    ref = solve_ivp(
        lambda t, y: [-0.04 * y[0] + 1e4 * y[1] * y[2],
                      0.04 * y[0] - 1e4 * y[1] * y[2] - 3e7 * y[1] ** 2, 3e7 * y[1] ** 2],
        (0.0, 1e11), [1.0, 0.0, 0.0], method="BDF", rtol=1e-10, atol=[1e-14, 1e-18, 1e-14],
        t_eval=ts,
    ).y.T  # fmt: skip
    np.testing.assert_allclose(ref[-1], ROBERTSON_T1, rtol=1e-5)  # the reference is sound
    # The state, relative to its size, within 1e-7 at every save time. The small species
    # y1 (2e-8 at t = 1e11) and y2 (8e-14) are relatively less accurate: 3e-5 measured.
    rel = np.linalg.norm(ys - ref, axis=1) / np.linalg.norm(ref, axis=1)
    assert rel.max() <= 1e-7, rel
    np.testing.assert_allclose(ys[-1], ROBERTSON_T1, rtol=1e-4)
    assert int(traj.stats["num_rejected_steps"]) <= 0.1 * int(traj.stats["num_accepted_steps"])


@pytest.mark.slow  # ~5 s of compilation for a check of the documented old settings
def test_old_defaults_are_diffrax_defaults():
    stiff = ds.ODESystem(lambda t, y, k: -k * (y - jnp.cos(t)), 1000.0)
    traj = ds.simulate(
        stiff, jnp.array(0.0), t1=2.0, integrator=ds.Kvaerno5(**OLD_DEFAULTS), max_steps=10_000
    )
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(lambda t, y, args: -1000.0 * (y - jnp.cos(t))), diffrax.Kvaerno5(),
        0.0, 2.0, None, jnp.array(0.0),
        stepsize_controller=diffrax.PIDController(rtol=1e-6, atol=1e-6), max_steps=10_000,
    )  # fmt: skip
    assert np.array_equal(traj.ys, sol.ys)
    assert int(traj.stats["num_steps"]) == int(sol.stats["num_steps"])


OSC = ds.systems.HarmonicOscillator(omega=2.0)
Y0 = ds.PhaseState(q=jnp.array(1.0), v=jnp.array(-0.5))


def test_diffrax_tsit5_equals_ds_tsit5():
    ts = jnp.linspace(0.0, 3.0, 7)
    controller = diffrax.PIDController(rtol=1e-8, atol=1e-8)
    ours = ds.simulate(OSC, Y0, t1=3.0, integrator=ds.Tsit5(rtol=1e-8, atol=1e-8),
                       saveat=ds.SaveAt(ts=ts))  # fmt: skip
    theirs = ds.simulate(OSC, Y0, t1=3.0, integrator=ds.Diffrax(diffrax.Tsit5(), controller),
                         saveat=ds.SaveAt(ts=ts))  # fmt: skip
    assert np.array_equal(ours.ys.q, theirs.ys.q) and np.array_equal(ours.ys.v, theirs.ys.v)
    assert int(ours.stats["num_steps"]) == int(theirs.stats["num_steps"])
    assert ds.Diffrax(diffrax.Tsit5(), controller).rtol == 1e-8
    assert ds.Diffrax(diffrax.Tsit5()).stepsize_controller.rtol == 1e-6  # the default


def test_diffrax_constant_step():
    decay = ds.ODESystem(lambda t, y, rate: -rate * y, 1.0)
    euler = ds.Diffrax(diffrax.Euler(), diffrax.ConstantStepSize())
    assert euler.rtol is None and euler.atol is None
    traj = ds.simulate(decay, jnp.array(1.0), t1=1.0, dt=0.25, integrator=euler)
    np.testing.assert_allclose(traj.ys, [0.75**4], rtol=1e-14)
    assert int(traj.stats["num_accepted_steps"]) == 4
    with pytest.raises(ValueError, match="dt="):
        ds.simulate(decay, jnp.array(1.0), t1=1.0, integrator=euler)


@pytest.mark.parametrize(
    "args,error,word",
    [
        ((ds.Tsit5(),), TypeError, "solver"),
        ((diffrax.Tsit5,), TypeError, "solver"),
        ((diffrax.SRA1(),), ValueError, "solver"),
        ((diffrax.KenCarp3(),), ValueError, "solver"),
        ((diffrax.SemiImplicitEuler(),), ValueError, "solver"),
        ((diffrax.Euler(),), ValueError, "solver"),  # no error estimate for a PID
        ((diffrax.Tsit5(), 1e-6), TypeError, "stepsize_controller"),
    ],
)
def test_diffrax_bad_arguments(args, error, word):
    with pytest.raises(error, match=word):
        ds.Diffrax(*args)


@pytest.mark.parametrize(
    "kwargs,word",
    [
        (dict(root_finder="newton"), "root_finder"),
        (dict(root_find_max_steps=0), "root_find_max_steps"),
        (dict(pcoeff=-0.1), "pcoeff"),
        (dict(safety=0.0), "safety"),
        (dict(factormax=0.5), "factormax"),
        (dict(dtmin=-1.0), "dtmin"),
        (dict(rtol=0.0), "rtol"),
    ],
)
def test_kvaerno5_bad_arguments(kwargs, word):
    with pytest.raises((TypeError, ValueError), match=word):
        ds.Kvaerno5(**kwargs)


@pytest.mark.parametrize(
    "integrator",
    [
        ds.Diffrax(diffrax.Bosh3(), diffrax.PIDController(rtol=1e-10, atol=1e-10)),
        # Newton's method in the stages: its implicit derivative. Slow to compile (~20 s).
        pytest.param(ds.Kvaerno5(rtol=1e-10, atol=1e-10), marks=pytest.mark.slow),
    ],
    ids=["Diffrax-Bosh3", "Kvaerno5"],
)
def test_gradients_match_finite_differences(integrator):
    def loss(x):
        osc = ds.systems.HarmonicOscillator(omega=x[0])
        traj = ds.simulate(osc, osc.initial_state(x[1], x[2]), t1=1.0, integrator=integrator,
                           saveat=ds.SaveAt(ts=jnp.array([0.5, 1.0])), max_steps=10_000)  # fmt: skip
        return jnp.sum(traj.ys.q * jnp.array([1.0, -2.0]) + 0.3 * traj.ys.v)

    x = jnp.array([1.7, 0.8, -0.3])
    # Step-size control makes the solve piecewise smooth in x (see test_engine_matrix).
    np.testing.assert_allclose(
        jax.grad(loss)(x), central_difference(jax.jit(loss), x), rtol=1e-4, atol=1e-7
    )
