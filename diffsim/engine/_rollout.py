"""`simulate`: roll a system forward in time.

Contract: `simulate(system, y0, ...)` is a pure function of pytrees. Static problems
(argument types, shapes, step counts, save times) raise `ValueError`/`TypeError` before
anything is compiled; runtime problems (a state turning NaN/inf) raise
`SimulationError` naming the step and batch member, or, with `throw=False`, come back as
`traj.result`. jit, vmap and grad compose on top, and a second call with the same
shapes and static options does not recompile.

Fixed-step rollouts are one `lax.scan` whose body is the integrator's step (nested where
the adjoint checkpoints or `SaveAt(every=k)` saves); adaptive ones are `diffrax`.
"""

import contextlib
import contextvars
import math
from typing import Any

import equinox as eqx
import jax
import jax.lax as lax
import jax.numpy as jnp
import numpy as np

from .._types import RealScalarLike, State
from ._adaptive import AbstractAdaptiveIntegrator, simulate_adaptive
from ._adjoints import AbstractAdjoint, Backsolve, Checkpointed, Direct, Reversible
from ._errors import error_if_bad_step, reraise_clean
from ._integrators import RK4, AbstractFixedStepIntegrator, check_integrator_fits, uses_fsal
from ._saveat import SaveAt
from ._solution import RESULTS, Trajectory

_NONFINITE_HINT = (
    "Use a smaller dt, a stiff integrator (ds.Kvaerno5()), check the system's parameters, "
    "or pass throw=False to get traj.result instead."
)


# Set while `fit` traces a model: a trial point whose rollout blows up is a rejected
# step for the solver, not an error, so rollouts return non-finite values instead.
_TRIAL_ROLLOUTS = contextvars.ContextVar("diffsim_trial_rollouts", default=False)


# Set while `fit` traces a model for a least-squares solver, whose Jacobians are forward
# mode (jax.linearize / jvp). Checkpointing serves reverse mode only: under linearize it
# makes every Jacobian re-run the rollout (measured 1.4x slower fits), and a custom-VJP
# adjoint (Reversible) has no forward mode at all. So fixed-step rollouts then use Direct.
_FORWARD_JACOBIANS = contextvars.ContextVar("diffsim_forward_jacobians", default=False)


@contextlib.contextmanager
def trial_rollouts(forward_jacobians: bool = False):
    """Within this context, `simulate` behaves as if `throw=False`; with
    `forward_jacobians`, fixed-step rollouts also use `ds.Direct()` whatever adjoint the
    model asks for (its derivatives will be taken in forward mode only)."""
    token = _TRIAL_ROLLOUTS.set(True)
    token_fwd = _FORWARD_JACOBIANS.set(forward_jacobians)
    try:
        yield
    finally:
        _FORWARD_JACOBIANS.reset(token_fwd)
        _TRIAL_ROLLOUTS.reset(token)


def _is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def _float_dtype(y0) -> Any:
    leaves = jax.tree.leaves(y0)
    dtype = jnp.result_type(*[jnp.asarray(leaf).dtype for leaf in leaves])
    if not jnp.issubdtype(dtype, jnp.floating):
        dtype = jnp.result_type(float)
    return dtype


def _check_positive_finite(name: str, value) -> None:
    if value is None:
        raise ValueError(f"{name} is required: pass a positive step size, e.g. {name}=0.01.")
    if _is_concrete(value):
        arr = np.asarray(value)
        if arr.ndim != 0:
            raise ValueError(f"{name} must be a scalar; got shape {arr.shape}.")
        if not (np.isfinite(arr) and arr > 0):
            raise ValueError(f"{name} must be a positive finite number; got {float(arr)}.")


