"""The fixed-step rollout with events (private): `ds.simulate(..., events=...)` with a
fixed-step integrator.

The rollout walks the grid $t_k = t_0 + k\\,dt$. Each iteration steps from the current
$(t, y)$ to the next grid time $T$; if an event's condition changed sign over the step
(in its direction), the event time is located on the step's cubic Hermite interpolant
(from $y, f(t, y)$ and $y_1, f(T, y_1)$: the dense output of every fixed-step method,
exact for cubics, local error $O(h^4)$), the earliest event is applied there, and the next
iteration steps on from the event time to $T$. So a rollout of `n` steps with at most
`max_events` events is one `lax.scan` of `n + max_events` iterations, and the grid, the
saved times and the step count are those of the same rollout without events.

Event times: a safeguarded Newton iteration on the interpolant (undifferentiated), then
one differentiable Newton step from the converged root,
$\\tau \\leftarrow \\tau - G(\\tau) / \\mathrm{sg}(G'(\\tau))$, where $G(s) = g(t + s, H(s))$
and sg stops gradients. Its value is unchanged (G = 0 there) and its derivative is the
implicit-function one, $d\\tau = -\\partial G / G'(\\tau)$, in forward and reverse mode;
carried through the reset and the rest of the step it is the time-of-impact (saltation)
correction that differentiating the search itself would miss.

Failures come back as `traj.result`: more events than `max_events`
(`RESULTS.event_capacity`), more than `_ZENO` events inside one grid step
(`RESULTS.event_accumulation`, Zeno behaviour), a non-finite state.
"""

from typing import NamedTuple

import equinox as eqx
import jax
import jax.lax as lax
import jax.numpy as jnp

from .._trees import all_finite, tree_where
from ._adjoints import Checkpointed
from ._event import (
    Event,
    EventLog,
    apply,
    conditions,
    conditions_and_rates,
    empty_log,
    record,
    save_ends,
    save_states,
)
from ._interpolation import HermiteInterpolation
from ._saveat import SaveAt
from ._solution import RESULTS, Trajectory

# More events than this within one grid step is taken as accumulation (a ball coming to
# rest bounces infinitely often in finite time): reported, not looped on.
_ZENO = 16
# Newton iterations locating an event: from the secant root, quadratic convergence
# reaches float64 round-off in 4-5 (a bisection step when Newton leaves the bracket).
_NEWTON = 8


def _hermite(y0, f0, y1, f1, h, s):
    """The cubic Hermite interpolant through (0, y0, f0) and (h, y1, f1) at `s`."""
    h_safe = jnp.where(h == 0, 1.0, h)
    u = s / h_safe
    h00 = (1 + 2 * u) * (1 - u) ** 2
    h10 = u * (1 - u) ** 2
    h01 = u**2 * (3 - 2 * u)
    h11 = u**2 * (u - 1)
    return jax.tree.map(
        lambda a, fa, b, fb: h00 * a + h10 * h * fa + h01 * b + h11 * h * fb, y0, f0, y1, f1
    )


def _crossed(event: Event, g0, d0, g1):
    """Whether the condition crossed zero over a step, in the event's direction. A
    condition that starts on zero (the event just fired) crossed if it ends beyond zero
    in the event's direction having first moved back (rate `d0` against the direction:
    it returned within the step) or not moved at all (resting on the condition); moving
    on in the same direction is the same crossing, not a new one."""
    rising = ((g0 < 0) & (g1 >= 0)) | ((g0 == 0) & (g1 > 0) & (d0 <= 0))
    falling = ((g0 > 0) & (g1 <= 0)) | ((g0 == 0) & (g1 < 0) & (d0 >= 0))
    both = ((g0 < 0) & (g1 >= 0)) | ((g0 > 0) & (g1 <= 0))
    return {1: rising, -1: falling, 0: both}[event.direction]


def _locate(G, g0, g1, h):
    """The root of G in [0, h], where G(0) = g0 and G(h) = g1 have opposite signs:
    Newton from the secant root, kept inside the bracket by bisection."""
    denominator = jnp.where(g0 == g1, 1.0, g0 - g1)
    s = jnp.clip(h * g0 / denominator, 0.0, h)
    lo, hi = jnp.zeros_like(s), jnp.broadcast_to(h, s.shape).astype(s.dtype)
    before = jnp.sign(g0)

    def body(_, carry):
        s, lo, hi = carry
        g, dg = jax.jvp(G, (s,), (jnp.ones_like(s),))
        same = jnp.sign(g) == before
        lo, hi = jnp.where(same, s, lo), jnp.where(same, hi, s)
        newton = s - g / jnp.where(dg == 0, 1.0, dg)
        inside = (newton >= lo) & (newton <= hi) & (dg != 0)
        return jnp.where(inside, newton, 0.5 * (lo + hi)), lo, hi

    s, _, _ = lax.fori_loop(0, _NEWTON, body, (s, lo, hi))
    return s


