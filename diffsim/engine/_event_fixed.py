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

Event times (undifferentiated): the root of the cubic through the condition's values and
rates at both ends of the step (scalar arithmetic, one fused loop under `vmap`), polished
by two Newton steps on the condition along the interpolant; then one differentiable
Newton step from that root,
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


def _newton(x) -> int:
    """Newton iterations on the cubic: from the secant root, quadratic convergence
    reaches float32 round-off in 3-4 and float64's in 5-6 (a bisection step when Newton
    leaves the bracket); the refinement on the condition itself then squares the error."""
    return 5 if jnp.finfo(x.dtype).bits <= 32 else 7


def _cubic_root(a0, a1, a2, a3, iterations: int):
    """The root in [0, 1] of $P(u) = a_0 + a_1 u + a_2 u^2 + a_3 u^3$, where $P(0)$ and
    $P(1)$ have opposite signs: Newton from the secant root, kept inside the bracket by
    bisection. Plain arithmetic on scalars (no calls of the condition), so under `vmap`
    it is one fused loop over the batch."""
    p1 = a0 + a1 + a2 + a3
    u = jnp.clip(a0 / jnp.where(a0 == p1, 1.0, a0 - p1), 0.0, 1.0)
    lo, hi = jnp.zeros_like(u), jnp.ones_like(u)
    before = jnp.sign(a0)
    for _ in range(iterations):
        p = a0 + u * (a1 + u * (a2 + u * a3))
        dp = a1 + u * (2 * a2 + u * 3 * a3)
        same = jnp.sign(p) == before
        lo, hi = jnp.where(same, u, lo), jnp.where(same, hi, u)
        newton = u - p / jnp.where(dp == 0, 1.0, dp)
        inside = (newton >= lo) & (newton <= hi) & (dp != 0)
        u = jnp.where(inside, newton, 0.5 * (lo + hi))
    return u


def _search(G, g0, r0, g1, r1, h):
    """Where G, which changed sign over [0, h], crosses zero (undifferentiated).

    First the root of the cubic through the condition's values and rates at both ends
    ($G(0) = g_0$, $G'(0) = r_0$, $G(h) = g_1$, $G'(h) = r_1$; exact when the condition
    is linear in the state, else $O(h^4)$ off), then two Newton steps on G itself, each
    squaring that error. Starting on zero (the event just fired), the crossing sought is
    the next one: the root of G(s)/s (the cubic divided by its root at 0) if G first
    moved away from zero, else 0 (it never left: a state resting on the condition, which
    repeats until `_ZENO` reports it)."""
    away = (g0 == 0) & (jnp.sign(r0) == -jnp.sign(g1))
    a1, a3 = h * r0, 2 * g0 + h * r0 - 2 * g1 + h * r1
    a2 = -3 * g0 - 2 * h * r0 + 3 * g1 - h * r1
    # Deflated (away): G(s)/s, the cubic's coefficients shifted down by one.
    shift = lambda a, b: jnp.where(away, b, a)  # noqa: E731
    u = _cubic_root(shift(g0, a1), shift(a1, a2), shift(a2, a3), shift(a3, 0.0), _newton(h))
    s = u * h

    def searched(s):
        s_safe = jnp.where(s == 0, 1.0, s)
        return jnp.where(away, G(s) / s_safe, G(s))

    for _ in range(2):
        g, dg = jax.jvp(searched, (s,), (jnp.ones_like(s),))
        refined = s - g / jnp.where(dg == 0, 1.0, dg)
        inside = (refined > 0) & (refined <= h) & jnp.isfinite(refined)
        s = jnp.where(inside, refined, s)
    return jnp.where((g0 == 0) & ~away, 0.0, s)


def _event_time(G, g0, r0, g1, r1, h):
    """The located root with the implicit-function derivative (module docstring)."""
    s = _search(G, *lax.stop_gradient((g0, r0, g1, r1, h)))
    s = lax.stop_gradient(s)
    g, dg = jax.jvp(G, (s,), (jnp.ones_like(s),))
    dg = lax.stop_gradient(dg)
    return s - g / jnp.where(dg == 0, 1.0, dg)


