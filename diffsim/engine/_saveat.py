"""`SaveAt`: which times a rollout keeps, and what it keeps at them."""

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float


class SaveAt(eqx.Module):
    """Which times `simulate` saves, and optionally a function of the state to save.

    Exactly one way of choosing times:

    - `SaveAt(t1=True)` (the default): the final state only; `ts == [t1]`.
    - `SaveAt(t0=True, t1=True)`: the initial and final states.
    - `SaveAt(every=k)`: `t0` and every `k`-th step after it, plus `t1` when the number of
      steps is not a multiple of `k` (fixed-step integrators only).
    - `SaveAt(ts=times)`: the given times within `[t0, t1]`, in the order of integration:
      non-decreasing, or non-increasing for a backward rollout (`t1 < t0`). With a
      fixed-step integrator a time between grid points is reached by a partial step of the
      integrator from the last grid point, so saved values have the integrator's order.

    **Dense output.** `dense=True` may be added to any of these; it also keeps an
    interpolant of the whole rollout, so that `traj.evaluate(t)` gives the state at any
    time in `[t0, t1]` (`ds.Trajectory.evaluate`). `SaveAt(dense=True)` alone is
    `SaveAt(t1=True, dense=True)`. For fixed-step integrators the interpolant is the
    piecewise cubic Hermite one through the state and its time derivative at every step
    ($O(dt^4)$ error); for adaptive ones it is diffrax's, the solver's own. It interpolates
    the state, not `fn` of it. Memory: it keeps every step's state and derivative, $O(n)$
    for $n$ steps, whatever the adjoint; `adjoint=ds.Reversible()` (which exists to not
    store them) and `ds.Backsolve()` refuse it.

    **Arguments:**

    - `t0`, `t1`: save the initial / final state.
    - `ts`: a 1-d array of times, ordered in the direction of integration.
    - `every`: a positive whole number of steps.
    - `fn`: save `fn(t, y)` (any pytree: an energy, an observation) instead of `y`, to keep
      memory small. Static: hashed by identity.
    - `dense`: also keep the dense interpolant for `traj.evaluate(t)`.

    **Example:**

    ```python
    saveat = ds.SaveAt(ts=jnp.linspace(0.0, 10.0, 101), fn=lambda t, y: y.q)
    ```

    Dense output, evaluated at any times afterwards:

    ```python
    osc = ds.systems.HarmonicOscillator(omega=1.0)
    traj = ds.simulate(osc, osc.initial_state(1.0), t1=2.0, dt=0.01,
                       saveat=ds.SaveAt(dense=True))
    print(traj.evaluate(jnp.array([0.5, 1.5])).q)  # [0.87758 0.07074]: cos(t)
    ```
    """

    t0: bool = False
    t1: bool = False
    ts: Float[Array, " n_saved"] | None = None
    every: int | None = eqx.field(static=True, default=None)
    fn: Callable[[Any, Any], Any] | None = eqx.field(static=True, default=None)
    dense: bool = eqx.field(static=True, default=False)

    def __init__(self, *, t0=False, t1=False, ts=None, every=None, fn=None, dense=False):
        if dense is True and not (t0 or t1 or ts is not None or every is not None):
            t1 = True  # SaveAt(dense=True): the final state as ys, and the interpolant
        self.t0 = t0
        self.t1 = t1
        self.dense = dense
        self.ts = None if ts is None else jnp.asarray(ts)
        self.every = every
        self.fn = fn

    def __check_init__(self):
        if not isinstance(self.dense, bool):
            raise TypeError(f"SaveAt(dense=...) must be True or False; got {self.dense!r}.")
        modes = [self.t0 or self.t1, self.ts is not None, self.every is not None]
        if sum(modes) != 1:
            raise ValueError(
                "SaveAt needs exactly one way of choosing times: t0=/t1=True, ts=times or "
                f"every=k; got t0={self.t0}, t1={self.t1}, ts={self.ts is not None}, "
                f"every={self.every}. (every=k already includes t0 and t1; put t0 and t1 "
                "in ts yourself; dense=True may be added to any of them.)"
            )
        if self.every is not None and (
            not isinstance(self.every, (int, np.integer)) or self.every < 1
        ):
            raise ValueError(f"SaveAt(every=...) must be a positive int; got {self.every!r}.")
        if self.ts is not None and self.ts.ndim != 1:
            raise ValueError(
                f"SaveAt(ts=...) must be a 1-d array of times; got shape {self.ts.shape}."
            )
        if self.fn is not None and not callable(self.fn):
            raise TypeError(f"SaveAt(fn=...) must be callable fn(t, y); got {self.fn!r}.")
