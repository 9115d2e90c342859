"""Which members of an ensemble failed, and how that is reported (private).

Contract: `status(out)` reads one member's output (its `ds.Trajectory` result codes and
non-finite floats) as a result code and a failing step; `Failures` is the bounded,
mergeable record of failed members kept with `reduce=`; `check(...)` raises
`SimulationError` naming the first failed member from inside the compiled program, and
`raise_on_host(result)` does the same from a finished `EnsembleResult`.
"""

import equinox as eqx
import equinox.internal as eqxi
import jax
import jax.lax as lax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Int

from ..engine import RESULTS, SimulationError, Trajectory
from ._result import EnsembleResult

# The prefix that `_errors.reraise_clean` recognises to turn a runtime error raised
# under jit back into a plain `SimulationError`.
_MARKER = "diffsim.SimulationError: "


WHAT = "ds.ensemble"


def _is_trajectory(x) -> bool:
    return isinstance(x, Trajectory)


def _first_code(result: RESULTS) -> RESULTS:
    """A batched result code (a trajectory vmapped inside `fn`) reduced to its first
    failure, or `successful`."""
    return jax.tree.map(
        lambda v, ok: v.reshape(-1)[jnp.argmax(v.reshape(-1) != ok)] if v.ndim else v,
        result,
        RESULTS.successful,
    )


def _first_step(step) -> Int[Array, ""]:
    step = jnp.asarray(step, jnp.int32).reshape(-1)
    big = jnp.iinfo(jnp.int32).max
    first = jnp.min(jnp.where(step >= 0, step, big), initial=big)
    return jnp.where(first == big, -1, first)


def status(out) -> tuple[RESULTS, Int[Array, ""]]:
    """One member's result code and the step at which it became non-finite (or -1)."""
    result = RESULTS.successful
    step = jnp.asarray(-1, jnp.int32)
    for leaf in jax.tree.leaves(out, is_leaf=_is_trajectory):
        if not isinstance(leaf, Trajectory):
            continue
        code = _first_code(leaf.result)
        first = (result == RESULTS.successful) & (code != RESULTS.successful)
        result = RESULTS.where(first, code, result)
        stats = leaf.stats if isinstance(leaf.stats, dict) else {}
        if "nonfinite_step" in stats:
            step = jnp.where(first, _first_step(stats["nonfinite_step"]), step)
    floats = [x for x in jax.tree.leaves(out) if eqx.is_inexact_array(x)]
    if floats:
        finite = jnp.stack([jnp.all(jnp.isfinite(x)) for x in floats]).all()
        result = RESULTS.where((result == RESULTS.successful) & ~finite, RESULTS.nonfinite, result)
    return result, step


def _reason(step: int, message: str) -> str:
    if step >= 0:
        return f"its state became non-finite (NaN or inf) at step {step}"
    if message == RESULTS[RESULTS.nonfinite]:
        return "its output is non-finite (NaN or inf)"
    return message[0].lower() + message[1:].rstrip(".")


def _message(failed, index, step, result, num_failed, done, total, chunked) -> str:
    failed = np.asarray(failed).reshape(-1)
    first = int(np.argmax(failed))

    def pick(v):  # a 0-d ndarray, which RESULTS[...] can read
        return np.asarray(v).reshape(-1)[first : first + 1].reshape(())

    message = RESULTS[jax.tree.map(pick, result)]
    i, s = int(pick(index)), int(pick(step))
    so_far = f"the first {int(done)} members run" if int(chunked) else f"{int(total)} members"
    return (
        f"{WHAT}: member {i} failed: {_reason(s, message)}. "
        f"{int(num_failed)} of {so_far} failed. Pass throw=False to keep the other members "
        "and get the failures in result.failed_indices / failed_steps."
    )


def _raise(*args):
    """Host side of `_error_if_failed`: raise, with the marker `reraise_clean` finds."""
    raise SimulationError(_MARKER + _message(*args))