class _Carry(NamedTuple):
    t: jax.Array  # the current time
    y: object  # the state at t
    f: object  # the vector field at (t, y)
    g: jax.Array  # each event's condition at (t, y)
    r: jax.Array  # and its rate of change there, d/dt g(t, y(t))
    k: jax.Array  # the index of the next grid time
    streak: jax.Array  # events since the grid last advanced
    status: RESULTS  # successful, or why the rollout stopped
    bad: jax.Array  # the first grid step that ended non-finite, or -1
    done: jax.Array  # reached t1, ended by a terminal event, or failed
    log: EventLog


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
        g1, r1 = conditions_and_rates(events, T, y1, f1)
        crossed = jnp.stack([_crossed(e, c.g[i], c.r[i], g1[i]) for i, e in enumerate(events)])
        hit = crossed.any() & ~c.done
        k1 = c.k + 1
        bad = jnp.where((c.bad < 0) & ~all_finite(y1), c.k - 1, c.bad)
        zero = jnp.zeros_like(c.streak)
        at_grid = _Carry(T, y1, f1, g1, r1, k1, zero, c.status, bad, k1 > n, c.log)
        # A finished member keeps its carry. Selected here, before the branch, so that it
        # fuses with the step (after the branch it is a pass over every field of its own).
        at_grid = tree_where(c.done, c, at_grid)
        end = tree_where(c.done, (c.t, c.y, c.f), (T, y1, f1))

        def grid():
            return at_grid, end

        def event():
            at_event, before = _at_event(events, system, c, h, (y1, f1, g1, r1), crossed, hit)
            # `hit` excludes finished members, and the log is written under it already:
            # only the rest is selected (a select over the whole log costs more than a step).
            chosen = tree_where(hit, at_event._replace(log=None), at_grid._replace(log=None))
            return chosen._replace(log=at_event.log), tree_where(hit, before, end)

        # Under vmap the predicate is reduced over the batch, so that steps in which no
        # member has an event skip the search (a batched predicate would always run it).
        new, before = lax.cond(eqx.internal.unvmap_any(hit), event, grid)
        return new, (before, (new.t, new.y, new.f))

    return iterate


def _at_event(events, system, c: _Carry, h, end, crossed, hit):
    """The carry after the earliest event in the step from `c` to `c.t + h` (`end`: the
    state, vector field, conditions and rates there), and the knot that ends the step's
    cubic at the event (its value and slope there)."""
    y1, f1, g1, r1 = end

    def G(i, s):
        return jnp.asarray(events[i].condition(c.t + s, _hermite(c.y, c.f, y1, f1, h, s))).astype(
            h.dtype
        )

    taus = jnp.stack([
        jnp.where(
            crossed[i],
            _event_time(lambda s, i=i: G(i, s), c.g[i], c.r[i], g1[i], r1[i], h),
            jnp.inf,
        )
        for i in range(len(events))
    ])  # fmt: skip
    which = jnp.argmin(taus)
    tau = jnp.where(hit, taus.min(), h)
    t_event = c.t + tau
    y_event, slope = jax.jvp(
        lambda s: _hermite(c.y, c.f, y1, f1, h, s), (tau,), (jnp.ones_like(tau),)
    )
    y_after, terminal = apply(events, which, t_event, y_event)
    f_after = system.vector_field(t_event, y_after)
    g_after, r_after = conditions_and_rates(events, t_event, y_after, f_after)
    # The event that fired sits on its zero (to round-off, of either sign): exactly
    # zero, so that moving away is not taken for another crossing, nor missed.
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
        t_event, y_after, f_after, g_after, r_after, c.k, streak, status, c.bad,
        terminal | ended, log,
    )  # fmt: skip
    return at_event, (t_event, y_event, slope)


def _initial(system, y0, t0, events, n, capacity):
    f0 = system.vector_field(t0, y0)
    g0, r0 = conditions_and_rates(events, t0, y0, f0)
    minus_one = jnp.asarray(-1, jnp.int32)
    return _Carry(
        t=t0, y=y0, f=f0, g=g0, r=r0, k=jnp.asarray(1, jnp.int32),
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
