"""`refill_solve`: an ensemble of adaptive ODE solves without lockstep (private).

Contract: `refill_solve(vector_field, solver, controller, args, y0, t0, t1, dt0, ...)`
solves the `N` initial value problems whose data are the slices along the leading axis of
`args`, `y0`, `t0`, `t1`, `dt0` (and `ts`), and returns one `RefillSolution` in member
order. Member `i`'s outputs are those of

    diffrax.diffeqsolve(diffrax.ODETerm(vector_field), solver, t0[i], t1[i], dt0[i],
                        y0[i], args=args[i], stepsize_controller=controller,
                        saveat=diffrax.SaveAt(t0=save_t0, t1=save_t1, ts=ts[i]),
                        max_steps=max_steps, throw=False)

run on its own: the same saved times and values, result codes and step counts. Under
`jax.vmap(diffeqsolve)` every member takes as many (masked) steps as the slowest; here a
member costs only its own steps.

The algorithm: `L = min(lanes, N)` lanes each hold one member's solver state. One
compiled `lax.while_loop` runs blocks; a block (1) loads the next members of the queue
into the free lanes and takes their first step, (2) advances every lane up to `block`
steps, a `jax.vmap` over lanes of diffrax's own `solver.step` and
`controller.adapt_step_size` with the bookkeeping of diffrax's `loop` (`_integrate.py`)
replicated line by line, and (3) writes the members that finished into the outputs (a
scatter on their rows) and frees their lanes. Saves at `ts` are written to the member's
row as they happen, by interpolation over the accepted step, as diffrax does. A lane that
cannot step (finished, failed, or idle) still computes a step under the `vmap`; it is
discarded with `jnp.where` selects, so its arithmetic (NaN included) reaches nothing.

Equivalence: the arithmetic per member is diffrax's, operation for operation. With
`lanes=1` the results are bit for bit those of the member's own `diffeqsolve`. With more
lanes XLA compiles the batched arithmetic into vectorised kernels that may round
differently from the scalar ones (as `jax.vmap(diffeqsolve)` does too): values agree to
rounding (~1e-12 relative in float64 over 1e3 steps), step counts and codes in the tests
exactly, though a near-tie accept/reject can in principle flip. Against
`jax.vmap(diffeqsolve)` results are bit for bit, except that FSAL solvers re-evaluate
their first stage in every lane when any lane needs it (diffrax's `eqxi.unvmap_any`,
after a rejected first step), which changes the last bits. Loaded members take their
first step together, away from lanes mid-solve, to keep that rare. `t1 < t0` is solved
backwards as diffrax does (times negated, `WrapTerm`).
"""

import dataclasses

import diffrax
import equinox as eqx
import equinox.internal as eqxi
import jax
import jax.lax as lax
import jax.numpy as jnp
import jax.tree_util as jtu
import lineax.internal as lxi
from diffrax import RESULTS, AbstractSolver, AbstractStepSizeController, ODETerm

# Private to diffrax but part of what `diffeqsolve` does: `WrapTerm` negates time for
# backward solves, `use_stepsize_tol` marks root-finder tolerances taken from the
# controller. Reused, not copied, so that the arithmetic stays diffrax's.
from diffrax._root_finder import use_stepsize_tol
from diffrax._term import WrapTerm


class RefillSolution(eqx.Module):
    """Per-member outputs, leading axis `N` in member order. `ts`/`ys`: the saves in
    diffrax's order (t0 if `save_t0`, then `ts`, then t1 if `save_t1`), `inf` where never
    reached; `result`: a batched `diffrax.RESULTS`; counts as `diffeqsolve`'s stats."""

    ts: jax.Array
    ys: object
    result: RESULTS
    num_steps: jax.Array
    num_accepted_steps: jax.Array
    num_rejected_steps: jax.Array


_COUNTS = ("num_steps", "num_accepted_steps", "num_rejected_steps")


