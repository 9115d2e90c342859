"""Matplotlib figures and animations of `ds.Trajectory` objects, ensembles and fits.

Contract: every figure function draws on `ax` (a `matplotlib.axes.Axes`) when given one,
or on a new figure otherwise, and returns the `matplotlib.figure.Figure` it drew on;
nothing is shown or saved (call `fig.savefig(path)`). `fit_residuals` draws two panels and
so takes a pair, `axes=(top, bottom)`; `parameter_corner` draws a grid and takes `fig`.
The `animate_*` functions return a `matplotlib.animation.FuncAnimation`; save it as a GIF
with `anim.save("x.gif", writer="pillow", fps=...)` (Pillow ships with matplotlib).
Trajectories must be unbatched: `traj.ts` is 1-d. Values are copied to NumPy, so this
module never runs inside `jit`/`vmap`/`grad`.

Functions: `trajectory`, `phase_portrait`, `energy_drift`, `ensemble_band`,
`fit_residuals`, `parameter_corner`, `animate_bodies`, `animate_springs`,
`animate_pendulum`.

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
from matplotlib.animation import FuncAnimation
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from .systems import PhaseState

__all__ = [
    "trajectory",
    "phase_portrait",
    "energy_drift",
    "ensemble_band",
    "fit_residuals",
    "parameter_corner",
    "animate_bodies",
    "animate_springs",
    "animate_pendulum",
]


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


def ensemble_band(
    ts: Any,
    bands: Any,
    *,
    q: Any = None,
    ax: Axes | None = None,
    label: str | None = None,
    color: Any = None,
) -> Figure:
    """Shade the spread of an ensemble over time from its quantiles.

    `bands[i]` is the `q[i]` quantile at each time, in increasing order of `q`: the
    values of `ds.ensemble(..., reduce=ds.Quantiles(q=...))`. Quantiles `i` and `k-1-i`
    bound one shaded band (the outermost palest); with an odd number `k` of quantiles the
    middle one (the median, for symmetric `q`) is drawn as a line.

    **Arguments:**

    - `ts`: the times, shape `(n,)`.
    - `bands`: shape `(k, n)` (or `(k, n, 1)`, a scalar output per time), `k >= 2`.
    - `q`: the quantile levels, for the legend (`"5-95%"`); `None` labels by index.
    - `ax`: the axes to draw on; `None` makes a new figure.
    - `label`: the legend entry of the middle line (default `"median"`).
    - `color`: one colour for the bands and line (default: the next in the cycle).

    **Returns:** the `matplotlib.figure.Figure` drawn on.

    **Example:**

    ```python
    qs = (0.05, 0.25, 0.5, 0.75, 0.95)
    res = ds.ensemble(forecast, pendulums, reduce=ds.Quantiles(q=qs, low=-1.0, high=1.0))
    fig = ds.plot.ensemble_band(ts, res.values, q=qs, label="forecast median")
    fig.savefig("forecast.png")
    ```
    """
    ts = np.asarray(ts)
    if ts.ndim != 1:
        raise ValueError(f"ensemble_band needs 1-d times ts; got shape {ts.shape}.")
    bands = np.asarray(bands, dtype=float)
    if bands.ndim < 2 or bands.shape[0] < 2 or bands.size != bands.shape[0] * len(ts):
        raise ValueError(
            f"ensemble_band needs bands of shape (k, {len(ts)}) with k >= 2 quantiles; got "
            f"{bands.shape}. Select one output component first, e.g. res.values[:, :, 0]."
        )
    k = bands.shape[0]
    bands = bands.reshape(k, len(ts))
    if np.any(np.diff(bands, axis=0) < -1e-12 * (1 + np.abs(bands[1:]))):
        raise ValueError("ensemble_band: bands must be in increasing order of quantile level.")
    if q is not None:
        q = [float(x) for x in np.ravel(q)]
        if len(q) != k:
            raise ValueError(f"ensemble_band: {len(q)} levels in q for {k} bands.")
    ax = _new_or(ax)
    if color is None:  # the next colour of the cycle, by the public API
        (probe,) = ax.plot([], [])
        color = probe.get_color()
        probe.remove()
    n_pairs = k // 2
    for i in range(n_pairs):
        lo, hi = i, k - 1 - i
        name = f"{100 * q[lo]:g}-{100 * q[hi]:g}%" if q is not None else f"band {lo}-{hi}"
        alpha = 0.15 + 0.35 * (i + 1) / n_pairs
        ax.fill_between(ts, bands[lo], bands[hi], color=color, alpha=alpha, lw=0, label=name)
    if k % 2:
        ax.plot(ts, bands[k // 2], color=color, lw=1.5, label=label or "median")
    _label_axes(ax, "t", "value")
    ax.legend()
    return ax.figure


def _ellipse(mean2: np.ndarray, cov2: np.ndarray, radius: float) -> np.ndarray:
    """Points on the curve of Mahalanobis distance `radius` about `mean2`, shape (2, 100)."""
    angle = np.linspace(0.0, 2 * np.pi, 100)
    # eigh, not cholesky: it accepts the singular covariances of degenerate fits.
    w, v = np.linalg.eigh(cov2)
    return mean2[:, None] + radius * (v * np.sqrt(np.clip(w, 0.0, None))) @ np.stack(
        [np.cos(angle), np.sin(angle)]
    )


def parameter_corner(
    mean: Any,
    covariance: Any = None,
    *,
    samples: Any = None,
    names: Any = None,
    truth: Any = None,
    fig: Figure | None = None,
) -> Figure:
    """A corner plot of parameter uncertainty: marginals on the diagonal, pairs below it.

    From a Gaussian (`mean`, `covariance`, e.g. a fit's Laplace approximation) the
    diagonal shows each normal density and each lower panel the ellipses of Mahalanobis
    distance 1 and 2 (containing 39% and 86% of a 2-d Gaussian). From `samples` (an
    ensemble, an MCMC chain) the diagonal shows histograms and the lower panels the points
    (at most 2000 of them). Both may be given.

    **Arguments:**

    - `mean`: `(p,)` central values, or a `ds.FitResult` (its `values`, `covariance` and
      `names` are used; `covariance` and `names` given here take precedence).
    - `covariance`: `(p, p)`, or `None` with `samples`.
    - `samples`: `(n, p)` draws, or `None`.
    - `names`: `p` axis labels (default `p[0]`, `p[1]`, ...).
    - `truth`: `(p,)` true values, marked by lines, or `None`.
    - `fig`: the figure to draw on (empty); `None` makes a new one.

    **Returns:** the `matplotlib.figure.Figure`, with `p (p + 1) / 2` axes in row-major
    order of the lower triangle (the upper triangle is left empty).

    **Example:**

    ```python
    res = ds.fit(model, ds.systems.Pendulum(length=1.0, damping=0.05), angles,
                 where=lambda p: (p.length, p.damping), bounds=((0, None), (0, None)))
    fig = ds.plot.parameter_corner(res, names=["L (m)", "c (1/s)"], truth=[1.3, 0.2])
    fig.savefig("corner.png")
    ```
    """
    if hasattr(mean, "covariance") and hasattr(mean, "values"):
        fit_names = getattr(mean, "names", None)
        covariance = mean.covariance if covariance is None else covariance
        names = fit_names if names is None else names
        mean = mean.values
    mean = np.atleast_1d(np.asarray(mean, dtype=float))
    if mean.ndim != 1:
        raise ValueError(f"parameter_corner: mean must be 1-d (p,); got shape {mean.shape}.")
    p = len(mean)
    if covariance is None and samples is None:
        raise ValueError("parameter_corner needs a covariance, samples, or both.")
    if covariance is not None:
        covariance = np.asarray(covariance, dtype=float)
        if covariance.shape != (p, p):
            raise ValueError(
                f"parameter_corner: covariance has shape {covariance.shape}; expected "
                f"({p}, {p}) for {p} parameters."
            )
    if samples is not None:
        samples = np.asarray(samples, dtype=float)
        if samples.ndim != 2 or samples.shape[1] != p:
            raise ValueError(
                f"parameter_corner: samples have shape {samples.shape}; expected (n, {p})."
            )
    names = [f"p[{i}]" for i in range(p)] if names is None else [str(n) for n in names]
    if len(names) != p:
        raise ValueError(f"parameter_corner: {len(names)} names for {p} parameters.")
    truth = None if truth is None else np.asarray(truth, dtype=float).reshape(p)
    if fig is None:
        size = 1.2 + 2.2 * p
        fig = plt.figure(figsize=(size, size), layout="constrained")
    grid = fig.add_gridspec(p, p)
    shown = None if samples is None else samples[:: max(1, len(samples) // 2000)]
    axes: dict[tuple[int, int], Axes] = {}
    for i in range(p):
        for j in range(i + 1):
            share = axes.get((i - 1, j)) if i > j else None
            ax = fig.add_subplot(grid[i, j], sharex=axes.get((j, j)) or share)
            axes[i, j] = ax
            if i == j:
                if samples is not None:
                    ax.hist(samples[:, i], bins=40, density=True, color="C0", alpha=0.5)
                if covariance is not None:
                    sd = np.sqrt(max(covariance[i, i], 0.0))
                    x = mean[i] + sd * np.linspace(-4, 4, 200)
                    pdf = np.exp(-0.5 * ((x - mean[i]) / sd) ** 2) / (sd * np.sqrt(2 * np.pi))
                    ax.plot(x, pdf, color="C0")
                if truth is not None:
                    ax.axvline(truth[i], color="C3", lw=1)
                ax.set_yticks([])
            else:
                if shown is not None:
                    ax.scatter(shown[:, j], shown[:, i], s=2, color="C0", alpha=0.3, lw=0)
                if covariance is not None:
                    sub = covariance[np.ix_([j, i], [j, i])]
                    for radius, style in [(1.0, "-"), (2.0, "--")]:
                        ex, ey = _ellipse(mean[[j, i]], sub, radius)
                        ax.plot(ex, ey, color="C0", ls=style, lw=1.2)
                    ax.scatter(mean[j], mean[i], color="C0", s=12, zorder=3)
                if truth is not None:
                    ax.axvline(truth[j], color="C3", lw=1)
                    ax.axhline(truth[i], color="C3", lw=1)
                    ax.scatter(truth[j], truth[i], color="C3", s=12, zorder=3)
                if j == 0:
                    ax.set_ylabel(names[i])
                else:
                    ax.tick_params(labelleft=False)
            if i == p - 1:
                ax.set_xlabel(names[j])
            else:
                ax.tick_params(labelbottom=False)
    return fig


# -------------------------------------------------------------------------- animations


def _positions(traj: Any, fname: str) -> tuple[np.ndarray, np.ndarray]:
    ts = _times(traj, fname)
    q = traj.ys.q if isinstance(traj.ys, PhaseState) else traj.ys
    return ts, _single_array(q, "the positions", fname)


def _frames(n_saved: int, frames: int | None) -> np.ndarray:
    if frames is None or frames >= n_saved:
        return np.arange(n_saved)
    if frames < 1:
        raise ValueError(f"frames must be a positive int or None; got {frames!r}.")
    return np.unique(np.linspace(0, n_saved - 1, frames).round().astype(int))


def _limits(points: np.ndarray) -> tuple[tuple[float, float], tuple[float, float]]:
    """Square limits around the 1st-99th percentile of (..., 2) points, so that a body
    escaping to infinity does not shrink everything else to a dot."""
    lo = np.percentile(points.reshape(-1, 2), 1, axis=0)
    hi = np.percentile(points.reshape(-1, 2), 99, axis=0)
    centre, half = (lo + hi) / 2, 0.55 * max(float(np.max(hi - lo)), 1e-12)
    return (centre[0] - half, centre[0] + half), (centre[1] - half, centre[1] + half)


def _coordinate(i: int) -> str:
    return "xyz"[i] if 0 <= i < 3 else f"q[{i}]"


def _animation(fig: Figure, draw, n_frames: int, fps: float) -> FuncAnimation:
    if not fps > 0:
        raise ValueError(f"fps must be positive; got {fps!r}.")
    return FuncAnimation(fig, draw, frames=n_frames, interval=1000.0 / fps, blit=False)


def _new_square(ax: Axes | None) -> Axes:
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 5), layout="constrained")
    ax.set_aspect("equal")
    return ax


def animate_bodies(
    traj: Any,
    *,
    plane: tuple[int, int] = (0, 1),
    trail: int | None = None,
    sizes: Any = None,
    frames: int | None = 100,
    fps: float = 20.0,
    ax: Axes | None = None,
) -> FuncAnimation:
    """Animate point bodies (an `NBody`, a gas) moving in a plane, with fading trails.

    **Arguments:**

    - `traj`: a `ds.Trajectory` of positions `(n_saved, n, d)` (`ys.q` of a `PhaseState`,
      or `ys` itself, e.g. from `SaveAt(fn=lambda t, y: y.q)`), unbatched.
    - `plane`: the two coordinates drawn, `(0, 1)` for x-y.
    - `trail`: how many past frames each body's trail spans (0: none); `None` draws 30
      for up to 20 bodies and none for more.
    - `sizes`: marker sizes, a scalar or one per body (e.g. scaled masses).
    - `frames`: the number of frames, spread evenly over the saved times (`None`: all).
    - `fps`: frames per second of the animation.
    - `ax`: the axes to draw on; `None` makes a new square figure.

    **Returns:** a `matplotlib.animation.FuncAnimation`; `anim.save("x.gif",
    writer="pillow")` writes it.

    **Example:**

    ```python
    system, y0 = ds.systems.plummer(64, jax.random.key(0), softening=0.05)
    traj = ds.simulate(system, y0, t1=10.0, dt=0.01, integrator=ds.Leapfrog(),
                       saveat=ds.SaveAt(every=10))
    ds.plot.animate_bodies(traj, frames=50).save("cluster.gif", writer="pillow")
    ```
    """
    ts, q = _positions(traj, "animate_bodies")
    if q.ndim != 3:
        raise ValueError(f"animate_bodies needs positions of shape (n_saved, n, d); got {q.shape}.")
    xy = q[..., list(plane)]
    n = xy.shape[1]
    index = _frames(len(ts), frames)
    trail = (30 if n <= 20 else 0) if trail is None else int(trail)
    ax = _new_square(ax)
    xlim, ylim = _limits(xy)
    ax.set(xlim=xlim, ylim=ylim)
    _label_axes(ax, *(_coordinate(i) for i in plane))
    trails = [ax.plot([], [], lw=0.8, alpha=0.5)[0] for _ in range(n)] if trail else []
    colors = [line.get_color() for line in trails] if trails else "C0"
    bodies = ax.scatter(
        xy[0, :, 0], xy[0, :, 1], s=20 if sizes is None else sizes, c=colors, zorder=3
    )
    clock = ax.text(0.02, 0.96, "", transform=ax.transAxes, va="top")

    def draw(f):
        k = index[f]
        bodies.set_offsets(xy[k])
        first = index[max(f - trail, 0)]
        for b, line in enumerate(trails):
            line.set_data(xy[first : k + 1, b, 0], xy[first : k + 1, b, 1])
        clock.set_text(f"t = {ts[k]:.3g}")
        return [bodies, clock, *trails]

    draw(0)
    return _animation(ax.figure, draw, len(index), fps)


def animate_springs(
    network: Any,
    traj: Any,
    *,
    plane: tuple[int, int] | None = None,
    frames: int | None = 100,
    fps: float = 20.0,
    ax: Axes | None = None,
) -> FuncAnimation:
    """Animate a spring network (`ds.systems.SpringMassNetwork`): springs as lines,
    nodes as dots, pinned nodes as squares.

    **Arguments:**

    - `network`: the system; its `edges` and `pinned` are drawn.
    - `traj`: a `ds.Trajectory` of the network, positions `(n_saved, n, d)`, unbatched.
    - `plane`: the two coordinates drawn; `None` takes the first and the last, `(0, 2)`
      for a 3-d cloth (a side view: x and height), `(0, 1)` in 2-d.
    - `frames`, `fps`, `ax`: as in `animate_bodies`.

    **Returns:** a `matplotlib.animation.FuncAnimation`.

    **Example:**

    ```python
    cloth, y0 = ds.systems.SpringMassNetwork.cloth(6, 6, stiffness=200.0, damping=0.05)
    traj = ds.simulate(cloth, y0, t1=2.0, dt=2e-3, saveat=ds.SaveAt(every=10))
    ds.plot.animate_springs(cloth, traj).save("cloth.gif", writer="pillow")
    ```
    """
    ts, q = _positions(traj, "animate_springs")
    if q.ndim != 3:
        raise ValueError(
            f"animate_springs needs positions of shape (n_saved, n, d); got {q.shape}."
        )
    plane = (0, q.shape[-1] - 1) if plane is None else plane
    xy = q[..., list(plane)]
    edges = np.asarray(network.edges)
    pinned = np.zeros(xy.shape[1], bool) if network.pinned is None else np.asarray(network.pinned)
    index = _frames(len(ts), frames)
    ax = _new_square(ax)
    xlim, ylim = _limits(xy)
    ax.set(xlim=xlim, ylim=ylim)
    _label_axes(ax, f"q[{plane[0]}]", f"q[{plane[1]}]")
    springs = LineCollection(xy[0][edges], color="0.4", lw=1)
    ax.add_collection(springs)
    nodes = ax.scatter(*xy[0, ~pinned].T, s=12, color="C0", zorder=3)
    ax.scatter(*xy[0, pinned].T, s=40, marker="s", color="k", zorder=3)
    clock = ax.text(0.02, 0.96, "", transform=ax.transAxes, va="top")

    def draw(f):
        k = index[f]
        springs.set_segments(xy[k][edges])
        nodes.set_offsets(xy[k, ~pinned])
        clock.set_text(f"t = {ts[k]:.3g}")
        return [springs, nodes, clock]

    draw(0)
    return _animation(ax.figure, draw, len(index), fps)


def animate_pendulum(
    pendulum: Any,
    traj: Any,
    *,
    trail: int = 15,
    frames: int | None = 100,
    fps: float = 20.0,
    ax: Axes | None = None,
) -> FuncAnimation:
    """Animate a pendulum (`ds.systems.Pendulum`) swinging from a pivot at the origin.

    The bob of length $L$ at angle $q$ is at $(L \\sin q, -L \\cos q)$. Several pendulums
    at once (`q` of shape `(n_saved, m)`, `length` scalar or `(m,)`) share the pivot.

    **Arguments:**

    - `pendulum`: the system; its `length` is drawn.
    - `traj`: a `ds.Trajectory` of the pendulum, unbatched.
    - `trail`: how many past frames the bob's trail spans (0: none).
    - `frames`, `fps`, `ax`: as in `animate_bodies`.

    **Returns:** a `matplotlib.animation.FuncAnimation`.

    **Example:**

    ```python
    pendulum = ds.systems.Pendulum(length=1.0, damping=0.2)
    traj = ds.simulate(pendulum, pendulum.initial_state(2.5), t1=10.0, dt=0.01,
                       saveat=ds.SaveAt(every=5))
    ds.plot.animate_pendulum(pendulum, traj).save("pendulum.gif", writer="pillow")
    ```
    """
    ts, q = _positions(traj, "animate_pendulum")
    q = _components(q, len(ts))
    length = np.broadcast_to(np.asarray(pendulum.length, dtype=float), q.shape[1:])
    x, y = length * np.sin(q), -length * np.cos(q)
    index = _frames(len(ts), frames)
    ax = _new_square(ax)
    reach = 1.15 * float(np.max(length))
    ax.set(xlim=(-reach, reach), ylim=(-reach, reach))
    _label_axes(ax, "x", "y")
    ax.scatter([0.0], [0.0], color="k", marker="s", s=30, zorder=4)
    rods = [ax.plot([], [], color="0.3", lw=2)[0] for _ in range(q.shape[1])]
    trails = [ax.plot([], [], lw=1, alpha=0.5)[0] for _ in range(q.shape[1])] if trail else []
    bobs = ax.scatter(x[0], y[0], s=80, zorder=3, c=[f"C{i % 10}" for i in range(q.shape[1])])
    clock = ax.text(0.02, 0.96, "", transform=ax.transAxes, va="top")

    def draw(f):
        k = index[f]
        for i, rod in enumerate(rods):
            rod.set_data([0.0, x[k, i]], [0.0, y[k, i]])
        first = index[max(f - trail, 0)]
        for i, line in enumerate(trails):
            line.set_data(x[first : k + 1, i], y[first : k + 1, i])
        bobs.set_offsets(np.stack([x[k], y[k]], axis=-1))
        clock.set_text(f"t = {ts[k]:.3g}")
        return [*rods, *trails, bobs, clock]

    draw(0)
    return _animation(ax.figure, draw, len(index), fps)
