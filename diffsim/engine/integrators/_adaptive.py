"""Adaptive and stiff integrators, delegated to diffrax.

These classes are thin strategy objects: each names a diffrax solver (`diffrax_solver`)
and a step-size controller (`diffrax_controller`, by default `PIDController(rtol, atol)`),
and `simulate` turns them into one `diffrax.diffeqsolve` call
(`engine/_adaptive_rollout.py`). Each solver is diffrax's, unchanged; we only choose,
configure and translate (save times, adjoints, result codes). `Diffrax` takes any diffrax
ODE solver and controller as they are.
"""

import abc
import typing
from typing import ClassVar

import diffrax
import equinox as eqx
import optimistix as optx

from ._base import AbstractIntegrator


class AbstractAdaptiveIntegrator(AbstractIntegrator):
    """An adaptive-step integrator backed by a diffrax solver.

    `dt` passed to `simulate` is the initial step; `None` lets diffrax choose it.

    A subclass declares the fields `rtol` and `atol` (the tolerances of diffrax's
    `PIDController`) and returns its diffrax solver from `diffrax_solver`; it may override
    `diffrax_controller` to step otherwise (see `ds.Kvaerno5`, `ds.Diffrax`).

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

    rtol: eqx.AbstractVar[float | None]
    atol: eqx.AbstractVar[float | None]
    # True where rtol and atol are read from a user's diffrax controller (`Diffrax`),
    # which diffrax checks itself; they may then be arrays, or None.
    _tolerances_from_controller: ClassVar[bool] = False

    @abc.abstractmethod
    def diffrax_solver(self) -> diffrax.AbstractSolver:
        """The diffrax solver this integrator stands for."""

    def diffrax_controller(self) -> diffrax.AbstractStepSizeController:
        """The diffrax step-size controller: `diffrax.PIDController(rtol, atol)` unless a
        subclass says otherwise."""
        return diffrax.PIDController(rtol=self.rtol, atol=self.atol)

    def __check_init__(self):
        if self._tolerances_from_controller:
            return
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


def _newton() -> optx.AbstractRootFinder:
    return diffrax.with_stepsize_controller_tols(optx.Newton)()


def _check_number(owner: str, name: str, value, *, positive: bool, optional: bool = False):
    if optional and value is None:
        return
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or (value <= 0 if positive else value < 0):
        kind = "positive" if positive else "non-negative"
        none = " or None" if optional else ""
        raise ValueError(f"{owner}({name}=...) must be a {kind} number{none}; got {value!r}.")


class Kvaerno5(AbstractAdaptiveIntegrator):
    """Kvaerno's 5(4) ESDIRK method (`diffrax.Kvaerno5`): L-stable and implicit, for stiff
    problems (fine PDE grids, chemistry, Van der Pol with large mu).

    Each step solves seven stages' implicit equations $k_i = f(t_i, y_i + \\gamma h k_i)$
    by a root finder, and a PID controller (Söderlind 2003, "Digital filters in adaptive
    time-stepping", ACM TOMS 29) chooses the next step $h_{n+1} = h_n\\,\\mathrm{safety}\\,
    \\varepsilon_n^{-(p+i)/k}\\,\\varepsilon_{n-1}^{p/k}$ from the scaled error estimates
    $\\varepsilon$ of this step and the last ($k = 5$, `p = pcoeff`, `i = icoeff`), clipped
    to `[factormin, factormax]` times the last step. The defaults differ from diffrax's
    (Jacobian once per step by `diffrax.VeryChord`, an I controller `pcoeff=0, icoeff=1,
    safety=0.9`): on stiff nonlinear problems diffrax's chord iteration fails whenever the
    Jacobian changes within a step, and each failure rejects the step. Measured, float64,
    Van der Pol at $\\mu = 1000$, tolerances 1e-6, $t \\in [0, 3000]$: 403 accepted and
    102 rejected steps, against 1738 and 1731 with diffrax's defaults and 919 accepted for
    SciPy's Radau (`benchmarks/stiff.py`).

    **Arguments (all keyword, all optional):**

    - `rtol`, `atol`: the relative and absolute tolerances of the error per step (and of
        the root finder's iterations); default 1e-6.
    - `root_finder`: the `optimistix` root finder of the stage equations. Default: Newton's
        method (`optx.Newton`), which re-evaluates the Jacobian at every iteration, with
        the tolerances `rtol`, `atol`. For large systems whose Jacobian varies slowly,
        `diffrax.with_stepsize_controller_tols(diffrax.VeryChord)()` (diffrax's default:
        one Jacobian and one LU factorisation per step) costs less per step.
    - `root_find_max_steps`: iterations of the root finder before the step is rejected;
        default 10.
    - `pcoeff`, `icoeff`, `dcoeff`: the PID controller's coefficients; default 0.5, 0.5, 0
        (a PI controller, which shrinks the step before the error grows past the tolerance
        rather than after, as on the approach to a Van der Pol jump).
    - `safety`: the fraction of the predicted step that is taken; default 0.8.
    - `factormin`, `factormax`: the bounds on the ratio of successive steps; default 0.2
        and 10.
    - `dtmin`, `dtmax`: bounds on the step, or `None` (default) for none. A step at
        `dtmin` is accepted whatever its error.

    `ds.Kvaerno5(root_finder=diffrax.with_stepsize_controller_tols(diffrax.VeryChord)(),
    pcoeff=0.0, icoeff=1.0, safety=0.9)` is diffrax's `Kvaerno5()` with
    `PIDController(rtol, atol)`, this class's defaults before 2026-12.

    **Example:** the Prothero-Robinson problem $\\dot y = -k (y - \\cos t)$ with $k = 1000$,
    where an explicit method needs $dt < 2.8/k$ (3600 steps of `ds.RK4`):

    ```python
    stiff = ds.ODESystem(lambda t, y, k: -k * (y - jnp.cos(t)), 1000.0)
    # In float32 keep tolerances >= 1e-4: at 1e-6 the round-off of k (y - cos t), amplified
    # by k, exceeds the tolerance and the steps shrink until max_steps runs out.
    traj = ds.simulate(stiff, jnp.array(0.0), t1=10.0,
                       integrator=ds.Kvaerno5(rtol=1e-4, atol=1e-4))
    print(traj.ys)  # [-0.8396]: the slow solution (k^2 cos t + k sin t) / (k^2 + 1)
    print(traj.stats["num_accepted_steps"])  # 29
    ```
    """

    rtol: float = 1e-6
    atol: float = 1e-6
    root_finder: optx.AbstractRootFinder = eqx.field(default_factory=_newton)
    root_find_max_steps: int = 10
    pcoeff: float = 0.5
    icoeff: float = 0.5
    dcoeff: float = 0.0
    safety: float = 0.8
    factormin: float = 0.2
    factormax: float = 10.0
    dtmin: float | None = None
    dtmax: float | None = None

    def __check_init__(self):
        if not isinstance(self.root_finder, optx.AbstractRootFinder):
            raise TypeError(
                "Kvaerno5(root_finder=...) must be an optimistix root finder such as "
                "optx.Newton(rtol, atol) or diffrax.VeryChord(...); got "
                f"{self.root_finder!r:.100}."
            )
        steps = self.root_find_max_steps
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
            raise ValueError(
                f"Kvaerno5(root_find_max_steps=...) must be a positive int; got {steps!r}."
            )
        for name in ("pcoeff", "icoeff", "dcoeff"):
            _check_number("Kvaerno5", name, getattr(self, name), positive=False)
        for name in ("safety", "factormin", "factormax"):
            _check_number("Kvaerno5", name, getattr(self, name), positive=True)
        for name in ("dtmin", "dtmax"):
            _check_number("Kvaerno5", name, getattr(self, name), positive=True, optional=True)
        if not self.factormin < 1 < self.factormax:
            raise ValueError(
                "Kvaerno5 needs factormin < 1 < factormax (the bounds on the ratio of "
                f"successive steps); got factormin={self.factormin}, "
                f"factormax={self.factormax}."
            )

    def diffrax_solver(self):
        return diffrax.Kvaerno5(
            root_finder=self.root_finder, root_find_max_steps=self.root_find_max_steps
        )

    def diffrax_controller(self):
        return diffrax.PIDController(
            rtol=self.rtol, atol=self.atol, pcoeff=self.pcoeff, icoeff=self.icoeff,
            dcoeff=self.dcoeff, safety=self.safety, factormin=self.factormin,
            factormax=self.factormax, dtmin=self.dtmin, dtmax=self.dtmax,
        )  # fmt: skip


def _accepts_ode_term(solver: diffrax.AbstractSolver) -> bool:
    structure = solver.term_structure
    origin = typing.get_origin(structure) or structure
    return isinstance(origin, type) and issubclass(diffrax.ODETerm, origin)


class Diffrax(AbstractAdaptiveIntegrator):
    """Any diffrax ODE solver and step-size controller as a diffsim integrator, for a
    solver or an option that diffsim does not wrap: `simulate` calls
    `diffrax.diffeqsolve(diffrax.ODETerm(system.vector_field), solver, t0, t1, dt, y0,
    stepsize_controller=stepsize_controller, ...)` and translates save times, adjoints and
    result codes as for `ds.Tsit5`.

    **Arguments:**

    - `solver`: an instance of a diffrax ODE solver (`diffrax.AbstractSolver`) that takes
        one `ODETerm`: `diffrax.Bosh3()`, `diffrax.Kvaerno3()`, `diffrax.ImplicitEuler()`,
        ... Stochastic solvers, IMEX solvers (`KenCarp*`, which need a `MultiTerm`) and
        split solvers (`SemiImplicitEuler`) are refused: use `ds.EulerMaruyama`/`ds.BAOAB`
        for noise, and `ds.SemiImplicitEuler` for mechanical systems.
    - `stepsize_controller`: a `diffrax.AbstractStepSizeController`, such as
        `diffrax.PIDController(rtol=..., atol=..., pcoeff=..., icoeff=..., dtmax=...)`, or
        `diffrax.ConstantStepSize()` (then pass `dt=` to `simulate`). Default:
        `diffrax.PIDController(rtol=1e-6, atol=1e-6)`, the tolerances of `ds.Tsit5()`.

    `rtol` and `atol` read the controller's tolerances (`None` for a controller without
    them). A solver without an error estimate (`diffrax.Euler()`) needs
    `ConstantStepSize`; an implicit solver with a constant step needs its root finder's
    tolerances given explicitly (diffrax's rule).

    **Example:**

    ```python
    import diffrax

    decay = ds.ODESystem(lambda t, y, rate: -rate * y, 1.0)
    bosh3 = ds.Diffrax(diffrax.Bosh3(), diffrax.PIDController(rtol=1e-8, atol=1e-8))
    traj = ds.simulate(decay, jnp.array(1.0), t1=1.0, integrator=bosh3)
    print(traj.ys - jnp.exp(-1.0))  # [-1.2e-07]: float32 round-off
    euler = ds.Diffrax(diffrax.Euler(), diffrax.ConstantStepSize())
    traj = ds.simulate(decay, jnp.array(1.0), t1=1.0, dt=0.25, integrator=euler)
    print(traj.ys)  # [0.3164]: (1 - 0.25)^4
    ```
    """

    solver: diffrax.AbstractSolver
    stepsize_controller: diffrax.AbstractStepSizeController
    _tolerances_from_controller: ClassVar[bool] = True

    def __init__(
        self,
        solver: diffrax.AbstractSolver,
        stepsize_controller: diffrax.AbstractStepSizeController | None = None,
    ):
        if stepsize_controller is None:
            stepsize_controller = diffrax.PIDController(rtol=1e-6, atol=1e-6)
        self.solver = solver
        self.stepsize_controller = stepsize_controller

    def __check_init__(self):
        solver, controller = self.solver, self.stepsize_controller
        if isinstance(solver, type) and issubclass(solver, diffrax.AbstractSolver):
            raise TypeError(
                f"Diffrax(solver=...) takes a solver instance: diffrax.{solver.__name__}(), "
                f"not the class diffrax.{solver.__name__}."
            )
        if not isinstance(solver, diffrax.AbstractSolver):
            raise TypeError(
                "Diffrax(solver=...) must be a diffrax solver such as diffrax.Bosh3() (for "
                f"diffsim's own integrators pass them as integrator= directly); got "
                f"{solver!r:.100}."
            )
        if not _accepts_ode_term(solver):
            raise ValueError(
                f"Diffrax(solver=...): diffrax.{type(solver).__name__} takes the terms "
                f"{solver.term_structure}, but simulate gives it one "
                "ODETerm(system.vector_field). Use an ODE solver (diffrax.Tsit5(), "
                "diffrax.Kvaerno5(), ...); for noise use ds.EulerMaruyama() or ds.BAOAB()."
            )
        if not isinstance(controller, diffrax.AbstractStepSizeController):
            raise TypeError(
                "Diffrax(stepsize_controller=...) must be a diffrax step-size controller "
                "such as diffrax.PIDController(rtol=..., atol=...) or "
                f"diffrax.ConstantStepSize(); got {controller!r:.100}."
            )
        adaptive = isinstance(controller, diffrax.AbstractAdaptiveStepSizeController)
        if adaptive and not isinstance(solver, diffrax.AbstractAdaptiveSolver):
            raise ValueError(
                f"Diffrax(solver=...): diffrax.{type(solver).__name__} has no error "
                f"estimate for the adaptive stepsize_controller {type(controller).__name__}; "
                "pass stepsize_controller=diffrax.ConstantStepSize() and dt= to simulate, "
                "or use a solver with an error estimate."
            )

    @property
    def rtol(self):
        """The controller's relative tolerance, or `None` if it has none (constant steps).

        ```python
        import diffrax
        print(ds.Diffrax(diffrax.Bosh3(), diffrax.PIDController(rtol=1e-5, atol=1e-7)).rtol)
        # 1e-05
        ```
        """
        return getattr(self.stepsize_controller, "rtol", None)

    @property
    def atol(self):
        """The controller's absolute tolerance, or `None` if it has none (constant steps).

        ```python
        import diffrax
        print(ds.Diffrax(diffrax.Bosh3(), diffrax.ConstantStepSize()).atol)  # None
        ```
        """
        return getattr(self.stepsize_controller, "atol", None)

    def diffrax_solver(self):
        return self.solver

    def diffrax_controller(self):
        return self.stepsize_controller