class _Lane(eqx.Module):
    """One lane's state (batched over lanes in the loop): diffrax's `State` minus the
    save buffers, plus the member it works on and whether it is in use."""

    member: jax.Array
    active: jax.Array
    tprev: jax.Array
    tnext: jax.Array
    y: object
    solver_state: object
    controller_state: object
    made_jump: jax.Array
    result: RESULTS
    num_steps: jax.Array
    num_accepted_steps: jax.Array
    num_rejected_steps: jax.Array
    ts_index: jax.Array  # how many of the member's `ts` have been saved


class _Problem(eqx.Module):
    """The static solve configuration and the per-member data (already in diffrax's
    negated time for backward members)."""

    vector_field: object = eqx.field(static=True)
    solver: AbstractSolver
    controller: AbstractStepSizeController
    max_steps: int = eqx.field(static=True)
    carry_jump: bool = eqx.field(static=True)
    offset: int = eqx.field(static=True)  # 1 when t0 is saved first
    args: object
    y0: object
    t0: jax.Array
    t1: jax.Array
    t1_clip_floor: jax.Array
    dt0: jax.Array | None
    ts: jax.Array | None
    direction: jax.Array

    def member(self, m):
        """Member `m`'s terms, arguments, end time and clip threshold."""
        terms = WrapTerm(ODETerm(self.vector_field), self.direction[m])
        args = jtu.tree_map(lambda a: a[m], self.args)
        return terms, args, self.t1[m], self.t1_clip_floor[m]


def _select(pred, new, old):
    """Leafwise `jnp.where(pred, new, old)` for a scalar (per-lane) predicate."""
    return jtu.tree_map(lambda a, b: jnp.where(pred, a, b), new, old)


def _as_arrays(tree):
    """Python scalars (diffrax's static `False`s) as arrays, so states can be selected."""
    return jtu.tree_map(jnp.asarray, tree)


# --------------------------------------------------------------------------------------
# One member, one step: diffrax's `diffeqsolve` set-up and `loop.body_fun_aux`.


def _init_lane(p: _Problem, m) -> _Lane:
    """Member `m`'s initial state, as `diffeqsolve` builds it: the controller chooses
    `tnext` (from `dt0`, or by its own heuristic when `dt0` is None), clipped to `t1`,
    then `solver.init`. A member with `t0 == t1` has all its `ts` saved already."""
    terms, args, t1, _ = p.member(m)
    t0 = p.t0[m]
    y0 = jtu.tree_map(lambda a: a[m], p.y0)
    dt0 = None if p.dt0 is None else p.dt0[m]
    controller = p.controller.wrap(p.direction[m])
    error_order = p.solver.error_order(terms)
    tnext, controller_state = controller.init(
        terms, t0, t1, y0, dt0, args, p.solver.func, error_order
    )
    tnext = jnp.minimum(tnext, t1)
    solver_state = p.solver.init(terms, t0, tnext, y0, args)
    n_ts = 0 if p.ts is None else p.ts.shape[1]
    zero = jnp.asarray(0)
    return _Lane(
        member=jnp.asarray(m),
        active=jnp.asarray(True),
        tprev=t0,
        tnext=tnext,
        y=y0,
        solver_state=_as_arrays(solver_state),
        controller_state=_as_arrays(controller_state),
        made_jump=jnp.asarray(False),
        result=RESULTS.where(True, RESULTS.successful, RESULTS.successful),
        num_steps=zero,
        num_accepted_steps=zero,
        num_rejected_steps=zero,
        ts_index=jnp.where(t0 == t1, n_ts, 0),
    )


def _can_step(p: _Problem, lane: _Lane):
    """diffrax's loop condition (`tprev < t1`, still successful, under `max_steps`),
    for an active lane."""
    t1 = p.t1[lane.member]
    more = (lane.tprev < t1) & (lane.result == RESULTS.successful)
    return lane.active & more & (lane.num_steps < p.max_steps)


