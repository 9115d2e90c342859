"""`collect_failures`: a caller that reports failures itself takes over `simulate`'s
`throw` (private).

Contract: while a function is traced inside `with collect_failures() as statuses:`, every
`simulate(..., throw=True)` called *directly* in it (in the same trace, not inside a
nested `vmap`, `scan` or `grad` of its own) does not raise: it appends its traced
`(result, nonfinite_step)` to `statuses`, and the caller (`ds.ensemble`, which reports
each failed member by its index) returns them from its compiled program and raises in
Python. A `simulate` nested deeper cannot hand its status out of its trace; it returns
NaN states where it failed instead, which the caller sees as a non-finite output: the
failure is still reported, without its step.
"""

import contextlib
import contextvars
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

_COLLECTING = contextvars.ContextVar("diffsim_collect_failures", default=None)


def current_trace() -> Any:
    """The trace being built now (JAX internals; None where they differ, which only
    makes nested reporting fall back to NaN states)."""
    try:
        from jax._src import core

        return core.trace_ctx.trace
    except (ImportError, AttributeError):  # pragma: no cover - other JAX versions
        return None


class _Collector:
    def __init__(self):
        self.trace = current_trace()
        self.statuses: list = []


@contextlib.contextmanager
def collect_failures():
    """See the module docstring; yields the list the statuses are appended to."""
    collector = _Collector()
    token = _COLLECTING.set(collector)
    try:
        yield collector.statuses
    finally:
        _COLLECTING.reset(token)


def collecting() -> bool:
    return _COLLECTING.get() is not None


def hand_over(result, step) -> bool:
    """Give a traced failure status to the collecting caller; False when there is none or
    this `simulate` runs in a nested trace of its own."""
    collector = _COLLECTING.get()
    if collector is None or collector.trace is None or current_trace() is not collector.trace:
        return False
    collector.statuses.append((result, step))
    return True


def poison(ys, failed):
    """`ys` with NaN in every floating leaf where `failed`."""
    return jax.tree.map(
        lambda y: jnp.where(failed, jnp.nan, y) if eqx.is_inexact_array(y) else y, ys
    )


def under_transformation() -> bool:
    """Whether the caller runs inside a JAX transformation (`jit`, `vmap`, `grad`, ...)
    rather than eagerly (JAX internals; `True` where they differ, the safe answer)."""
    try:
        from jax._src import core

        return not isinstance(core.trace_ctx.trace, core.EvalTrace)
    except (ImportError, AttributeError):  # pragma: no cover - other JAX versions
        return True
