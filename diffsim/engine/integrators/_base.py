"""What every integrator is: the abstract bases and the checks `simulate` makes of them.

Contract. An integrator is a stateless `eqx.Module` with

- `step(system, t, y, dt) -> y_next`, a pure function of pytrees; `dt` may be negative or
  zero (zero returns `y`), and a step of any length in `[0, dt]` is a valid dense output
  of the same order, which `SaveAt(ts=...)` uses between grid points;
- class constants `order`, `symplectic`, `reversible` and `mechanical`;
- optionally `step_fsal(system, t, y, a, dt) -> (y_next, a_next)` for methods whose last
  force evaluation is the next step's first (first same as last): `ds.simulate` then
  carries the acceleration `a` in its loop when `ignores_velocity` holds;
- optionally `check_system(system, y0)`, raising `TypeError`/`ValueError` before
  anything runs when the method cannot integrate `system` (called by `simulate`).

The engine knows no physics. A *system* is anything with `vector_field(t, y)`; a
*mechanical* integrator (`mechanical = True`) also needs `acceleration(t, q, v)` and a
state with fields `q` and `v` (`ds.PhaseState`), and refuses anything else at trace time.
"""

import abc
import dataclasses
from typing import Any, ClassVar

import equinox as eqx
import jax
from jax.extend import core as jex_core

from ..._types import RealScalarLike, State


def axpy(a, x, y):
    """`y + a * x` over matching pytrees."""
    return jax.tree.map(lambda xi, yi: yi + a * xi, x, y)


def lincomb(y, dt, coeffs, ks):
    """`y + dt * sum_i coeffs[i] * ks[i]` over pytrees, skipping zero coefficients."""
    terms = [(c, k) for c, k in zip(coeffs, ks, strict=True) if c != 0]

    def combine(yi, *kis):
        acc = sum(c * ki for (c, _), ki in zip(terms, kis, strict=True))
        return yi + dt * acc

    return jax.tree.map(combine, y, *[k for _, k in terms])


def replace_qv(y, q, v):
    return dataclasses.replace(y, q=q, v=v)


def is_mechanical(system: Any) -> bool:
    """Whether `system` exposes `acceleration(t, q, v)` (an `AbstractMechanicalSystem`)."""
    return callable(getattr(system, "acceleration", None))


class AbstractIntegrator(eqx.Module):
    """Anything accepted as `simulate(..., integrator=...)`: the type to annotate or test
    against when code takes an integrator. Subclass `ds.AbstractFixedStepIntegrator`
    (or `ds.AbstractExplicitRK`) or `ds.AbstractAdaptiveIntegrator`, not this class:
    `simulate` accepts only those two families.

    **Example:**

    ```python
    def final_angle(integrator: ds.AbstractIntegrator):
        pendulum = ds.systems.Pendulum(length=1.0)
        y0 = pendulum.initial_state(0.5)
        return ds.simulate(pendulum, y0, t1=1.0, dt=0.01, integrator=integrator).ys.q

    print(final_angle(ds.RK4()))  # [-0.4991...]
    print(final_angle(ds.Leapfrog()))  # [-0.4991...]
    print(isinstance(ds.Tsit5(), ds.AbstractIntegrator))  # True
    ```
    """