def _number_of_steps(t0, t1, dt, n_steps) -> int:
    if (t1 is None) == (n_steps is None):
        raise ValueError(
            "Pass exactly one of t1= (the end time) and n_steps= (the number of steps); "
            f"got t1={t1!r} and n_steps={n_steps!r}."
        )
    if n_steps is not None:
        if not isinstance(n_steps, (int, np.integer)) or isinstance(n_steps, bool) or n_steps < 0:
            raise ValueError(f"n_steps must be a non-negative Python int; got {n_steps!r}.")
        return int(n_steps)
    if not (_is_concrete(t0) and _is_concrete(t1) and _is_concrete(dt)):
        raise ValueError(
            "With t1=, the number of steps (t1 - t0) / dt must be known when tracing, so t0, "
            "t1 and dt must be concrete numbers, not traced values. Under jit, pass "
            "n_steps= instead (t0 and dt may then be traced and differentiated)."
        )
    t0, t1, dt = float(t0), float(t1), float(dt)
    if not math.isfinite(t1):
        raise ValueError(f"t1 must be finite; got {t1}.")
    if t1 < t0:
        raise ValueError(
            f"t1 must be >= t0; got t0={t0}, t1={t1}. (Use a negative-time system or swap them.)"
        )
    ratio = (t1 - t0) / dt
    n = round(ratio)
    if abs(ratio - n) > 1e-6 * max(1.0, ratio):
        raise ValueError(
            f"t1 - t0 = {t1 - t0:g} is not a whole number of steps of dt = {dt:g} "
            f"({ratio:.6g} steps). Choose dt = (t1 - t0) / n for a whole n, or pass n_steps=."
        )
    return n


def _check_state(system, y0, t0, dt, integrator) -> Any:
    """Evaluate one step abstractly; return y0 cast to the dtype the step produces."""
    if isinstance(integrator, AbstractFixedStepIntegrator):
        check_integrator_fits(integrator, system, y0)
    name = type(system).__name__
    if not callable(getattr(system, "vector_field", None)):
        raise TypeError(
            f"system must have a vector_field(t, y) method (a ds.AbstractSystem); got {name}."
        )
    for leaf in jax.tree.leaves(y0):
        if not isinstance(leaf, (jax.Array, np.ndarray, np.generic, float, int)):
            raise TypeError(f"y0 must be a pytree of arrays; found a leaf of type {type(leaf)}.")
    y0 = jax.tree.map(lambda x: jnp.asarray(x, _float_dtype(y0)), y0)
    try:
        out = jax.eval_shape(system.vector_field, t0, y0)
    except Exception as e:
        raise ValueError(
            f"y0 does not fit the state of {name}: evaluating {name}.vector_field(t0, y0) "
            f"failed with {type(e).__name__}: {e}"
        ) from e
    if jax.tree.structure(out) != jax.tree.structure(y0):
        raise ValueError(
            f"y0 does not match the state structure of {name}: its vector field returns "
            f"{jax.tree.structure(out)} for y0 = {jax.tree.structure(y0)}."
        )
    for path, (o, y) in zip(
        jax.tree_util.tree_flatten_with_path(y0)[0],
        zip(jax.tree.leaves(out), jax.tree.leaves(y0), strict=True),
        strict=True,
    ):
        if o.shape != y.shape:
            raise ValueError(
                f"y0 does not match the state of {name}: y0{jax.tree_util.keystr(path[0])} "
                f"has shape {y.shape} but its time derivative has shape {o.shape}."
            )
    dtype = jnp.result_type(*[o.dtype for o in jax.tree.leaves(out)], _float_dtype(y0))
    return jax.tree.map(lambda x: x.astype(dtype), y0)


def _check_saveat_ts(ts, t0, t1) -> None:
    if not (_is_concrete(ts) and _is_concrete(t0) and _is_concrete(t1)):
        return  # checked at run time instead
    ts, t0, t1 = np.asarray(ts), float(t0), float(t1)
    if ts.size == 0:
        raise ValueError("SaveAt(ts=...) is empty; give at least one time.")
    slack = 1e-9 * max(1.0, abs(t0), abs(t1))
    if ts.min() < t0 - slack or ts.max() > t1 + slack:
        raise ValueError(
            f"SaveAt(ts=...) must lie within [t0, t1] = [{t0:g}, {t1:g}]; got times from "
            f"{ts.min():g} to {ts.max():g}."
        )
    if np.any(np.diff(ts) < 0):
        raise ValueError("SaveAt(ts=...) must be non-decreasing; sort the times.")


def _is_concrete_tree(tree) -> bool:
    return all(_is_concrete(leaf) for leaf in jax.tree.leaves(tree))


