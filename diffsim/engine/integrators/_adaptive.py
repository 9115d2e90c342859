"""Adaptive and stiff integrators, delegated to diffrax.

These classes are thin strategy objects: `simulate` turns them into a
`diffrax.diffeqsolve` call with a `PIDController(rtol, atol)` (`engine/_adaptive_rollout.py`).
Each solver is diffrax's, unchanged; we only choose, configure and translate (save times,
adjoints, result codes).
"""

import abc

import diffrax
import equinox as eqx

from ._base import AbstractIntegrator


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
