"""Gradients through whole rollouts: every adjoint against finite differences, against
every other, under jit and vmap; Reversible's accuracy on a chaotic system; memory."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import diffsim as ds
from tests.helpers import central_difference

ALL = [ds.Direct(), ds.Checkpointed(), ds.Checkpointed(every=7), ds.Checkpointed(levels=3)]
REVERSIBLE = [ds.Reversible(), ds.Reversible(checkpoint_every=9)]


def _ids(x):
    return repr(x)


def _pendulum_loss(adjoint, integrator, n=300):
    def loss(x):
        length, q0, v0 = x
        p = ds.systems.Pendulum(length=length, gravity=9.81)
        traj = ds.simulate(
            p,
            p.initial_state(q0, v0),
            n_steps=n,
            dt=0.01,
            integrator=integrator,
            adjoint=adjoint,
            saveat=ds.SaveAt(every=50),
        )
        return jnp.sum(traj.ys.q**2) + jnp.sum(traj.ys.v)

    return loss


def _nbody_loss(adjoint, integrator, n=400):
    q0 = jnp.array([[0.0, 0.0], [1.0, 0.1], [-0.3, 1.2]])
    v0 = jnp.array([[0.0, -0.2], [0.1, 0.8], [-0.7, 0.0]])

    def loss(x):
        masses, dq = x[:3], x[3:].reshape(3, 2)
        body = ds.systems.NBody(masses=masses, G=1.0, softening=0.0)
        traj = ds.simulate(
            body,
            ds.PhaseState(q=q0 + dq, v=v0),
            n_steps=n,
            dt=2e-3,
            integrator=integrator,
            adjoint=adjoint,
        )
        return jnp.sum(traj.ys.q[-1] ** 2) + jnp.sum(traj.ys.v[-1, 0])

    return loss, jnp.concatenate([jnp.array([1.0, 0.5, 0.3]), jnp.zeros(6)])


def _lorenz_loss(adjoint, integrator):
    def loss(x):
        sigma, rho, beta, *y0 = x
        traj = ds.simulate(
            ds.systems.Lorenz(sigma=sigma, rho=rho, beta=beta),
            jnp.stack(y0),
            n_steps=500,
            dt=2e-3,
            integrator=integrator,
            adjoint=adjoint,
        )
        return jnp.sum(traj.ys[-1] ** 2)

    return loss, jnp.array([10.0, 28.0, 8 / 3, 1.0, 0.5, 2.0])


@pytest.mark.parametrize("adjoint", ALL + REVERSIBLE, ids=_ids)
@pytest.mark.parametrize("integrator", [ds.Leapfrog(), ds.Yoshida4()], ids=_ids)
def test_pendulum_params_and_initial_state_vs_fd(adjoint, integrator):
    loss = _pendulum_loss(adjoint, integrator)
    x = jnp.array([1.3, 0.9, 0.2])
    fd = central_difference(jax.jit(loss), x)
    assert np.allclose(jax.grad(loss)(x), fd, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("adjoint", ALL, ids=_ids)
def test_pendulum_rk4_damped_vs_fd(adjoint):
    def loss(x):
        p = ds.systems.Pendulum(length=x[0], damping=x[1])
        traj = ds.simulate(p, p.initial_state(x[2]), n_steps=300, dt=0.01, adjoint=adjoint)
        return traj.ys.q[-1]

    x = jnp.array([1.1, 0.3, 0.8])
    assert np.allclose(jax.grad(loss)(x), central_difference(jax.jit(loss), x), rtol=1e-6)


@pytest.mark.parametrize("adjoint", [ds.Direct(), ds.Checkpointed()] + REVERSIBLE, ids=_ids)
def test_nbody_masses_and_positions_vs_fd(adjoint):
    loss, x = _nbody_loss(adjoint, ds.Leapfrog())
    assert np.allclose(
        jax.grad(loss)(x), central_difference(jax.jit(loss), x), rtol=1e-6, atol=1e-9
    )


@pytest.mark.parametrize(
    "adjoint", [ds.Direct(), ds.Checkpointed(), ds.Checkpointed(levels=3)], ids=_ids
)
def test_lorenz_params_and_initial_state_vs_fd(adjoint):
    loss, x = _lorenz_loss(adjoint, ds.RK4())
    assert np.allclose(jax.grad(loss)(x), central_difference(jax.jit(loss), x), rtol=1e-6)


def test_every_adjoint_agrees_with_every_other():
    x = jnp.array([1.3, 0.9, 0.2])
    grads = [
        jax.jit(jax.grad(_pendulum_loss(a, ds.Yoshida4(), n=1000)))(x) for a in ALL + REVERSIBLE
    ]
    for g in grads[1:]:
        assert np.allclose(g, grads[0], rtol=1e-10, atol=0)


@pytest.mark.parametrize("adjoint", [ds.Checkpointed(), ds.Reversible()], ids=_ids)
def test_vmap_of_grad_equals_grad_of_vmap(adjoint):
    xs = jnp.array([[1.3, 0.9, 0.2], [0.7, -0.4, 0.0], [2.0, 0.1, 1.0]])
    loss = _pendulum_loss(adjoint, ds.Leapfrog())
    per_member = jax.jit(jax.vmap(jax.grad(loss)))(xs)
    of_sum = jax.grad(lambda xs: jnp.sum(jax.vmap(loss)(xs)))(xs)
    assert np.allclose(per_member, of_sum, rtol=1e-12)
    loop = np.stack([jax.grad(_pendulum_loss(ds.Direct(), ds.Leapfrog()))(x) for x in xs])
    assert np.allclose(per_member, loop, rtol=1e-10)


def test_reversible_on_chaotic_three_body_documented_accuracy():
    # Burrau's Pythagorean three-body problem: close encounters, gradients of order 1e7
    # after 10^4 steps. The Reversible docstring states the accuracy asserted here.
    q0 = jnp.array([[1.0, 3.0], [-2.0, -1.0], [1.0, -1.0]])

    def loss(adjoint):
        def f(masses):
            body = ds.systems.NBody(masses=masses)
            y0 = ds.PhaseState(q=q0, v=jnp.zeros_like(q0))
            traj = ds.simulate(
                body, y0, n_steps=10_000, dt=1e-3, integrator=ds.Leapfrog(), adjoint=adjoint
            )
            return jnp.sum(traj.ys.q[-1] ** 2)

        return jax.jit(jax.grad(f))

    masses = jnp.array([3.0, 4.0, 5.0])
    ref = loss(ds.Direct())(masses)
    assert float(jnp.max(jnp.abs(ref))) > 1e6  # the problem really is chaotic
    rel = lambda g: float(jnp.max(jnp.abs(g - ref)) / jnp.max(jnp.abs(ref)))  # noqa: E731
    assert rel(loss(ds.Reversible())(masses)) < 3e-9
    assert rel(loss(ds.Reversible(checkpoint_every=100))(masses)) < 1e-11


def test_gradients_finite_at_singular_looking_points():
    # Zero velocity everywhere, zero softening with bodies apart, zero damping.
    q0 = jnp.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])

    def loss(x):
        masses, softening = x[:3], x[3]
        body = ds.systems.NBody(masses=masses, softening=softening)
        traj = ds.simulate(
            body,
            ds.PhaseState(q=q0, v=jnp.zeros_like(q0)),
            n_steps=100,
            dt=1e-3,
            integrator=ds.Leapfrog(),
            adjoint=ds.Reversible(),
        )
        return jnp.sum(traj.ys.q[-1] ** 2)

    g = jax.grad(loss)(jnp.array([1.0, 1.0, 1.0, 0.0]))
    assert np.isfinite(g).all()
    pend = jax.grad(_pendulum_loss(ds.Checkpointed(), ds.Leapfrog()))(jnp.array([1.0, 0.0, 0.0]))
    assert np.isfinite(pend).all()


def test_forward_mode_and_hessian_vector_products():
    x = jnp.array([1.3, 0.9, 0.2])
    direct = _pendulum_loss(ds.Direct(), ds.RK4())
    jac = jax.jacfwd(direct)(x)
    assert np.allclose(jac, jax.grad(direct)(x), rtol=1e-12)
    v = jnp.array([0.3, -1.0, 0.5])
    fd_hvp = (jax.grad(direct)(x + 1e-5 * v) - jax.grad(direct)(x - 1e-5 * v)) / 2e-5
    for adjoint in (ds.Direct(), ds.Checkpointed()):
        loss = _pendulum_loss(adjoint, ds.RK4())
        hvp = jax.jvp(jax.grad(loss), (x,), (v,))[1]
        assert np.allclose(hvp, fd_hvp, rtol=1e-6)
    # N-body forward mode: the custom VJP has none, the autodiff kernel does.
    loss, x = _nbody_loss(ds.Direct(), ds.Leapfrog(), n=50)

    def fwd_loss(x):
        body = ds.systems.NBody(masses=x[:3], lean_gradients=False)
        y0 = ds.PhaseState(q=jnp.eye(3, 2), v=jnp.zeros((3, 2)))
        return jnp.sum(
            ds.simulate(
                body, y0, n_steps=50, dt=1e-3, integrator=ds.Leapfrog(), adjoint=ds.Direct()
            ).ys.q
            ** 2
        )

    assert np.allclose(jax.jacfwd(fwd_loss)(x), jax.grad(fwd_loss)(x), rtol=1e-12)


def test_reversible_refuses_non_reversible_and_velocity_dependent():
    p = ds.systems.Pendulum(length=1.0)
    with pytest.raises(ValueError, match="time-reversible fixed-step integrator.*RK4"):
        ds.simulate(p, p.initial_state(0.5), t1=1.0, dt=0.1, adjoint=ds.Reversible())
    with pytest.raises(ValueError, match="time-reversible"):
        ds.simulate(p, p.initial_state(0.5), t1=1.0, integrator=ds.Tsit5(), adjoint=ds.Reversible())
    damped = ds.systems.Pendulum(length=1.0, damping=0.1)
    with pytest.raises(Exception, match="does not depend on the velocity"):
        ds.simulate(
            damped,
            damped.initial_state(0.5),
            t1=1.0,
            dt=0.1,
            integrator=ds.Leapfrog(),
            adjoint=ds.Reversible(),
        )


def test_backsolve_only_for_adaptive():
    p = ds.systems.Pendulum(length=1.0)
    with pytest.raises(ValueError, match="Backsolve.*adaptive"):
        ds.simulate(p, p.initial_state(0.5), t1=1.0, dt=0.1, adjoint=ds.Backsolve())


@pytest.mark.slow  # 8 s; the engine conformance matrix runs Tsit5 with Backsolve
def test_adaptive_backsolve_agrees_with_direct():
    def loss(adjoint):
        def f(length):
            p = ds.systems.Pendulum(length=length, damping=0.1)
            traj = ds.simulate(
                p,
                p.initial_state(0.5),
                t1=2.0,
                integrator=ds.Tsit5(rtol=1e-10, atol=1e-10),
                adjoint=adjoint,
            )
            return traj.ys.q[-1]

        return f

    direct = jax.grad(loss(ds.Direct()))(1.2)
    # The continuous adjoint is accurate to the solver tolerance, not exact.
    assert np.allclose(jax.grad(loss(ds.Backsolve()))(1.2), direct, rtol=1e-6)


def _temp_bytes(adjoint, n):
    def loss(lengths):
        p = ds.systems.Pendulum(length=lengths)
        traj = ds.simulate(
            p,
            p.initial_state(jnp.ones(64)),
            n_steps=n,
            dt=1e-3,
            integrator=ds.Leapfrog(),
            adjoint=adjoint,
        )
        return jnp.sum(traj.ys.q**2)

    compiled = jax.jit(jax.grad(loss)).lower(jnp.ones(64)).compile()
    return compiled.memory_analysis().temp_size_in_bytes


def test_memory_scaling_of_adjoints():
    # XLA's compiled temp memory (not wall clock): Direct grows linearly in the number of
    # steps, Checkpointed like sqrt(n), Reversible not at all.
    direct = [_temp_bytes(ds.Direct(), n) for n in (1000, 16000)]
    ckpt = [_temp_bytes(ds.Checkpointed(), n) for n in (1000, 16000)]
    rev = [_temp_bytes(ds.Reversible(), n) for n in (1000, 16000)]
    assert direct[1] > 10 * direct[0]
    assert ckpt[1] < 6 * ckpt[0]
    assert rev[1] <= 1.1 * rev[0] + 1024
    assert rev[1] < 0.01 * direct[1] and ckpt[1] < 0.05 * direct[1]


@pytest.mark.parametrize(
    "integrator",
    [ds.Euler(), ds.SemiImplicitEuler(), ds.Leapfrog(), ds.Yoshida4(), ds.RK4()],
    ids=_ids,
)
@pytest.mark.parametrize("adjoint", [ds.Direct(), ds.Checkpointed()], ids=_ids)
def test_every_fixed_integrator_vs_fd_on_harmonic_oscillator(integrator, adjoint):
    # d/d(omega, q0, v0) of the final state, against central differences.
    def loss(x):
        osc = ds.systems.HarmonicOscillator(omega=x[0])
        traj = ds.simulate(
            osc,
            osc.initial_state(x[1], x[2]),
            n_steps=200,
            dt=0.01,
            integrator=integrator,
            adjoint=adjoint,
        )
        return traj.ys.q[-1] + 0.3 * traj.ys.v[-1]

    x = jnp.array([1.7, 0.8, -0.3])
    assert np.allclose(jax.grad(loss)(x), central_difference(jax.jit(loss), x), rtol=1e-6)
