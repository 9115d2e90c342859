"""The integrators' stability limits, which `simulate` uses to refuse an explicit step
that would blow up, are the edges of their stability regions: just inside, the linear
test problem's amplification is <= 1; just outside, it is > 1."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import diffsim as ds


def _amplification_first_order(integrator, matrix, dt):
    """Spectral radius of one step's map on y' = A y."""
    system = ds.ODESystem(lambda t, y, a: a @ y, jnp.asarray(matrix))
    jac = jax.jacfwd(lambda y: integrator.step(system, 0.0, y, dt))(jnp.ones(len(matrix)))
    return np.max(np.abs(np.linalg.eigvals(np.asarray(jac))))


def _amplification_mechanical(integrator, dt):
    """Spectral radius of one step's map on q'' = -q."""
    system = ds.MechanicalSystem(lambda t, q, v, p: -q, None)

    def step(y):
        out = integrator.step(system, 0.0, ds.PhaseState(q=y[0], v=y[1]), dt)
        return jnp.stack([out.q, out.v])

    jac = jax.jacfwd(step)(jnp.ones(2))
    return np.max(np.abs(np.linalg.eigvals(np.asarray(jac))))


DECAY = np.array([[-1.0]])
ROTATION = np.array([[0.0, -1.0], [1.0, 0.0]])


@pytest.mark.parametrize("integrator", [ds.Euler(), ds.RK4(), ds.Tsit5Fixed()], ids=type)
def test_decay_limit_is_the_edge(integrator):
    limit = integrator.stability_decay
    assert _amplification_first_order(integrator, DECAY, 0.999 * limit) <= 1 + 1e-12
    assert _amplification_first_order(integrator, DECAY, 1.01 * limit) > 1


def test_rk4_oscillation_limit_is_the_edge():
    limit = ds.RK4().stability_oscillation
    assert np.isclose(limit, 2 * np.sqrt(2), rtol=1e-3)
    assert _amplification_first_order(ds.RK4(), ROTATION, 0.999 * limit) <= 1 + 1e-12
    assert _amplification_first_order(ds.RK4(), ROTATION, 1.01 * limit) > 1


@pytest.mark.parametrize(
    "integrator", [ds.SemiImplicitEuler(), ds.Leapfrog(), ds.Yoshida4()], ids=type
)
def test_mechanical_oscillation_limit_is_the_edge(integrator):
    limit = integrator.stability_oscillation
    assert _amplification_mechanical(integrator, 0.999 * limit) <= 1 + 1e-9
    assert _amplification_mechanical(integrator, 1.01 * limit) > 1
