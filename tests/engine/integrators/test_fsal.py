"""First-same-as-last: Leapfrog and Yoshida4 carry the acceleration between steps when it
cannot depend on the velocity. The rollouts, their gradients under every adjoint and the
reconstruction of Reversible are those of the two-evaluation step; the loop body holds
one force evaluation (Leapfrog) or three (Yoshida4) instead of two or six."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import diffsim as ds
from diffsim.engine import _fixed as _rollout
from diffsim.engine.integrators._base import ignores_velocity


def _pendulum(t, q, v, p):
    return -p["w2"] * jnp.sin(q)


def _damped(t, q, v, p):
    return -p["w2"] * jnp.sin(q) - p["c"] * v


def _hidden_velocity(t, q, v, p):
    return jax.jit(lambda q, v: -p["w2"] * jnp.sin(q) + 0.0 * v)(q, v)


def test_ignores_velocity_is_structural():
    q, v = jnp.array([0.3, 0.1]), jnp.array([0.0, 0.2])
    assert ignores_velocity(ds.MechanicalSystem(_pendulum, {"w2": 2.0}), 0.0, q, v)
    assert not ignores_velocity(ds.MechanicalSystem(_damped, {"w2": 2.0, "c": 0.0}), 0.0, q, v)
    # Through a sub-program the dependence is assumed.
    assert not ignores_velocity(ds.MechanicalSystem(_hidden_velocity, {"w2": 2.0}), 0.0, q, v)
    y = ds.PhaseState(q=jnp.ones((4, 3)), v=jnp.zeros((4, 3)))
    nbody = ds.systems.NBody(masses=jnp.ones(4))
    assert ignores_velocity(nbody, 0.0, y.q, y.v)


def _count_in_loops(jaxpr, name="sin"):
    """The number of `name` operations in the body of each scan, sub-programs included."""

    def count(jaxpr):
        total = 0
        for eqn in jaxpr.eqns:
            total += eqn.primitive.name == name
            for value in eqn.params.values():
                inner = getattr(value, "jaxpr", value)
                if hasattr(inner, "eqns") and eqn.primitive.name != "scan":
                    total += count(inner)
        return total

    found = []

    def walk(jaxpr):
        for eqn in jaxpr.eqns:
            if eqn.primitive.name == "scan":
                found.append(count(eqn.params["jaxpr"].jaxpr))
            for value in eqn.params.values():
                inner = getattr(value, "jaxpr", value)
                if hasattr(inner, "eqns"):
                    walk(inner)

    walk(jaxpr)
    return found


@pytest.mark.parametrize(
    "integrator, evaluations",
    [(ds.Leapfrog(), 1), (ds.Yoshida4(), 3)],
    ids=["Leapfrog", "Yoshida4"],
)
def test_one_force_evaluation_per_substep(integrator, evaluations):
    system = ds.MechanicalSystem(_pendulum, {"w2": 2.0})
    y0 = ds.PhaseState(q=jnp.array(1.0), v=jnp.array(0.0))
    run = lambda: ds.simulate(system, y0, t1=1.0, dt=0.01, integrator=integrator).ys  # noqa: E731
    counts = _count_in_loops(jax.make_jaxpr(run)().jaxpr)
    assert counts and max(counts) == evaluations, counts
    damped = ds.MechanicalSystem(_damped, {"w2": 2.0, "c": 0.1})
    run = lambda: ds.simulate(damped, y0, t1=1.0, dt=0.01, integrator=integrator).ys  # noqa: E731
    assert max(_count_in_loops(jax.make_jaxpr(run)().jaxpr)) == 2 * evaluations


@pytest.mark.parametrize(
    "integrator, adjoint",
    [
        (ds.Leapfrog(), ds.Direct()),
        # The Reversible variants compile for ~6 s each: make test-slow.
        pytest.param(ds.Leapfrog(), ds.Reversible(checkpoint_every=7), marks=pytest.mark.slow),
        (ds.Yoshida4(), ds.Checkpointed()),
        pytest.param(ds.Yoshida4(), ds.Reversible(), marks=pytest.mark.slow),
    ],
    ids=["Leapfrog-Direct", "Leapfrog-Reversible7", "Yoshida4-Checkpointed", "Yoshida4-Reversible"],
)
def test_fsal_equals_two_evaluation_steps(monkeypatch, integrator, adjoint):
    # Kepler orbits: values along the orbit and gradients with respect to the initial
    # state and the mass, with and without carrying the acceleration.
    def loss(params):
        gm, vy = params
        system = ds.systems.Kepler(mu=gm)
        y0 = ds.PhaseState(q=jnp.array([1.0, 0.0]), v=jnp.array([0.0, vy]))
        traj = ds.simulate(
            system, y0, t1=3.0, dt=0.01, integrator=integrator, adjoint=adjoint,
            saveat=ds.SaveAt(every=50),
        )  # fmt: skip
        return jnp.sum(traj.ys.q**2 * jnp.arange(1, traj.ys.q.shape[0] + 1)[:, None])

    params = jnp.array([1.0, 1.1])
    jax.clear_caches()
    fsal = loss(params), jax.grad(loss)(params)
    monkeypatch.setattr(_rollout, "uses_fsal", lambda *a: False)
    jax.clear_caches()
    plain = loss(params), jax.grad(loss)(params)
    # The same arithmetic: values agree exactly, gradients to 4e-15 (the reverse pass
    # sums the reused force's cotangents in another order).
    np.testing.assert_allclose(fsal[0], plain[0], rtol=1e-14)
    np.testing.assert_allclose(fsal[1], plain[1], rtol=1e-13)
