"""`ensemble`: map a simulation over many members, in chunks, over devices, streaming.

Contract: `ensemble(fn, *batched_args)` evaluates `fn` on every member, the `i`-th member
being the `i`-th slice along the leading axis of every array in `batched_args`, and
returns an `EnsembleResult`. On one device it is one compiled program (`eqx.filter_jit`
under an enclosing transformation, `_flat_jit.flat_jit` for eager calls, which dispatches
the same program with less Python per call), so jit, vmap and grad compose on top; a second
call with the same shapes (and the same `fn` object) does not recompile.

- `batch_size` bounds memory: members run `batch_size` at a time (per device) in a
  `lax.scan` over chunks, each chunk a `jax.vmap` of `fn` and `jax.checkpoint`-ed, so
  reverse mode stores one reducer state per chunk, not every member's residuals. The last
  chunk is aligned to end at the last member and overlaps the one before; the members it
  repeats are not counted twice. Nothing is padded on one device.
- `devices` spreads the members over a 1-d mesh (`jax.sharding.Mesh`, `NamedSharding`,
  `jax.shard_map`): each device runs the chunk loop on its contiguous share (the last
  share padded with copies of the last member, which are not counted), with no
  communication; a second program merges the devices' reducer states and failure
  records. Per-member results equal those of one
  device up to rounding (vectorised code differs with the batch width); statistics are
  merged in another order, which changes them by rounding only. Several hosts work the
  same way once `jax.distributed.initialize` has joined them (tested with two processes
  on localhost).
- `reduce` folds each chunk into bounded reducer states (`_reducers.py`), so outputs are
  never stored for all members.
- A member *fails* when a `ds.Trajectory` in its output has a result other than
  `successful` (then `stats["nonfinite_step"]` gives the step), when a `ds.simulate(...,
  throw=True)` called in `fn` failed (it hands its status over: `engine/_collect.py`), or
  when a floating leaf of its output is non-finite. Failed members are left out of
  statistics and reported. The compiled programs never raise: with `throw=True` the
  first failure is raised in Python from the result (`_failures.raise_on_host`), or
  under a transformation by `eqx.error_if` (docs/errors.md).
"""

import math
from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.lax as lax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from .._flat_jit import NOT_APPLICABLE, flat_jit
from .._trees import floats_to_arrays, is_concrete, is_concrete_tree
from ..engine import RESULTS
from ..engine._collect import collect_failures
from ._checks import check_hashable, leading_size, make_mesh, member_output
from ._failures import (
    WHAT,
    Failures,
    error_if_failed_members,
    failures_in_order,
    raise_on_host,
    status,
)
from ._progress import report_progress
from ._reducers import AbstractReducer, check_reducers, is_reducer
from ._result import MAX_REPORTED_FAILURES, EnsembleResult

# --------------------------------------------------------------------------------------
# The compiled core.


def _pad(tree, n: int, n_pad: int):
    """Extend the leading axis from `n` to `n_pad` by repeating the last member (works
    for PRNG key arrays too); the copies are not counted."""
    if n_pad == n or all(jnp.shape(x)[0] == n_pad for x in jax.tree.leaves(tree)):
        return tree
    index = jnp.minimum(jnp.arange(n_pad), n - 1)
    return jax.tree.map(lambda x: x[index], tree)


def _inexact_only(tree):
    """Floating leaves kept, others `None`: what reducers see."""
    return jax.tree.map(
        lambda x: x if jnp.issubdtype(jnp.result_type(x), jnp.inexact) else None, tree
    )


def _reducer_map(f, reduce, *trees):
    return jax.tree.map(f, reduce, *trees, is_leaf=is_reducer)


def _assemble(ys, n: int, bs: int):
    """Chunk outputs `(n_chunks, bs, ...)` back to `(n, ...)`: the last chunk ends at
    member `n - 1` and overlaps its predecessor."""

    def leaf(y):
        n_chunks = y.shape[0]
        if n_chunks * bs == n:
            return y.reshape((n,) + y.shape[2:])
        head = y[:-1].reshape(((n_chunks - 1) * bs,) + y.shape[2:])[: n - bs]
        return jnp.concatenate([head, y[-1]])

    return jax.tree.map(leaf, ys)


