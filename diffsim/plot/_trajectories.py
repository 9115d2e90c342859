"""Figures of trajectories and ensembles: time series, phase portraits, energy drift,
ensemble bands."""

import numbers
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..systems import PhaseState
from ._common import (
    check_ax,
    check_label,
    component_labels,
    components,
    float_array,
    label_axes,
    needs,
    new_or,
    single_array,
    times,
)


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
    y0 = pendulum.initial_state(1.0)
    traj = ds.simulate(pendulum, y0, t1=10.0, dt=0.01, saveat=ds.SaveAt(every=10))
    traj2 = ds.simulate(pendulum, y0, t1=10.0, dt=0.1, integrator=ds.Leapfrog(),
                        saveat=ds.SaveAt(every=1))
    fig = ds.plot.trajectory(traj, label="RK4, dt = 0.01 s")
    ds.plot.trajectory(traj2, ax=fig.axes[0], label="Leapfrog, dt = 0.1 s")
    fig.savefig("angle.png")
    ```
    """
    ts = times(traj, "trajectory")
    check_ax(ax, "trajectory")
    check_label(label, "trajectory")
    if isinstance(traj.ys, PhaseState):
        values, name, ylabel = single_array(traj.ys.q, "traj.ys.q", "trajectory"), "q", "q"
    else:
        values, name, ylabel = single_array(traj.ys, "traj.ys", "trajectory"), "y", "value"
    if component is not None:
        index = component if isinstance(component, tuple) else (component,)
        if not index or not all(
            isinstance(i, numbers.Integral) and not isinstance(i, bool) for i in index
        ):
            raise TypeError(
                f"trajectory: component must be an int, a tuple of ints or None; got {component!r}."
            )
        try:
            values = values[(slice(None), *index)]
        except IndexError as e:
            raise ValueError(
                f"trajectory: component={component!r} does not index saved values of shape "
                f"{values.shape[1:]} (after the time axis)."
            ) from e
        name = f"{name}[{', '.join(map(str, index))}]"
    values = components(values, len(ts))
    labels = component_labels(name if label is None else label, values.shape[1])
    ax = new_or(ax)
    for i, lab in enumerate(labels):
        ax.plot(ts, values[:, i], label=lab)
    label_axes(ax, "t", ylabel)
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
    ts = times(traj, "phase_portrait")
    check_ax(ax, "phase_portrait")
    check_label(label, "phase_portrait")
    if not isinstance(traj.ys, PhaseState):
        raise TypeError(
            "phase_portrait needs a trajectory of ds.PhaseState (a mechanical system); got "
            f"ys of type {type(traj.ys).__name__}. Use ds.plot.trajectory instead."
        )
    q = single_array(traj.ys.q, "traj.ys.q", "phase_portrait")
    v = single_array(traj.ys.v, "traj.ys.v", "phase_portrait")
    if q.ndim > 2:
        raise ValueError(
            f"phase_portrait needs a scalar or 1-d q per time; got q of shape {q.shape[1:]}."
        )
    q, v = components(q, len(ts)), components(v, len(ts))
    legend = label is not None or q.shape[1] > 1
    labels = component_labels("q" if label is None else label, q.shape[1])
    ax = new_or(ax)
    for i, lab in enumerate(labels):
        (line,) = ax.plot(q[:, i], v[:, i], label=lab if legend else None)
        ax.scatter(q[:1, i], v[:1, i], color=line.get_color(), zorder=3)
    label_axes(ax, "q", "v")
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
    check_ax(ax, "energy_drift")
    if not isinstance(trajectories, Mapping) or not trajectories:
        raise TypeError(
            "energy_drift: trajectories must be a non-empty dict {label: (system, traj)}; "
            f"got {type(trajectories).__name__}."
        )
    curves = [(name, *_drift(name, entry)) for name, entry in trajectories.items()]
    ax = new_or(ax)
    for name, ts, drift in curves:
        ax.plot(ts, np.where(drift > 0, drift, np.nan), label=str(name))
    ax.set_yscale("log")
    label_axes(ax, "t", "|E(t) - E(0)| / |E(0)|")
    ax.legend()
    return ax.figure


def _drift(name: Any, entry: Any) -> tuple[np.ndarray, np.ndarray]:
    """`(ts, |E(t) - E(0)| / |E(0)|)` of one `(system, traj)` entry of `energy_drift`."""
    where = f"energy_drift: trajectories[{name!r}]"
    if not (isinstance(entry, tuple) and len(entry) == 2):
        raise TypeError(f"{where} must be a (system, traj) pair; got {type(entry).__name__}.")
    system, traj = entry
    energy_fn = needs(system, "energy", "the system", where, "a system")
    ts = times(traj, "energy_drift")
    energy = np.asarray(jax.vmap(energy_fn)(traj.ys))
    if energy.shape != ts.shape:
        raise ValueError(
            f"{where}: {type(system).__name__}.energy should return a scalar per state; got "
            f"shape {energy.shape[1:]}."
        )
    if not (np.isfinite(energy[0]) and energy[0] != 0):
        raise ValueError(
            f"{where}: the initial energy is {energy[0]}, so the relative drift is undefined. "
            "Start from a state with finite, non-zero energy."
        )
    return ts, np.abs(energy - energy[0]) / np.abs(energy[0])


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
    # Pendulums of uncertain length (1 m +- 5%), released from 1 rad: the angle's spread.
    ts = jnp.linspace(0.0, 10.0, 101)

    def forecast(length):
        p = ds.systems.Pendulum(length=length)
        traj = ds.simulate(p, p.initial_state(1.0), t1=10.0, dt=0.01,
                           saveat=ds.SaveAt(ts=ts))
        return traj.ys.q

    lengths = 1.0 + 0.05 * jax.random.normal(jax.random.key(0), (256,))
    qs = (0.05, 0.25, 0.5, 0.75, 0.95)
    res = ds.ensemble(forecast, lengths, reduce=ds.Quantiles(q=qs, low=-1.5, high=1.5))
    fig = ds.plot.ensemble_band(ts, res.values, q=qs, label="forecast median")
    fig.savefig("forecast.png")
    ```
    """
    check_ax(ax, "ensemble_band")
    check_label(label, "ensemble_band")
    ts = float_array(ts, "ts", "ensemble_band")
    if ts.ndim != 1 or len(ts) == 0:
        raise ValueError(f"ensemble_band needs non-empty 1-d times ts; got shape {ts.shape}.")
    bands = float_array(bands, "bands", "ensemble_band")
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
        q = [float(x) for x in np.ravel(float_array(q, "q", "ensemble_band"))]
        if len(q) != k:
            raise ValueError(f"ensemble_band: {len(q)} levels in q for {k} bands.")
        if not (all(0 <= x <= 1 for x in q) and bool(np.all(np.diff(q) > 0))):
            raise ValueError(f"ensemble_band: q must be increasing levels in [0, 1]; got {q}.")
    ax = new_or(ax)
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
    label_axes(ax, "t", "value")
    ax.legend()
    return ax.figure
