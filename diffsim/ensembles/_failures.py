"""Which members of an ensemble failed, and how that is reported (private).

Contract: `status(out)` reads one member's output (its `ds.Trajectory` result codes and
non-finite floats) as a result code and a failing step; `Failures` is the bounded,
mergeable record of failed members kept with `reduce=`; `raise_on_host(result)` raises
the `SimulationError` subclass naming the first failed member of a finished
`EnsembleResult` (the compiled program never raises: see `engine/_errors.py`).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Int

from ..engine import RESULTS, Trajectory
from ..engine._errors import FAILURES, failure
from ._result import EnsembleResult

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


def status(out, handed_over=()) -> tuple[RESULTS, Int[Array, ""]]:
    """One member's result code and the step at which it became non-finite (or -1): the
    first failure among the `(result, step)` statuses that `simulate` handed over
    (`engine._collect`), the `ds.Trajectory` leaves of its output, and its floats."""
    found = list(handed_over)
    for leaf in jax.tree.leaves(out, is_leaf=_is_trajectory):
        if isinstance(leaf, Trajectory):
            stats = leaf.stats if isinstance(leaf.stats, dict) else {}
            found.append((leaf.result, stats.get("nonfinite_step", -1)))
    result = RESULTS.successful
    step = jnp.asarray(-1, jnp.int32)
    for code, code_step in found:
        code = _first_code(code)
        first = (result == RESULTS.successful) & (code != RESULTS.successful)
        result = RESULTS.where(first, code, result)
        step = jnp.where(first, _first_step(code_step), step)
    floats = [x for x in jax.tree.leaves(out) if eqx.is_inexact_array(x)]
    if floats:
        finite = jnp.stack([jnp.all(jnp.isfinite(x)) for x in floats]).all()
        result = RESULTS.where((result == RESULTS.successful) & ~finite, RESULTS.nonfinite, result)
    return result, step


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
    """Raise the `SimulationError` subclass of the first failed member of a finished
    (concrete) `EnsembleResult`, naming it, its step and how many failed."""
    if int(result.num_failed) == 0:
        return
    code = jax.tree.map(lambda x: np.asarray(x)[0], result.failed_results)
    cls, headline, hint = failure(code)
    index, step = int(np.asarray(result.failed_indices)[0]), int(np.asarray(result.failed_steps)[0])
    at = f" at step {step}" if step >= 0 else ""
    if step < 0 and code == RESULTS.nonfinite:
        headline = "its output is non-finite (NaN or inf)"
    raise cls(
        f"{WHAT}: member {index} failed: {headline}{at}.",
        f"{int(result.num_failed)} of {result.num_members} members failed.",
        hint,
        "throw=False keeps the others and reports the failures in result.failed_indices "
        "and failed_steps.",
    )


# Under a transformation the message is static: equinox picks one of a list by a traced
# index. Up to this many members the list names each member (a few hundred KB of
# strings, made once per trace); beyond it, only what failed.
_NAMED_MEMBERS_MAX = 4096


def error_if_failed_members(x, result: EnsembleResult):
    """Under a transformation: `x`, or equinox's runtime error naming the first failed
    member and how it failed (its step is not known to Python there)."""
    tail = (
        "\nThe step is not known under a transformation: pass throw=False and read "
        "result.failed_indices and failed_steps."
    )
    headlines = [(code, headline) for code, _, headline, _ in FAILURES]
    named = result.num_members <= _NAMED_MEMBERS_MAX
    members = range(result.num_members) if named else [None]
    messages = [""] + [
        f"{WHAT}: {'a member' if i is None else f'member {i}'} failed: {headline}.{tail}"
        for i in members
        for _, headline in headlines
    ]
    kind = jnp.zeros((), jnp.int32)
    first = jax.tree.map(lambda v: v[0], result.failed_results)
    for k, (code, _) in enumerate(headlines):
        kind = jnp.where(first == code, k, kind)
    member = result.failed_indices[0] if named else 0
    index = 1 + member * len(headlines) + kind
    return eqx.branched_error_if(x, result.num_failed > 0, index, messages)
