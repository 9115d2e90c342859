"""Figures of fits: data against model with residuals, and parameter corner plots."""

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure, FigureBase

from ._common import (
    check_label,
    component_labels,
    components,
    float_array,
    label_axes,
    positive,
)


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
    ts = jnp.linspace(0.0, 5.0, 51)

    def model(p):
        traj = ds.simulate(p, p.initial_state(1.0), t1=5.0, dt=0.01,
                           saveat=ds.SaveAt(ts=ts))
        return traj.ys.q

    noise = 0.02 * jax.random.normal(jax.random.key(0), ts.shape)
    angles = model(ds.systems.Pendulum(length=1.3, damping=0.2)) + noise
    res = ds.fit(model, ds.systems.Pendulum(length=1.0, damping=0.05), angles,
                 where=lambda p: (p.length, p.damping), bounds=((0, None), (0, None)))
    fig = ds.plot.fit_residuals(ts, angles, model(res.params), sigma=0.02)
    fig.axes[0].set_ylabel("angle (rad)")
    fig.savefig("fit.png")
    ```
    """
    observed, predicted = _residual_inputs(ts, observed, predicted)
    ts = np.asarray(ts, dtype=float)
    sigma = None if sigma is None else positive(sigma, "sigma", "fit_residuals")
    check_label(label, "fit_residuals", optional=False)
    if axes is not None:
        pair = isinstance(axes, (tuple, list, np.ndarray)) and len(axes) == 2
        if not (pair and all(isinstance(a, Axes) for a in axes)):
            raise TypeError(
                f"fit_residuals: axes must be a pair (top, bottom) of Axes or None; got {axes!r}."
            )
    else:
        fig, axes = plt.subplots(
            2,
            1,
            figsize=(8, 5.5),
            sharex=True,
            height_ratios=(2.5, 1),
            layout="constrained",
        )
    top, bottom = axes
    m = observed.shape[1]
    labels = component_labels(label, m)
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
    label_axes(top, "", "value")
    label_axes(bottom, "t", "data - fit")
    top.legend(loc="best")
    return top.figure


def _residual_inputs(ts: Any, observed: Any, predicted: Any) -> tuple[np.ndarray, np.ndarray]:
    """`observed` and `predicted` as `(n, m)` float arrays that match `ts`, checked."""
    ts = float_array(ts, "ts", "fit_residuals")
    if ts.ndim != 1 or len(ts) == 0:
        raise ValueError(f"fit_residuals needs non-empty 1-d times ts; got shape {ts.shape}.")
    observed = float_array(observed, "observed", "fit_residuals")
    observed = components(observed, len(ts), "fit_residuals: observed")
    predicted = float_array(predicted, "predicted", "fit_residuals")
    if predicted.size != observed.size or predicted.shape[:1] != observed.shape[:1]:
        raise ValueError(
            f"fit_residuals: predicted has shape {predicted.shape}, observed "
            f"{observed.shape}: they must match (evaluate the model at the times ts)."
        )
    return observed, predicted.reshape(observed.shape)


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
    (at most 2000 of them). Both may be given. A legend names what is drawn (`"1σ ellipse
    (39%)"`, `"2σ ellipse (86%)"`, `"mean"`, `"samples"`, `"truth"`): a figure legend in
    the empty upper triangle, or, for one parameter, the panel's own legend.


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
    ts = jnp.linspace(0.0, 5.0, 51)

    def model(p):
        traj = ds.simulate(p, p.initial_state(1.0), t1=5.0, dt=0.01,
                           saveat=ds.SaveAt(ts=ts))
        return traj.ys.q

    noise = 0.02 * jax.random.normal(jax.random.key(0), ts.shape)
    angles = model(ds.systems.Pendulum(length=1.3, damping=0.2)) + noise
    res = ds.fit(model, ds.systems.Pendulum(length=1.0, damping=0.05), angles,
                 where=lambda p: (p.length, p.damping), bounds=((0, None), (0, None)))
    fig = ds.plot.parameter_corner(res, names=["L (m)", "c (1/s)"], truth=[1.3, 0.2])
    fig.savefig("corner.png")
    ```
    """
    mean, covariance, samples, names, truth = _corner_inputs(
        mean, covariance, samples, names, truth
    )
    p = len(mean)
    if fig is not None and not isinstance(fig, FigureBase):
        raise TypeError(f"parameter_corner: fig must be a matplotlib Figure or None; got {fig!r}.")
    if fig is not None and fig.axes:
        raise ValueError(
            f"parameter_corner: fig must be empty; it has {len(fig.axes)} axes. Pass a new "
            "figure (plt.figure()) or None."
        )
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
            # Only the first panel of each kind labels its artists: one legend entry each.
            if i == j:
                _corner_marginal(ax, i, mean, covariance, samples, truth, label=p == 1)
            else:
                _corner_pair(ax, i, j, mean, covariance, shown, truth, label=(i, j) == (1, 0))
                if j == 0:
                    ax.set_ylabel(names[i])
                else:
                    ax.tick_params(labelleft=False)
            if i == p - 1:
                ax.set_xlabel(names[j])
            else:
                ax.tick_params(labelbottom=False)
    _corner_legend(fig, axes, p)
    return fig


def _corner_legend(fig: FigureBase, axes: dict[tuple[int, int], Axes], p: int) -> None:
    """One legend for the whole grid: beside the top-left panel, in the empty upper
    triangle (its position follows that panel when the layout moves it), or in the only
    panel when there is one parameter."""
    source = axes[0, 0] if p == 1 else axes[1, 0]
    handles, labels = source.get_legend_handles_labels()
    if not handles:
        return
    if p == 1:
        legend = source.legend(handles, labels, loc="upper right", fontsize="small")
    else:
        legend = fig.legend(
            handles,
            labels,
            loc="upper left",
            bbox_to_anchor=(1.08, 1.0),
            bbox_transform=axes[0, 0].transAxes,
        )
    for handle in legend.legend_handles:  # the sample points are too faint to read as a key
        if isinstance(handle, PathCollection) and handle.get_label() == "samples":
            handle.set_sizes([16])
            handle.set_alpha(0.7)


def _corner_inputs(mean, covariance, samples, names, truth):
    """`parameter_corner`'s arguments as NumPy arrays of matching sizes (a `FitResult`
    given as `mean` supplies the values, covariance and names), checked."""
    if hasattr(mean, "covariance") and hasattr(mean, "values"):
        fit_names = getattr(mean, "names", None)
        covariance = mean.covariance if covariance is None else covariance
        names = fit_names if names is None else names
        mean = mean.values
    mean = np.atleast_1d(float_array(mean, "mean", "parameter_corner"))
    if mean.ndim != 1 or len(mean) == 0 or not np.all(np.isfinite(mean)):
        raise ValueError(
            f"parameter_corner: mean must be finite values of shape (p,), p >= 1; got {mean!r}."
        )
    p = len(mean)
    if covariance is None and samples is None:
        raise ValueError("parameter_corner needs a covariance, samples, or both.")
    if covariance is not None:
        covariance = _covariance(covariance, p)
    if samples is not None:
        samples = float_array(samples, "samples", "parameter_corner")
        if samples.ndim != 2 or samples.shape[1] != p or len(samples) == 0:
            raise ValueError(
                f"parameter_corner: samples have shape {samples.shape}; expected (n, {p}), n >= 1."
            )
    if isinstance(names, str) or not (names is None or hasattr(names, "__len__")):
        raise TypeError(f"parameter_corner: names must be a list of {p} labels; got {names!r}.")
    names = [f"p[{i}]" for i in range(p)] if names is None else [str(n) for n in names]
    if len(names) != p:
        raise ValueError(f"parameter_corner: {len(names)} names for {p} parameters.")
    if truth is not None:
        truth = float_array(truth, "truth", "parameter_corner")
        if truth.size != p:
            raise ValueError(f"parameter_corner: truth has {truth.size} values for {p} parameters.")
        truth = truth.reshape(p)
    return mean, covariance, samples, names, truth


def _covariance(covariance: Any, p: int) -> np.ndarray:
    """A finite, symmetric, positive semi-definite `(p, p)` matrix, checked."""
    covariance = float_array(covariance, "covariance", "parameter_corner")
    if covariance.shape != (p, p):
        raise ValueError(
            f"parameter_corner: covariance has shape {covariance.shape}; expected ({p}, {p}) for "
            f"{p} parameters."
        )
    if not np.all(np.isfinite(covariance)):
        raise ValueError(
            "parameter_corner: covariance has non-finite entries (an unidentifiable "
            "parameter?); pass samples only, or leave that parameter out."
        )
    scale = max(float(np.max(np.abs(covariance))), np.finfo(float).tiny)
    if not np.allclose(covariance, covariance.T, rtol=1e-6, atol=1e-9 * scale):
        raise ValueError("parameter_corner: covariance must be symmetric.")
    if np.min(np.linalg.eigvalsh(covariance)) < -1e-8 * scale:
        raise ValueError(
            "parameter_corner: covariance must be positive semi-definite; it has a negative "
            "eigenvalue."
        )
    return covariance


def _corner_marginal(ax, i, mean, covariance, samples, truth, label: bool) -> None:
    """The diagonal panel of parameter `i`: histogram of samples, normal density."""
    if samples is not None:
        ax.hist(
            samples[:, i], bins=40, density=True, color="C0", alpha=0.5, label=_if(label, "samples")
        )
    if covariance is not None:
        sd = np.sqrt(max(covariance[i, i], 0.0))
        x = mean[i] + sd * np.linspace(-4, 4, 200)
        pdf = np.exp(-0.5 * ((x - mean[i]) / sd) ** 2) / (sd * np.sqrt(2 * np.pi))
        ax.plot(x, pdf, color="C0", label=_if(label, "Gaussian density"))
    if truth is not None:
        ax.axvline(truth[i], color="C3", lw=1, label=_if(label, "truth"))
    ax.set_yticks([])


def _corner_pair(ax, i, j, mean, covariance, shown, truth, label: bool) -> None:
    """The panel of parameter `i` against `j`: samples and the 1- and 2-sigma ellipses."""
    if shown is not None:
        ax.scatter(
            shown[:, j], shown[:, i], s=2, color="C0", alpha=0.3, lw=0, label=_if(label, "samples")
        )
    if covariance is not None:
        ax.scatter(mean[j], mean[i], color="C0", s=12, zorder=3, label=_if(label, "mean"))
        sub = covariance[np.ix_([j, i], [j, i])]
        for radius, style, inside in [(1, "-", 39), (2, "--", 86)]:
            ex, ey = _ellipse(mean[[j, i]], sub, radius)
            name = f"{radius}σ ellipse ({inside}%)"
            ax.plot(ex, ey, color="C0", ls=style, lw=1.2, label=_if(label, name))
    if truth is not None:
        ax.axvline(truth[j], color="C3", lw=1, label=_if(label, "truth"))
        ax.axhline(truth[i], color="C3", lw=1)
        ax.scatter(truth[j], truth[i], color="C3", s=12, zorder=3)


def _if(label: bool, text: str) -> str | None:
    """A legend entry in the panel that labels its artists, none elsewhere."""
    return text if label else None