def _run_local(member, batched, rest, *, n_local, n_valid, offset, bs, reduce, progress, device):
    """The chunk loop on one device over `n_local` members, the first of which is member
    `offset` of the ensemble; members at or beyond `n_valid` are padding."""
    bs = min(bs, n_local)
    n_chunks = math.ceil(n_local / bs)
    vmapped = jax.vmap(member, in_axes=(0, None))

    def chunk(k):
        if n_chunks == 1:
            start, xs = jnp.asarray(0, jnp.int32), batched
        else:
            start = jnp.minimum(k * bs, n_local - bs).astype(jnp.int32)
            xs = jax.tree.map(lambda x: lax.dynamic_slice_in_dim(x, start, bs), batched)
        out, result, step = vmapped(xs, rest)
        local = start + jnp.arange(bs, dtype=jnp.int32)
        index = offset + local
        counts = (local >= k * bs) & (index < n_valid)
        failed = (result != RESULTS.successful) & counts
        return out, result, step, failed, counts, index

    def report(k, failed_so_far, value):
        if progress:
            jax.debug.callback(
                report_progress, k, n_chunks, failed_so_far, 0 if device is None else device
            )
        return value

    if reduce is None:

        def body(carry, k):
            out, result, step, failed, _, index = chunk(k)
            total = carry + jnp.sum(failed, dtype=jnp.int32)
            return report(k, total, total), (out, result, step)

        if n_chunks == 1:
            _, (out, result, step) = body(jnp.zeros((), jnp.int32), 0)
            return out, result, step
        body = jax.checkpoint(body, prevent_cse=False)
        _, ys = lax.scan(body, jnp.zeros((), jnp.int32), jnp.arange(n_chunks))
        return _assemble(ys, n_local, bs)

    example = jax.eval_shape(lambda x: vmapped(x, rest)[0], jax.tree.map(lambda x: x[:1], batched))
    example = _inexact_only(
        jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape[1:], s.dtype), example)
    )
    state0 = _reducer_map(lambda r: r.init(example), reduce)
    failures0 = Failures.empty(min(n_valid, MAX_REPORTED_FAILURES))

    def body(carry, k):
        state, failures = carry
        out, result, step, failed, counts, index = chunk(k)
        values = _inexact_only(out)
        keep = counts & ~failed
        state = _reducer_map(lambda r, s: r.update(s, values, keep), reduce, state)
        failures = failures.add(failed, index, step, result)
        return report(k, failures.count, (state, failures)), None

    if n_chunks == 1:
        return body((state0, failures0), 0)[0]
    body = jax.checkpoint(body, prevent_cse=False)
    return lax.scan(body, (state0, failures0), jnp.arange(n_chunks))[0]


def _member_fn(fn, static):
    """One member: `fn` on its arguments, split into array outputs (with its status) and
    the static rest of the output (returned through a one-element list)."""
    out_static: list = []

    def member(b, rest):
        args = eqx.combine(b, rest, static)
        try:
            # simulate(..., throw=True) called in fn hands its failures to us.
            with collect_failures() as handed_over:
                out = member_output(fn(*args))
        except Exception as e:
            if hasattr(e, "add_note"):  # Python >= 3.11
                e.add_note(
                    f"(raised by fn inside {WHAT}, called on one member's arguments: the "
                    "batched arguments without their leading axis)"
                )
            raise
        dynamic, static_out = eqx.partition(out, eqx.is_array)
        out_static[:] = [static_out]
        result, step = status(out, handed_over)
        return dynamic, result, step

    return member, out_static


def _finish(local, reduce, n: int, out_static) -> EnsembleResult:
    """Per-member outputs or reducer states to an `EnsembleResult`."""
    if reduce is None:
        out, result, step = local
        failed = result != RESULTS.successful
        num_failed = jnp.sum(failed, dtype=jnp.int32)
        failures = failures_in_order(failed, num_failed, step, result)
        values = eqx.combine(out, out_static)
        mask = failed
    else:
        state, failures = local
        values = _reducer_map(lambda r, s: r.finalize(s), reduce, state)
        mask = None
    return EnsembleResult(
        values=values,
        num_members=n,
        num_failed=failures.count,
        failed_indices=failures.indices,
        failed_steps=failures.steps,
        failed_results=failures.results,
        failed=mask,
    )


def _one_device(fn, batched, rest, static, reduce, *, n, bs, progress):
    """One device: the whole ensemble is one compiled program."""
    member, out_static = _member_fn(fn, static)
    local = _run_local(
        member, batched, rest, n_local=n, n_valid=n, offset=0, bs=bs, reduce=reduce,
        progress=progress, device=None,
    )  # fmt: skip
    return _finish(local, reduce, n, out_static[0] if reduce is None else None)


# Traced calls (under an enclosing jit, vmap or grad) take `eqx.filter_jit`: its per-call
# overhead is then paid once per trace.
_ensemble = eqx.filter_jit(_one_device)


def _ensemble_one_device(fn, reduce, batched_args, **settings):
    # Under `flat_jit` the Python floats of batched_args arrive as 0-d arrays; the
    # member arrays all have a leading axis (checked before), so 0-d means shared.
    batched, rest = eqx.partition(batched_args, lambda x: eqx.is_array(x) and jnp.ndim(x) > 0)
    rest, static = eqx.partition(rest, eqx.is_array)
    return _one_device(fn, batched, rest, static, reduce, **settings)


