"""Matplotlib figures of `ds.Trajectory` objects and of fits to data.

Contract: every function draws on `ax` (a `matplotlib.axes.Axes`) when given one, or on a
new figure otherwise, and returns the `matplotlib.figure.Figure` it drew on; nothing is
shown or saved (call `fig.savefig(path)`). `fit_residuals` draws two panels and so takes a
pair, `axes=(top, bottom)`. Trajectories must be unbatched: `traj.ts` is 1-d. Values are copied to NumPy, so this module never runs inside `jit`/`vmap`/`grad`.

Importing this module selects matplotlib's headless `Agg` backend, unless a backend was
already chosen: the `MPLBACKEND` environment variable is set (Jupyter sets it) or
`matplotlib.pyplot` was already imported (switching then would close open figures).

```python
import diffsim as ds
import diffsim.plot

traj = ds.simulate(pendulum, y0, t1=10.0, dt=0.01, saveat=ds.SaveAt(every=10))
ds.plot.trajectory(traj, label="RK4").savefig("angle.png")
```
"""

import os
import sys
from collections.abc import Mapping
from typing import Any

import matplotlib

if "MPLBACKEND" not in os.environ and "matplotlib.pyplot" not in sys.modules:
    matplotlib.use("Agg")

import jax
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .systems import PhaseState

__all__ = ["trajectory", "phase_portrait", "energy_drift", "fit_residuals"]


def _new_or(ax: Axes | None) -> Axes:
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    return ax


def _times(traj: Any, fname: str) -> np.ndarray:
    if not (hasattr(traj, "ts") and hasattr(traj, "ys")):
        raise TypeError(f"{fname} needs a ds.Trajectory (from ds.simulate); got {type(traj)}.")
    ts = np.asarray(traj.ts)
    if ts.ndim != 1:
        raise ValueError(
            f"{fname} plots one trajectory, but traj.ts has shape {ts.shape} (a batch?). "
            "Select one member first, e.g. jax.tree.map(lambda x: x[0], traj)."
        )
    return ts


def _single_array(tree: Any, what: str, fname: str) -> np.ndarray:
    leaves = jax.tree.leaves(tree)
    if len(leaves) != 1:
        raise TypeError(
            f"{fname} plots a single array, but {what} is a pytree with {len(leaves)} "
            "leaves. Save one array with ds.SaveAt(..., fn=lambda t, y: ...)."
        )
    return np.asarray(leaves[0])


def _components(values: np.ndarray, n: int) -> np.ndarray:
    """Flatten everything after the leading time axis: `(n, ...) -> (n, m)`."""
    if values.ndim == 0 or values.shape[0] != n:
        raise ValueError(
            f"The saved values have shape {values.shape}; expected a leading time axis of "
            f"length {n} (len(traj.ts))."
        )
    return values.reshape(n, -1)


def _label_axes(ax: Axes, xlabel: str, ylabel: str) -> None:
    # Never overwrite labels already on an axes the caller passed in.
    if not ax.get_xlabel():
        ax.set_xlabel(xlabel)
    if not ax.get_ylabel():
        ax.set_ylabel(ylabel)


def _component_labels(name: str, m: int) -> list[str]:
    return [name] if m == 1 else [f"{name}[{i}]" for i in range(m)]


def trajectory(
    traj: Any,
    *,
    component: int | tuple[int, ...] | None = None,
    ax: Axes | None = None,
    label: str | None = None,
) -> Figure:
    """Plot saved values against time, one line per component.

    For a `ds.PhaseState` trajectory the positions `q` are plotted; otherwise `traj.ys`
    itself, which may be the output of `ds.SaveAt(fn=...)` (an energy, an observation).
    Values of any shape are flattened after the time axis.

    **Arguments:**

    - `traj`: a `ds.Trajectory` from `ds.simulate`, unbatched.
    - `component`: plot only `values[:, component]`: an int, or a tuple of ints for states
      of several axes (`(2, 0)`: the x-coordinate of body 2 of an `(n, d)` state).
      `None` plots every component.
    - `ax`: the axes to draw on; `None` makes a new figure.
    - `label`: the legend entry (`"q"` or `"y"` by default); with several components
      each gets `label[i]`.

    **Returns:** the `matplotlib.figure.Figure` drawn on.

    **Example:**

    ```python
    pendulum = ds.systems.Pendulum(length=1.0)
    traj = ds.simulate(pendulum, pendulum.initial_state(1.0), t1=10.0, dt=0.01,
                       saveat=ds.SaveAt(every=10))
    fig = ds.plot.trajectory(traj, label="RK4")
    ds.plot.trajectory(traj2, ax=fig.axes[0], label="Leapfrog")
    fig.savefig("angle.png")
    ```
    """
    ts = _times(traj, "trajectory")
    if isinstance(traj.ys, PhaseState):
        values, name, ylabel = _single_array(traj.ys.q, "traj.ys.q", "trajectory"), "q", "q"
    else:
        values, name, ylabel = _single_array(traj.ys, "traj.ys", "trajectory"), "y", "value"
    if component is not None:
        index = component if isinstance(component, tuple) else (component,)
        try:
            values = values[(slice(None), *index)]
        except IndexError as e:
            raise ValueError(
                f"component={component!r} does not index saved values of shape "
                f"{values.shape[1:]} (after the time axis)."
            ) from e
        name = f"{name}[{', '.join(map(str, index))}]"
    values = _components(values, len(ts))
    labels = _component_labels(name if label is None else label, values.shape[1])
    ax = _new_or(ax)
    for i, lab in enumerate(labels):
        ax.plot(ts, values[:, i], label=lab)
    _label_axes(ax, "t", ylabel)
    ax.legend()
    return ax.figure


