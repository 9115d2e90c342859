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

    **Example:** RK4 is unstable for `omega * dt > 2.79`, so two members blow up.

    ```python
    def rollout(omega):
        osc = ds.systems.HarmonicOscillator(omega=omega)
        return ds.simulate(osc, osc.initial_state(1.0), t1=10.0, dt=0.1, throw=False)

    res = ds.ensemble(rollout, jnp.array([1.0, 10.0, 50.0, 100.0]), throw=False)
    print(res.num_failed)  # 2
    print(res.failed)  # [False False  True  True]
    print(res.report())  # 2 of 4 members failed: 2 (step 26), 3 (step 13).
    print(res.values.ys.q.shape)  # (4, 1): every member's final position
    ```
    """

    values: Any
    num_members: int = eqx.field(static=True)
    num_failed: Int[Array, ""]
    failed_indices: Int[Array, " k"]
    failed_steps: Int[Array, " k"]
    failed_results: RESULTS
    failed: Bool[Array, " n"] | None

    def report(self) -> str:
        """A one-paragraph summary of the failures (call outside jit): how many members
        failed, and the first ten's indices with the steps at which they failed."""
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
