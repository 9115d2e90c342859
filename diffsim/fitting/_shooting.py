"""Trajectory models and multiple shooting, for fitting long or chaotic records.

A `TrajectoryModel` is the common fitting model written once: build a system and its
initial state from the parameters, roll it out, observe it at the data's times. Because it
knows its structure, `fit(..., shooting=k)` can split the record into `k` segments, each
starting from its own fitted state $s_j$ at time $\\tau_j$ (Bock and Plitt 1984, "A
multiple shooting algorithm for direct solution of optimal control problems"):

$$r = \\Big(\\underbrace{\\frac{h(\\Phi_{\\tau_j \\to t_i}(s_j)) - y_i}{\\sigma}}_{\\text{data}},\\
  \\underbrace{w\\,\\big(\\Phi_{\\tau_j \\to \\tau_{j+1}}(s_j) - s_{j+1}\\big)}_{\\text{continuity}}\\Big)$$

Each segment is short, so the residuals depend smoothly on the parameters even when one
long rollout is chaotic or far from the data at the start of the fit; as the fit
converges the continuity residuals vanish and the segments join into one trajectory.
"""

import math
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ..engine import (
    RK4,
    AbstractAdaptiveIntegrator,
    AbstractAdjoint,
    AbstractFixedStepIntegrator,
    Checkpointed,
    SaveAt,
    simulate,
)


def _identity(t, y):
    """The default `observe`: the state `y` itself, whatever the time `t`."""
    return y


def _real(x) -> float:
    """`x` as a float, or NaN when it is not one real number (so that checks refuse it)."""
    try:
        return float(x) if np.ndim(x) == 0 and not isinstance(x, (bool, str)) else math.nan
    except (TypeError, ValueError):
        return math.nan


def _check_arguments(build, ts, dt, observe, t0, integrator, adjoint) -> np.ndarray:
    """`TrajectoryModel`'s arguments, refused with the argument named; `ts` as floats."""
    for name, fn in (("build", build), ("observe", observe)):
        if not callable(fn):
            raise TypeError(f"TrajectoryModel({name}=...) must be a callable; got {fn!r:.80}.")
    if not isinstance(integrator, (AbstractFixedStepIntegrator, AbstractAdaptiveIntegrator)):
        raise TypeError(
            "TrajectoryModel(integrator=...) must be a diffsim integrator such as ds.RK4() "
            f"or ds.Tsit5(); got {integrator!r:.80}."
        )
    if not isinstance(adjoint, AbstractAdjoint):
        raise TypeError(
            f"TrajectoryModel(adjoint=...) must be a diffsim adjoint such as ds.Checkpointed(); "
            f"got {adjoint!r:.80}."
        )
    if not math.isfinite(_real(t0)):
        raise ValueError(f"TrajectoryModel(t0=...) must be a finite number; got {t0!r:.80}.")
    ts_np = np.asarray(ts, dtype=float)
    if ts_np.ndim != 1 or ts_np.size == 0:
        raise ValueError(
            f"TrajectoryModel(ts=...) must be a non-empty 1-d array of times; got shape {ts_np.shape}."
        )
    if not np.isfinite(ts_np).all():
        index = int(np.argmin(np.isfinite(ts_np)))
        raise ValueError(
            f"TrajectoryModel(ts=...) must hold finite times; ts[{index}] is {ts_np[index]}."
        )
    if np.any(np.diff(ts_np) < 0) or ts_np[0] < t0:
        raise ValueError(
            f"TrajectoryModel(ts=...) must be increasing and >= t0 = {t0}; sort the times."
        )
    adaptive = isinstance(integrator, AbstractAdaptiveIntegrator)
    if adaptive and np.any(np.diff(ts_np) <= 0):
        raise ValueError(
            "TrajectoryModel(ts=...) must be strictly increasing with the adaptive "
            f"integrator {type(integrator).__name__}; remove repeated times."
        )
    if dt is None and not adaptive:
        raise ValueError(
            "TrajectoryModel(dt=...) is required with the fixed-step integrator "
            f"{type(integrator).__name__}; pass the step size."
        )
    if dt is not None and not (_real(dt) > 0 and math.isfinite(_real(dt))):
        raise ValueError(f"TrajectoryModel(dt=...) must be a positive finite number; got {dt!r}.")
    return ts_np


