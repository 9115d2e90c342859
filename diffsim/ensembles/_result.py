"""`EnsembleResult`: what `ds.ensemble` returns, and its failure report."""

from typing import Any

import equinox as eqx
import numpy as np
from jaxtyping import Array, Bool, Int

from ..engine import RESULTS

#: With `reduce=`, how many failed members are reported individually (all are counted).
MAX_REPORTED_FAILURES = 1024


class EnsembleResult(eqx.Module):
    """What `ds.ensemble` returns.


    **Fields:**


    - `values`: without `reduce`, `fn`'s outputs stacked along a leading member axis (a
      failed member's entries are whatever `fn` returned, often NaN); with `reduce`, the
      reducers' statistics (failed members left out).
    - `num_members`: the number of members (a Python int).
    - `num_failed`: how many members failed.
    - `failed_indices`: `(k,)` the failed members' indices in increasing order, padded
      with -1; `k` is the number of members without `reduce`, else
      `min(num_members, MAX_REPORTED_FAILURES)` (the first ones are kept).
    - `failed_steps`: `(k,)` the step at which each became non-finite (from
      `traj.stats["nonfinite_step"]`), -1 where not known or padding.
    - `failed_results`: `(k,)` a `ds.RESULTS` code per failed member (`successful` for
      padding): `nonfinite`, `max_steps_reached`, `adaptive_failed`.
    - `failed`: `(num_members,)` booleans without `reduce`, else `None`.
    """

    values: Any
    num_members: int = eqx.field(static=True)
    num_failed: Int[Array, ""]
    failed_indices: Int[Array, " k"]
    failed_steps: Int[Array, " k"]
    failed_results: RESULTS
    failed: Bool[Array, " n"] | None

    def report(self) -> str:
        """A one-paragraph summary of the failures (call outside jit)."""
        count = int(self.num_failed)
        if count == 0:
            return f"All {self.num_members} members succeeded."
        idx = np.asarray(self.failed_indices)
        steps = np.asarray(self.failed_steps)
        shown = [
            f"{int(i)} (step {int(s)})" if s >= 0 else str(int(i))
            for i, s in zip(idx[idx >= 0][:10], steps[idx >= 0][:10], strict=True)
        ]
        more = ", ..." if count > len(shown) else ""
        return f"{count} of {self.num_members} members failed: {', '.join(shown)}{more}."