def _step_lane(p: _Problem, lane: _Lane):
    """One step of `loop.body_fun_aux` for one member: `solver.step`, NaN errors as
    `inf`, `adapt_step_size`, `tprev`/`tnext` clipped to `t1`, state kept or rejected,
    the first unsuccessful result kept, counters. Returns the new lane, whether the step
    was kept, and the dense info with the step's interval (for saves at `ts`)."""
    terms, args, t1, t1_clip_floor = p.member(lane.member)
    controller = p.controller.wrap(p.direction[lane.member])
    made_jump = lane.made_jump if p.carry_jump else False
    y, y_error, dense_info, solver_state, solver_result = p.solver.step(
        terms, lane.tprev, lane.tnext, lane.y, args, lane.solver_state, made_jump
    )
    # diffrax #143: a NaN error estimate rejects the step instead of poisoning dt.
    y_error = jtu.tree_map(lambda x: jnp.where(jnp.isnan(x), jnp.inf, x), y_error)
    error_order = p.solver.error_order(terms)
    keep_step, tprev, tnext, new_jump, controller_state, controller_result = (
        controller.adapt_step_size(
            lane.tprev,
            lane.tnext,
            lane.y,
            y,
            args,
            y_error,
            error_order,
            lane.controller_state,
        )
    )
    tprev = jnp.minimum(tprev, t1)
    # `_clip_to_end`: within ~100 ULP of t1, land on t1 (or halve towards it).
    tclip = jnp.where(keep_step, t1, tprev + 0.5 * (t1 - tprev))
    tnext = jnp.where(tnext > t1_clip_floor, tclip, tnext)
    keep = lambda a, b: jnp.where(keep_step, a, b)  # noqa: E731
    solver_result = RESULTS.where(keep_step, solver_result, RESULTS.successful)
    result = RESULTS.where(lane.result == RESULTS.successful, solver_result, lane.result)
    result = RESULTS.where(result == RESULTS.successful, controller_result, result)
    new = _Lane(
        lane.member,
        lane.active,
        tprev,
        tnext,
        jtu.tree_map(keep, y, lane.y),
        jtu.tree_map(keep, _as_arrays(solver_state), lane.solver_state),
        _as_arrays(controller_state),
        jnp.where(keep_step, new_jump, lane.made_jump),
        result,
        lane.num_steps + 1,
        lane.num_accepted_steps + jnp.where(keep_step, 1, 0),
        lane.num_rejected_steps + jnp.where(keep_step, 0, 1),
        lane.ts_index,
    )
    return new, keep_step, (dense_info, lane.tprev, lane.tnext)


# --------------------------------------------------------------------------------------
# All lanes: steps, saves, loading and finishing members.


def _save_ts(p: _Problem, lanes: _Lane, out: RefillSolution, saving, interval):
    """diffrax's `save_ts` for every lane at once: while a lane that kept its step has
    its next save time `ts[m, k] <= tnext`, interpolate there and write row `m`, slot
    `offset + k`. Lanes with nothing to save write nowhere (row `N`, dropped)."""
    if p.ts is None:
        return lanes, out
    dense_info, t_lo, t_hi = interval
    n, n_ts = p.ts.shape

    def pending(index):
        t = p.ts[lanes.member, jnp.minimum(index, n_ts - 1)]
        return saving & (t <= t_hi) & (index < n_ts)

    def body(carry):
        index, out = carry
        todo = pending(index)
        t = p.ts[lanes.member, jnp.minimum(index, n_ts - 1)]
        interp = lambda t_, lo, hi, info: p.solver.interpolation_cls(  # noqa: E731
            t0=lo, t1=hi, **info
        ).evaluate(t_)
        y = jax.vmap(interp)(t, t_lo, t_hi, dense_info)
        row = jnp.where(todo, lanes.member, n)
        slot = p.offset + index
        direction = p.direction[lanes.member]
        ts = out.ts.at[row, slot].set(t * direction, mode="drop")
        ys = jtu.tree_map(lambda o, v: o.at[row, slot].set(v, mode="drop"), out.ys, y)
        return index + jnp.where(todo, 1, 0), eqx.tree_at(lambda o: (o.ts, o.ys), out, (ts, ys))

    index, out = lax.while_loop(lambda c: jnp.any(pending(c[0])), body, (lanes.ts_index, out))
    return eqx.tree_at(lambda s: s.ts_index, lanes, index), out


