"""`Trajectory`, what `simulate` returns, and the result codes of a rollout."""

from typing import Any

import equinox as eqx
from jaxtyping import Array, Float, Int, PyTree


class RESULTS(eqx.Enumeration):
    """How a rollout ended. With `throw=False`, `traj.result` holds one of these; compare
    with `traj.result == ds.RESULTS.successful` (works under `vmap`).

    The codes: `successful`, `nonfinite` (`ds.NonFiniteStateError` with `throw=True`),
    `max_steps_reached` (`ds.MaxStepsError`) and `adaptive_failed` (`ds.StepSizeError`).

    **Example:** $\\dot y = y^2$ from $y_0$ is infinite at $t = 1/y_0$:

    ```python
    blowup = ds.ODESystem(lambda t, y, p: y**2, None)

    def succeeded(y0):
        traj = ds.simulate(blowup, y0, t1=1.5, dt=0.01, throw=False)
        return traj.result == ds.RESULTS.successful

    print(jax.vmap(succeeded)(jnp.array([0.2, 0.5, 1.0])))  # [ True  True False]: 1/1.0 < t1
    ```
    """

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

    **Example:**

    ```python
    pendulum = ds.systems.Pendulum(length=1.0)
    traj = ds.simulate(pendulum, pendulum.initial_state(0.5), t1=1.0, dt=0.01,
                       saveat=ds.SaveAt(every=50))
    print(traj.ts)  # [0.  0.5 1. ]
    print(traj.ys.q)  # [ 0.5  0.0147 -0.4992]
    print(traj.result == ds.RESULTS.successful)  # True
    print(traj.stats["num_steps"])  # 100
    ```
    """

    ts: Float[Array, " n_saved"]
    ys: PyTree[Float[Array, "n_saved ..."]]
    result: RESULTS
    stats: dict[str, Int[Array, ""] | Any]
