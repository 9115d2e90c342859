"""The fixed-step rollout: one `lax.scan` of the integrator's step (private).

Contract: `simulate_fixed(system, y0, t0, dt, n, ...)` takes `n` steps of `dt` from `t0`
with arguments `simulate` has already checked, saves what `saveat` asks for, and returns
a `Trajectory` whose `result` says whether the state stayed finite and
`stats["nonfinite_step"]` the first bad step; it never raises (`simulate` does, from
them). The loop is the adjoint's (`adjoint.loop`), so how gradients flow is chosen there.

The phases: `_plan` builds the step and the initial carry; `_save_*` run the loop for one
kind of `SaveAt`; `_report` checks the final state and builds the result.
"""

from collections.abc import Callable
from typing import NamedTuple

import equinox as eqx
import jax
import jax.lax as lax
import jax.numpy as jnp
import numpy as np

from .._trees import all_finite
from ._adjoints import AbstractAdjoint, Checkpointed, Direct, Reversible
from ._checks import VELOCITY_MESSAGE, velocity_dependence
from ._interpolation import hermite_from_states
from ._saveat import SaveAt
from ._solution import RESULTS, Trajectory
from .integrators._base import uses_fsal


def _stack(trees):
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def _concat(trees):
    return jax.tree.map(lambda *xs: jnp.concatenate(xs), *trees)


# A rollout's loop carry is (y, k, aux): the state, the step counter, and what the
# integrator carries from one step to the next: the acceleration for first-same-as-last
# (FSAL) methods, else `()`.


def _make_step(integrator, fsal: bool, sign: int = 1):
    """One step forwards (`sign=1`), or backwards (`sign=-1`: from t_k it undoes the step
    from t_{k-1}, for reversible methods; with FSAL it also gives back the acceleration at
    t_{k-1})."""

    def step(params, carry):
        system, t0, dt = params[:3]
        y, k, aux = carry
        t = t0 + k.astype(t0.dtype) * dt
        if fsal:
            y, aux = integrator.step_fsal(system, t, y, aux, sign * dt)
            return y, k + sign, aux
        return integrator.step(system, t, y, sign * dt), k + sign, aux

    return step


def _first_nonfinite_step(step, params, carry0, n: int, y_final) -> jax.Array:
    """The first step whose result is non-finite, or -1 if the final state is finite.

    NaN and inf propagate through arithmetic, so a rollout that went non-finite anywhere
    ends non-finite: the hot path checks only the final state. Only when that check fails
    does a cold path re-run the steps, without gradients, to find where it started. The
    predicate is reduced over any vmap batch (`unvmap_any`), so under vmap this stays a
    `lax.cond` rather than becoming a select that would always pay for the re-run.
    """
    if n == 0:
        return jnp.asarray(-1, jnp.int32)
    finite = all_finite(y_final)

    def locate(_):
        quiet = jax.tree.map(
            lambda x: lax.stop_gradient(x) if eqx.is_inexact_array(x) else x, (params, carry0)
        )

        def body(state, _):
            carry, bad = state
            carry1 = step(quiet[0], carry)
            bad = jnp.where((bad < 0) & ~all_finite(carry1[0]), carry[1], bad)
            return (carry1, bad), None

        minus_one = jnp.asarray(-1, jnp.int32)
        (_, bad), _ = lax.scan(body, (quiet[1], minus_one), None, length=n)
        # A state that went non-finite and came back (a `where` in the system) is still
        # reported, at the last step, rather than not at all.
        return jnp.where(finite, minus_one, jnp.where(bad < 0, n - 1, bad))

    return lax.cond(
        eqx.internal.unvmap_any(~finite),
        locate,
        lambda _: jnp.full(finite.shape, -1, jnp.int32),
        None,
    )


def _check_velocity_independent(system, t0, y0):
    """The run-time half of `_checks.check_reversible_forces`, for traced systems."""
    depends = velocity_dependence(system, t0, y0)
    return eqx.error_if(y0, depends, VELOCITY_MESSAGE)


class _Plan(NamedTuple):
    """What every saving mode needs: the step (and its inverse), its parameters, the
    initial carry and the function that turns a state into what is saved."""

    step: Callable
    inverse: Callable | None
    save: Callable
    params: tuple
    carry0: tuple