def _advance(p: _Problem, lanes: _Lane, out: RefillSolution, mask):
    """One step in the lanes where `mask`, the others unchanged; then the saves."""
    new, keep_step, interval = jax.vmap(lambda lane: _step_lane(p, lane))(lanes)
    lanes = jax.vmap(_select)(mask, new, lanes)
    return _save_ts(p, lanes, out, mask & keep_step, interval)


def _load(p: _Problem, lanes: _Lane, out: RefillSolution, queue):
    """Free lanes take the next members of the queue, in order, and take their first
    step together (so that every lane stepping then starts afresh, as alone)."""
    n = p.t0.shape[0]
    free = ~lanes.active
    member = queue + jnp.cumsum(free) - 1
    loaded = free & (member < n)
    fresh = jax.vmap(lambda m: _init_lane(p, m))(jnp.minimum(member, n - 1))
    lanes = jax.vmap(_select)(loaded, fresh, lanes)
    mask = loaded & jax.vmap(lambda lane: _can_step(p, lane))(lanes)
    lanes, out = _advance(p, lanes, out, mask)
    return lanes, out, queue + jnp.sum(loaded)


def _finish(p: _Problem, lanes: _Lane, out: RefillSolution, done):
    """Write the members of the `done` lanes: counters, result (`max_steps_reached`
    when the loop condition still held, as diffrax), and the final `(tprev, y)` in the
    slot after the last save, as diffrax's `save t1`. Frees those lanes."""
    n = p.t0.shape[0]
    row = jnp.where(done, lanes.member, n)
    unfinished = (lanes.tprev < p.t1[lanes.member]) & (lanes.result == RESULTS.successful)
    result = _select(unfinished, RESULTS.max_steps_reached, lanes.result)
    put = lambda o, v: o.at[row].set(v, mode="drop")  # noqa: E731
    counts = [put(getattr(out, k), getattr(lanes, k)) for k in _COUNTS]
    out = RefillSolution(out.ts, out.ys, jtu.tree_map(put, out.result, result), *counts)
    if out.ts.shape[1] > p.offset + (0 if p.ts is None else p.ts.shape[1]):
        slot = p.offset + lanes.ts_index
        t_final = lanes.tprev * p.direction[lanes.member]
        ts = out.ts.at[row, slot].set(t_final, mode="drop")
        ys = jtu.tree_map(lambda o, v: o.at[row, slot].set(v, mode="drop"), out.ys, lanes.y)
        out = eqx.tree_at(lambda o: (o.ts, o.ys), out, (ts, ys))
    return eqx.tree_at(lambda s: s.active, lanes, lanes.active & ~done), out


def _block(p: _Problem, block: int, carry):
    """One block: load free lanes, up to `block` steps in every lane that can step
    (stopping early once none can), then finish the members that are done."""
    lanes, out, queue = carry
    n = p.t0.shape[0]
    lanes, out, queue = lax.cond(
        jnp.any(~lanes.active) & (queue < n),
        lambda c: _load(p, *c),
        lambda c: c,
        (lanes, out, queue),
    )
    can_step = jax.vmap(lambda lane: _can_step(p, lane))

    def step(c):
        k, lanes, out = c
        return (k + 1, *_advance(p, lanes, out, can_step(lanes)))

    _, lanes, out = lax.while_loop(
        lambda c: (c[0] < block) & jnp.any(can_step(c[1])), step, (0, lanes, out)
    )
    lanes, out = _finish(p, lanes, out, lanes.active & ~can_step(lanes))
    return lanes, out, queue


# --------------------------------------------------------------------------------------
# Set-up and the public function.


