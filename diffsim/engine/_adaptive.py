"""Adaptive and stiff integrators, delegated to diffrax.

These classes are thin strategy objects: `simulate` turns them into a
`diffrax.diffeqsolve` call with a `PIDController(rtol, atol)`. Each solver is diffrax's,
unchanged; we only choose, configure and translate (save times, adjoints, result codes).
"""

import abc
from typing import Any

import diffrax
import equinox as eqx
import jax.numpy as jnp

from ._adjoints import AbstractAdjoint, Backsolve
from ._integrators import AbstractIntegrator
from ._saveat import SaveAt
from ._solution import RESULTS, Trajectory


class AbstractAdaptiveIntegrator(AbstractIntegrator):
    """An adaptive-step integrator backed by a diffrax solver.

    `dt` passed to `simulate` is the initial step; `None` lets diffrax choose it.
    """

    rtol: eqx.AbstractVar[float]
    atol: eqx.AbstractVar[float]

    @abc.abstractmethod
    def diffrax_solver(self) -> diffrax.AbstractSolver:
        """The diffrax solver this integrator stands for."""

    def __check_init__(self):
        for name in ("rtol", "atol"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and value > 0):
                raise ValueError(
                    f"{type(self).__name__}({name}=...) must be a positive number; got {value!r}."
                )


class Tsit5(AbstractAdaptiveIntegrator):
    """Tsitouras' 5(4) explicit Runge-Kutta method with adaptive steps
    (`diffrax.Tsit5`); the first choice for non-stiff problems.

    **Example:** `ds.simulate(system, y0, t1=10.0, integrator=ds.Tsit5(rtol=1e-8, atol=1e-8))`
    """

    rtol: float = 1e-6
    atol: float = 1e-6

    def diffrax_solver(self):
        return diffrax.Tsit5()


class Dopri8(AbstractAdaptiveIntegrator):
    """Dormand-Prince 8(7) explicit Runge-Kutta method (`diffrax.Dopri8`), for tight
    tolerances on smooth non-stiff problems (orbits)."""

    rtol: float = 1e-8
    atol: float = 1e-8

    def diffrax_solver(self):
        return diffrax.Dopri8()


class Kvaerno5(AbstractAdaptiveIntegrator):
    """Kvaerno's 5(4) ESDIRK method (`diffrax.Kvaerno5`): L-stable and implicit, for stiff
    problems (fine PDE grids, chemistry, Van der Pol with large mu)."""

    rtol: float = 1e-6
    atol: float = 1e-6

    def diffrax_solver(self):
        return diffrax.Kvaerno5()


def _vector_field(t, y, system):
    return system.vector_field(t, y)


_DIFFRAX_MAX_STEPS = 4096


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
    throw: bool,
) -> Trajectory:
    """One `diffrax.diffeqsolve` call; see `simulate` for the arguments."""
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
    subsaveat = diffrax.SaveAt(t0=saveat.t0, t1=saveat.t1, ts=saveat.ts)
    if fn is not None:
        subsaveat = diffrax.SaveAt(
            t0=saveat.t0, t1=saveat.t1, ts=saveat.ts, fn=lambda t, y, args: fn(t, y)
        )
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(_vector_field),
        integrator.diffrax_solver(),
        t0,
        t1,
        dt,
        y0,
        args=system,
        saveat=subsaveat,
        stepsize_controller=diffrax.PIDController(rtol=integrator.rtol, atol=integrator.atol),
        adjoint=adjoint.to_diffrax(),
        max_steps=_DIFFRAX_MAX_STEPS if max_steps is None else max_steps,
        throw=throw,
    )
    result = RESULTS.where(
        sol.result == diffrax.RESULTS.successful,
        RESULTS.successful,
        RESULTS.where(
            sol.result == diffrax.RESULTS.max_steps_reached,
            RESULTS.max_steps_reached,
            RESULTS.adaptive_failed,
        ),
    )
    stats = {
        "num_steps": sol.stats["num_steps"],
        "num_accepted_steps": sol.stats["num_accepted_steps"],
        "num_rejected_steps": sol.stats["num_rejected_steps"],
    }
    return Trajectory(ts=jnp.asarray(sol.ts), ys=sol.ys, result=result, stats=stats)