# Eager calls on one device: the same program without `eqx.filter_jit`'s per-call
# partitioning of the argument and result pytrees (~0.3 ms on a CPU).
_ensemble_eager = flat_jit(_ensemble_one_device, float_dynamic=(False, False, True))


# Several devices take two programs. The first runs each device's share with no
# communication at all: a runtime error raised on one device (by `fn`) then fails the
# program cleanly, where a collective after it would leave the other devices waiting
# for it forever. The second merges the devices' results; `throw` is checked on the host.


@eqx.filter_jit
def _ensemble_per_device(fn, batched, rest, static, reduce, n, bs, mesh, progress):
    member, out_static = _member_fn(fn, static)
    axis = mesh.axis_names[0]
    n_local = math.ceil(n / mesh.size)
    batched = _pad(batched, n, n_local * mesh.size)
    spec = PartitionSpec(axis)

    def per_device(batched, rest):
        device = lax.axis_index(axis)
        local = _run_local(
            member, batched, rest, n_local=n_local, n_valid=n, offset=device * n_local,
            bs=bs, reduce=reduce, progress=progress, device=device,
        )  # fmt: skip
        if reduce is None:
            return local
        # A leading device axis, so that out_specs can stack the devices' states.
        return jax.tree.map(lambda x: x[None], local)

    local = jax.shard_map(
        per_device, mesh=mesh, in_specs=(spec, PartitionSpec()), out_specs=spec,
        check_vma=False,
    )(batched, rest)  # fmt: skip
    # Non-array parts of fn's output come back as they are (filter_jit keeps them).
    return local, (out_static[0] if reduce is None else None)


@eqx.filter_jit
def _ensemble_merge(local, out_static, reduce, n, n_dev):
    if reduce is None:
        local = jax.tree.map(lambda x: x[:n], local)
    else:
        # Fold the devices' states in order; a scan compiles the merge once, not once
        # per device.
        def merge(state, other):
            merged = _reducer_map(lambda r, a, b: r.merge(a, b), reduce, state[0], other[0])
            return (merged, state[1].merge(other[1])), None

        first = jax.tree.map(lambda x: x[0], local)
        others = jax.tree.map(lambda x: x[1:], local)
        local, _ = lax.scan(merge, first, others, length=n_dev - 1)
    return _finish(local, reduce, n, out_static)


def ensemble(
    fn: Callable[..., Any],
    *batched_args: Any,
    batch_size: int | None = None,
    devices: Sequence[jax.Device] | Mesh | None = None,
    reduce: AbstractReducer | Any | None = None,
    throw: bool = True,
    progress: bool = False,
) -> EnsembleResult:
    """Evaluate `fn` on every member of an ensemble: a sweep, a Monte Carlo run.

    Member `i` is `fn(*[a[i] for a in batched_args])`, where `a[i]` slices every array leaf
    of `a` along its leading axis (parameters, initial states, systems with batched fields,
    PRNG keys); Python floats and other non-array leaves are shared by all members. The
    members run as a `jax.vmap` of `fn`, `batch_size` at a time:
    $$\\text{values} = \\big[\\, fn(x_0), \\dots, fn(x_{N-1}) \\,\\big]
      \\quad\\text{or}\\quad \\text{reduce}\\big(fn(x_0), \\dots, fn(x_{N-1})\\big).$$

    **Arguments:**

    - `fn`: a function of one member's arguments returning a pytree of arrays, typically
      `ds.simulate(...)` or part of its `Trajectory`. A `ds.simulate` in `fn` that fails
      (with `throw=True` or a returned `Trajectory`) is reported with its step and the
      member's index in the ensemble. Static (hashed by identity): define it once so
      that repeated calls do not recompile; it may close over arrays and tracers.
    - `batched_args`: pytrees whose array leaves all share the leading (member) axis.
    - `batch_size`: run at most this many members at once on each device (a positive
      int), bounding memory; `None` runs all at once (fastest while it fits).
    - `devices`: `None` (the default device), a sequence of devices such as
      `jax.devices()`, or a 1-d `jax.sharding.Mesh`: members are split into contiguous
      shares, one per device, and `batch_size` applies on each. Several hosts: run the
      same script on each, call `jax.distributed.initialize(...)` first (on CPU also
      `jax.config.update("jax_cpu_collectives_implementation", "gloo")`), and pass
      `jax.devices()`, all hosts' devices; statistics then come back on every host, and
      per-member outputs as global arrays
      (`jax.experimental.multihost_utils.process_allgather` fetches them).
    - `reduce`: `None` to return every member's output, or a reducer (`ds.Moments()`,
      `ds.MinMax()`, `ds.Count(...)`, `ds.Histogram(...)`, `ds.Quantiles(...)`) or a dict or
      tuple of them, to return streaming statistics and never store all outputs.
    - `throw`: raise the `ds.SimulationError` subclass of the first failed member's
      failure (`ds.NonFiniteStateError`, `ds.MaxStepsError`, ...), naming it by its index
      in the ensemble, with its step. Under a user's `jax.jit` it is equinox's runtime
      error naming the member (docs/errors.md). With `False`, failed members are
      reported in the result and the others are kept.
    - `progress`: print chunk progress to stderr: one redrawn line on a terminal, else
      (a log file, a notebook) whole lines, about one per 10% of the chunks.

    **Returns:** an `EnsembleResult` (`values`, `num_failed`, `failed_indices`,
    `failed_steps`, `failed_results`, `failed`).

    **Example:**

    ```python
    import jax.numpy as jnp
    import diffsim as ds

    y0 = jnp.array([1.0, 0.0, 0.0])

    def final_state(rho):
        traj = ds.simulate(ds.systems.Lorenz(rho=rho), y0, t1=1.0, dt=1e-2,
                           integrator=ds.Tsit5Fixed(), throw=False)
        return traj

    rhos = jnp.linspace(0.0, 21.0, 1000)
    res = ds.ensemble(final_state, rhos, batch_size=256, reduce=ds.Moments())
    print(res.values.mean.ys.shape)  # (1, 3): the mean final state over members
    print(res.num_failed)  # 0
    ```
    """
    n = _check_call(fn, batched_args, batch_size, reduce, throw, progress)
    mesh = make_mesh(devices)
    bs = n if batch_size is None else int(min(batch_size, n))
    result = _run(fn, batched_args, reduce, mesh, n=n, bs=bs, progress=progress)
    if not throw:
        return result
    if is_concrete(result.num_failed):
        raise_on_host(result)
        return result
    # Under a transformation: equinox's runtime error (see engine/_errors.py).
    values = error_if_failed_members(result.values, result)
    return eqx.tree_at(lambda r: r.values, result, values)