class AbstractFixedStepIntegrator(AbstractIntegrator):
    """A fixed-step method: `step(system, t, y, dt)` advances `y` from `t` to `t + dt`.

    `order` is the global order of accuracy; `symplectic` and `reversible` describe the
    method on Hamiltonian systems (velocity-independent forces); `mechanical` methods need
    an `AbstractMechanicalSystem` and a `PhaseState`.

    Stability limits, where known (`None`: not checked): `stability_decay` is the largest
    `dt |lambda|` for which the method is stable on y' = lambda y with lambda < 0;
    `stability_oscillation` the largest `dt omega` on an undamped oscillation (y' = i omega y
    for first-order methods, q'' = -omega^2 q for mechanical ones). `simulate` compares them
    with a system's `spectral_bounds(y0)` to refuse a step past the limit before it runs.

    A subclass sets the four class constants and implements `step`; `simulate` then runs
    it in its scan loop with every `SaveAt`, adjoint and check.

    **Example:**

    ```python
    class Midpoint(ds.AbstractFixedStepIntegrator):
        order = 2
        symplectic = False
        reversible = False
        mechanical = False

        def step(self, system, t, y, dt):
            k1 = system.vector_field(t, y)
            y_mid = jax.tree.map(lambda y, k: y + 0.5 * dt * k, y, k1)
            k2 = system.vector_field(t + 0.5 * dt, y_mid)
            return jax.tree.map(lambda y, k: y + dt * k, y, k2)

    decay = ds.ODESystem(lambda t, y, rate: -rate * y, 1.0)
    traj = ds.simulate(decay, jnp.array(1.0), t1=1.0, dt=0.1, integrator=Midpoint())
    print(traj.ys)  # [0.36854...], against exp(-1) = 0.36788
    ```
    """

    order: eqx.AbstractClassVar[int]
    symplectic: eqx.AbstractClassVar[bool]
    reversible: eqx.AbstractClassVar[bool]
    mechanical: eqx.AbstractClassVar[bool]
    stability_decay: ClassVar[float | None] = None
    stability_oscillation: ClassVar[float | None] = None

    @abc.abstractmethod
    def step(self, system: Any, t: RealScalarLike, y: State, dt: RealScalarLike) -> State:
        """Advance `y` from `t` by `dt`."""


def ignores_velocity(system: Any, t: Any, q: Any, v: Any) -> bool:
    """Whether `system.acceleration(t, q, v)` cannot depend on `v`: no path in its traced
    program leads from `v` to the output. Structural, so conservative: `damping * v` with
    `damping = 0.0` still counts as depending on `v`, and an operation that takes `v` and
    contains a sub-program (a `jit`, a `scan`) counts as passing it to all its outputs."""
    jaxpr = jax.make_jaxpr(lambda v: system.acceleration(t, q, v))(v).jaxpr
    reached = set(jaxpr.invars)
    for eqn in jaxpr.eqns:
        if any(isinstance(x, jex_core.Var) and x in reached for x in eqn.invars):
            reached.update(eqn.outvars)
    return not any(isinstance(x, jex_core.Var) and x in reached for x in jaxpr.outvars)


def uses_fsal(integrator: Any, system: Any, t: Any, y: Any) -> bool:
    """Whether a rollout may carry the acceleration from step to step (first same as last):
    the integrator has `step_fsal` and the acceleration ignores the velocity. (Methods
    with `step_fsal` are mechanical, so `check_integrator_fits` has already seen a
    mechanical system and a `PhaseState`.)"""
    fsal = callable(getattr(integrator, "step_fsal", None))
    return fsal and ignores_velocity(system, t, y.q, y.v)


def check_integrator_fits(integrator: AbstractFixedStepIntegrator, system: Any, y0: Any):
    """Raise a `TypeError` at trace time when a mechanical integrator gets a system or state
    without the (q, v) split it needs."""
    name = type(integrator).__name__
    if not integrator.mechanical:
        return
    if not is_mechanical(system):
        raise TypeError(
            f"integrator={name}() is a symplectic method for mechanical systems: it needs a "
            f"system with `acceleration(t, q, v)` (a ds.AbstractMechanicalSystem), but got "
            f"{type(system).__name__}, a first-order system. Use integrator=ds.RK4() or "
            "ds.Tsit5() for first-order systems."
        )
    if not (hasattr(y0, "q") and hasattr(y0, "v")):
        raise TypeError(
            f"y0 must be a ds.PhaseState(q=..., v=...) for integrator={name}() and the "
            f"mechanical system {type(system).__name__}; got {type(y0).__name__}."
        )
    # An integrator for one kind of system (ds.WisdomHolman: N-body) checks it further.
    check_system = getattr(integrator, "check_system", None)
    if callable(check_system):
        check_system(system, y0)
