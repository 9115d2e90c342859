"""The adaptive rollout with events (private): `ds.simulate(..., events=...)` with a
diffrax-backed integrator.

diffrax's events end a solve; diffsim's may also reset the state and carry on. So the
rollout is a `lax.scan` over at most `max_events + 1` segments, each one
`diffrax.diffeqsolve` from the last event (or `t0`) that stops at the next event. diffrax
locates the event time with a root find on the solver's own interpolant (optimistix's
Newton, differentiated by the implicit function theorem); the scan logs the event,
applies its reset, and starts the next segment there. A member whose rollout has ended
(at `t1`, at a terminal event, or failed) takes zero steps in the remaining segments.

Saved times: each segment fills the requested times that fall in it, from its own
solve; a time equal to an event time gets the state after the reset.
"""

import diffrax
import equinox as eqx
import jax
import jax.lax as lax
import jax.numpy as jnp
import optimistix as optx

from .._trees import tree_where
from ._adaptive_rollout import result_code
from ._event import (
    apply,
    conditions,
    conditions_and_rates,
    empty_log,
    record,
    save_ends,
    save_states,
)
from ._saveat import SaveAt
from ._solution import RESULTS, Trajectory


def _vector_field(t, y, args):
    return args[0].vector_field(t, y)


def diffrax_adjoint(adjoint, forward_only: bool):
    """The diffrax adjoint for `adjoint`; diffrax's forward mode inside trial rollouts
    (forward-mode Jacobians only, as in `simulate_adaptive`)."""
    return diffrax.ForwardMode() if forward_only else adjoint.to_diffrax()


def _diffrax_event(events, dtype):
    """One `diffrax.Event` for all of `events`, with a root finder to round-off. Each
    condition is shifted by the segment's offset for it (`_offsets`)."""
    eps = float(jnp.finfo(dtype).eps)

    def cond(i, event):
        def value(t, y, args, **_):
            shifted = jnp.asarray(event.condition(t, y)).astype(dtype) - args[1][i]
            return jnp.where(args[2][i], shifted, 1.0)  # a disabled event never crosses

        return value

    directions = [None if e.direction == 0 else e.direction > 0 for e in events]
    finder = optx.Newton(rtol=64 * eps, atol=64 * eps)
    conds = [cond(i, e) for i, e in enumerate(events)]
    return diffrax.Event(conds, root_finder=finder, direction=directions)


def _offsets(events, system, t, y, fired):
    """Shifts of the conditions for the segment that starts at an event, `(t, y)` after
    its reset. The event that fired sits on its zero to round-off, of either sign: it
    starts the segment exactly on zero if it moves on in its direction (the same
    crossing), or a hair on the near side if it moves back (so that a return within the
    first step, a ball's next bounce, is a crossing diffrax sees)."""
    g, rate = conditions_and_rates(events, t, y, system.vector_field(t, y))
    direction = jnp.asarray([e.direction for e in events], t.dtype)
    back = direction * rate < 0
    hair = 16 * jnp.finfo(t.dtype).eps * (1 + jnp.abs(t)) * jnp.abs(rate)
    start = jnp.where(back, -direction * hair, 0.0)
    return lax.stop_gradient(jnp.where(fired, g - start, 0.0))


class _Segment(eqx.Module):
    """The scan's carry: where the next segment starts and what has been kept."""

    t: jax.Array
    y: object
    offsets: jax.Array
    enabled: jax.Array  # (events,) bool: events diffrax may stop at in this segment
    bound: jax.Array  # where this segment ends at the latest (t1, or a retry's bound)
    pending: jax.Array  # the event a retry falls back to, or -1 (`_step`)
    buffer: object  # the states at the save times filled so far (or None)
    log: object
    status: RESULTS
    done: jax.Array
    steps: jax.Array


def _solve(system, c: _Segment, t1, dt, ts, integrator, adjoint, max_steps, event):
    """One segment: from `c.t` to the next event or `t1` (no steps if `c.done`)."""
    t_from = jnp.where(c.done, c.bound, c.t)
    subs = [diffrax.SubSaveAt(t1=True)]  # the state at the event, or at t1
    if ts is not None:
        subs.append(diffrax.SubSaveAt(ts=jnp.clip(ts, t_from, c.bound)))
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(_vector_field),
        integrator.diffrax_solver(),
        t_from,
        c.bound,
        dt,
        c.y,
        args=(system, c.offsets, c.enabled),
        saveat=diffrax.SaveAt(subs=subs),
        stepsize_controller=integrator.diffrax_controller(),
        adjoint=adjoint,
        event=event,
        max_steps=4096 if max_steps is None else max_steps,
        throw=False,
    )
    return t_from, sol


def _fill(buffer, ts, saved, here):
    return jax.tree.map(
        lambda b, s: jnp.where(here.reshape((-1,) + (1,) * (b.ndim - 1)), s, b), buffer, saved
    )


def _crossed(events, g0, g1):
    """diffrax's rule: which conditions changed sign from `g0` to `g1` in their direction."""
    direction = jnp.asarray([e.direction for e in events])
    rising, falling = (g0 <= 0) & (g1 > 0), (g0 > 0) & (g1 <= 0)
    return jnp.where(direction > 0, rising, jnp.where(direction < 0, falling, rising | falling))


