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

    A subclass declares the fields `rtol` and `atol` (the tolerances of diffrax's
    `PIDController`) and returns its diffrax solver from `diffrax_solver`.

    **Example:**

    ```python
    import diffrax

    class Bosh3(ds.AbstractAdaptiveIntegrator):
        rtol: float = 1e-4
        atol: float = 1e-4

        def diffrax_solver(self):
            return diffrax.Bosh3()

    decay = ds.ODESystem(lambda t, y, rate: -rate * y, 1.0)
    traj = ds.simulate(decay, jnp.array(1.0), t1=1.0, integrator=Bosh3())
    print(traj.ys)  # [0.3677...], against exp(-1) = 0.3679
    ```
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

    **Example:**

    ```python
    pendulum = ds.systems.Pendulum(length=1.0)
    traj = ds.simulate(pendulum, pendulum.initial_state(0.5), t1=10.0,
                       integrator=ds.Tsit5(rtol=1e-6, atol=1e-6),
                       saveat=ds.SaveAt(ts=jnp.linspace(0.0, 10.0, 5)))
    print(traj.ys.q)  # [ 0.5  0.0731 -0.4791 -0.2129  0.4179]
    print(traj.stats["num_accepted_steps"])  # 98
    ```
    """

    rtol: float = 1e-6
    atol: float = 1e-6

    def diffrax_solver(self):
        return diffrax.Tsit5()


class Dopri8(AbstractAdaptiveIntegrator):
    """Dormand-Prince 8(7) explicit Runge-Kutta method (`diffrax.Dopri8`), for tight
    tolerances on smooth non-stiff problems (orbits).

    **Example:**

    ```python
    osc = ds.systems.HarmonicOscillator(omega=1.0)
    y0 = osc.initial_state(1.0)
    traj = ds.simulate(osc, y0, t1=10.0, integrator=ds.Dopri8())
    print(traj.ys.q - osc.solution(10.0, y0).q)  # [1.2e-07]: float32 round-off
    ```
    """

    rtol: float = 1e-8
    atol: float = 1e-8

    def diffrax_solver(self):
        return diffrax.Dopri8()


class Kvaerno5(AbstractAdaptiveIntegrator):
    """Kvaerno's 5(4) ESDIRK method (`diffrax.Kvaerno5`): L-stable and implicit, for stiff
    problems (fine PDE grids, chemistry, Van der Pol with large mu).

    **Example:** the Prothero-Robinson problem $\\dot y = -k (y - \\cos t)$ with $k = 1000$,
    where an explicit method needs $dt < 2.8/k$ (3600 steps of `ds.RK4`):

    ```python
    stiff = ds.ODESystem(lambda t, y, k: -k * (y - jnp.cos(t)), 1000.0)
    # In float32 the default tolerances (1e-6) meet round-off here and exhaust max_steps.
    traj = ds.simulate(stiff, jnp.array(0.0), t1=10.0,
                       integrator=ds.Kvaerno5(rtol=1e-4, atol=1e-4))
    print(traj.ys)  # [-0.8396]: the slow solution (k^2 cos t + k sin t) / (k^2 + 1)
    print(traj.stats["num_accepted_steps"])  # 18
    ```
    """

    rtol: float = 1e-6
    atol: float = 1e-6

    def diffrax_solver(self):
        return diffrax.Kvaerno5()
