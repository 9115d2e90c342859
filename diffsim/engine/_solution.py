"""`Trajectory`, what `simulate` returns, and the result codes of a rollout."""

from typing import Any

import equinox as eqx
from jaxtyping import Array, ArrayLike, Float, Int, PyTree

from ._event import EventLog
from ._interpolation import DiffraxInterpolation, HermiteInterpolation


class RESULTS(eqx.Enumeration):
    """How a rollout ended. With `throw=False`, `traj.result` holds one of these; compare
    with `traj.result == ds.RESULTS.successful` (works under `vmap`).

    The codes: `successful`, `nonfinite` (`ds.NonFiniteStateError` with `throw=True`),
    `max_steps_reached` (`ds.MaxStepsError`), `adaptive_failed` (`ds.StepSizeError`),
    `event_capacity` and `event_accumulation` (`ds.EventError`).

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
    event_capacity = "More events occurred than max_events. Increase max_events."
    event_accumulation = (
        "Events accumulated: too many in one step (Zeno behaviour, e.g. a ball coming to rest)."
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
    - `events`: with `simulate(..., events=...)`, the `ds.EventLog` of the events that
      occurred (times, which, states, count); else `None`.
    - `interpolation`: with `SaveAt(dense=True)`, the interpolant that `evaluate` uses;
      else `None`. Batched by `vmap` like `ys`: evaluate a batch of trajectories inside
      the `vmap` (or `jax.vmap(lambda tr: tr.evaluate(t))(traj)`).

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
    events: EventLog | None = None
    interpolation: HermiteInterpolation | DiffraxInterpolation | None = None

    def evaluate(self, t: ArrayLike) -> PyTree:
        """The state at time(s) `t`, from the dense output of `SaveAt(dense=True)`.

        Fixed-step integrators: the piecewise cubic Hermite interpolant through the state
        and its time derivative at every step, $O(dt^4)$ accurate and equal to the grid
        states at the grid times. Adaptive integrators: the solver's own interpolant
        (diffrax's dense output). Differentiable with respect to the system's parameters,
        `y0` and `t`. Times outside the rollout's `[t0, t1]` are clamped to it. Where the
        state jumps (an event's reset), the value at the jump time is the state after it.

        **Arguments:**

        - `t`: an array of times of any shape (or a scalar).

        **Returns:** a pytree like `y0` whose leaves have leading axes `t.shape` (the
        state, not `SaveAt(fn=...)` of it).

        **Raises:** `ValueError` if the rollout was not saved with `SaveAt(dense=True)`.

        **Example:**

        ```python
        osc = ds.systems.HarmonicOscillator(omega=1.0)
        traj = ds.simulate(osc, osc.initial_state(1.0), t1=2.0, dt=0.1,
                           saveat=ds.SaveAt(dense=True))
        q = traj.evaluate(jnp.linspace(0.0, 2.0, 201)).q  # (201,), close to cos(t)
        print(jnp.max(jnp.abs(q - jnp.cos(jnp.linspace(0.0, 2.0, 201)))))  # ~2e-6
        ```
        """
        if self.interpolation is None:
            raise ValueError(
                "traj.evaluate(t) needs the dense output of the rollout: pass "
                "saveat=ds.SaveAt(dense=True) to ds.simulate (dense=True may be added to "
                "any SaveAt, e.g. ds.SaveAt(ts=times, dense=True))."
            )
        return self.interpolation.evaluate(t)