def _plan(system, y0, t0, dt, integrator, saveat: SaveAt, adjoint) -> _Plan:
    fsal = uses_fsal(integrator, system, t0, y0)
    if isinstance(adjoint, Reversible):
        y0 = _check_velocity_independent(system, t0, y0)
    aux0 = system.acceleration(t0, y0.q, y0.v) if fsal else ()
    return _Plan(
        step=_make_step(integrator, fsal),
        inverse=_make_step(integrator, fsal, -1) if integrator.reversible else None,
        save=(lambda t, y: saveat.fn(t, y)) if saveat.fn is not None else (lambda t, y: y),
        params=(system, t0, dt),
        carry0=(y0, jnp.asarray(0, jnp.int32), aux0),
    )


@eqx.filter_jit
def simulate_fixed(
    system,
    y0,
    t0,
    dt,
    n: int,
    integrator,
    saveat: SaveAt,
    adjoint: AbstractAdjoint,
    check_ts: bool,
) -> Trajectory:
    """`n` steps of `dt` from `(t0, y0)`; see `simulate` for the arguments. `check_ts`:
    the save times were traced, so they are checked at run time."""
    plan = _plan(system, y0, t0, dt, integrator, saveat, adjoint)
    if saveat.dense:
        ts, ys, y_final, interpolation = _save_dense(plan, saveat, n, integrator, check_ts)
        return _report(plan, n, ts, ys, y_final, interpolation)
    if saveat.ts is not None:
        ts, ys, y_final = _save_ts(plan, saveat, n, integrator, adjoint, check_ts)
    elif saveat.every is not None and _flat_every(adjoint, y0, n, saveat.every):
        ts, ys, y_final = _save_every_flat(plan, n, saveat.every)
    elif saveat.every is not None:
        ts, ys, y_final = _save_every_nested(plan, n, saveat.every, adjoint)
    else:
        ts, ys, y_final = _save_ends(plan, n, saveat, adjoint)
    return _report(plan, n, ts, ys, y_final)


def _report(plan: _Plan, n: int, ts, ys, y_final, interpolation=None) -> Trajectory:
    """Check the final state; on failure find the first bad step. Never raises: the
    caller reads `result` and `stats["nonfinite_step"]` (see `_errors.py`)."""
    bad = _first_nonfinite_step(plan.step, plan.params, plan.carry0, n, y_final)
    result = RESULTS.where(bad >= 0, RESULTS.nonfinite, RESULTS.successful)
    stats = {"num_steps": jnp.asarray(n, jnp.int32), "nonfinite_step": bad}
    return Trajectory(ts=ts, ys=ys, result=result, stats=stats, interpolation=interpolation)


def _save_ends(plan: _Plan, n: int, saveat: SaveAt, adjoint):
    """SaveAt(t0=..., t1=...): the loop keeps nothing but the carry."""
    _, t0, dt = plan.params
    y0 = plan.carry0[0]
    y_final = adjoint.loop(plan.step, plan.params, plan.carry0, n, plan.inverse)[0]
    t1 = t0 + n * dt
    times, states = [], []
    if saveat.t0:
        times.append(t0)
        states.append(plan.save(t0, y0))
    if saveat.t1:
        times.append(t1)
        states.append(plan.save(t1, y_final))
    return jnp.stack(times), _stack(states), y_final


def _save_every_flat(plan: _Plan, n: int, k: int):
    """SaveAt(every=k) as one flat scan that emits every state, then every k-th is kept:
    O(n) states, which Direct stores for the gradient anyway. Nested loops (a scan of
    blocks of k steps) cost an inner-loop entry per block, which dominates a small
    system's rollout: measured 6x slower in a Levenberg-Marquardt fit."""
    _, t0, dt = plan.params
    y0 = plan.carry0[0]
    n_blocks, rem = divmod(n, k)

    def flat(carry, _):
        carry = plan.step(plan.params, carry)
        return carry, carry[0]

    carry, states = lax.scan(flat, plan.carry0, None, length=n)
    steps = np.concatenate([np.arange(k, n_blocks * k + 1, k), [n] if rem else []])
    picked = jax.tree.map(lambda s: s[steps.astype(np.int64) - 1], states)
    times = t0 + jnp.asarray(steps, t0.dtype) * dt
    ys = _concat([_stack([plan.save(t0, y0)]), jax.vmap(plan.save)(times, picked)])
    ts = t0 + jnp.asarray(np.concatenate([[0], steps]), t0.dtype) * dt
    return ts, ys, carry[0]


