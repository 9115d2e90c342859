"""`intercept_adaptive`: a caller that solves adaptive rollouts itself takes them over
from `simulate` (private).

Contract: while a function is traced inside `with intercept_adaptive(handler):`, every
`simulate` with an adaptive integrator and no events calls
`handler(solve, same_trace)` with the `AdaptiveSolve` it was about to run, after its
checks and before `diffrax.diffeqsolve`. `same_trace` says whether the call is made
directly in the intercepting function's trace (not inside a nested `vmap`, `scan` or
`grad` of its own). The handler returns the `Trajectory` to use instead, or `None` to let
`simulate` solve as usual. `simulate` then delivers the trajectory as always (its `throw`,
failure hand-over and result codes are unchanged).

`ds.ensemble`'s refill schedule uses it twice: to collect each member's solve without
running it, then to hand each member its solution from the shared scheduler
(`ensembles/_refill_batch.py`).
"""

import contextlib
import contextvars
from typing import Any, NamedTuple

from ._collect import current_trace

_INTERCEPT = contextvars.ContextVar("diffsim_intercept_adaptive", default=None)


class AdaptiveSolve(NamedTuple):
    """One adaptive `simulate` call, as `simulate_adaptive` takes it: `y0` cast to the
    state's dtype and `dt` signed (or `None`)."""

    system: Any
    y0: Any
    t0: Any
    t1: Any
    dt: Any
    integrator: Any
    saveat: Any
    max_steps: int | None


@contextlib.contextmanager
def intercept_adaptive(handler):
    """See the module docstring."""
    token = _INTERCEPT.set((handler, current_trace()))
    try:
        yield
    finally:
        _INTERCEPT.reset(token)


def intercepted(solve: AdaptiveSolve):
    """The handler's trajectory for `solve`, or `None` when nothing intercepts."""
    entry = _INTERCEPT.get()
    if entry is None:
        return None
    handler, trace = entry
    return handler(solve, trace is not None and current_trace() is trace)