def _search(G, g0, g1, h):
    """Where G, which changed sign over [0, h], crosses zero. Starting on zero (the event
    just fired), the crossing sought is the next one: the root of G(s)/s (whose value at
    0 is G'(0)) if G first moved away from zero, else 0 (it never left: a state resting on
    the condition, which repeats until `_ZENO` reports it)."""
    d0 = jax.jvp(G, (jnp.zeros_like(h),), (jnp.ones_like(h),))[1]
    away = (g0 == 0) & (jnp.sign(d0) == -jnp.sign(g1))
    h_safe = jnp.where(h == 0, 1.0, h)

    def searched(s):
        s_safe = jnp.where(s == 0, 1.0, s)
        return jnp.where(away, jnp.where(s == 0, d0, G(s) / s_safe), G(s))

    s = _locate(searched, jnp.where(away, d0, g0), jnp.where(away, g1 / h_safe, g1), h)
    return jnp.where((g0 == 0) & ~away, 0.0, s)


def _event_time(G, g0, g1, h):
    """The located root with the implicit-function derivative (module docstring)."""
    s = lax.stop_gradient(_search(G, g0, g1, h))
    g, dg = jax.jvp(G, (s,), (jnp.ones_like(s),))
    dg = lax.stop_gradient(dg)
    return s - g / jnp.where(dg == 0, 1.0, dg)


class _Carry(NamedTuple):
    t: jax.Array  # the current time
    y: object  # the state at t
    f: object  # the vector field at (t, y)
    g: jax.Array  # each event's condition at (t, y)
    k: jax.Array  # the index of the next grid time
    log: EventLog
    streak: jax.Array  # events since the grid last advanced
    status: RESULTS  # successful, or why the rollout stopped
    bad: jax.Array  # the first grid step that ended non-finite, or -1
    done: jax.Array  # reached t1, ended by a terminal event, or failed


def _iteration(integrator, events: tuple[Event, ...], n: int):
    """One iteration: a step to the next grid time, or to the earliest event before it.
    Returns the new carry and the knots it adds to the interpolant: the state at the end
    of the step (before any reset) and after it."""

    def iterate(params, c: _Carry):
        system, t0, dt = params
        T = t0 + c.k.astype(t0.dtype) * dt
        h = T - c.t
        y1 = integrator.step(system, c.t, c.y, h)
        f1 = system.vector_field(T, y1)
        g1 = conditions(events, T, y1)
        # The conditions' rates at the start, along the state's motion (d/dt g(t, y(t))).
        d0 = conditions_and_rates(events, c.t, c.y, c.f)[1]
        crossed = jnp.stack([_crossed(e, c.g[i], d0[i], g1[i]) for i, e in enumerate(events)])
        hit = crossed.any() & ~c.done
        k1 = c.k + 1
        bad = jnp.where((c.bad < 0) & ~all_finite(y1), c.k - 1, c.bad)
        zero = jnp.zeros_like(c.streak)
        at_grid = _Carry(T, y1, f1, g1, k1, c.log, zero, c.status, bad, k1 > n)

        def grid():
            return at_grid, (T, y1, f1)

        def event():
            at_event, before = _at_event(events, system, c, h, y1, f1, g1, crossed, hit)
            return tree_where(hit, at_event, at_grid), tree_where(hit, before, (T, y1, f1))

        # Under vmap the predicate is reduced over the batch, so that steps in which no
        # member has an event skip the search (a batched predicate would always run it).
        new, before = lax.cond(eqx.internal.unvmap_any(hit), event, grid)
        new = tree_where(c.done, c, new)
        before = tree_where(c.done, (c.t, c.y, c.f), before)
        return new, (before, (new.t, new.y, new.f))

    return iterate