@jax.custom_jvp
def _error_if_failed(x, failed, index, step, result, num_failed, done, total, chunked):
    """Return `x`; raise `SimulationError` naming the first member with `failed` true.
    Built like `_errors.error_if_bad_step`: a `pure_callback` that raises, reached only
    through a `lax.cond` on a predicate reduced over any `vmap`, with a JVP that passes
    the tangent of `x` through."""

    def error_branch(x, *args):
        def callback(*args):
            _raise(*args)
            return np.int32(0)  # not reached

        struct = jax.ShapeDtypeStruct((), jnp.int32)
        token = jax.pure_callback(callback, struct, *args, vmap_method="broadcast_all")
        # The callback's output feeds x so that it is not removed as dead code.
        return jax.tree.map(lambda a: a + jnp.zeros_like(a) * token.astype(a.dtype), x)

    pred = eqxi.unvmap_any(jnp.any(failed))
    args = (failed, index, step, result, num_failed, done, total, chunked)
    return lax.cond(pred, error_branch, lambda x, *_: x, x, *args)


@_error_if_failed.defjvp
def _error_if_failed_jvp(primals, tangents):
    return _error_if_failed(*primals), tangents[0]


def check(x, failed, index, step, result, num_failed, done, total, chunked):
    as_int = lambda v: jnp.asarray(v, jnp.int32)  # noqa: E731
    return _error_if_failed(
        x, failed, index, step, result, as_int(num_failed), as_int(done), as_int(total),
        as_int(chunked),
    )  # fmt: skip


class Failures(eqx.Module):
    """The bounded record of failed members (`reduce=` path)."""

    count: Int[Array, ""]
    indices: Int[Array, " k"]
    steps: Int[Array, " k"]
    results: RESULTS

    @staticmethod
    def empty(k: int) -> "Failures":
        return Failures(
            count=jnp.zeros((), jnp.int32),
            indices=jnp.full((k,), -1, jnp.int32),
            steps=jnp.full((k,), -1, jnp.int32),
            results=jax.tree.map(lambda v: jnp.full((k,), v, jnp.int32), RESULTS.successful),
        )

    def add(self, failed, index, step, result) -> "Failures":
        k = self.indices.shape[0]
        position = self.count + jnp.cumsum(failed, dtype=jnp.int32) - 1
        slot = jnp.where(failed & (position < k), position, k)  # k: dropped

        def put(buffer, value):
            return buffer.at[slot].set(value.astype(buffer.dtype), mode="drop")

        return Failures(
            count=self.count + jnp.sum(failed, dtype=jnp.int32),
            indices=put(self.indices, index),
            steps=put(self.steps, step),
            results=jax.tree.map(put, self.results, result),
        )

    def merge(self, other: "Failures") -> "Failures":
        """Append `other`'s record (members after all of ours) to ours."""
        merged = self.add(other.indices >= 0, other.indices, other.steps, other.results)
        return eqx.tree_at(lambda f: f.count, merged, self.count + other.count)


def failures_in_order(failed, num_failed, step, result) -> Failures:
    """The failed members first, in order: each failed member's rank among the failed is
    a cumulative sum, and one scatter puts it there (O(n); a stable argsort cost ~0.3 ms
    at n = 1024 on a CPU, jnp.nonzero(size=n) compiles slowly)."""
    n = failed.shape[0]
    rank = jnp.cumsum(failed, dtype=jnp.int32) - 1
    slot = jnp.where(failed, rank, n)  # n: dropped
    order = jnp.zeros((n,), jnp.int32).at[slot].set(jnp.arange(n, dtype=jnp.int32), mode="drop")
    present = jnp.arange(n) < num_failed
    return Failures(
        count=num_failed,
        indices=jnp.where(present, order, -1),
        steps=jnp.where(present, step[order], -1),
        results=jax.tree.map(lambda v: jnp.where(present, v[order], 0), result),
    )


def raise_on_host(result: EnsembleResult) -> None:
    if int(result.num_failed) == 0:
        return
    first = jax.tree.map(lambda x: np.asarray(x)[:1], result.failed_results)
    message = _message(
        np.array([True]),
        np.asarray(result.failed_indices)[:1],
        np.asarray(result.failed_steps)[:1],
        first,
        int(result.num_failed),
        result.num_members,
        result.num_members,
        False,
    )
    raise SimulationError(message)
