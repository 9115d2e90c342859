"""ChargedParticle with ds.Boris: cyclotron radius and frequency, exact |v|, E x B drift,
second-order convergence, comparison with Leapfrog, gradients."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import diffsim as ds
from diffsim.systems import ChargedParticle
from tests.helpers import central_difference, convergence_slope
from tests.systems.conformance import check_precisions, check_vmap_matches_loop


def _gyration(charge, mass, B, v_perp, v_par, t):
    """Exact orbit in a uniform field B along z from the origin with v = (0, v_perp, v_par)
    (Chen, Introduction to Plasma Physics, sec. 2.2): a circle of radius r_L = m v_perp /
    (|e| B) about (sign(e) r_L, 0), traversed at omega_c = |e| B / m."""
    w = charge * B / mass  # signed
    x = v_perp / w * (1 - np.cos(w * t))
    y = v_perp / w * np.sin(w * t)
    return np.stack([x, y, v_par * t], -1)


def test_cyclotron_orbit_radius_frequency_and_exact_speed():
    charge, mass, B = -1.5, 0.7, 2.0
    ion = ChargedParticle(charge=charge, mass=mass, magnetic_field=jnp.array([0.0, 0.0, B]))
    v0 = jnp.array([0.0, 0.8, 0.3])
    y0 = ds.PhaseState(q=jnp.zeros(3), v=v0)
    omega_c = abs(charge) * B / mass
    np.testing.assert_allclose(ion.cyclotron_frequency(), omega_c, rtol=1e-15)
    np.testing.assert_allclose(ion.larmor_radius(y0), mass * 0.8 / (abs(charge) * B), rtol=1e-15)
    period = 2 * math.pi / omega_c
    n = 20_000  # 100 gyrations, 200 steps each
    traj = ds.simulate(
        ion, y0, n_steps=n, dt=100 * period / n, integrator=ds.Boris(), saveat=ds.SaveAt(every=7)
    )
    # |v| is exact (the Boris rotation is a Cayley transform): round-off only.
    np.testing.assert_allclose(np.linalg.norm(traj.ys.v, axis=-1), np.linalg.norm(v0), rtol=1e-13)
    # Along the orbit, up to the O((omega h)^2) phase error accumulated over 100 periods:
    # 100 * 2 pi * (2 pi / 200)^2 / 12 rad.
    exact = _gyration(charge, mass, B, 0.8, 0.3, np.asarray(traj.ts))
    phase = 100 * 2 * math.pi * (2 * math.pi / 200) ** 2 / 12
    np.testing.assert_allclose(traj.ys.q, exact, atol=1.2 * phase * float(ion.larmor_radius(y0)))
    # The guiding centre stays put: the orbit is a circle of the Larmor radius about
    # (sign(e) r_L, 0), whatever the phase error.
    centre = np.array([np.sign(charge) * float(ion.larmor_radius(y0)), 0.0])
    radii = np.linalg.norm(np.asarray(traj.ys.q[:, :2]) - centre, axis=-1)
    np.testing.assert_allclose(radii, float(ion.larmor_radius(y0)), rtol=1e-3)
    assert np.ptp(np.asarray(traj.ys.q[:, 0])) > 1.9 * float(ion.larmor_radius(y0))  # all phases


def test_boris_converges_at_second_order():
    ion = ChargedParticle(magnetic_field=jnp.array([0.3, 0.0, 1.0]) / np.sqrt(1.09))
    y0 = ds.PhaseState(q=jnp.zeros(3), v=jnp.array([0.0, 1.0, 0.2]))
    t1 = 10.0
    # Reference: the exact rotation of v about B, integrated in closed form.
    b = np.array([0.3, 0.0, 1.0]) / np.sqrt(1.09)
    v0 = np.array([0.0, 1.0, 0.2])
    par = np.dot(v0, b) * b
    perp = v0 - par
    # omega = e B / m = b (|B| = 1); v(t) = par + perp cos t - (b x perp) sin t (rotation by -t).
    q_exact = par * t1 + perp * np.sin(t1) + np.cross(b, perp) * (np.cos(t1) - 1)
    dts = [0.1, 0.05, 0.025]
    errors = [
        np.abs(ds.simulate(ion, y0, t1=t1, dt=dt, integrator=ds.Boris()).ys.q[-1] - q_exact).max()
        for dt in dts
    ]
    assert abs(convergence_slope(dts, errors) - 2) < 0.3


def test_exb_drift_is_exact_with_boris_and_leapfrog_lets_speed_drift():
    E, B = np.array([0.0, 0.4, 0.0]), np.array([0.0, 0.0, 2.0])
    ion = ChargedParticle(
        charge=1.0, mass=1.0, electric_field=jnp.asarray(E), magnetic_field=jnp.asarray(B)
    )
    v_d = np.cross(E, B) / np.dot(B, B)  # (0.2, 0, 0)
    np.testing.assert_allclose(ion.drift_velocity(), v_d, atol=1e-16)
    y0 = ds.PhaseState(q=jnp.zeros(3), v=jnp.array([0.0, 0.5, 0.0]))
    period = 2 * math.pi / 2.0
    # Started at the drift velocity the particle moves uniformly: exact for Boris.
    drifting = ds.PhaseState(q=jnp.zeros(3), v=jnp.asarray(v_d))
    traj = ds.simulate(ion, drifting, n_steps=500, dt=period / 50, integrator=ds.Boris())
    np.testing.assert_allclose(traj.ys.v[-1], v_d, atol=1e-14)
    # From any start the guiding centre drifts at v_d: the mean velocity over whole
    # gyrations equals it (to the O(h^2) phase error of the period).
    traj = ds.simulate(ion, y0, n_steps=50 * 200, dt=period / 200, integrator=ds.Boris())
    mean_velocity = np.asarray(traj.ys.q[-1]) / (50 * period)
    np.testing.assert_allclose(mean_velocity, v_d, atol=1e-4)
    # The energy 1/2 m v^2 - e E.x is conserved to O(h^2) with no drift by Boris; the
    # engine's Leapfrog (a velocity predictor, not Boris) drifts secularly.
    saves = ds.SaveAt(every=1000, fn=lambda t, y: ion.energy(y))
    boris = ds.simulate(
        ion, y0, n_steps=20_000, dt=period / 20, integrator=ds.Boris(), saveat=saves
    )
    leap = ds.simulate(
        ion, y0, n_steps=20_000, dt=period / 20, integrator=ds.Leapfrog(), saveat=saves
    )
    e0 = float(ion.energy(y0))
    boris_err = np.abs(np.asarray(boris.ys) - e0).max()
    leap_err = np.abs(np.asarray(leap.ys) - e0).max()
    assert boris_err < 0.02 * e0 and leap_err > 10 * boris_err


def test_boris_refuses_systems_without_the_split():
    with pytest.raises(TypeError, match="gyroscopic_acceleration"):
        p = ds.systems.Projectile()
        ds.simulate(
            p, ds.PhaseState(q=jnp.zeros(3), v=jnp.ones(3)), t1=1.0, dt=0.1, integrator=ds.Boris()
        )


class _Dipole(eqx.Module):
    """B = B0 (0, 0, 1 + x / L): a field with a gradient, differentiable in B0 and L."""

    strength: jax.Array
    scale: jax.Array

    def __call__(self, t, q):
        return self.strength * jnp.stack(
            [jnp.zeros_like(q[..., 0]), jnp.zeros_like(q[..., 0]), 1 + q[..., 0] / self.scale], -1
        )


@pytest.mark.slow  # over 5 s; run with `make test-slow`
def test_gradients_wrt_every_parameter():
    def loss(p):
        charge, mass, ex, ey, b0, scale = p
        ion = ChargedParticle(
            charge=charge,
            mass=mass,
            electric_field=jnp.stack([ex, ey, 0.0 * ex]),
            magnetic_field=_Dipole(b0, scale),
        )
        y0 = ds.PhaseState(q=jnp.zeros(3), v=jnp.array([0.1, 0.5, 0.2]))
        q1 = ds.simulate(ion, y0, t1=3.0, dt=0.01, integrator=ds.Boris()).ys.q[-1]
        return jnp.sum(q1 * jnp.array([1.0, 0.7, 0.3]))

    p = jnp.array([1.2, 0.9, 0.1, -0.05, 1.5, 4.0])
    grad = jax.grad(loss)(p)
    assert np.all(grad != 0)
    np.testing.assert_allclose(grad, central_difference(jax.jit(loss), p), rtol=1e-6)


@pytest.mark.slow  # over 5 s; run with `make test-slow`
def test_jit_vmap_and_precisions():
    y0 = ds.PhaseState(q=jnp.zeros(3), v=jnp.array([0.0, 1.0, 0.1]))

    def make(charge):
        return ChargedParticle(charge=charge, electric_field=jnp.array([0.1, 0.0, 0.0]))

    kw = dict(t1=5.0, dt=0.01, integrator=ds.Boris())
    check_vmap_matches_loop(make, jnp.array([-1.0, 0.5, 2.0]), y0, **kw)
    check_precisions(make, jnp.asarray(1.0), y0, **kw)
