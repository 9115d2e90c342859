"""ds.WisdomHolman: exact two-body orbits at any step, bounded energy error on the outer
solar system (near Yoshida4's accuracy at ten times its step), time reversibility,
gradients (finite differences, forward mode, the Reversible adjoint), vmap, float32,
and the refusal of systems it cannot integrate."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import diffsim as ds
from tests.helpers import central_difference

WH = ds.WisdomHolman()


def _last(traj):
    return jax.tree.map(lambda x: x[-1], traj.ys)


def _two_body(d=3):
    system = ds.systems.NBody(masses=jnp.array([1.0, 0.3]), G=1.0)
    q = jnp.array([[0.1, -0.2, 0.0], [1.1, 0.0, 0.1]])[:, :d]
    v = jnp.array([[0.0, 0.05, 0.0], [0.0, 1.3, 0.2]])[:, :d]
    return system, ds.PhaseState(q=q, v=v)


@pytest.mark.parametrize("d", [2, 3])
@pytest.mark.parametrize("dt", [0.01, 0.7, 5.0, 23.0])
def test_two_bodies_are_exact_at_any_step(d, dt):
    # In Jacobi coordinates two bodies are one Kepler orbit and a uniform centre of mass:
    # the interaction kick is zero and the drift exact, whatever the step (e = 0.77 here,
    # periods of 5.3, so the longer steps span several orbits).
    system, y0 = _two_body(d)
    n = 20
    y = _last(ds.simulate(system, y0, n_steps=n, dt=dt, integrator=WH))
    kepler = ds.systems.Kepler(mu=1.3)
    rel0 = ds.PhaseState(q=y0.q[1] - y0.q[0], v=y0.v[1] - y0.v[0])
    if d == 2:  # Kepler's closed form is 3-d
        pad = lambda x: jnp.concatenate([x, jnp.zeros(1)])  # noqa: E731
        rel0 = ds.PhaseState(q=pad(rel0.q), v=pad(rel0.v))
    exact = kepler.solution(n * dt, rel0)
    # Round-off grows with the number of periods spanned (about 90 at dt = 23).
    np.testing.assert_allclose(y.q[1] - y.q[0], exact.q[:d], atol=1e-10)
    np.testing.assert_allclose(y.v[1] - y.v[0], exact.v[:d], atol=1e-10)
    centre = lambda y: jnp.sum(system.masses[:, None] * y.q, 0) / 1.3  # noqa: E731
    momentum = jnp.sum(system.masses[:, None] * y0.v, 0) / 1.3
    np.testing.assert_allclose(centre(y), centre(y0) + n * dt * momentum, atol=1e-11)


@pytest.mark.slow  # ~9 s: 2000 years of the outer planets, and Yoshida4 beside it
def test_outer_solar_system_energy_bounded_and_beats_yoshida4():
    # Sun, Jupiter, Saturn (the others removed) for 2000 years at dt = 100 days.
    full, y0 = ds.systems.solar_system(barycentric=True)
    system = ds.systems.NBody(masses=full.masses[:3], G=full.G)
    y0 = ds.PhaseState(q=y0.q[:3], v=y0.v[:3])
    energy = lambda t, y: system.energy(y)  # noqa: E731
    n = 7305
    traj = ds.simulate(
        system, y0, n_steps=n, dt=100.0, integrator=WH, saveat=ds.SaveAt(every=15, fn=energy)
    )
    error = np.abs(np.asarray(traj.ys) / float(system.energy(y0)) - 1)
    # O(eps dt^2) with eps = 1e-3: a few 1e-7, and no drift: the last quarter's worst is
    # no larger than the first quarter's (secular growth would make it 4x larger).
    assert error.max() < 3e-6
    quarter = len(error) // 4
    assert error[-quarter:].max() < 1.5 * error[:quarter].max()
    # Position accuracy after 3600 days against Yoshida4 at dt = 1 day as the truth.
    # Measured: WH at dt = 100 days 1.9e-6 AU; Yoshida4 1.4e-6 at dt = 10 (30x the force
    # evaluations), 2.2e-5 at dt = 20, 1.4e-2 at dt = 100. (Over 100 years WH's phase
    # error, O(eps dt^2) per orbit, grows to 2.7x Yoshida4's at dt = 10.)

    def final(integrator, dt):
        steps = round(3600.0 / dt)
        return _last(ds.simulate(system, y0, n_steps=steps, dt=dt, integrator=integrator)).q

    truth = final(ds.Yoshida4(), 1.0)
    wh_error = np.abs(final(WH, 100.0) - truth).max()
    assert wh_error < 2 * np.abs(final(ds.Yoshida4(), 10.0) - truth).max()
    assert wh_error < 0.2 * np.abs(final(ds.Yoshida4(), 20.0) - truth).max()
    assert wh_error < 1e-3 * np.abs(final(ds.Yoshida4(), 100.0) - truth).max()


def test_time_reversible():
    system, y0 = ds.systems.solar_system(barycentric=True)
    forward = _last(ds.simulate(system, y0, n_steps=500, dt=100.0, integrator=WH))
    back = _last(ds.simulate(system, forward, n_steps=500, dt=-100.0, integrator=WH))
    np.testing.assert_allclose(back.q, y0.q, atol=1e-10)
    np.testing.assert_allclose(back.v, y0.v, atol=1e-13)


@pytest.mark.slow  # compile-bound: ~16 s on a 2-core CPU
def test_zero_step_and_zero_velocity():
    system, y0 = _two_body()
    same = WH.step(system, 0.0, y0, 0.0)
    np.testing.assert_allclose(same.q, y0.q, atol=1e-15)
    np.testing.assert_allclose(same.v, y0.v, atol=1e-15)
    # A planet released at rest falls radially; values and gradients stay finite.
    still = ds.PhaseState(q=y0.q, v=jnp.zeros_like(y0.v))

    def loss(v):
        y = ds.PhaseState(q=still.q, v=v)
        traj = ds.simulate(system, y, n_steps=5, dt=0.1, integrator=WH, adjoint=ds.Direct())
        return jnp.sum(_last(traj).q)

    assert np.all(np.isfinite(jax.grad(loss)(still.v)))


def _loss_function(adjoint=None):
    full, y0 = ds.systems.solar_system(barycentric=True)
    y0 = ds.PhaseState(q=y0.q[:4], v=y0.v[:4])

    def loss(masses, v):
        system = ds.systems.NBody(masses=masses, G=full.G)
        kwargs = {} if adjoint is None else dict(adjoint=adjoint)
        traj = ds.simulate(
            system, ds.PhaseState(q=y0.q, v=v), n_steps=30, dt=100.0, integrator=WH, **kwargs
        )
        return jnp.sum(_last(traj).q[1:] ** 2)

    return jax.jit(loss), full.masses[:4], y0.v


@pytest.mark.slow  # compile-bound: ~27 s on a 2-core CPU (reverse, forward, differences)
def test_gradients_match_finite_differences_and_forward_mode():
    loss, masses, v = _loss_function()
    g_m, g_v = jax.grad(loss, argnums=(0, 1))(masses, v)
    fd_m = central_difference(lambda m: loss(m, v), masses, eps=1e-7)
    fd_v = central_difference(lambda w: loss(masses, w), v, eps=1e-8)
    np.testing.assert_allclose(g_m, fd_m, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(g_v, fd_v, rtol=1e-5, atol=1e-3)
    tangent = jnp.ones_like(v)
    _, jvp = jax.jvp(lambda w: loss(masses, w), (v,), (tangent,))
    np.testing.assert_allclose(jvp, jnp.sum(g_v * tangent), rtol=1e-9)


@pytest.mark.slow  # two gradient compilations, about 15 s on the 2-core CI machine
def test_reversible_adjoint_equals_direct():
    direct, masses, v = _loss_function(ds.Direct())
    reversible, _, _ = _loss_function(ds.Reversible())
    g_direct = jax.grad(direct, argnums=(0, 1))(masses, v)
    g_reversible = jax.grad(reversible, argnums=(0, 1))(masses, v)
    for a, b in zip(g_direct, g_reversible, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-9)


def test_vmap_over_initial_states_equals_a_loop():
    system, y0 = ds.systems.solar_system(barycentric=True)
    scales = jnp.array([0.99, 1.0, 1.01])

    def final(scale):
        y = ds.PhaseState(q=y0.q, v=y0.v * scale)
        return _last(ds.simulate(system, y, n_steps=50, dt=100.0, integrator=WH)).q

    batched = jax.jit(jax.vmap(final))(scales)
    for i, s in enumerate(scales):
        np.testing.assert_allclose(batched[i], final(s), rtol=1e-12, atol=1e-12)


@pytest.mark.slow  # float32 compilations of the rollout and its gradient, about 10 s
def test_float32():
    system, y0 = ds.systems.solar_system(barycentric=True, dtype=jnp.float32)
    traj = ds.simulate(system, y0, n_steps=100, dt=100.0, integrator=WH, adjoint=ds.Direct())
    y = _last(traj)
    assert y.q.dtype == jnp.float32
    # Round-off of float32 (the method's own error is 1e-7 here).
    assert abs(float(system.energy(y) / system.energy(y0)) - 1) < 3e-5
    grad = jax.grad(
        lambda v: jnp.sum(
            _last(
                ds.simulate(
                    system,
                    ds.PhaseState(q=y0.q, v=v),
                    n_steps=100,
                    dt=100.0,
                    integrator=WH,
                    adjoint=ds.Direct(),
                )
            ).q
        )
    )(y0.v)
    assert grad.dtype == jnp.float32 and np.all(np.isfinite(grad))


def test_softening_enters_the_kick():
    # Softening is a position-only perturbation in the kick: with a tiny softening
    # length the orbit is that of the unsoftened system to O(eps^2 / r^2).
    system, y0 = _two_body()
    soft = ds.systems.NBody(masses=system.masses, G=1.0, softening=1e-3)
    a = _last(ds.simulate(system, y0, n_steps=50, dt=0.05, integrator=WH)).q
    b = _last(ds.simulate(soft, y0, n_steps=50, dt=0.05, integrator=WH)).q
    assert 0 < np.abs(a - b).max() < 1e-4


def test_refuses_systems_it_cannot_integrate():
    pendulum = ds.systems.Pendulum(length=1.0)
    with pytest.raises(TypeError, match="WisdomHolman.*masses"):
        ds.simulate(pendulum, pendulum.initial_state(0.5), n_steps=2, dt=0.1, integrator=WH)
    decay = ds.ODESystem(lambda t, y, rate: -rate * y, 1.0)
    with pytest.raises(TypeError, match="WisdomHolman"):
        ds.simulate(decay, jnp.array(1.0), n_steps=2, dt=0.1, integrator=WH)
    system, y0 = _two_body()
    with pytest.raises(ValueError, match="central body"):
        massless = ds.systems.NBody(masses=jnp.array([0.0, 1.0]))
        ds.simulate(massless, y0, n_steps=2, dt=0.1, integrator=WH)
