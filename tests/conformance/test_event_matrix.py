"""The engine's conformance matrix with events: every integrator x every adjoint x every
SaveAt mode x both modes of autodiff, on a harmonic oscillator bouncing off a wall.

The oscillator $q = q_0 \\cos \\omega t + \\ldots$ meets a wall at $q = -0.6$ (a falling
crossing) that reverses and damps its velocity; the loss weighs the saved states and the
logged event times, so a cell checks the implicit-function derivative of the event times
and its effect through the reset. Unsupported cells are declared with the reason and must
raise a TypeError or ValueError naming it, as in `test_engine_matrix.py`.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import diffsim as ds
from tests.conformance.engine_cases import (
    ADAPTIVE,
    ADJOINTS,
    FIXED,
    MODES,
    SAVES,
    name,
    unsupported_with_events,
)
from tests.conformance.test_engine_matrix import expect_refusal, matrix_loss
from tests.helpers import central_difference

WALL = ds.Event(
    lambda t, y: y.q + 0.6, direction=-1, reset=lambda t, y: ds.PhaseState(y.q, -0.8 * y.v)
)


def _wall_loss(integrator, adjoint, saveat):
    return matrix_loss(
        integrator, adjoint, saveat, t1=3.0, dense_times=jnp.array([0.4, 1.7, 2.9]), events=WALL
    )


def _cells():
    for integrator, adjoint, save, mode in itertools.product(
        FIXED + ADAPTIVE, ADJOINTS, SAVES, MODES
    ):
        # make test: one cell, the default adjoint in reverse mode saving at given times;
        # each cell compiles for 5-30 s (a scan with the event search, differentiated),
        # so the other 479 run in make test-slow.
        cheap = (save, mode) == ("ts", "reverse") and isinstance(integrator, ds.RK4)
        cheap = cheap and isinstance(adjoint, ds.Checkpointed)
        marks = () if cheap else (pytest.mark.slow,)
        ident = f"{name(integrator)}-{name(adjoint)}-{save}-{mode}"
        yield pytest.param(integrator, adjoint, save, mode, id=ident, marks=marks)


@pytest.mark.parametrize("integrator,adjoint,save,mode", list(_cells()))
def test_event_cell(integrator, adjoint, save, mode):
    loss = _wall_loss(integrator, adjoint, SAVES[save]())
    x = jnp.array([1.7, 0.8, -0.3])  # the wall is met once, at t = 1.4
    why = unsupported_with_events(integrator, adjoint, save, mode)
    derivative = jax.grad if mode == "reverse" else jax.jacfwd
    if why is not None:
        expect_refusal(derivative, loss, x, why)
        return
    value = derivative(loss)(x)
    if mode == "forward":
        np.testing.assert_allclose(value, jax.grad(loss)(x), rtol=1e-6, atol=1e-10)
        return
    fd = central_difference(jax.jit(loss), x)
    if isinstance(integrator, ds.AbstractFixedStepIntegrator):
        np.testing.assert_allclose(value, fd, rtol=1e-6, atol=1e-6)
        return
    # Adaptive solves are piecewise smooth in their parameters (test_engine_matrix.py);
    # with Dopri8's long steps the differences move with the event's step by 3e-3
    # relative. So loosely against differences, exactly against Direct.
    np.testing.assert_allclose(value, fd, rtol=1e-2, atol=1e-6)
    direct = jax.grad(_wall_loss(integrator, ds.Direct(), SAVES[save]()))(x)
    np.testing.assert_allclose(value, direct, rtol=1e-9, atol=1e-10)