def _save_every_nested(plan: _Plan, n: int, k: int, adjoint):
    """SaveAt(every=k) as a scan over blocks of k steps, each block the adjoint's loop."""
    _, t0, dt = plan.params
    y0 = plan.carry0[0]
    n_blocks, rem = divmod(n, k)

    def block(carry, _):
        carry = adjoint.loop(plan.step, plan.params, carry, k, plan.inverse)
        return carry, plan.save(t0 + carry[1].astype(t0.dtype) * dt, carry[0])

    carry, ys_blocks = lax.scan(block, plan.carry0, None, length=n_blocks)
    pieces = [_stack([plan.save(t0, y0)]), ys_blocks]
    steps = [np.arange(0, n_blocks * k + 1, k)]
    if rem:
        carry = adjoint.loop(plan.step, plan.params, carry, rem, plan.inverse)
        pieces.append(_stack([plan.save(t0 + n * dt, carry[0])]))
        steps.append(np.array([n]))
    ts = t0 + jnp.asarray(np.concatenate(steps), t0.dtype) * dt
    return ts, _concat(pieces), carry[0]


def _checked_ts(saveat: SaveAt, t0, dt, n: int, check_ts: bool):
    """The save times in the state's dtype; traced ones are checked here, at run time."""
    ts = saveat.ts.astype(t0.dtype)
    if not check_ts:
        return ts
    # A few ulps of slack: t1 computed as t0 + n dt rounds differently from a user's t1.
    slack = 8 * jnp.finfo(t0.dtype).eps * (jnp.abs(t0) + n * jnp.abs(dt))
    t1 = t0 + n * dt
    lo, hi = jnp.minimum(t0, t1), jnp.maximum(t0, t1)
    return eqx.error_if(
        ts,
        (ts < lo - slack).any()
        | (ts > hi + slack).any()
        | (jnp.diff(ts) * jnp.sign(dt) < 0).any()
        | ~jnp.isfinite(ts).all(),
        "SaveAt(ts=...) must be finite, within [t0, t1] and in the order of integration "
        "(non-decreasing; non-increasing for a backward rollout, dt < 0).",
    )


def _save_ts(plan: _Plan, saveat: SaveAt, n: int, integrator, adjoint, check_ts: bool):
    """SaveAt(ts=times): the grid states around each time, then a partial step to it."""
    _, t0, dt = plan.params
    ts = _checked_ts(saveat, t0, dt, n, check_ts)
    ys, final = _save_at_times(
        plan.step, plan.inverse, plan.params, plan.carry0, ts, n, integrator, adjoint
    )
    return ts, jax.vmap(plan.save)(ts, ys), final[0]


# Below this many state elements in a whole rollout (8 MB in float64), SaveAt(every=k)
# with the Direct adjoint runs as one flat scan that keeps every state.
_FLAT_EVERY_MAX_ELEMENTS = 2**20


def _flat(adjoint, y0, n: int) -> bool:
    """Whether a saving rollout may run as one flat scan that keeps every state: up to
    `_FLAT_EVERY_MAX_ELEMENTS` state elements in all, with the Direct adjoint (which
    stores every state for a gradient anyway) or Checkpointed (whose memory saving does
    not matter at that size, while the alternative, a save buffer carried through every
    step, made forward-mode Jacobians 13x and gradients 7x slower: 4.6 vs 0.35 ms and
    38 vs 5.2 ms, 1000 pendulum steps saved at 101 times)."""
    size = sum(int(np.prod(jnp.shape(leaf))) for leaf in jax.tree.leaves(y0))
    return isinstance(adjoint, (Direct, Checkpointed)) and n * size <= _FLAT_EVERY_MAX_ELEMENTS


def _flat_every(adjoint, y0, n: int, k: int) -> bool:
    return n >= k > 1 and _flat(adjoint, y0, n)