def phase_portrait(traj: Any, *, ax: Axes | None = None, label: str | None = None) -> Figure:
    """Plot velocity against position (`v` against `q`), one curve per component.

    The initial state of each curve is marked with a dot. `q` must be a scalar or a 1-d
    array per saved time (a pendulum, a few independent oscillators).

    **Arguments:**

    - `traj`: a `ds.Trajectory` whose `ys` is a `ds.PhaseState`, unbatched.
    - `ax`: the axes to draw on; `None` makes a new figure.
    - `label`: the legend entry; with several components each gets `label[i]`. `None`
      draws no legend unless there are several components.

    **Returns:** the `matplotlib.figure.Figure` drawn on.

    **Example:**

    ```python
    pendulum = ds.systems.Pendulum(length=1.0, damping=0.2)
    traj = ds.simulate(pendulum, pendulum.initial_state(2.5), t1=30.0, dt=0.01,
                       saveat=ds.SaveAt(every=5))
    ds.plot.phase_portrait(traj, label="damped").savefig("phase.png")
    ```
    """
    ts = _times(traj, "phase_portrait")
    if not isinstance(traj.ys, PhaseState):
        raise TypeError(
            "phase_portrait needs a trajectory of ds.PhaseState (a mechanical system); got "
            f"ys of type {type(traj.ys).__name__}. Use ds.plot.trajectory instead."
        )
    q = _single_array(traj.ys.q, "traj.ys.q", "phase_portrait")
    v = _single_array(traj.ys.v, "traj.ys.v", "phase_portrait")
    if q.ndim > 2:
        raise ValueError(
            f"phase_portrait needs a scalar or 1-d q per time; got q of shape {q.shape[1:]}."
        )
    q, v = _components(q, len(ts)), _components(v, len(ts))
    legend = label is not None or q.shape[1] > 1
    labels = _component_labels("q" if label is None else label, q.shape[1])
    ax = _new_or(ax)
    for i, lab in enumerate(labels):
        (line,) = ax.plot(q[:, i], v[:, i], label=lab if legend else None)
        ax.scatter(q[:1, i], v[:1, i], color=line.get_color(), zorder=3)
    _label_axes(ax, "q", "v")
    if legend:
        ax.legend()
    return ax.figure


def energy_drift(trajectories: Mapping[str, tuple[Any, Any]], *, ax: Axes | None = None) -> Figure:
    """Plot the relative energy error of several runs on a log scale.

    $$\\delta(t) = \\frac{|E(t) - E(0)|}{|E(0)|}$$

    where $E$ is `system.energy` evaluated on each saved state. Points where the error is
    exactly zero (always at $t_0$) are left out, since a log scale cannot show them.

    **Arguments:**

    - `trajectories`: `{label: (system, traj)}`, e.g. one entry per integrator; `system`
      must define `energy(y)` and each `traj` must save full states (no `SaveAt(fn=...)`).
    - `ax`: the axes to draw on; `None` makes a new figure.

    **Returns:** the `matplotlib.figure.Figure` drawn on.

    **Example:**

    ```python
    pendulum = ds.systems.Pendulum(length=1.0)
    y0 = pendulum.initial_state(2.5)
    runs = {
        type(i).__name__: (pendulum, ds.simulate(pendulum, y0, t1=100.0, dt=0.05,
                                                 integrator=i, saveat=ds.SaveAt(every=2)))
        for i in (ds.Euler(), ds.Leapfrog(), ds.RK4())
    }
    ds.plot.energy_drift(runs).savefig("drift.png")
    ```
    """
    if not isinstance(trajectories, Mapping) or not trajectories:
        raise TypeError(
            "energy_drift needs a non-empty dict {label: (system, traj)}; "
            f"got {type(trajectories).__name__}."
        )
    ax = _new_or(ax)
    for name, entry in trajectories.items():
        if not (isinstance(entry, tuple) and len(entry) == 2):
            raise TypeError(f"energy_drift[{name!r}] must be a (system, traj) pair.")
        system, traj = entry
        ts = _times(traj, "energy_drift")
        energy = np.asarray(jax.vmap(system.energy)(traj.ys))
        if energy.shape != ts.shape:
            raise ValueError(
                f"energy_drift[{name!r}]: {type(system).__name__}.energy should return a "
                f"scalar per state; got shape {energy.shape[1:]}."
            )
        if energy[0] == 0:
            raise ValueError(
                f"energy_drift[{name!r}]: the initial energy is 0, so the relative drift "
                "is undefined. Start from a state with non-zero energy."
            )
        drift = np.abs(energy - energy[0]) / np.abs(energy[0])
        ax.plot(ts, np.where(drift > 0, drift, np.nan), label=name)
    ax.set_yscale("log")
    _label_axes(ax, "t", "|E(t) - E(0)| / |E(0)|")
    ax.legend()
    return ax.figure


