"""The compiled core of `ds.ensemble` (private): one member's function and the chunk
loop that runs a device's (or a segment's) share of members.

Contract: `member_fn(fn, static)` wraps `fn` as one member's `(outputs, result, step)`;
`run_local(batch_fn, member, ...)` runs `n_local` members in chunks of `bs` (a `lax.scan`
over chunks, each chunk one `batch_fn` call: `vmap` of `member` or the refill schedule),
returning every member's outputs or, with `reduce`, the reducer states and failure record;
`finish` turns either into an `EnsembleResult`. `_ensemble.py` calls them for one or
several devices, `_resumable.py` for each committed segment.
"""

import math

import equinox as eqx
import jax
import jax.lax as lax
import jax.numpy as jnp

from ..engine import RESULTS
from ..engine._collect import collect_failures
from ._checks import member_output
from ._failures import WHAT, Failures, failures_in_order, status
from ._progress import report_progress
from ._reducers import is_reducer
from ._result import MAX_REPORTED_FAILURES, EnsembleResult


def pad(tree, n: int, n_pad: int):
    """Extend the leading axis from `n` to `n_pad` by repeating the last member (works
    for PRNG key arrays too); the copies are not counted."""
    if n_pad == n or all(jnp.shape(x)[0] == n_pad for x in jax.tree.leaves(tree)):
        return tree
    index = jnp.minimum(jnp.arange(n_pad), n - 1)
    return jax.tree.map(lambda x: x[index], tree)


def inexact_only(tree):
    """Floating leaves kept, others `None`: what reducers see."""
    return jax.tree.map(
        lambda x: x if jnp.issubdtype(jnp.result_type(x), jnp.inexact) else None, tree
    )


def reducer_map(f, reduce, *trees):
    return jax.tree.map(f, reduce, *trees, is_leaf=is_reducer)


def assemble(ys, n: int, bs: int):
    """Chunk outputs `(n_chunks, bs, ...)` back to `(n, ...)`: the last chunk ends at
    member `n - 1` and overlaps its predecessor."""

    def leaf(y):
        n_chunks = y.shape[0]
        if n_chunks * bs == n:
            return y.reshape((n,) + y.shape[2:])
        head = y[:-1].reshape(((n_chunks - 1) * bs,) + y.shape[2:])[: n - bs]
        return jnp.concatenate([head, y[-1]])

    return jax.tree.map(leaf, ys)


def run_local(
    batch_fn, member, batched, rest, *, n_local, n_valid, offset, bs, reduce, progress, device
):
    """The chunk loop on one device over `n_local` members, the first of which is member
    `offset` of the ensemble; members at or beyond `n_valid` are padding. `batch_fn`
    runs one chunk (`vmap` of `member`, or the refill schedule)."""
    bs = min(bs, n_local)
    n_chunks = math.ceil(n_local / bs)
    vmapped = jax.vmap(member, in_axes=(0, None))

    def chunk(k):
        if n_chunks == 1:
            start, xs = jnp.asarray(0, jnp.int32), batched
        else:
            start = jnp.minimum(k * bs, n_local - bs).astype(jnp.int32)
            xs = jax.tree.map(lambda x: lax.dynamic_slice_in_dim(x, start, bs), batched)
        out, result, step = batch_fn(xs, rest)
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
        return assemble(ys, n_local, bs)

    example = jax.eval_shape(lambda x: vmapped(x, rest)[0], jax.tree.map(lambda x: x[:1], batched))
    example = inexact_only(
        jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape[1:], s.dtype), example)
    )
    state0 = reducer_map(lambda r: r.init(example), reduce)
    failures0 = Failures.empty(min(n_valid, MAX_REPORTED_FAILURES))

    def body(carry, k):
        state, failures = carry
        out, result, step, failed, counts, index = chunk(k)
        values = inexact_only(out)
        keep = counts & ~failed
        state = reducer_map(lambda r, s: r.update(s, values, keep), reduce, state)
        failures = failures.add(failed, index, step, result)
        return report(k, failures.count, (state, failures)), None

    if n_chunks == 1:
        return body((state0, failures0), 0)[0]
    body = jax.checkpoint(body, prevent_cse=False)
    return lax.scan(body, (state0, failures0), jnp.arange(n_chunks))[0]


def member_fn(fn, static):
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


def finish(local, reduce, n: int, out_static) -> EnsembleResult:
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
        values = reducer_map(lambda r, s: r.finalize(s), reduce, state)
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
