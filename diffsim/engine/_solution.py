"""`Trajectory`, what `simulate` returns, and the result codes of a rollout."""

from typing import Any

import equinox as eqx
from jaxtyping import Array, Float, Int, PyTree


class RESULTS(eqx.Enumeration):
    """How a rollout ended. With `throw=False`, `traj.result` holds one of these; compare
    with `traj.result == ds.RESULTS.successful` (works under `vmap`)."""

    successful = ""
    nonfinite = (
        "The state became non-finite (NaN or inf). Use a smaller dt, a stiff integrator "
        "(ds.Kvaerno5) or check the system's parameters."
    )
    max_steps_reached = "The maximum number of steps was reached. Increase max_steps."
    adaptive_failed = (
        "The adaptive integrator failed (step size collapsed or the implicit solve diverged)."
    )


class Trajectory(eqx.Module):
    """The result of `ds.simulate`.

    **Fields:**

    - `ts`: `(n_saved,)` times.
    - `ys`: the saved states (or `SaveAt(fn=...)` values): a pytree like `y0` with a leading
      `n_saved` axis on every leaf.
    - `result`: a `ds.RESULTS` code; always `successful` when `throw=True`.
    - `stats`: a dict of int arrays: `num_steps`, and `nonfinite_step` (the first step whose
      output was non-finite, or -1) for fixed-step rollouts.
    """

    ts: Float[Array, " n_saved"]
    ys: PyTree[Float[Array, "n_saved ..."]]
    result: RESULTS
    stats: dict[str, Int[Array, ""] | Any]