def fit_residuals(
    ts: Any,
    observed: Any,
    predicted: Any,
    *,
    sigma: float | None = None,
    axes: tuple[Axes, Axes] | None = None,
    label: str = "fit",
) -> Figure:
    """Plot data against a fitted model (top) and the residuals (bottom).

    The residuals are $r_i = y_i - m_i$, the observed minus the predicted values. NaN
    entries of `observed` (missing data, as `ds.fit` takes them) are left out of both
    panels. Values of shape `(n, m)` give `m` series, each data series in the colour of
    its fitted line.

    **Arguments:**

    - `ts`: the observation times, shape `(n,)`.
    - `observed`: the data, shape `(n,)` or `(n, ...)` (flattened after the time axis).
    - `predicted`: the fitted model at `ts`, the same shape as `observed`.
    - `sigma`: the noise standard deviation (given or estimated); when set, a band of
      $\\pm\\sigma$ is shaded around zero in the residual panel.
    - `axes`: a pair `(top, bottom)` of axes to draw on, e.g. `fig.axes` of an earlier
      call; `None` makes a new figure with a shared time axis.
    - `label`: the legend entry of the fitted line (`label[i]` for several series).

    **Returns:** the `matplotlib.figure.Figure` drawn on.

    **Example:**

    ```python
    res = ds.fit(model, ds.systems.Pendulum(length=1.0, damping=0.05), angles,
                 where=lambda p: (p.length, p.damping), bounds=((0, None), (0, None)))
    fig = ds.plot.fit_residuals(ts, angles, model(res.params), sigma=0.02)
    fig.axes[0].set_ylabel("angle (rad)")
    fig.savefig("fit.png")
    ```
    """
    ts = np.asarray(ts)
    if ts.ndim != 1:
        raise ValueError(f"fit_residuals needs 1-d times ts; got shape {ts.shape}.")
    observed = _components(np.asarray(observed, dtype=float), len(ts))
    predicted = np.asarray(predicted, dtype=float)
    if predicted.size != observed.size or predicted.shape[:1] != observed.shape[:1]:
        raise ValueError(
            f"predicted has shape {predicted.shape}, observed {observed.shape}: they must "
            "match (evaluate the fitted model at the observation times)."
        )
    predicted = predicted.reshape(observed.shape)
    if sigma is not None:
        sigma = float(sigma)
        if not sigma > 0:
            raise ValueError(f"sigma must be positive; got {sigma!r}.")
    if axes is None:
        fig, axes = plt.subplots(
            2,
            1,
            figsize=(8, 5.5),
            sharex=True,
            height_ratios=(2.5, 1),
            layout="constrained",
        )
    elif not (isinstance(axes, (tuple, list)) and len(axes) == 2):
        raise TypeError(f"axes must be a pair (top, bottom) of Axes; got {axes!r}.")
    top, bottom = axes
    m = observed.shape[1]
    labels = _component_labels(label, m)
    residuals = observed - predicted
    for i in range(m):
        (line,) = top.plot(ts, predicted[:, i], label=labels[i], zorder=2)
        color = line.get_color()
        top.scatter(
            ts,
            observed[:, i],
            s=8,
            color=color,
            alpha=0.6,
            zorder=1,
            label="data" if m == 1 else f"data[{i}]",
        )
        bottom.scatter(ts, residuals[:, i], s=8, color=color, alpha=0.8)
    bottom.axhline(0.0, color="0.3", lw=0.8)
    if sigma is not None:
        bottom.axhspan(-sigma, sigma, color="0.85", zorder=0, label=f"$\\pm\\sigma$ = {sigma:.3g}")
        bottom.legend(loc="best")
    _label_axes(top, "", "value")
    _label_axes(bottom, "t", "data - fit")
    top.legend(loc="best")
    return top.figure