def _floats_to_arrays(tree):
    """Python floats become weakly typed 0-d arrays (same dtype promotion), so a new value
    of a parameter does not recompile. Ints and bools may be shapes or switches: kept.

    Only for a call made outside any transformation: inside one (a member of
    `ds.ensemble`, a user's `jax.jit`), the enclosing trace is compiled once anyway, and a
    Python float left as a literal lets XLA fold it into the step (measured 7% of a
    vmapped Lorenz ensemble on a CPU)."""
    return jax.tree.map(lambda x: jnp.asarray(x) if type(x) is float else x, tree)


def _all_finite(tree) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(tree)]
    return jnp.stack(leaves).all() if len(leaves) > 1 else leaves[0]


def _stack(trees):
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def _concat(trees):
    return jax.tree.map(lambda *xs: jnp.concatenate(xs), *trees)


# A rollout's loop carry is (y, k, aux): the state, the step counter, and what the
# integrator carries from one step to the next: the acceleration for first-same-as-last
# (FSAL) methods, else `()`.


def _make_step(integrator, fsal: bool):
    def step(params, carry):
        system, t0, dt = params[:3]
        y, k, aux = carry
        t = t0 + k.astype(t0.dtype) * dt
        if fsal:
            y, aux = integrator.step_fsal(system, t, y, aux, dt)
            return y, k + 1, aux
        return integrator.step(system, t, y, dt), k + 1, aux

    return step


def _make_inverse(integrator, fsal: bool):
    """One step backwards from t_k undoes the step from t_{k-1} (reversible methods); with
    FSAL it also gives back the acceleration at t_{k-1}."""

    def inverse(params, carry):
        system, t0, dt = params[:3]
        y, k, aux = carry
        t = t0 + k.astype(t0.dtype) * dt
        if fsal:
            y, aux = integrator.step_fsal(system, t, y, aux, -dt)
            return y, k - 1, aux
        return integrator.step(system, t, y, -dt), k - 1, aux

    return inverse


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
    finite = _all_finite(y_final)

    def locate(_):
        quiet = jax.tree.map(
            lambda x: lax.stop_gradient(x) if eqx.is_inexact_array(x) else x, (params, carry0)
        )

        def body(state, _):
            carry, bad = state
            carry1 = step(quiet[0], carry)
            bad = jnp.where((bad < 0) & ~_all_finite(carry1[0]), carry[1], bad)
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


_VELOCITY_MSG = (
    "adjoint=ds.Reversible() needs an acceleration that does not depend on the velocity "
    "(no damping, drag or magnetic force): only then does a backward step undo a forward "
    "one. Use adjoint=ds.Checkpointed() for this system."
)


def _check_velocity_independent(system, t0, y0):
    """Probe d a / d v at a shifted velocity: zero for conservative forces. A heuristic
    (a force could be velocity-dependent only elsewhere), but it catches damping and drag."""
    v_probe = jax.tree.map(lambda v: v + 0.5, y0.v)
    ones = jax.tree.map(jnp.ones_like, y0.v)
    _, dadv = jax.jvp(lambda v: system.acceleration(t0, y0.q, v), (v_probe,), (ones,))
    depends = jnp.stack([jnp.any(d != 0) for d in jax.tree.leaves(dadv)]).any()
    return eqx.error_if(y0, depends, _VELOCITY_MSG)


