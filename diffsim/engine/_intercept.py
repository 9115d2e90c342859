"""`intercept_adaptive`, `intercept_fixed`: a caller that solves rollouts itself takes
them over from `simulate` (private).

Contract: while a function is traced inside `with intercept_adaptive(handler):`, every
`simulate` with an adaptive integrator and no events calls
`handler(solve, same_trace)` with the `AdaptiveSolve` it was about to run, after its
checks and before `diffrax.diffeqsolve`. `same_trace` says whether the call is made
directly in the intercepting function's trace (not inside a nested `vmap`, `scan` or
`grad` of its own). The handler returns the `Trajectory` to use instead, or `None` to let
`simulate` solve as usual. `simulate` then delivers the trajectory as always (its `throw`,
failure hand-over and result codes are unchanged).

`intercept_fixed` is the same for fixed-step rollouts without events: the handler gets
the `FixedSolve` that `simulate_fixed` was about to run. `ds.ensemble`'s fused schedule
uses it (`ensembles/_fused_batch.py`).

`ds.ensemble`'s refill schedule uses `intercept_adaptive` twice: to collect each member's solve without
running it, then to hand each member its solution from the shared scheduler
(`ensembles/_refill_batch.py`).
"""

import contextlib
import contextvars
from typing import Any, NamedTuple

from ._collect import current_trace

_INTERCEPT = contextvars.ContextVar("diffsim_intercept_adaptive", default=None)
_INTERCEPT_FIXED = contextvars.ContextVar("diffsim_intercept_fixed", default=None)


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


class FixedSolve(NamedTuple):
    """One fixed-step `simulate` call without events, as `simulate_fixed` takes it."""

    system: Any
    y0: Any
    t0: Any
    dt: Any
    n: int
    integrator: Any
    saveat: Any
    adjoint: Any
    check_ts: bool


@contextlib.contextmanager
def _intercepting(var, handler):
    token = var.set((handler, current_trace()))
    try:
        yield
    finally:
        var.reset(token)


def _handle(var, solve):
    entry = var.get()
    if entry is None:
        return None
    handler, trace = entry
    return handler(solve, trace is not None and current_trace() is trace)


def intercept_adaptive(handler):
    """See the module docstring."""
    return _intercepting(_INTERCEPT, handler)


def intercept_fixed(handler):
    """See the module docstring."""
    return _intercepting(_INTERCEPT_FIXED, handler)


def intercepted(solve: AdaptiveSolve):
    """The handler's trajectory for the adaptive `solve`, or `None` when nothing
    intercepts."""
    return _handle(_INTERCEPT, solve)


def intercepted_fixed(solve: FixedSolve):
    """The handler's trajectory for the fixed-step `solve`, or `None`."""
    return _handle(_INTERCEPT_FIXED, solve)


class Replay:
    """A handler that answers the solve made directly in the intercepting trace with
    `traj`, a trajectory computed elsewhere (the ensembles' schedules hand each member
    its own)."""

    def __init__(self, traj):
        self.traj = traj

    def __call__(self, solve, same_trace):
        return self.traj if same_trace else None