def _at_event(events, system, c: _Carry, h, y1, f1, g1, crossed, hit):
    """The carry after the earliest event in the step from `c` to `(c.t + h, y1)`, and
    the knot that ends the step's cubic at the event (its value and slope there)."""

    def G(i, s):
        return jnp.asarray(events[i].condition(c.t + s, _hermite(c.y, c.f, y1, f1, h, s))).astype(
            h.dtype
        )

    taus = jnp.stack([
        jnp.where(crossed[i], _event_time(lambda s, i=i: G(i, s), c.g[i], g1[i], h), jnp.inf)
        for i in range(len(events))
    ])  # fmt: skip
    which = jnp.argmin(taus)
    tau = jnp.where(hit, taus[which], h)
    t_event = c.t + tau
    y_event, slope = jax.jvp(
        lambda s: _hermite(c.y, c.f, y1, f1, h, s), (tau,), (jnp.ones_like(tau),)
    )
    y_after, terminal = apply(events, which, t_event, y_event)
    f_after = system.vector_field(t_event, y_after)
    # The event that fired sits on its zero (to round-off, of either sign): exactly
    # zero, so that moving away is not taken for another crossing, nor missed.
    g_after = conditions(events, t_event, y_after)
    g_after = jnp.where(jnp.arange(len(events)) == which, 0.0, g_after)
    log = record(c.log, t_event, which, y_event, hit)
    streak = c.streak + 1
    status = RESULTS.where(
        log.count > log.times.shape[0],
        RESULTS.event_capacity,
        RESULTS.where(streak > _ZENO, RESULTS.event_accumulation, c.status),
    )
    ended = status != RESULTS.successful
    at_event = _Carry(
        t_event, y_after, f_after, g_after, c.k, log, streak, status, c.bad, terminal | ended
    )
    return at_event, (t_event, y_event, slope)


def _initial(system, y0, t0, events, n, capacity):
    f0 = system.vector_field(t0, y0)
    minus_one = jnp.asarray(-1, jnp.int32)
    return _Carry(
        t=t0, y=y0, f=f0, g=conditions(events, t0, y0), k=jnp.asarray(1, jnp.int32),
        log=empty_log(y0, capacity, t0.dtype), streak=jnp.asarray(0, jnp.int32),
        status=RESULTS.successful, bad=minus_one,
        done=jnp.asarray(n == 0),
    )  # fmt: skip


def _query_times(saveat: SaveAt, t0, dt, n: int):
    """The times `saveat` asks for (before clamping to a terminal event)."""
    if saveat.ts is not None:
        return saveat.ts.astype(t0.dtype)
    every = saveat.every
    steps = list(range(0, n + 1, every)) + ([n] if n % every else [])
    return t0 + jnp.asarray(steps, t0.dtype) * dt


@eqx.filter_jit
def simulate_events(
    system, y0, t0, dt, n: int, integrator, saveat: SaveAt, adjoint, events, capacity: int
) -> Trajectory:
    """`n` steps of `dt` from `(t0, y0)` with `events`; see `simulate`."""
    params = (system, t0, dt)
    carry0 = _initial(system, y0, t0, events, n, capacity)
    iterate = _iteration(integrator, events, n)
    length = n + capacity
    ends_only = saveat.ts is None and saveat.every is None and not saveat.dense
    if ends_only:
        final = adjoint.loop(lambda p, c: iterate(p, c)[0], params, carry0, length)
    else:
        body = iterate if not isinstance(adjoint, Checkpointed) else jax.checkpoint(iterate)
        final, (before, after) = lax.scan(lambda c, _: body(params, c), carry0, None, length=length)
        # Knots: the start, then per iteration the end of its step and the state after it.
        inter = jax.tree.map(
            lambda a, b: jnp.stack([a, b], axis=1).reshape((-1,) + a.shape[1:]), before, after
        )
        first = jax.tree.map(lambda x: x[None], (t0, y0, carry0.f))
        knots = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), first, inter)
    interpolation = None if ends_only else HermiteInterpolation(*knots)
    if saveat.ts is None and saveat.every is None:
        ts, ys = save_ends(saveat, t0, y0, final.t, final.y)
    else:
        ts = jnp.minimum(_query_times(saveat, t0, dt, n), final.t)
        ys = save_states(saveat, ts, interpolation.evaluate(ts))
    finite = all_finite(final.y)
    result = RESULTS.where(finite, final.status, RESULTS.nonfinite)
    bad = jnp.where(finite, -1, jnp.where(final.bad < 0, final.k - 1, final.bad))
    stats = {"num_steps": jnp.asarray(n, jnp.int32), "nonfinite_step": bad.astype(jnp.int32)}
    return Trajectory(
        ts=ts, ys=ys, result=result, stats=stats, events=final.log,
        interpolation=interpolation if saveat.dense else None,
    )  # fmt: skip
