"""The adaptive rollout: one `diffrax.diffeqsolve` (private).

Contract: `simulate_adaptive(system, y0, t0, t1, dt, integrator, ...)` solves from `t0`
to `t1` (backwards when `t1 < t0`, with `dt` already signed by `simulate`) with the diffrax solver that `integrator` stands for and
its step-size controller (`integrator.diffrax_controller()`), with arguments `simulate`
has already checked, and translates diffsim's save policy, adjoint and result codes to
diffrax's and back.
"""

from typing import Any

import diffrax
import jax.numpy as jnp

from ._adjoints import AbstractAdjoint, Backsolve, reverse_mode_only
from ._interpolation import DiffraxInterpolation
from ._saveat import SaveAt
from ._solution import RESULTS, Trajectory
from .integrators import AbstractAdaptiveIntegrator


def result_code(result) -> RESULTS:
    """diffsim's code for a diffrax result (an event is a success)."""
    ok = (result == diffrax.RESULTS.successful) | (result == diffrax.RESULTS.event_occurred)
    return RESULTS.where(
        ok,
        RESULTS.successful,
        RESULTS.where(
            result == diffrax.RESULTS.max_steps_reached,
            RESULTS.max_steps_reached,
            RESULTS.adaptive_failed,
        ),
    )


def _vector_field(t, y, system):
    return system.vector_field(t, y)


DEFAULT_MAX_STEPS = 4096


def simulate_adaptive(
    system: Any,
    y0: Any,
    t0: Any,
    t1: Any,
    dt: Any,
    integrator: AbstractAdaptiveIntegrator,
    saveat: SaveAt,
    adjoint: AbstractAdjoint,
    max_steps: int | None,
    forward_only: bool = False,
) -> Trajectory:
    """One `diffrax.diffeqsolve` call; see `simulate` for the arguments. `forward_only`:
    the solve will be differentiated in forward mode only (`diffrax.ForwardMode`)."""
    if saveat.every is not None:
        raise ValueError(
            "SaveAt(every=k) counts fixed steps and has no meaning for the adaptive "
            f"integrator {type(integrator).__name__}; use SaveAt(ts=times) instead."
        )
    fn = saveat.fn
    if fn is not None and isinstance(adjoint, Backsolve):
        raise ValueError(
            "adjoint=ds.Backsolve() cannot save SaveAt(fn=...) (diffrax's continuous adjoint "
            "needs the states themselves); save the states and apply fn afterwards."
        )
    # With dense=True diffrax also keeps its interpolant (of the state, not of fn).
    subsaveat = diffrax.SaveAt(t0=saveat.t0, t1=saveat.t1, ts=saveat.ts, dense=saveat.dense)
    if fn is not None:
        subsaveat = diffrax.SaveAt(
            t0=saveat.t0, t1=saveat.t1, ts=saveat.ts, fn=lambda t, y, args: fn(t, y),
            dense=saveat.dense,
        )  # fmt: skip
    # Checkpointed and Backsolve are custom VJPs in diffrax: reverse mode only. Direct
    # (diffrax.DirectAdjoint) differentiates in both modes.
    sub_adjoint = diffrax.ForwardMode() if forward_only else adjoint.to_diffrax()
    controller = integrator.diffrax_controller()
    if dt is None and isinstance(controller, diffrax.ConstantStepSize):
        raise ValueError(
            f"{type(integrator).__name__} steps with diffrax.ConstantStepSize(): pass dt= "
            "to simulate (the step)."
        )
    with reverse_mode_only(f"ds.{type(adjoint).__name__}()", "Use adjoint=ds.Direct()."):
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(_vector_field),
            integrator.diffrax_solver(),
            t0,
            t1,
            dt,
            y0,
            args=system,
            saveat=subsaveat,
            stepsize_controller=controller,
            adjoint=sub_adjoint,
            max_steps=DEFAULT_MAX_STEPS if max_steps is None else max_steps,
            throw=False,  # simulate raises from the result (see _errors.py)
        )
    result = result_code(sol.result)
    stats = {
        "num_steps": sol.stats["num_steps"],
        "num_accepted_steps": sol.stats["num_accepted_steps"],
        "num_rejected_steps": sol.stats["num_rejected_steps"],
    }
    interpolation = DiffraxInterpolation(sol.interpolation) if saveat.dense else None
    return Trajectory(
        ts=jnp.asarray(sol.ts), ys=sol.ys, result=result, stats=stats, interpolation=interpolation
    )