def _run(fn, batched_args, reduce, mesh, *, n, bs, progress) -> EnsembleResult:
    """The compiled program(s) for one call; they never raise for a failed member."""
    settings = dict(n=n, bs=bs, progress=progress)
    if mesh is None:
        result = _ensemble_eager(fn, reduce, batched_args, **settings)
        if result is not NOT_APPLICABLE:
            return result
    check_hashable(fn, batched_args, reduce)  # filter_jit needs it too
    batched, rest = eqx.partition(batched_args, eqx.is_array)
    rest, static = eqx.partition(floats_to_arrays(rest), eqx.is_array)
    if mesh is None:  # traced
        return _ensemble(fn, batched, rest, static, reduce, **settings)
    return _run_sharded(fn, batched, rest, static, reduce, mesh, **settings)


def _check_call(fn, batched_args, batch_size, reduce, throw, progress) -> int:
    """Check the arguments of `ensemble`; return the number of members."""
    if not callable(fn):
        raise TypeError(f"fn must be callable (one member's computation); got {fn!r}.")
    if not batched_args:
        raise ValueError(
            "ds.ensemble needs at least one batched argument: ds.ensemble(fn, xs, ...)."
        )
    n = leading_size(batched_args)
    if batch_size is not None and (
        not isinstance(batch_size, (int, np.integer))
        or isinstance(batch_size, bool)
        or batch_size < 1
    ):
        raise ValueError(f"batch_size must be a positive int or None; got {batch_size!r}.")
    if reduce is not None:
        check_reducers(reduce)
    if not isinstance(throw, bool):
        raise TypeError(f"throw must be True or False; got {throw!r}.")
    if not isinstance(progress, bool):
        raise TypeError(f"progress must be True or False; got {progress!r}.")
    return n


def _run_sharded(fn, batched, rest, static, reduce, mesh, *, n, bs, progress):
    """Several devices: each runs the chunk loop on its share, then one merge."""
    if is_concrete_tree((batched, rest)):
        # Lay the members out on the devices once, outside the compiled function.
        n_pad = math.ceil(n / mesh.size) * mesh.size
        batched = jax.device_put(
            _pad(batched, n, n_pad), NamedSharding(mesh, PartitionSpec(mesh.axis_names[0]))
        )
        rest = jax.device_put(rest, NamedSharding(mesh, PartitionSpec()))
    local, out_static = _ensemble_per_device(
        fn, batched, rest, static, reduce, n, bs, mesh, progress
    )
    return _ensemble_merge(local, out_static, reduce, n, mesh.size)