def _save_at_times(step, inverse, params, carry0, ts, n, integrator, adjoint):
    """States at arbitrary times `ts`: record the grid state y_k at the start of each step
    k that holds a save time, then take a partial integrator step of ts_i - t_k from it."""
    system, t0, dt = params
    n_save = ts.shape[0]
    if n == 0:
        y0 = carry0[0]
        return jax.tree.map(lambda x: jnp.broadcast_to(x, (n_save,) + x.shape), y0), carry0
    # The step each save time falls in; t1 itself is the end of the last step.
    ks = jnp.clip(jnp.floor((ts - t0) / dt).astype(jnp.int32), 0, n - 1)
    if _flat(adjoint, carry0[0], n):
        # One flat scan emitting the state at the start of every step, then a gather: a
        # buffer in the carry, written at a searched row every step, made forward-mode
        # Jacobians (ds.fit's) 10x slower than this (1.8 vs 0.17 ms, 1000 pendulum steps).
        def flat(carry, _):
            return step(params, carry), carry[0]

        final, states = lax.scan(flat, carry0, None, length=n)
        y_k = jax.tree.map(lambda s: s[ks], states)
        return _partial_steps(integrator, system, t0, dt, ks, ts, y_k), final
    buffer0 = jax.tree.map(lambda x: jnp.zeros((n_save,) + x.shape, x.dtype), carry0[0])

    def body(params, carry):
        ks = params[3]
        inner, buffer = carry
        y, k = inner[0], inner[1]
        # Saves that share a step k share one buffer row: the first of their group.
        row = jnp.minimum(jnp.searchsorted(ks, k, side="left"), n_save - 1)
        hit = ks[row] == k
        buffer = jax.tree.map(
            lambda b, yi: lax.dynamic_update_index_in_dim(
                b, jnp.where(hit, yi, lax.dynamic_index_in_dim(b, row, 0, False)), row, 0
            ),
            buffer,
            y,
        )
        return step(params, inner), buffer

    def body_inverse(params, carry):
        # The buffer is only written, and linearly, so its value is not needed to
        # differentiate the step: it is passed through unchanged.
        inner, buffer = carry
        return inverse(params, inner), buffer

    final, buffer = adjoint.loop(
        body,
        (system, t0, dt, ks),
        (carry0, buffer0),
        n,
        body_inverse if inverse is not None else None,
    )
    rows = jnp.searchsorted(ks, ks, side="left")
    y_k = jax.tree.map(lambda b: b[rows], buffer)
    return _partial_steps(integrator, system, t0, dt, ks, ts, y_k), final


def _save_dense(plan: _Plan, saveat: SaveAt, n: int, integrator, check_ts: bool):
    """SaveAt(..., dense=True): one flat scan that emits every state (the interpolant keeps
    them all, O(n), so nothing is gained by checkpointing), the Hermite interpolant on the
    grid, and the saved values of the other modes read off the grid states as they
    compute them."""
    system, t0, dt = plan.params
    y0 = plan.carry0[0]

    def flat(carry, _):
        carry = plan.step(plan.params, carry)
        return carry, carry[0]

    carry, states = lax.scan(flat, plan.carry0, None, length=n)
    grid = _concat([_stack([y0]), states])
    interpolation = hermite_from_states(system, t0 + jnp.arange(n + 1, dtype=t0.dtype) * dt, grid)
    if saveat.ts is not None:
        ts = _checked_ts(saveat, t0, dt, n, check_ts)
        ks = jnp.clip(jnp.floor((ts - t0) / dt).astype(jnp.int32), 0, max(n - 1, 0))
        y_k = jax.tree.map(lambda g: g[ks], grid)
        ys = _partial_steps(integrator, system, t0, dt, ks, ts, y_k) if n else y_k
        return ts, jax.vmap(plan.save)(ts, ys), carry[0], interpolation
    if saveat.every is not None:
        steps = np.unique(np.append(np.arange(0, n + 1, saveat.every), n))
    else:
        steps = np.array([0] * bool(saveat.t0) + [n] * bool(saveat.t1))
    ts = t0 + jnp.asarray(steps, t0.dtype) * dt
    picked = jax.tree.map(lambda g: g[steps], grid)
    return ts, jax.vmap(plan.save)(ts, picked), carry[0], interpolation


def _partial_steps(integrator, system, t0, dt, ks, ts, y_k):
    """From the grid state y_k at t_k, a step of ts_i - t_k to each save time (a valid
    dense output of the integrator's order; zero returns y_k)."""
    t_k = t0 + ks.astype(ts.dtype) * dt
    return jax.vmap(integrator.step, in_axes=(None, 0, 0, 0))(system, t_k, y_k, ts - t_k)
