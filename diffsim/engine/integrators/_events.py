"""Fixed-step integration with state events (impacts, switches): `EventStep`.

Contract: the system has, besides `vector_field`/`acceleration`, a scalar guard
`event(t, y)` (positive before the event) and a jump map `reset(t, y) -> y`. Within a step
the base integrator's partial steps are its dense output (the fixed-step contract), so the
event time $\\tau$ is found on it by safeguarded Newton iterations, and the step becomes

$$y_{n+1} = \\Phi_{h - \\tau}\\big(R(\\Phi_\\tau(y_n))\\big).$$

Gradients: $\\tau$ is defined implicitly by $G(\\tau, p) = g(t + \\tau, \\Phi_\\tau(y; p)) = 0$,
so a custom JVP gives it the implicit-function derivative
$d\\tau = -(\\partial G/\\partial p \\cdot dp) / (\\partial G / \\partial \\tau)$
instead of differentiating the iterations; it is linear in $dp$, so JAX transposes it for
reverse mode and both modes work. Carried through $\\Phi$, $R$ and $\\Phi$ this
is exactly the time-of-impact (saltation) correction that a naive derivative of an
event-detecting loop misses. The engine knows no physics: guard and reset are the
system's.
"""

from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.lax as lax
import jax.numpy as jnp

from ._base import AbstractFixedStepIntegrator
from ._fixed_step import RK4


def _guard_after(base, system, t, y, tau):
    return system.event(t + tau, base.step(system, t, y, tau))


def _locate(base, system, t, y, dt, iterations):
    """Event time in [0, dt] on the base method's dense output: Newton on the guard with
    the derivative d g / d tau by forward mode, kept inside the bracket by bisection."""
    g0 = system.event(t, y)
    g1 = _guard_after(base, system, t, y, dt)
    tau = jnp.clip(dt * g0 / (g0 - g1), 0.0, dt)  # linear interpolation to start
    lo, hi = jnp.zeros_like(tau), jnp.asarray(dt, tau.dtype)

    def body(_, carry):
        tau, lo, hi = carry
        g, dg = jax.jvp(
            lambda s: _guard_after(base, system, t, y, s), (tau,), (jnp.ones_like(tau),)
        )
        lo = jnp.where(g > 0, tau, lo)
        hi = jnp.where(g > 0, hi, tau)
        newton = tau - g / jnp.where(dg == 0, 1.0, dg)
        inside = (newton >= lo) & (newton <= hi) & (dg != 0)  # a root stays put
        return jnp.where(inside, newton, 0.5 * (lo + hi)), lo, hi

    tau, _, _ = lax.fori_loop(0, iterations, body, (tau, lo, hi))
    return tau


@eqx.filter_custom_jvp
def _event_time(y, system, t, dt, *, base, iterations):
    return _locate(base, system, t, y, dt, iterations)


@_event_time.def_jvp
def _event_time_jvp(primals, tangents, *, base, iterations):
    y, system, t, dt = primals
    tau = _locate(base, system, t, y, dt, iterations)
    # dt only brackets the search: tau does not depend on it.
    diff, static = eqx.partition((y, system, t), eqx.is_inexact_array)
    # A leaf that is not differentiated has tangent None: a zero here.
    d_diff = jax.tree.map(
        lambda x, d: None if x is None else (jnp.zeros_like(x) if d is None else d),
        diff,
        tangents[:3],
        is_leaf=lambda x: x is None,
    )

    def G(d):
        y, system, t = eqx.combine(d, static)
        return _guard_after(base, system, t, y, tau)

    _, dG_dtau = jax.jvp(
        lambda s: _guard_after(base, system, t, y, s), (tau,), (jnp.ones_like(tau),)
    )
    _, dG = jax.jvp(G, (diff,), (d_diff,))
    return tau, -dG / dG_dtau


class EventStep(AbstractFixedStepIntegrator):
    """For systems that define their own guard and reset (`ds.systems.BouncingBall`); the
    general API is `ds.simulate(..., events=ds.Event(...))`, which any integrator takes,
    with several events per step, logs, terminal events and adaptive integrators.

    Wraps a fixed-step integrator so that it handles a state event inside each step:
    when the system's guard `event(t, y)` goes from positive to non-positive over a step,
    the step is split at the event time, the system's `reset(t, y)` is applied there, and
    the rest of the step is taken from the new state. Gradients include the event-time
    correction (see the module docstring).

    At most one event per step is handled: choose `dt` below the time between events
    (a ball coming to rest after infinitely many bounces is beyond any fixed step). A
    state on the guard moving away from it (`g = 0` just after a reset) is not an event.
    The event time is exact to the base method's dense output, so the order of the base
    method is kept.

    **Arguments:**

    - `base`: the integrator between events (default `ds.RK4()`).
    - `iterations`: Newton/bisection iterations locating the event (static, default 12).

    **Example:**

    ```python
    ball = ds.systems.BouncingBall(restitution=0.8)
    y0 = ds.PhaseState(q=jnp.array([0.0, 1.0]), v=jnp.array([0.5, 0.0]))
    traj = ds.simulate(ball, y0, t1=1.0, dt=1e-2, integrator=ds.EventStep())
    print(traj.ys.q[-1])  # [0.5 0.468...]: one bounce, at t = 0.45
    print(ball.solution(1.0, y0).q)  # [0.5 0.468...]: the closed form
    ```
    """

    base: AbstractFixedStepIntegrator = RK4()
    iterations: int = eqx.field(static=True, default=12)
    order: ClassVar[int] = 4  # reported for the default base; see `base.order`
    symplectic: ClassVar[bool] = False
    reversible: ClassVar[bool] = False
    mechanical: ClassVar[bool] = False

    def step(self, system: Any, t, y, dt):
        for name in ("event", "reset"):
            if not callable(getattr(system, name, None)):
                raise TypeError(
                    f"integrator=ds.EventStep() needs a system with {name}(t, y); "
                    f"{type(system).__name__} has none."
                )
        base = self.base
        y1 = base.step(system, t, y, dt)
        crossed = (system.event(t, y) > 0) & (system.event(t + dt, y1) <= 0)

        def with_event():
            tau = _event_time(y, system, t, dt, base=base, iterations=self.iterations)
            y_minus = base.step(system, t, y, tau)
            y_plus = system.reset(t + tau, y_minus)
            return base.step(system, t + tau, y_plus, dt - tau)

        return lax.cond(crossed, with_event, lambda: y1)
