"""Kepler: Kepler's equation, elements <-> state, the closed-form orbit, invariants."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import diffsim as ds
from diffsim.systems import Kepler, OrbitalElements, solve_kepler
from tests.helpers import central_difference
from tests.systems.conformance import check_precisions, check_vmap_matches_loop

_ELEMENTS = dict(
    semi_major_axis=1.7,
    eccentricity=0.6,
    inclination=0.4,
    ascending_node=1.1,
    argument_of_periapsis=2.3,
    mean_anomaly=-0.5,
)


def test_solve_kepler_residual_and_derivatives():
    e = jnp.array([0.0, 0.1, 0.5, 0.9, 0.99, 0.999])
    M = jnp.linspace(-20.0, 20.0, 2001)[:, None]
    E = jax.jit(solve_kepler)(M, e)
    # A few ulps of |M| <= 20.
    np.testing.assert_allclose(E - e * jnp.sin(E), jnp.broadcast_to(M, E.shape), atol=1e-14 * 20)
    # Implicit-function derivatives against central differences of the solver itself.
    m0 = jnp.full(e.shape, 0.7)
    dE = jax.vmap(jax.grad(solve_kepler, argnums=(0, 1)))(m0, e)
    h = 1e-7
    fd_M = (solve_kepler(m0 + h, e) - solve_kepler(m0 - h, e)) / (2 * h)
    fd_e = (solve_kepler(m0, e + h) - solve_kepler(m0, e - h)) / (2 * h)
    np.testing.assert_allclose(dE[0], fd_M, rtol=1e-6)
    np.testing.assert_allclose(dE[1], fd_e, rtol=1e-6)


def test_elements_state_round_trip():
    mu = 2.5
    elements = OrbitalElements(**_ELEMENTS)
    y = elements.to_state(mu)
    back = OrbitalElements.from_state(y, mu)
    for name, value in _ELEMENTS.items():
        got = getattr(back, name)
        if name in ("ascending_node", "argument_of_periapsis", "mean_anomaly"):
            got = (got - value + math.pi) % (2 * math.pi) - math.pi + value  # mod 2 pi
        np.testing.assert_allclose(got, value, rtol=1e-12, err_msg=name)
    # Degenerate orbits (circular, equatorial, both, 2-d) still round-trip as states.
    for e, inc, dim in ((0.0, 0.4, 3), (0.3, 0.0, 3), (0.0, 0.0, 3), (0.3, 0.0, 2)):
        el = OrbitalElements(1.3, e, inc, 0.5, 1.0, 2.0)
        y = el.to_state(mu, dim=dim)
        y2 = OrbitalElements.from_state(y, mu).to_state(mu, dim=dim)
        np.testing.assert_allclose(y2.q, y.q, atol=1e-13)
        np.testing.assert_allclose(y2.v, y.v, atol=1e-13)


def test_closed_form_orbit_and_invariants():
    # The exact orbit (Kepler's equation, Murray & Dermott, Solar System Dynamics, ch. 2)
    # against a Yoshida4 rollout over two periods of an e = 0.6 orbit.
    mu = 2.5
    kepler = Kepler(mu=mu)
    y0 = kepler.initial_state(**_ELEMENTS)
    period = float(OrbitalElements(**_ELEMENTS).period(mu))
    n = 16000
    traj = ds.simulate(
        kepler,
        y0,
        n_steps=n,
        dt=2 * period / n,
        integrator=ds.Yoshida4(),
        saveat=ds.SaveAt(every=400),
    )
    exact = jax.vmap(kepler.solution, in_axes=(0, None))(traj.ts, y0)
    # Fourth order at 8000 steps per orbit: the phase error after two orbits is ~3e-10.
    np.testing.assert_allclose(traj.ys.q, exact.q, atol=1e-9)
    np.testing.assert_allclose(traj.ys.v, exact.v, atol=1e-9)
    np.testing.assert_allclose(traj.ys.q[-1], y0.q, atol=1e-9)  # Kepler's third law
    a, e = _ELEMENTS["semi_major_axis"], _ELEMENTS["eccentricity"]
    np.testing.assert_allclose(kepler.energy(y0), -mu / (2 * a), rtol=1e-14)
    np.testing.assert_allclose(
        np.linalg.norm(kepler.angular_momentum(y0)), np.sqrt(mu * a * (1 - e**2)), rtol=1e-14
    )
    # The Laplace-Runge-Lenz vector is conserved and has length e.
    lrl = jax.vmap(kepler.eccentricity_vector)(traj.ys)
    np.testing.assert_allclose(lrl, np.broadcast_to(lrl[0], lrl.shape), atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(lrl[0]), e, rtol=1e-13)


def test_two_body_nbody_relative_motion_is_kepler():
    G, m1, m2 = 0.8, 1.0, 0.3
    kepler = Kepler(mu=G * (m1 + m2))
    rel = kepler.initial_state(1.2, 0.4, 0.3, 0.2, 0.1, 0.0)
    # Bodies at -m2/M r and m1/M r about the centre of mass at rest.
    M = m1 + m2
    y0 = ds.PhaseState(
        q=jnp.stack([-m2 / M * rel.q, m1 / M * rel.q]),
        v=jnp.stack([-m2 / M * rel.v, m1 / M * rel.v]),
    )
    body = ds.systems.NBody(masses=jnp.array([m1, m2]), G=G)
    traj = ds.simulate(body, y0, t1=5.0, dt=1e-3, integrator=ds.Yoshida4())
    exact = kepler.solution(5.0, rel)
    np.testing.assert_allclose(traj.ys.q[-1, 1] - traj.ys.q[-1, 0], exact.q, atol=1e-11)


@pytest.mark.slow  # ~25 s; run with make test-slow
def test_gradients_wrt_mu_and_every_element():
    def final(p):
        mu, *elements = p
        kepler = Kepler(mu=mu)
        y0 = kepler.initial_state(*elements)
        ys = ds.simulate(kepler, y0, t1=3.0, dt=1e-2, integrator=ds.Leapfrog()).ys
        return jnp.sum(ys.q[-1] * jnp.array([1.0, 0.5, -0.3])) + jnp.sum(ys.v[-1])

    p = jnp.array([2.5, *_ELEMENTS.values()])
    grad = jax.grad(final)(p)
    assert np.all(grad != 0)
    np.testing.assert_allclose(grad, central_difference(jax.jit(final), p), rtol=1e-6)

    # The closed form differentiates too, and through the state -> elements map.
    def closed(p):
        mu, *elements = p
        kepler = Kepler(mu=mu)
        y = kepler.solution(3.0, kepler.initial_state(*elements))
        return jnp.sum(y.q * jnp.array([1.0, 0.5, -0.3])) + jnp.sum(y.v)

    np.testing.assert_allclose(
        jax.jit(jax.grad(closed))(p), central_difference(jax.jit(closed), p), rtol=1e-6
    )


@pytest.mark.slow  # over 5 s; run with `make test-slow`
def test_jit_vmap_and_precisions():
    y0 = Kepler(mu=1.0).initial_state(1.0, 0.3, dim=2)

    def make(mu):
        return Kepler(mu=mu)

    check_vmap_matches_loop(
        make, jnp.array([0.8, 1.0, 1.3]), y0, t1=3.0, dt=1e-2, integrator=ds.Yoshida4()
    )
    check_precisions(make, jnp.asarray(1.1), y0, t1=3.0, dt=1e-2, integrator=ds.Yoshida4())