@eqx.filter_jit
def _simulate_fixed(
    system,
    y0,
    t0,
    dt,
    n: int,
    integrator,
    saveat: SaveAt,
    adjoint: AbstractAdjoint,
    throw: bool,
    check_ts: bool,
):
    dtype = t0.dtype
    save = (lambda t, y: saveat.fn(t, y)) if saveat.fn is not None else (lambda t, y: y)
    fsal = uses_fsal(integrator, system, t0, y0)
    step = _make_step(integrator, fsal)
    inverse = _make_inverse(integrator, fsal) if integrator.reversible else None
    params = (system, t0, dt)
    if isinstance(adjoint, Reversible):
        y0 = _check_velocity_independent(system, t0, y0)
    aux0 = system.acceleration(t0, y0.q, y0.v) if fsal else ()
    carry0 = (y0, jnp.asarray(0, jnp.int32), aux0)

    if saveat.ts is not None:
        ts = saveat.ts.astype(dtype)
        if check_ts:  # traced save times: checked here, not before tracing
            # A few ulps of slack: t1 computed as t0 + n dt rounds differently from a
            # user's own t1.
            slack = 8 * jnp.finfo(dtype).eps * (jnp.abs(t0) + n * jnp.abs(dt))
            ts = eqx.error_if(
                ts,
                (ts < t0 - slack).any()
                | (ts > t0 + n * dt + slack).any()
                | (jnp.diff(ts) < 0).any(),
                "SaveAt(ts=...) must be non-decreasing and within [t0, t1].",
            )
        ys, final = _save_at_times(step, inverse, params, carry0, ts, n, integrator, adjoint)
        ys = jax.vmap(save)(ts, ys)
        y_final = final[0]
    elif saveat.every is not None and _flat_every(adjoint, y0, n, saveat.every):
        # One flat scan that emits every state, then every k-th is kept: O(n) states,
        # which Direct stores for the gradient anyway. Nested loops (a scan of blocks
        # of k steps) cost an inner-loop entry per block, which dominates a small
        # system's rollout: measured 6x slower in a Levenberg-Marquardt fit.
        k = saveat.every
        n_blocks, rem = divmod(n, k)

        def flat(carry, _):
            carry = step(params, carry)
            return carry, carry[0]

        carry, states = lax.scan(flat, carry0, None, length=n)
        steps = np.concatenate([np.arange(k, n_blocks * k + 1, k), [n] if rem else []])
        picked = jax.tree.map(lambda s: s[steps.astype(np.int64) - 1], states)
        times = t0 + jnp.asarray(steps, dtype) * dt
        ys = _concat([_stack([save(t0, y0)]), jax.vmap(save)(times, picked)])
        ts = t0 + jnp.asarray(np.concatenate([[0], steps]), dtype) * dt
        y_final = carry[0]
    elif saveat.every is not None:
        k = saveat.every
        n_blocks, rem = divmod(n, k)

        def block(carry, _):
            carry = adjoint.loop(step, params, carry, k, inverse)
            return carry, save(t0 + carry[1].astype(dtype) * dt, carry[0])

        carry, ys_blocks = lax.scan(block, carry0, None, length=n_blocks)
        pieces = [_stack([save(t0, y0)]), ys_blocks]
        steps = [np.arange(0, n_blocks * k + 1, k)]
        if rem:
            carry = adjoint.loop(step, params, carry, rem, inverse)
            pieces.append(_stack([save(t0 + n * dt, carry[0])]))
            steps.append(np.array([n]))
        ys = _concat(pieces)
        ts = t0 + jnp.asarray(np.concatenate(steps), dtype) * dt
        y_final = carry[0]
    else:
        y_final = adjoint.loop(step, params, carry0, n, inverse)[0]
        t1 = t0 + n * dt
        times, states = [], []
        if saveat.t0:
            times.append(t0)
            states.append(save(t0, y0))
        if saveat.t1:
            times.append(t1)
            states.append(save(t1, y_final))
        ts, ys = jnp.stack(times), _stack(states)

    bad = _first_nonfinite_step(step, params, carry0, n, y_final)
    result = RESULTS.where(bad >= 0, RESULTS.nonfinite, RESULTS.successful)
    if throw:
        ys = error_if_bad_step(
            ys,
            bad,
            t0 + (bad + 1).astype(dtype) * dt,
            what="simulate: the state became non-finite (NaN or inf)",
            hint=_NONFINITE_HINT,
        )
    stats = {"num_steps": jnp.asarray(n, jnp.int32), "nonfinite_step": bad}
    return Trajectory(ts=ts, ys=ys, result=result, stats=stats)


# Below this many state elements in a whole rollout (8 MB in float64), SaveAt(every=k)
# with the Direct adjoint runs as one flat scan that keeps every state.
_FLAT_EVERY_MAX_ELEMENTS = 2**20