class TrajectoryModel(eqx.Module):
    """`model(params) = observe(simulate(*build(params)))` at the times `ts`.

    **Arguments:**

    - `build`: `build(params) -> (system, y0)`.
    - `ts`: the observation times (concrete, increasing, `>= t0`).
    - `dt`: the step size of a fixed-step integrator (required); for an adaptive one
      (`ds.Tsit5`, `ds.Kvaerno5`, ...) the initial step, or `None` to let it choose.
    - `observe`: `observe(t, y) -> observation` (default: the state itself).
    - `t0`: the start time of `y0` (default 0).
    - `integrator`, `adjoint`: passed to `ds.simulate`.

    A fixed-step rollout runs `ceil((ts[-1] - t0) / dt)` steps; an adaptive one solves to
    `ts[-1]`. For `fit(..., shooting=k)` the record is cut into `k` segments of equal
    length: whole numbers of steps of `dt` (fixed step), or of the mean spacing of `ts`
    when an adaptive integrator has no `dt`.

    **Example:**

    ```python
    model = ds.TrajectoryModel(
        build=lambda p: (p, p.initial_state(1.0)),
        ts=jnp.linspace(0.0, 4.0, 21), dt=0.05, observe=lambda t, y: y.q)
    angles = model(ds.systems.Pendulum(length=1.2))  # synthetic data, shape (21,)
    res = ds.fit(model, ds.systems.Pendulum(length=1.0), angles,
                 where=lambda p: p.length, shooting=4)
    print(res.params.length)  # 1.2
    ```
    """

    build: Callable[[Any], tuple[Any, Any]] = eqx.field(static=True)
    ts: Float[Array, " n"]
    dt: float | None = eqx.field(static=True)
    observe: Callable[[Any, Any], Any] = eqx.field(static=True, default=_identity)
    t0: float = eqx.field(static=True, default=0.0)
    integrator: Any = RK4()
    adjoint: AbstractAdjoint = Checkpointed()
    n_steps: int = eqx.field(static=True, default=0)
    grid_dt: float = eqx.field(static=True, default=0.0)

    def __init__(
        self,
        build,
        ts,
        dt=None,
        observe=_identity,
        t0=0.0,
        integrator=RK4(),
        adjoint=Checkpointed(),
    ):
        ts_np = _check_arguments(build, ts, dt, observe, t0, integrator, adjoint)
        self.build = build
        self.ts = jnp.asarray(ts)
        self.dt = None if dt is None else float(dt)
        self.observe = observe
        self.t0 = float(t0)
        self.integrator = integrator
        self.adjoint = adjoint
        span = float(ts_np[-1] - t0)
        # The grid segments are cut on: the step, or for an adaptive integrator without
        # one, the mean spacing of the observations.
        self.grid_dt = self.dt if self.dt is not None else max(span / max(ts_np.size - 1, 1), 1e-12)
        self.n_steps = max(1, math.ceil(span / self.grid_dt - 1e-9))

    def _run(self, system, y0, t0, n_steps, ts):
        if self._adaptive:
            # An adaptive solve ends at the last save time.
            timing = dict(t1=ts[-1], dt=self.dt)
        else:
            timing = dict(n_steps=n_steps, dt=self.dt)
        return simulate(
            system,
            y0,
            t0=t0,
            integrator=self.integrator,
            adjoint=self.adjoint,
            saveat=SaveAt(ts=ts),
            **timing,
        ).ys

    def __call__(self, params):
        system, y0 = self.build(params)
        ys = self._run(system, y0, self.t0, self.n_steps, self.ts)
        return jax.vmap(self.observe)(self.ts, ys)

    @property
    def _adaptive(self) -> bool:
        return isinstance(self.integrator, AbstractAdaptiveIntegrator)

    def segments(self, k: int):
        """Static layout of `k` segments of equal length `m` grid steps (the last may run
        past the final observation): segment j starts at step `j m`. Returns `m`, the
        padded save times of each segment `(k, width + 1)` (its observations, padding,
        then its end), and for every observation its (segment, slot)."""
        n_obs = self.ts.shape[0]
        if not (isinstance(k, int) and 1 <= k <= n_obs):
            raise ValueError(
                f"shooting= must be an int between 1 and the number of observations ({n_obs}); "
                f"got {k!r}."
            )
        m = -(-self.n_steps // k)
        ts = np.asarray(self.ts, dtype=float)
        length = m * self.grid_dt
        segment = np.minimum(np.floor((ts - self.t0) / length + 1e-9).astype(int), k - 1)
        counts = np.bincount(segment, minlength=k)
        width = max(1, int(counts.max()))
        slot = np.concatenate([np.arange(c) for c in counts])
        starts = self.t0 + np.arange(k) * length
        ends = starts + length
        if self._adaptive:
            # An adaptive solve ends where it saves last; the last segment's end is only
            # there to be later than its observations (its state there is not used).
            ends[-1] = max(ends[-1], ts[-1]) + self.grid_dt
        times = np.empty((k, width + 1))
        for j in range(k):
            own = ts[segment == j]
            last = own[-1] if own.size else starts[j]
            # Padding strictly between the last observation and the end: adaptive solves
            # (diffrax) need strictly increasing save times. Ignored afterwards.
            pad = last + (ends[j] - last) * np.arange(1, width - own.size + 1) / (
                width - own.size + 1
            )
            times[j] = np.concatenate([own, pad, [ends[j]]])
        return m, times, segment, slot

    @property
    def observes_state(self) -> bool:
        """Whether `observe` is the default (the state itself): then `fit(...,
        shooting=k)` starts each segment from its first observation."""
        return self.observe is _identity

    def first_observation_of_segments(self, k: int) -> np.ndarray:
        """Index of each segment's first observation (every segment must hold one)."""
        _, _, segment, _ = self.segments(k)
        if len(np.unique(segment)) != k:
            raise ValueError(
                f"shooting={k}: some segments hold no observation; use fewer segments."
            )
        return np.searchsorted(segment, np.arange(k))

    def segment_states(self, params, k: int):
        """Initial states of segments 1..k-1 from one rollout at `params` (stacked)."""
        system, y0 = self.build(params)
        _, times, _, _ = self.segments(k)
        if k == 1:
            return jax.tree.map(lambda x: jnp.zeros((0,) + jnp.shape(x), jnp.result_type(x)), y0)
        m = self.segments(k)[0]
        return self._run(system, y0, self.t0, (k - 1) * m, jnp.asarray(times[:-1, -1]))

    def shooting_model(self, k: int, weight: float):
        """`model((params, states)) -> (observations, continuity residuals)`: all `k`
        segments in one vmapped rollout."""
        m, times, segment, slot = self.segments(k)
        times = jnp.asarray(times)
        starts = jnp.asarray(self.t0 + np.arange(k) * m * self.grid_dt)

        def model(extended):
            params, states = extended
            system, y0 = self.build(params)
            initial = jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), y0, states)

            def run(y_start, t_start, saves):
                ys = self._run(system, y_start, t_start, m, saves)
                obs = jax.vmap(self.observe)(saves[:-1], jax.tree.map(lambda y: y[:-1], ys))
                return obs, jax.tree.map(lambda y: y[-1], ys)

            obs, finals = jax.vmap(run)(initial, starts, times)
            observations = jax.tree.map(lambda o: o[segment, slot], obs)
            gaps = jax.tree.map(lambda f, s: weight * (f[:-1] - s), finals, states)
            return observations, gaps

        return model
