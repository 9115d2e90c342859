"""Fixed-step integrators: our own code, one pure `step` each, built to sit in `lax.scan`.

Contract. An integrator is a stateless `eqx.Module` with

- `step(system, t, y, dt) -> y_next`, a pure function of pytrees; `dt` may be negative or
  zero (zero returns `y`), and a step of any length in `[0, dt]` is a valid dense output
  of the same order, which `SaveAt(ts=...)` uses between grid points;
- class constants `order`, `symplectic`, `reversible` and `mechanical`;
- optionally `step_fsal(system, t, y, a, dt) -> (y_next, a_next)` for methods whose last
  force evaluation is the next step's first (first same as last): `ds.simulate` then
  carries the acceleration `a` in its loop when `ignores_velocity` holds.

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

from .._types import RealScalarLike, State


def _axpy(a, x, y):
    """`y + a * x` over matching pytrees."""
    return jax.tree.map(lambda xi, yi: yi + a * xi, x, y)


def _lincomb(y, dt, coeffs, ks):
    """`y + dt * sum_i coeffs[i] * ks[i]` over pytrees, skipping zero coefficients."""
    terms = [(c, k) for c, k in zip(coeffs, ks, strict=True) if c != 0]

    def combine(yi, *kis):
        acc = sum(c * ki for (c, _), ki in zip(terms, kis, strict=True))
        return yi + dt * acc

    return jax.tree.map(combine, y, *[k for _, k in terms])


def _replace_qv(y, q, v):
    return dataclasses.replace(y, q=q, v=v)


def is_mechanical(system: Any) -> bool:
    """Whether `system` exposes `acceleration(t, q, v)` (an `AbstractMechanicalSystem`)."""
    return callable(getattr(system, "acceleration", None))


class AbstractIntegrator(eqx.Module):
    """Anything accepted as `simulate(..., integrator=...)`."""


class AbstractFixedStepIntegrator(AbstractIntegrator):
    """A fixed-step method: `step(system, t, y, dt)` advances `y` from `t` to `t + dt`.

    `order` is the global order of accuracy; `symplectic` and `reversible` describe the
    method on Hamiltonian systems (velocity-independent forces); `mechanical` methods need
    an `AbstractMechanicalSystem` and a `PhaseState`.
    """

    order: eqx.AbstractClassVar[int]
    symplectic: eqx.AbstractClassVar[bool]
    reversible: eqx.AbstractClassVar[bool]
    mechanical: eqx.AbstractClassVar[bool]

    @abc.abstractmethod
    def step(self, system: Any, t: RealScalarLike, y: State, dt: RealScalarLike) -> State:
        """Advance `y` from `t` by `dt`."""


class Euler(AbstractFixedStepIntegrator):
    """Explicit (forward) Euler, order 1.

    $$y_{n+1} = y_n + h f(t_n, y_n)$$

    For reference and teaching: it gains energy on oscillators. Prefer `RK4`, or a
    symplectic method for mechanics.
    """

    order: ClassVar[int] = 1
    symplectic: ClassVar[bool] = False
    reversible: ClassVar[bool] = False
    mechanical: ClassVar[bool] = False

    def step(self, system, t, y, dt):
        return _axpy(dt, system.vector_field(t, y), y)


class RK4(AbstractFixedStepIntegrator):
    """The classical fourth-order Runge-Kutta method.

    $$k_1 = f(t, y),\\ k_2 = f(t + \\tfrac h2, y + \\tfrac h2 k_1),\\
      k_3 = f(t + \\tfrac h2, y + \\tfrac h2 k_2),\\ k_4 = f(t + h, y + h k_3)$$
    $$y_{n+1} = y_n + \\tfrac h6 (k_1 + 2k_2 + 2k_3 + k_4)$$

    Works on any system and any pytree state; four vector-field evaluations a step.
    """

    order: ClassVar[int] = 4
    symplectic: ClassVar[bool] = False
    reversible: ClassVar[bool] = False
    mechanical: ClassVar[bool] = False

    def step(self, system, t, y, dt):
        half = 0.5 * dt
        k1 = system.vector_field(t, y)
        k2 = system.vector_field(t + half, _axpy(half, k1, y))
        k3 = system.vector_field(t + half, _axpy(half, k2, y))
        k4 = system.vector_field(t + dt, _axpy(dt, k3, y))
        return _lincomb(y, dt, (1 / 6, 1 / 3, 1 / 3, 1 / 6), (k1, k2, k3, k4))


class SemiImplicitEuler(AbstractFixedStepIntegrator):
    """Symplectic (semi-implicit) Euler, order 1: kick then drift.

    $$v_{n+1} = v_n + h\\, a(t_n, q_n, v_n), \\qquad q_{n+1} = q_n + h\\, v_{n+1}$$

    Symplectic for velocity-independent forces, so energy errors stay bounded.
    """

    order: ClassVar[int] = 1
    symplectic: ClassVar[bool] = True
    reversible: ClassVar[bool] = False
    mechanical: ClassVar[bool] = True

    def step(self, system, t, y, dt):
        v1 = _axpy(dt, system.acceleration(t, y.q, y.v), y.v)
        return _replace_qv(y, _axpy(dt, v1, y.q), v1)


class Leapfrog(AbstractFixedStepIntegrator):
    """Velocity Verlet (kick-drift-kick leapfrog), order 2, symplectic and time-reversible.

    $$v_{1/2} = v_n + \\tfrac h2 a(t_n, q_n, v_n), \\quad q_{n+1} = q_n + h v_{1/2}, \\quad
      v_{n+1} = v_{1/2} + \\tfrac h2 a(t_{n+1}, q_{n+1}, \\tilde v)$$

    with $\\tilde v = v_n + h\\, a(t_n, q_n, v_n)$, an explicit predictor of $v_{n+1}$ that
    costs nothing extra. When $a$ does not depend on $v$ this is exactly velocity Verlet
    (Verlet 1967; Swope et al. 1982): symplectic, time-reversible, energy error bounded for
    exponentially long times. With a velocity-dependent force (damping) the predictor keeps
    the method second order, though it is then neither symplectic nor reversible (no
    method with explicit damping is).

    Two force evaluations a step; one in `ds.simulate` when the acceleration cannot
    depend on the velocity (`step_fsal`: the end-of-step force is the next step's
    start-of-step force, carried in the loop).
    """

    order: ClassVar[int] = 2
    symplectic: ClassVar[bool] = True
    reversible: ClassVar[bool] = True
    mechanical: ClassVar[bool] = True

    def step(self, system, t, y, dt):
        a0 = system.acceleration(t, y.q, y.v)
        v_half = _axpy(0.5 * dt, a0, y.v)
        q1 = _axpy(dt, v_half, y.q)
        v_pred = _axpy(dt, a0, y.v)
        v1 = _axpy(0.5 * dt, system.acceleration(t + dt, q1, v_pred), v_half)
        return _replace_qv(y, q1, v1)

    def step_fsal(self, system, t, y, a0, dt):
        """`step` given the acceleration at the start, returning the one at the end too:
        one force evaluation a step instead of two. Only for an acceleration that does
        not depend on the velocity (see `ignores_velocity`), which is then evaluated at
        any velocity. A step of `-dt` from `(y1, a1)` returns `(y0, a0)` exactly in exact
        arithmetic, as `step` does."""
        v_half = _axpy(0.5 * dt, a0, y.v)
        q1 = _axpy(dt, v_half, y.q)
        a1 = system.acceleration(t + dt, q1, v_half)
        return _replace_qv(y, q1, _axpy(0.5 * dt, a1, v_half)), a1


# Yoshida (1990) "Construction of higher order symplectic integrators", Phys. Lett. A 150.
_CBRT2 = 2.0 ** (1.0 / 3.0)
_YOSHIDA_W1 = 1.0 / (2.0 - _CBRT2)
_YOSHIDA_W0 = -_CBRT2 / (2.0 - _CBRT2)


class Yoshida4(AbstractFixedStepIntegrator):
    """Yoshida's fourth-order symplectic, time-reversible integrator.

    The triple-jump composition of `Leapfrog` steps of lengths $w_1 h, w_0 h, w_1 h$ with
    $w_1 = 1/(2 - 2^{1/3})$, $w_0 = -2^{1/3}/(2 - 2^{1/3})$ (Yoshida 1990). Symmetric
    composition lifts a symmetric second-order method to order 4, so this holds for
    velocity-independent forces; with velocity-dependent ones (damping) the base step is
    not symmetric and the triple jump gains one order instead of two: order 3 (measured in
    the tests).

    Six force evaluations a step; three in `ds.simulate` when the acceleration cannot
    depend on the velocity (`step_fsal`).
    """

    order: ClassVar[int] = 4
    symplectic: ClassVar[bool] = True
    reversible: ClassVar[bool] = True
    mechanical: ClassVar[bool] = True

    def step(self, system, t, y, dt):
        leapfrog = Leapfrog()
        h1 = _YOSHIDA_W1 * dt
        h0 = _YOSHIDA_W0 * dt
        y = leapfrog.step(system, t, y, h1)
        y = leapfrog.step(system, t + h1, y, h0)
        return leapfrog.step(system, t + h1 + h0, y, h1)

    def step_fsal(self, system, t, y, a0, dt):
        """`step` carrying the acceleration between the three substeps and across steps:
        three force evaluations a step instead of six (see `Leapfrog.step_fsal`)."""
        leapfrog = Leapfrog()
        h1 = _YOSHIDA_W1 * dt
        h0 = _YOSHIDA_W0 * dt
        y, a = leapfrog.step_fsal(system, t, y, a0, h1)
        y, a = leapfrog.step_fsal(system, t + h1, y, a, h0)
        return leapfrog.step_fsal(system, t + h1 + h0, y, a, h1)


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