def _allocate(p: _Problem, save_t0: bool, save_t1: bool) -> RefillSolution:
    """Outputs filled with `inf` (diffrax's unreached saves), with the saves known
    before any step: `(t0, y0)` first if `save_t0`, and for members with `t0 == t1`
    every `ts` slot, as diffrax's `_save_if_t0_equals_t1`."""
    n = p.t0.shape[0]
    n_ts = 0 if p.ts is None else p.ts.shape[1]
    n_save = p.offset + n_ts + int(save_t1)
    # In real time: diffrax's `direction * inf` comes back as `+inf` once un-negated.
    ts = jnp.full((n, n_save), jnp.inf, p.t0.dtype)
    ys = jtu.tree_map(lambda y: jnp.full((n, n_save, *y.shape[1:]), jnp.inf, y.dtype), p.y0)
    t0_out = p.t0 * p.direction
    if save_t0:
        ts = ts.at[:, 0].set(t0_out)
        ys = jtu.tree_map(lambda o, y: o.at[:, 0].set(y), ys, p.y0)
    if n_ts:
        same = p.t0 == p.t1
        span = slice(p.offset, p.offset + n_ts)
        ts = ts.at[:, span].set(jnp.where(same[:, None], t0_out[:, None], ts[:, span]))
        fill = lambda o, y: o.at[:, span].set(  # noqa: E731
            jnp.where(_expand(same, o.ndim), y[:, None], o[:, span])
        )
        ys = jtu.tree_map(fill, ys, p.y0)
    zero = jnp.zeros(n, jnp.asarray(0).dtype)
    result = jtu.tree_map(lambda v: jnp.full((n,), v), RESULTS.successful)
    return RefillSolution(ts, ys, result, zero, zero, zero)


def _expand(x, ndim: int):
    """`x` (N,) with trailing axes to broadcast against an array of rank `ndim`."""
    return x.reshape(x.shape + (1,) * (ndim - 1))


def _problem(
    vector_field, solver, controller, args, y0, t0, t1, dt0, ts, save_t0, max_steps
) -> _Problem:
    """Times in one dtype and `y0` promoted to it, as `diffeqsolve`; each member's
    times negated when it runs backwards; `t1` less 100 ULP (`t1_clip_floor`)."""
    timelikes = [x for x in (t0, t1, dt0, ts) if x is not None]
    with jax.numpy_dtype_promotion("standard"):
        time_dtype = jnp.result_type(*timelikes)
    if jnp.issubdtype(time_dtype, jnp.integer):
        time_dtype = lxi.default_floating_dtype()
    elif not jnp.issubdtype(time_dtype, jnp.floating):
        raise ValueError(f"Unsupported time dtype {time_dtype}.")
    cast = lambda x: None if x is None else jnp.asarray(x, time_dtype)  # noqa: E731
    t0, t1, dt0, ts = cast(t0), cast(t1), cast(dt0), cast(ts)

    def promote(y):
        with jax.numpy_dtype_promotion("standard"):
            return jnp.asarray(y, jnp.result_type(y, time_dtype))

    direction = jnp.where(t0 < t1, 1, -1)
    t1 = t1 * direction
    # 100 ULP below t1, as diffrax; a loop, not 100 unrolled ops, which send XLA's
    # algebraic simplifier into a circular rewrite (logged at error level on CPU).
    floor = lax.fori_loop(0, 100, lambda _, f: eqxi.prevbefore(f), t1)
    dt0 = None if dt0 is None else dt0 * direction
    ts = None if ts is None else ts * direction[:, None]
    y0 = jtu.tree_map(promote, y0)
    return _Problem(vector_field, solver, controller, max_steps, False, int(save_t0), args, y0,
                    t0 * direction, t1, floor, dt0, ts, direction)  # fmt: skip


