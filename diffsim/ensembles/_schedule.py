"""How one chunk of an ensemble runs: the `schedule` argument of `ds.ensemble` (private).

Contract: `check_schedule` validates the argument; `batch_function` returns the function
that runs one chunk's members: `vmap`, the refill schedule for adaptive solves
(`_refill_batch.py`), or the fused kernel for fixed-step ones (`_fused_batch.py`).
`"auto"` picks refill in eager calls on a CPU, the fused kernel on a GPU, where `fn`
qualifies, and `vmap` otherwise; an explicit schedule that cannot run `fn` raises a
`ValueError` that says why.
"""

import jax

from ._fused_batch import NotFusable, fused_batch
from ._refill_batch import BLOCK, LANES, NotRefillable, Refill, default_lanes, refill_batch

_CHOICES = "'auto', 'vmap', 'refill', 'fused' or ds.Refill(lanes=..., block=...)"


def check_schedule(schedule):
    """`schedule` as `"auto"`, `"vmap"`, `"fused"` or a `Refill`; a `ValueError` names
    bad values."""
    if isinstance(schedule, Refill):
        return schedule
    if not isinstance(schedule, str):
        raise TypeError(f"schedule must be {_CHOICES}; got {schedule!r}.")
    if schedule == "refill":
        return Refill()
    if schedule in ("auto", "vmap", "fused"):
        return schedule
    raise ValueError(f"schedule must be {_CHOICES}; got {schedule!r}.")


_HINTS = {
    NotRefillable: "The refill schedule takes over one adaptive ds.simulate called directly "
    "in fn (no events, no dense output)",
    NotFusable: "The fused schedule takes over one fixed-step explicit Runge-Kutta "
    "ds.simulate called directly in fn (no events, final state only, one number per member "
    "in each state leaf and system field)",
}


def _or_vmap(run, error, schedule, vmapped):
    """`run`, or `vmapped` where `run` cannot take `fn` (under "auto"; else an error)."""

    def batch(xs, rest):
        try:
            return run(xs, rest)
        except error as e:
            if schedule == "auto":
                return vmapped(xs, rest)
            raise ValueError(
                f"schedule={schedule!r} cannot run this fn: {e}. {_HINTS[error]}; use "
                "schedule='vmap' or 'auto'."
            ) from None

    return batch


def batch_function(fn, member, static, schedule, chunk: int):
    """How one chunk of `chunk` members runs (see the module docstring)."""
    vmapped = jax.vmap(member, in_axes=(0, None))
    backend = jax.default_backend()
    if schedule == "vmap":
        return vmapped
    if schedule == "fused" or (schedule == "auto" and backend == "gpu"):
        # Off a GPU the kernel runs in Pallas' interpreter: for tests, not for speed.
        fused = fused_batch(fn, member, static, interpret=backend != "gpu")
        return _or_vmap(fused, NotFusable, schedule, vmapped)
    if schedule == "auto":
        # Refill is measured on CPUs only.
        if chunk <= LANES or backend != "cpu":
            return vmapped
        refill = refill_batch(fn, member, static, lanes=default_lanes(chunk), block=BLOCK)
    else:
        refill = refill_batch(fn, member, static, lanes=schedule.lanes, block=schedule.block)
    return _or_vmap(refill, NotRefillable, schedule, vmapped)