def _step(events, system, t1, dt, ts, integrator, adjoint, max_steps, event):
    """One iteration of the scan: a segment to the next event (or `t1`), or a retry.

    diffrax stops at the first event *in list order* among those that fired within its
    last step, not the earliest. So when another enabled condition also changed sign
    over the segment, the segment is discarded and retried from the same start, ending
    at the event found (`bound`) with that event disabled (`pending` remembers it); the
    retry finds an earlier event, or none, and then the pending one stands."""
    indices = jnp.arange(len(events))

    def segment(c: _Segment, _):
        t_from, sol = _solve(system, c, t1, dt, ts, integrator, adjoint, max_steps, event)
        y_end = jax.tree.map(lambda x: x[0], sol.ys[0])
        t_end = jnp.asarray(sol.ts[0][0], t1.dtype)
        mask = jnp.stack([jnp.asarray(m) for m in sol.event_mask])
        found = mask.any() & ~c.done
        g0 = conditions(events, c.t, c.y) - c.offsets
        g1 = conditions(events, t_end, y_end) - c.offsets
        missed = c.enabled & (indices != jnp.argmax(mask)) & _crossed(events, g0, g1)
        retry = found & missed.any()
        fall_back = ~found & (c.pending >= 0) & ~c.done
        hit = (found & ~retry) | fall_back
        which = jnp.where(fall_back, c.pending, jnp.argmax(mask))
        y_after, terminal = apply(events, which, t_end, y_end)
        log = record(c.log, t_end, which, y_end, hit)
        failed = result_code(sol.result)
        status = RESULTS.where(c.done | (failed == RESULTS.successful), c.status, failed)
        status = RESULTS.where(
            hit & (log.count > log.times.shape[0]), RESULTS.event_capacity, status
        )
        buffer = c.buffer
        if ts is not None:  # this segment covers [t_from, t_end); the last, t_end too
            here = (ts >= t_from) & ((ts < t_end) | ~hit | terminal) & ~c.done & ~retry
            buffer = _fill(buffer, ts, sol.ys[1], here)
        y_next = tree_where(hit & ~terminal, y_after, y_end)
        accepted = _Segment(
            t=jnp.where(c.done, c.t, t_end),
            y=tree_where(c.done, c.y, y_next),
            offsets=_offsets(events, system, t_end, y_next, (indices == which) & hit),
            enabled=jnp.ones_like(c.enabled),
            bound=t1,
            pending=jnp.asarray(-1, jnp.int32),
            buffer=buffer,
            log=log,
            status=status,
            done=c.done | ~hit | terminal | (status != RESULTS.successful),
            steps=c.steps + jnp.where(c.done, 0, sol.stats["num_steps"]),
        )
        retried = eqx.tree_at(
            lambda s: (s.enabled, s.bound, s.pending, s.steps),
            c,
            (c.enabled & (indices != which), t_end, which.astype(jnp.int32),
             c.steps + sol.stats["num_steps"]),
        )  # fmt: skip
        return tree_where(retry, retried, accepted), None

    return segment


@eqx.filter_jit
def simulate_adaptive_events(
    system, y0, t0, t1, dt, integrator, saveat: SaveAt, adjoint, max_steps, events, capacity
) -> Trajectory:
    """The rollout; see `simulate` for the arguments."""
    dtype = jnp.result_type(*jax.tree.leaves(y0))
    t0, t1 = jnp.asarray(t0, dtype), jnp.asarray(t1, dtype)
    ts = None if saveat.ts is None else saveat.ts.astype(dtype)
    event = _diffrax_event(events, dtype)
    buffer0 = (
        None if ts is None else jax.tree.map(lambda x: jnp.zeros(ts.shape + x.shape, x.dtype), y0)
    )
    carry0 = _Segment(
        t=t0, y=y0, offsets=jnp.zeros(len(events), dtype),
        enabled=jnp.ones(len(events), bool), bound=t1, pending=jnp.asarray(-1, jnp.int32),
        buffer=buffer0,
        log=empty_log(y0, capacity, dtype), status=RESULTS.successful,
        done=jnp.asarray(False), steps=jnp.asarray(0, jnp.int32),
    )  # fmt: skip
    segment = _step(events, system, t1, dt, ts, integrator, adjoint, max_steps, event)
    # One segment per event and one to t1, and as many again for retries.
    final, _ = lax.scan(segment, carry0, None, length=2 * capacity + 2)
    # Not ended after every segment: more events than the log holds.
    status = RESULTS.where(final.done, final.status, RESULTS.event_capacity)
    if ts is None:
        out_ts, ys = save_ends(saveat, t0, y0, final.t, final.y)
    else:
        # At or after a terminal event: the state there, and the event's time.
        at_end = jax.tree.map(lambda x: jnp.broadcast_to(x, ts.shape + x.shape), final.y)
        out_ts = jnp.minimum(ts, final.t)
        ys = save_states(saveat, out_ts, _fill(final.buffer, ts, at_end, ts >= final.t))
    stats = {"num_steps": final.steps}
    return Trajectory(ts=out_ts, ys=ys, result=status, stats=stats, events=final.log)
