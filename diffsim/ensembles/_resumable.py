"""Resumable ensembles: `ds.ensemble(..., checkpoint=PATH, out=STORE)` (private).

Contract: `run_resumable` evaluates the ensemble in *segments* of `segment` consecutive
members, each one call of the same compiled program (the chunk loop of `_ensemble.py` on
that share of members, like one device's share), and commits each finished segment
(`_checkpoint.RunRecord`: per-member outputs or reducer states, and failures) before
starting the next. A second call with the same arguments after a crash or a kill loads
the committed segments and runs the rest, and its result is the one an uninterrupted run
gives, bit for bit: each segment is computed the same way whichever process runs it, and
the segments are combined in the same order (reducer states merged with
`AbstractReducer.merge`, as across devices).

With `out=STORE`, members' outputs go to a zarr store (`_store.py`) segment by segment
and the result's `values` are its lazy arrays; the commit record then keeps only the
failure codes, in `STORE/.checkpoint` unless `checkpoint=` names another folder.
"""

import math
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._trees import floats_to_arrays
from ..engine import RESULTS
from ._checkpoint import RunRecord, fingerprint
from ._chunks import finish, member_fn, reducer_map, run_local
from ._progress import report_progress
from ._result import EnsembleResult
from ._schedule import batch_function
from ._store import OutputStore

#: Members per committed segment when `batch_size` is not given.
SEGMENT = 16384


@eqx.filter_jit
def _segment(fn, batched, rest, static, reduce, offset, *, n, size, bs, schedule):
    """One segment: `size` members from member `offset` (rows past `n` are padding)."""
    member, out_static = member_fn(fn, static)
    local = run_local(
        batch_function(fn, member, static, schedule, min(bs, size)), member, batched, rest,
        n_local=size, n_valid=n, offset=offset, bs=bs, reduce=reduce, progress=False,
        device=None,
    )  # fmt: skip
    return local, (out_static[0] if reduce is None else None)


@eqx.filter_jit
def _merge(reduce, a, b):
    state = reducer_map(lambda r, x, y: r.merge(x, y), reduce, a[0], b[0])
    return state, a[1].merge(b[1])


def _rows(tree, start: int, stop: int, size: int):
    """Members `start:stop` padded to `size` rows by repeating the last (not counted)."""
    if stop - start == size:
        return jax.tree.map(lambda x: x[start:stop], tree)
    index = np.minimum(np.arange(start, start + size), stop - 1)
    return jax.tree.map(lambda x: x[index], tree)


class _Run:
    """The settings of one resumable call and its program."""

    def __init__(self, fn, batched_args, reduce, *, n, segment, bs, schedule):
        self.fn, self.reduce, self.n = fn, reduce, n
        self.size = min(segment, n)
        self.n_segments = math.ceil(n / self.size)
        self.settings = dict(n=n, size=self.size, bs=min(bs, self.size), schedule=schedule)
        batched, rest = eqx.partition(batched_args, eqx.is_array)
        self.batched = batched
        self.rest, self.static = eqx.partition(floats_to_arrays(rest), eqx.is_array)
        self.prints = fingerprint(
            fn,
            batched_args,
            # The backend too: `schedule="auto"` resolves per backend.
            {
                **self.settings,
                "reduce": reduce,
                "x64": jax.config.x64_enabled,
                "backend": jax.default_backend(),
            },  # fmt: skip
        )

    def shapes(self):
        """The segment program's output shapes (and static output parts), traced once."""
        return eqx.filter_eval_shape(self.program, 0)

    def program(self, k):
        start = k * self.size
        rows = _rows(self.batched, start, min(start + self.size, self.n), self.size)
        offset = jnp.asarray(start, jnp.int32)
        return _segment(self.fn, rows, self.rest, self.static, self.reduce, offset, **self.settings)

    def valid(self, k) -> int:
        return min(self.size, self.n - k * self.size)


def run_resumable(fn, batched_args, reduce, *, n, segment, bs, schedule, progress,
                  checkpoint, out) -> EnsembleResult:  # fmt: skip
    """See the module docstring."""
    run = _Run(fn, batched_args, reduce, n=n, segment=segment, bs=bs, schedule=schedule)
    (local_shapes, out_static) = run.shapes()
    store = None
    if out is not None:
        example = jax.tree.map(
            lambda s: jax.ShapeDtypeStruct(s.shape[1:], s.dtype), local_shapes[0]
        )
        store = OutputStore.open(out, example, n, run.size, run.prints)
        checkpoint = Path(out) / ".checkpoint" if checkpoint is None else checkpoint
    record = RunRecord.open(checkpoint, run.prints, run.n_segments, "checkpoint")
    # What each segment commits: everything, or (with out=) the result codes and steps.
    kept = local_shapes if store is None or reduce is not None else local_shapes[1:]
    treedef = jax.tree.structure(kept)
    done = set(record.committed())
    parts, failed = [], 0
    for k in range(run.n_segments):
        if k in done:
            leaves = record.load(k)
        else:
            local, _ = run.program(k)
            if store is not None:
                valid = run.valid(k)
                store.write(
                    k * run.size, [np.asarray(x)[:valid] for x in jax.tree.leaves(local[0])]
                )
                local = local[1:]
            leaves = [np.asarray(x) for x in jax.tree.leaves(local)]
            record.commit(k, leaves)
        part = jax.tree.unflatten(treedef, leaves)
        parts.append(part)
        if progress:
            failed += _failed_in(part, reduce, run.valid(k))
            report_progress(k, run.n_segments, failed, 0)
    return _combine(parts, run, store, out_static)


def _failed_in(part, reduce, valid: int) -> int:
    if reduce is not None:
        return int(part[1].count)
    result = part[-2]
    return int(np.sum(np.asarray(result._value)[:valid] != RESULTS.successful._value))


def _combine(parts, run: _Run, store, out_static) -> EnsembleResult:
    """The segments' results, in order, as one `EnsembleResult`."""
    if run.reduce is not None:
        local = parts[0]
        for part in parts[1:]:
            local = _merge(run.reduce, local, part)
        return finish(local, run.reduce, run.n, None)
    parts = [jax.tree.map(lambda x, v=run.valid(k): x[:v], p) for k, p in enumerate(parts)]
    joined = jax.tree.map(lambda *xs: jnp.concatenate(xs), *parts)
    if store is None:
        return finish(joined, None, run.n, out_static)
    result, step = joined
    placeholder = jax.tree.map(lambda _: jnp.zeros((run.n, 0)), store.values())
    finished = finish((placeholder, result, step), None, run.n, out_static)
    return eqx.tree_at(lambda r: r.values, finished, eqx.combine(store.values(), out_static))