def _flat(adjoint, y0, n: int) -> bool:
    """Whether a saving rollout may run as one flat scan that keeps every state: with the
    Direct adjoint (which stores every state for a gradient anyway) and up to
    `_FLAT_EVERY_MAX_ELEMENTS` state elements in all."""
    size = sum(int(np.prod(jnp.shape(leaf))) for leaf in jax.tree.leaves(y0))
    return isinstance(adjoint, Direct) and n * size <= _FLAT_EVERY_MAX_ELEMENTS


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


def _partial_steps(integrator, system, t0, dt, ks, ts, y_k):
    """From the grid state y_k at t_k, a step of ts_i - t_k to each save time (a valid
    dense output of the integrator's order; zero returns y_k)."""
    t_k = t0 + ks.astype(ts.dtype) * dt
    return jax.vmap(integrator.step, in_axes=(None, 0, 0, 0))(system, t_k, y_k, ts - t_k)


def simulate(
    system: Any,
    y0: State,
    *,
    t0: RealScalarLike = 0.0,
    t1: RealScalarLike | None = None,
    dt: RealScalarLike | None = None,
    n_steps: int | None = None,
    integrator: Any = RK4(),
    saveat: SaveAt = SaveAt(t1=True),
    adjoint: AbstractAdjoint = Checkpointed(),
    max_steps: int | None = None,
    throw: bool = True,
) -> Trajectory:
    """Roll `system` forward from state `y0` at time `t0`.

    With a fixed-step integrator the rollout takes `n` steps of length `dt` from `t0`,
    where `n = n_steps` or `n = (t1 - t0) / dt` (which must be a whole number); it is one
    `lax.scan` and costs the same as a hand-written one. With an adaptive integrator
    (`ds.Tsit5`, `ds.Dopri8`, `ds.Kvaerno5`) it is one `diffrax.diffeqsolve` from `t0` to
    `t1`, and `dt` is the initial step (`None`: diffrax picks).

    **Arguments:**

    - `system`: a `ds.AbstractSystem` (anything with `vector_field(t, y)`); its fields are
      the parameters that gradients flow to. For a batch of systems (array fields with a
      leading batch axis), `eqx.filter_vmap` over `simulate`: it maps the array fields and
      broadcasts the Python-number ones. Elementwise systems (`Pendulum`) also broadcast
      batched fields against a batched state in one rollout.
    - `y0`: the initial state, a pytree of arrays (`ds.PhaseState(q, v)` for mechanical
      systems). Integer leaves become floats; float32 and float64 both work.
    - `t0`: the start time.
    - `t1` / `n_steps`: the end time, or the number of steps; exactly one. With `t1`, the
      values of `t0`, `t1`, `dt` must be concrete (not traced). With `n_steps`, `t0` and `dt`
      may be traced and differentiated.
    - `dt`: the step size (fixed step) or initial step (adaptive).
    - `integrator`: `ds.RK4()` (default), `ds.Euler()`, `ds.SemiImplicitEuler()`,
      `ds.Leapfrog()`, `ds.Yoshida4()`, `ds.Tsit5()`, `ds.Dopri8()`, `ds.Kvaerno5()`.
    - `saveat`: a `ds.SaveAt`; default `SaveAt(t1=True)`, the final state only.
    - `adjoint`: how reverse-mode gradients flow: `ds.Checkpointed()` (default) or
      `ds.Direct()`.
    - `max_steps`: the step limit for adaptive integrators (default 4096); a fixed-step
      rollout longer than this raises.
    - `throw`: raise `ds.SimulationError` if the state becomes non-finite (fixed step) or
      the solve fails (adaptive). With `False`, check `traj.result` instead. Fixed-step
      rollouts check the final state only (NaN and inf propagate), and on failure re-run
      the steps once to report the first non-finite one in `traj.stats["nonfinite_step"]`,
      so the check costs nothing per step.

    **Returns:** a `ds.Trajectory` with `ts`, `ys`, `result`, `stats`.

    **Example:**

    ```python
    import jax.numpy as jnp
    import diffsim as ds

    pendulum = ds.systems.Pendulum(length=1.0)
    y0 = ds.PhaseState(q=jnp.array(0.5), v=jnp.array(0.0))
    traj = ds.simulate(pendulum, y0, t1=10.0, dt=0.01, integrator=ds.Leapfrog(),
                       saveat=ds.SaveAt(every=10))
    traj.ys.q.shape  # (101,)
    ```
    """
    if not isinstance(integrator, (AbstractFixedStepIntegrator, AbstractAdaptiveIntegrator)):
        raise TypeError(
            f"integrator must be a diffsim integrator such as ds.RK4() or ds.Tsit5(); "
            f"got {integrator!r}."
        )
    if not isinstance(saveat, SaveAt):
        raise TypeError(f"saveat must be a ds.SaveAt; got {saveat!r}.")
    if not isinstance(adjoint, AbstractAdjoint):
        raise TypeError(
            "adjoint must be ds.Checkpointed(), ds.Direct(), ds.Reversible() or "
            f"ds.Backsolve(); got {adjoint!r}."
        )
    adaptive = isinstance(integrator, AbstractAdaptiveIntegrator)
    if isinstance(adjoint, Reversible) and (adaptive or not integrator.reversible):
        raise ValueError(
            "adjoint=ds.Reversible() rebuilds states by stepping backwards, which needs a "
            "time-reversible fixed-step integrator (ds.Leapfrog() or ds.Yoshida4()); got "
            f"{type(integrator).__name__}(). Use adjoint=ds.Checkpointed() with it."
        )
    if isinstance(adjoint, Backsolve) and not adaptive:
        raise ValueError(
            "adjoint=ds.Backsolve() is the continuous adjoint of adaptive integrators "
            f"(ds.Tsit5(), ...); got {type(integrator).__name__}(). For fixed-step "
            "integrators use ds.Reversible() (O(1) memory, exact) or ds.Checkpointed()."
        )
    throw = throw and not _TRIAL_ROLLOUTS.get()
    if max_steps is not None and (not isinstance(max_steps, int) or max_steps < 1):
        raise ValueError(f"max_steps must be a positive int or None; got {max_steps!r}.")

    if isinstance(integrator, AbstractAdaptiveIntegrator):
        if t1 is None or n_steps is not None:
            raise ValueError(
                f"The adaptive integrator {type(integrator).__name__} needs t1= (the end "
                "time) and no n_steps=; it chooses its own steps."
            )
        if dt is not None:
            _check_positive_finite("dt", dt)
        if _is_concrete(t0) and _is_concrete(t1) and float(t1) < float(t0):
            raise ValueError(f"t1 must be >= t0; got t0={float(t0)}, t1={float(t1)}.")
        y0 = _check_state(system, y0, t0, dt, integrator)
        if saveat.ts is not None:
            _check_saveat_ts(saveat.ts, t0, t1)
        return simulate_adaptive(
            system, y0, t0, t1, dt, integrator, saveat, adjoint, max_steps, throw
        )

    _check_positive_finite("dt", dt)
    if _FORWARD_JACOBIANS.get():
        adjoint = Direct()
    n = _number_of_steps(t0, t1, dt, n_steps)
    if max_steps is not None and n > max_steps:
        raise ValueError(
            f"This rollout takes {n} steps, more than max_steps={max_steps}; increase "
            "max_steps or use a larger dt."
        )
    y0 = _check_state(system, y0, t0, dt, integrator)
    dtype = _float_dtype(y0)
    t0_arr = jnp.asarray(t0, dtype)
    dt_arr = jnp.asarray(dt, dtype)
    ts_known = True
    if saveat.ts is not None:
        t1_end = (
            t1
            if t1 is not None
            else (t0 + n * dt if _is_concrete(t0) and _is_concrete(dt) else None)
        )
        ts_known = t1_end is not None and all(map(_is_concrete, (saveat.ts, t0, t1_end)))
        if ts_known:
            _check_saveat_ts(saveat.ts, t0, t1_end)
    if not _is_concrete(dt):
        dt_arr = eqx.error_if(
            dt_arr, ~(jnp.isfinite(dt_arr) & (dt_arr > 0)), "dt must be a positive finite number."
        )
    try:
        return _simulate_fixed(
            _floats_to_arrays(system) if _is_concrete_tree((system, y0)) else system,
            y0,
            t0_arr,
            dt_arr,
            n,
            integrator,
            saveat,
            adjoint,
            throw,
            not ts_known,
        )
    except jax.errors.JaxRuntimeError as e:
        reraise_clean(e)
        raise
