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
import os
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
from ..engine._collect import under_transformation
from ._checks import (
    check_hashable,
    check_resumable,
    leading_size,
    make_mesh,
)
from ._chunks import finish, member_fn, pad, reducer_map, run_local
from ._failures import (
    error_if_failed_members,
    raise_on_host,
)
from ._reducers import AbstractReducer, check_reducers
from ._refill_batch import Refill
from ._result import EnsembleResult
from ._resumable import SEGMENT, run_resumable
from ._schedule import batch_function, check_schedule


def _one_device(fn, batched, rest, static, reduce, *, n, bs, progress, schedule):
    """One device: the whole ensemble is one compiled program."""
    member, out_static = member_fn(fn, static)
    local = run_local(
        batch_function(fn, member, static, schedule, min(bs, n)), member, batched, rest,
        n_local=n, n_valid=n, offset=0, bs=bs, reduce=reduce, progress=progress, device=None,
    )  # fmt: skip
    return finish(local, reduce, n, out_static[0] if reduce is None else None)


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
def _ensemble_per_device(fn, batched, rest, static, reduce, n, bs, mesh, progress, schedule):
    member, out_static = member_fn(fn, static)
    axis = mesh.axis_names[0]
    n_local = math.ceil(n / mesh.size)
    batch_fn = batch_function(fn, member, static, schedule, min(bs, n_local))
    batched = pad(batched, n, n_local * mesh.size)
    spec = PartitionSpec(axis)

    def per_device(batched, rest):
        device = lax.axis_index(axis)
        local = run_local(
            batch_fn, member, batched, rest, n_local=n_local, n_valid=n,
            offset=device * n_local, bs=bs, reduce=reduce, progress=progress, device=device,
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
            merged = reducer_map(lambda r, a, b: r.merge(a, b), reduce, state[0], other[0])
            return (merged, state[1].merge(other[1])), None

        first = jax.tree.map(lambda x: x[0], local)
        others = jax.tree.map(lambda x: x[1:], local)
        local, _ = lax.scan(merge, first, others, length=n_dev - 1)
    return finish(local, reduce, n, out_static)


def ensemble(
    fn: Callable[..., Any],
    *batched_args: Any,
    batch_size: int | None = None,
    devices: Sequence[jax.Device] | Mesh | None = None,
    reduce: AbstractReducer | Any | None = None,
    throw: bool = True,
    progress: bool = False,
    schedule: str | Refill = "auto",
    checkpoint: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
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
      int), bounding memory. `None`: all at once on a GPU (fastest while it fits),
      chunks of 16384 members on a CPU (measured the fastest there).
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
    - `schedule`: how the members of a chunk share the hardware. `"vmap"`: one `vmap`,
      in which an adaptive solve runs until its slowest member finishes (the others wait,
      masked). `"refill"` or `ds.Refill(lanes, block)`: a fixed number of lanes advance
      members `block` solver steps at a time, and a lane whose member finished takes the
      next (no lockstep). Refill takes over a `fn` that calls `ds.simulate` with an
      adaptive integrator once, directly, without events or dense output; values equal `vmap`'s to rounding, failures are reported the same way. It has
      no reverse-mode derivative. `"fused"`: a fixed-step explicit Runge-Kutta `simulate`
      (`ds.RK4`, `ds.Tsit5Fixed`, ...) of a small system whose state leaves and system
      fields are one number per member (Lorenz's tuple form), saving the final state,
      runs as one GPU kernel that keeps each member's state in registers through all
      the steps (Pallas; values equal `vmap`'s to rounding; no derivatives; off a GPU it
      runs in Pallas' interpreter, for tests only). Its GPU speed is not measured yet.
      `"auto"` (default), in an eager call (not under `jax.grad`/`jit`): on a CPU,
      refill where it applies, for chunks of more members than its lanes; on a GPU, the
      fused kernel where it applies; else `vmap`.
    - `checkpoint`: a folder: every finished segment of members (`batch_size` of them,
      16384 if `batch_size` is None) is committed there atomically, and calling again
      with the same arguments after a crash or kill resumes from the last committed
      segment, giving the result an uninterrupted run gives. A different call refuses
      the folder with a `ValueError`. Eager calls on one device.
    - `out`: a folder for a zarr store (`pip install "diffsim-jax[store]"`): members'
      outputs are written there segment by segment instead of kept in memory, and
      `values` comes back as lazy `zarr.Array`s (`zarr.open_group(out)` reopens them
      later). Resumable like `checkpoint`; not with `reduce`.

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
    schedule = check_schedule(schedule)
    if schedule == "auto" and under_transformation():
        schedule = "vmap"  # the refill loop and the fused kernel have no derivatives
    bs = default_batch_size(n) if batch_size is None else int(min(batch_size, n))
    if check_resumable(checkpoint, out, mesh, reduce, batched_args):
        result = run_resumable(
            fn, batched_args, reduce, n=n, segment=batch_size or SEGMENT, bs=bs,
            schedule=schedule, progress=progress, checkpoint=checkpoint, out=out,
        )  # fmt: skip
    else:
        result = _run(
            fn, batched_args, reduce, mesh, n=n, bs=bs, progress=progress, schedule=schedule
        )
    if not throw:
        return result
    if is_concrete(result.num_failed):
        raise_on_host(result)
        return result
    # Under a transformation: equinox's runtime error (see engine/_errors.py).
    values = error_if_failed_members(result.values, result)
    return eqx.tree_at(lambda r: r.values, result, values)


# On a CPU, chunks of 2^14 members were within a few % of the best batch_size at every N
# measured, where all members at once fell 5-11% behind from N = 2^16
# (benchmarks/ensemble_batch_size.py); GPUs gain from the widest batch.
CPU_CHUNK = 16384


def default_batch_size(n: int) -> int:
    return min(n, CPU_CHUNK) if jax.default_backend() == "cpu" else n


def _run(fn, batched_args, reduce, mesh, *, n, bs, progress, schedule) -> EnsembleResult:
    """The compiled program(s) for one call; they never raise for a failed member."""
    settings = dict(n=n, bs=bs, progress=progress, schedule=schedule)
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


def _run_sharded(fn, batched, rest, static, reduce, mesh, *, n, bs, progress, schedule):
    """Several devices: each runs the chunk loop on its share, then one merge."""
    if is_concrete_tree((batched, rest)):
        # Lay the members out on the devices once, outside the compiled function.
        n_pad = math.ceil(n / mesh.size) * mesh.size
        batched = jax.device_put(
            pad(batched, n, n_pad), NamedSharding(mesh, PartitionSpec(mesh.axis_names[0]))
        )
        rest = jax.device_put(rest, NamedSharding(mesh, PartitionSpec()))
    local, out_static = _ensemble_per_device(
        fn, batched, rest, static, reduce, n, bs, mesh, progress, schedule
    )
    return _ensemble_merge(local, out_static, reduce, n, mesh.size)