def _implicit_tols(solver, controller):
    """An implicit solver's root finder given the controller's `rtol`/`atol`/`norm`
    where it asks for them (`use_stepsize_tol`), as `diffeqsolve` does."""
    if not isinstance(solver, diffrax.AbstractImplicitSolver):
        return solver
    names = [
        name
        for name in ("rtol", "atol", "norm")
        if getattr(solver.root_finder, name) is use_stepsize_tol
    ]
    if not names:
        return solver
    if not isinstance(controller, diffrax.AbstractAdaptiveStepSizeController):
        raise ValueError("An implicit solver needs tolerances: use an adaptive controller.")
    get = lambda s: tuple(getattr(s.root_finder, name) for name in names)  # noqa: E731
    return eqx.tree_at(get, solver, tuple(getattr(controller, n) for n in names))


def _static_jump(p: _Problem) -> _Problem:
    """Carry `made_jump` only when the controller returns a traced one (as diffrax's
    `_handle_static`): a static `False` lets FSAL solvers skip re-evaluating their first
    stage."""

    def probe():
        lane = _init_lane(p, 0)
        terms, args, _, _ = p.member(0)
        y, y_error, _, _, _ = p.solver.step(
            terms, lane.tprev, lane.tnext, lane.y, args, lane.solver_state, False
        )
        error_order = p.solver.error_order(terms)
        out = p.controller.adapt_step_size(lane.tprev, lane.tnext, lane.y, y, args, y_error,
                                           error_order, lane.controller_state)  # fmt: skip
        return isinstance(out[3], bool)

    static = eqx.filter_eval_shape(probe)
    return dataclasses.replace(p, carry_jump=not static)


@eqx.filter_jit
def _solve(p: _Problem, lanes: int, block: int, save_t0: bool, save_t1: bool):
    """The compiled loop: blocks until the queue is empty and no lane is active."""
    n = p.t0.shape[0]
    out = _allocate(p, save_t0, save_t1)
    idle = jax.vmap(lambda m: _init_lane(p, m))(jnp.zeros(lanes, int))
    idle = eqx.tree_at(lambda s: s.active, idle, jnp.zeros(lanes, bool))
    carry = (idle, out, jnp.asarray(0))
    _, out, _ = lax.while_loop(
        lambda c: (c[2] < n) | jnp.any(c[0].active),
        lambda c: _block(p, block, c),
        carry,
    )
    return out


def refill_solve(
    vector_field,
    solver: AbstractSolver,
    controller: AbstractStepSizeController,
    args,
    y0,
    t0,
    t1,
    dt0,
    *,
    ts=None,
    save_t0: bool = False,
    save_t1: bool = True,
    max_steps: int,
    lanes: int,
    block: int,
) -> RefillSolution:
    """Solve `N` ODEs `dy/dt = vector_field(t, y, args[i])`, `y(t0[i]) = y0[i]`, up to
    `t1[i]`, with `lanes` members in flight at a time, `block` steps between refills.

    Every array leaf of `args` and `y0`, and `t0`, `t1`, `dt0` (or `None`: the
    controller picks the first step) and `ts` (`(N, n_ts)` save times, increasing, within
    `[t0, t1]`) have the leading member axis `N`. Member `i`'s outputs equal those of its
    own `diffrax.diffeqsolve` (module docstring); failures (`max_steps_reached`, or what
    diffrax gives a non-finite solve) stay in their member. Jit-compatible; compiled once
    per shapes and static configuration.
    """
    if max_steps is None or max_steps < 0:
        raise ValueError(f"max_steps must be a non-negative int, got {max_steps}.")
    if lanes < 1 or block < 1:
        raise ValueError(f"lanes and block must be >= 1, got {lanes} and {block}.")
    n = jnp.shape(t0)[0]
    shapes = [jnp.shape(x)[0] for x in jtu.tree_leaves((args, y0, t1, dt0, ts))]
    if n == 0 or any(s != n for s in shapes):
        raise ValueError(f"every input needs the same leading member axis, got {n}.")
    solver = _implicit_tols(solver, controller)
    p = _problem(vector_field, solver, controller, args, y0, t0, t1, dt0, ts, save_t0, max_steps)
    p = _static_jump(p)
    return _solve(p, min(lanes, n), block, save_t0, save_t1)
