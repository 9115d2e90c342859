"""The engine's conformance matrix: every integrator x every adjoint x every SaveAt mode x
both modes of autodiff, on the harmonic oscillator.

A supported cell differentiates a scalar of the saved states with respect to (omega, q0,
v0) and checks reverse mode against central differences, forward mode against reverse
mode. A cell unsupported by design is declared by `unsupported` with a one-line reason and
must raise a TypeError or ValueError naming the adjoint, the integrator or the save mode,
before any JAX internals. The cheap half runs in `make test`; `make test-slow` runs all.
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
    DENSE_TIMES,
    FIXED,
    MODES,
    SAVES,
    name,
    unsupported,
)
from tests.helpers import central_difference


def matrix_loss(integrator, adjoint, saveat, *, t1=1.0, dense_times=DENSE_TIMES, events=None):
    """A scalar of the saved states of (omega, q0, v0); with `events`, plus 0.7 times the
    sum of the logged event times (`test_event_matrix.py`)."""
    adaptive = not isinstance(integrator, ds.AbstractFixedStepIntegrator)
    timing = dict(t1=t1) if adaptive else dict(t1=t1, dt=0.01)
    with_events = dict(events=events, max_events=4) if events is not None else {}

    def loss(x):
        osc = ds.systems.HarmonicOscillator(omega=x[0])
        traj = ds.simulate(
            osc, osc.initial_state(x[1], x[2]), integrator=integrator, adjoint=adjoint,
            saveat=saveat, max_steps=10_000, **timing, **with_events,
        )  # fmt: skip
        ys = traj.evaluate(dense_times) if saveat.dense else traj.ys
        out = ys if saveat.fn is not None else ys.q + 0.3 * ys.v
        value = jnp.sum(jnp.sin(jnp.arange(1, out.size + 1)) * out.ravel())
        if events is None:
            return value
        times = traj.events.times
        return value + 0.7 * jnp.sum(jnp.where(jnp.isfinite(times), times, 0.0))

    return loss


def expect_refusal(derivative, loss, x, why) -> None:
    """An unsupported cell raises a short TypeError/ValueError naming what to change."""
    reason, word = why
    with pytest.raises((TypeError, ValueError)) as info:
        derivative(loss)(x)
    message = str(info.value)
    assert word in message, (reason, message)
    assert len(message) < 600 and "jaxpr" not in message, message


def _cells():
    for integrator, adjoint, save, mode in itertools.product(
        FIXED + ADAPTIVE, ADJOINTS, SAVES, MODES
    ):
        cell = (integrator, adjoint, save, mode)
        # make test: every adjoint and mode on one integrator of each kind, saving at
        # given times (the path with the most machinery); the rest with make test-slow.
        cheap = save == "ts" and isinstance(integrator, (ds.Leapfrog, ds.RK4, ds.Tsit5))
        marks = () if cheap else (pytest.mark.slow,)
        ident = f"{name(integrator)}-{name(adjoint)}-{save}-{mode}"
        yield pytest.param(*cell, id=ident, marks=marks)


@pytest.mark.parametrize("integrator,adjoint,save,mode", list(_cells()))
def test_engine_cell(integrator, adjoint, save, mode):
    loss = matrix_loss(integrator, adjoint, SAVES[save]())
    x = jnp.array([1.7, 0.8, -0.3])
    why = unsupported(integrator, adjoint, save, mode)
    derivative = jax.grad if mode == "reverse" else jax.jacfwd
    if why is not None:
        expect_refusal(derivative, loss, x, why)
        return
    value = derivative(loss)(x)
    if mode == "reverse" and isinstance(integrator, ds.AbstractFixedStepIntegrator):
        fd = central_difference(jax.jit(loss), x)
        np.testing.assert_allclose(value, fd, rtol=1e-6, atol=1e-8)
    elif mode == "reverse":
        # Step-size control makes an adaptive solve piecewise smooth in its parameters:
        # a difference quotient across a change of accepted steps sees a jump of the
        # tolerance's size (measured 3e-4 relative with Dopri8's interpolant). So against
        # differences loosely, and exactly against plain autodiff of the same solve.
        # Dense output between accepted steps is the solver's interpolant, whose own error
        # (far above rtol for Dopri8's large steps) moves with the steps as the
        # parameters change: differences see it, the derivative of the solve does not
        # (measured 1.6e-4 absolute, Dopri8). Checked exactly against Direct below.
        fd = central_difference(jax.jit(loss), x)
        np.testing.assert_allclose(value, fd, rtol=3e-3, atol=5e-4 if save == "dense" else 1e-6)
        direct = jax.grad(matrix_loss(integrator, ds.Direct(), SAVES[save]()))(x)
        exact = not isinstance(adjoint, ds.Backsolve)  # the continuous adjoint is not
        np.testing.assert_allclose(value, direct, rtol=1e-9 if exact else 1e-5, atol=1e-10)
    else:
        np.testing.assert_allclose(value, jax.grad(loss)(x), rtol=1e-6, atol=1e-10)
