"""Figures of a `ds.Posterior`: chain traces, rank plots, the corner plot of the draws
against the fit's Gaussian, and posterior-predictive bands over the data. A posterior is
read by its fields (`draws`, `names`, `divergent`, ...): no import of `diffsim.inference`."""

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import scipy.stats
from matplotlib.axes import Axes
from matplotlib.figure import Figure, FigureBase

from ._common import (
    check_ax,
    check_label,
    component_labels,
    components,
    count,
    float_array,
    label_axes,
    needs,
    new_or,
)
from ._fits import _ellipse, _if

_DIVERGENT = dict(color="red", ls="none", marker="|", ms=9, mew=1.5, zorder=4)


def _draws(post: Any, fname: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """`post.draws` as a `(C, D, n)` NumPy array and `post.names`, checked."""
    what = "a ds.Posterior (from ds.posterior)"
    draws = float_array(needs(post, "draws", "post", fname, what), "post.draws", fname)
    names = tuple(str(n) for n in needs(post, "names", "post", fname, what))
    if draws.ndim != 3 or draws.shape[2] != len(names) or 0 in draws.shape:
        raise ValueError(
            f"{fname}: post.draws has shape {draws.shape}; expected (chains, draws, "
            f"{len(names)}), non-empty, one column per name in post.names."
        )
    return draws, names


def _select(names: Any, known: tuple[str, ...], fname: str) -> list[int]:
    """The columns of the parameters named in `names` (`None`: all of them)."""
    if names is None:
        return list(range(len(known)))
    if isinstance(names, str) or not hasattr(names, "__iter__"):
        raise TypeError(
            f"{fname}: names must be a list of parameter names (e.g. [{known[0]!r}]) or "
            f"None; got {names!r}."
        )
    names = list(names)
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"{fname}: names must hold str names; got {name!r}.")
        if name not in known:
            raise ValueError(
                f"{fname}: names has {name!r}, which is not a parameter of post; it has "
                f"{list(known)}."
            )
    if not names or len(set(names)) != len(names):
        raise ValueError(f"{fname}: names must be one or more different names; got {names!r}.")
    return [known.index(name) for name in names]


def _figure(fig: Any, fname: str, size: tuple[float, float]) -> FigureBase:
    """`fig` (an empty figure) or a new one."""
    if fig is None:
        return plt.figure(figsize=size, layout="constrained")
    if not isinstance(fig, FigureBase):
        raise TypeError(f"{fname}: fig must be a matplotlib Figure or None; got {fig!r}.")
    if fig.axes:
        raise ValueError(
            f"{fname}: fig must be empty; it has {len(fig.axes)} axes. Pass a new figure "
            "(plt.figure()) or None."
        )
    return fig


def _divergent(post: Any, chains: int, length: int, fname: str) -> np.ndarray:
    flags = np.asarray(needs(post, "divergent", "post", fname, "a ds.Posterior"), dtype=bool)
    if flags.size != chains * length:
        raise ValueError(
            f"{fname}: post.divergent has shape {flags.shape}; expected {(chains, length)}."
        )
    return flags.reshape(chains, length)


def _per_column(post: Any, field: str, n: int, fname: str) -> np.ndarray:
    values = float_array(needs(post, field, "post", fname, "a ds.Posterior"), field, fname)
    return values.reshape(n) if values.size == n else np.full(n, np.nan)


def posterior_trace(post: Any, *, names: Any = None, fig: Figure | None = None) -> Figure:
    """Trace plots: each chain's draws against the draw index, with their marginals.


    One row per parameter: on the left every chain's draws in its own colour, the
    divergent transitions marked by red ticks; on the right each chain's histogram of its
    draws, on the same value axis. The row is titled with the parameter's name, its split
    R-hat and its bulk ESS. Chains that have mixed overlap like noise about one level
    with matching histograms, and R-hat is near 1 (below 1.01).


    **Arguments:**


    - `post`: a `ds.Posterior`.
    - `names`: the parameters to show, a subset of `post.names`; `None` shows all.
    - `fig`: the figure to draw on (empty); `None` makes a new one.


    **Returns:** the `matplotlib.figure.Figure`, with two axes per parameter (trace,
    histogram), row by row.


    **Example:**


    ```python
    ts = jnp.linspace(0.0, 2.0, 21)
    model = lambda p: p["amp"] * jnp.exp(-p["rate"] * ts)
    observed = model({"amp": 2.0, "rate": 1.5}) + 0.05 * jax.random.normal(jax.random.key(0), (21,))
    post = ds.posterior(model, {"amp": 1.0, "rate": 1.0}, observed, sigma=0.05,
                        prior={"amp": ds.Normal(2.0, 1.0), "rate": ds.HalfNormal(5.0)},
                        num_chains=2, num_warmup=300, num_samples=300, key=jax.random.key(1))
    fig = ds.plot.posterior_trace(post)
    fig.savefig("trace.png")
    ```
    """
    draws, known = _draws(post, "posterior_trace")
    columns = _select(names, known, "posterior_trace")
    chains, length, n = draws.shape
    divergent = _divergent(post, chains, length, "posterior_trace")
    rhat = _per_column(post, "rhat", n, "posterior_trace")
    ess = _per_column(post, "ess_bulk", n, "posterior_trace")
    fig = _figure(fig, "posterior_trace", (9.0, 1.0 + 2.0 * len(columns)))
    grid = fig.add_gridspec(len(columns), 2, width_ratios=(3, 1))
    index = np.arange(length)
    for row, i in enumerate(columns):
        trace = fig.add_subplot(grid[row, 0], sharex=fig.axes[0] if row else None)
        marginal = fig.add_subplot(grid[row, 1], sharey=trace)
        edges = np.histogram_bin_edges(draws[:, :, i], bins=30)
        for c in range(chains):
            color = f"C{c % 10}"
            trace.plot(index, draws[c, :, i], color=color, lw=0.6, alpha=0.8, label=f"chain {c}")
            counts, _ = np.histogram(draws[c, :, i], bins=edges)
            marginal.stairs(counts, edges, orientation="horizontal", color=color, lw=1.2)
        if divergent.any():
            where = np.nonzero(divergent)
            trace.plot(where[1], draws[where[0], where[1], i], label="divergent", **_DIVERGENT)
        trace.set_title(f"{known[i]}    R-hat {rhat[i]:.3f}    bulk ESS {ess[i]:.0f}", loc="left")
        trace.set_ylabel(known[i])
        marginal.tick_params(labelleft=False)
        if row == len(columns) - 1:
            trace.set_xlabel("draw")
            marginal.set_xlabel("draws per bin")
        else:
            trace.tick_params(labelbottom=False)
    handles, labels = fig.axes[0].get_legend_handles_labels()
    if len(handles) <= 11:  # a key for a few chains; colours alone for many
        fig.legend(handles, labels, loc="outside upper center", ncols=min(len(handles), 6))
    return fig


def posterior_rank(
    post: Any, *, names: Any = None, fig: Figure | None = None, bins: int = 20
) -> Figure:
    """Rank plots (Vehtari et al. 2021): how each chain's draws rank among all of them.


    For each parameter the draws of all chains are pooled and ranked (1 to `C D`); each
    chain's ranks are histogrammed into `bins` equal bins and drawn as a step line in the
    chain's colour. If the chains sample the same distribution every chain's ranks are
    uniform: each line scatters about the dashed line of `D / bins` draws per bin, mostly
    within the grey band (the central 95% of a bin's count under uniform ranks). A chain
    stuck high or low, or mixing slowly, shows as a slope or a hump.


    **Arguments:**


    - `post`: a `ds.Posterior`.
    - `names`: the parameters to show, a subset of `post.names`; `None` shows all.
    - `fig`: the figure to draw on (empty); `None` makes a new one.
    - `bins`: the number of rank bins (at least 2).


    **Returns:** the `matplotlib.figure.Figure`, with one axes per parameter (in rows of
    at most three).


    **Example:**


    ```python
    ts = jnp.linspace(0.0, 2.0, 21)
    model = lambda p: p["amp"] * jnp.exp(-p["rate"] * ts)
    observed = model({"amp": 2.0, "rate": 1.5}) + 0.05 * jax.random.normal(jax.random.key(0), (21,))
    post = ds.posterior(model, {"amp": 1.0, "rate": 1.0}, observed, sigma=0.05,
                        prior={"amp": ds.Normal(2.0, 1.0), "rate": ds.HalfNormal(5.0)},
                        num_chains=2, num_warmup=300, num_samples=300, key=jax.random.key(1))
    fig = ds.plot.posterior_rank(post, bins=10)
    fig.savefig("ranks.png")
    ```
    """
    draws, known = _draws(post, "posterior_rank")
    columns = _select(names, known, "posterior_rank")
    bins = count(bins, "bins", "posterior_rank", low=2)
    chains, length, _ = draws.shape
    total = chains * length
    ncols = min(3, len(columns))
    nrows = -(-len(columns) // ncols)
    fig = _figure(fig, "posterior_rank", (1.0 + 3.2 * ncols, 0.5 + 2.6 * nrows))
    grid = fig.add_gridspec(nrows, ncols)
    edges = np.linspace(0.5, total + 0.5, bins + 1)
    expected = length / bins
    spread = scipy.stats.binom.ppf([0.025, 0.975], length, 1.0 / bins)
    for k, i in enumerate(columns):
        ax = fig.add_subplot(grid[k // ncols, k % ncols])
        ranks = scipy.stats.rankdata(draws[:, :, i].ravel()).reshape(chains, length)
        ax.axhspan(*spread, color="0.9", lw=0, zorder=0, label="95% if uniform")
        for c in range(chains):
            counts, _ = np.histogram(ranks[c], bins=edges)
            ax.stairs(counts, edges, color=f"C{c % 10}", lw=1.3, label=f"chain {c}")
        ax.axhline(expected, color="0.2", ls="--", lw=1, label="uniform")
        ax.set_xlim(edges[0], edges[-1])
        ax.set_ylim(0, None)
        ax.set_title(known[i], loc="left")
        label_axes(ax, "rank (all chains)" if k // ncols == nrows - 1 else "", "draws per bin")
    handles, labels = fig.axes[0].get_legend_handles_labels()
    if chains <= 10:  # a key for a few chains; colours alone for many
        fig.legend(handles, labels, loc="outside upper center", ncols=min(len(handles), 6))
    return fig


def posterior_corner(
    post: Any,
    *,
    names: Any = None,
    fit: Any = None,
    fig: Figure | None = None,
    bins: int = 30,
) -> Figure:
    """A corner plot of the draws, over the fit's Gaussian approximation.


    The diagonal shows each parameter's histogram of all draws (chains pooled); the panels
    below it the draws of each pair (at most 2000 of them shown), with the divergent
    transitions in red. Over them, where there is a fit, its Gaussian (Laplace)
    approximation from `fit.values` and `fit.covariance`: on the diagonal the normal
    density, scaled to the histogram, and below the 1- and 2-sigma ellipses (Mahalanobis
    distance 1 and 2). Where the draws bend away from the ellipses (a banana, a ridge, a
    skewed marginal) the fit's error bars misdescribe the posterior. The fit covers the
    first `p` names of `post` (the model's parameters); the noise scale `sigma`, sampled
    after them, has no Gaussian, and neither has a value whose variance is not finite.


    **Arguments:**


    - `post`: a `ds.Posterior`.
    - `names`: the parameters to show, a subset of `post.names`; `None` shows all.
    - `fit`: a `ds.FitResult`; `None` (the default) takes `post.fit` (which may be
      `None`); `False` draws no Gaussian.
    - `fig`: the figure to draw on (empty); `None` makes a new one.
    - `bins`: the number of histogram bins on the diagonal.


    **Returns:** the `matplotlib.figure.Figure`, with `k (k + 1) / 2` axes for `k`
    parameters, in row-major order of the lower triangle.


    **Example:**


    ```python
    ts = jnp.linspace(0.0, 2.0, 21)
    model = lambda p: p["amp"] * jnp.exp(-p["rate"] * ts)
    observed = model({"amp": 2.0, "rate": 1.5}) + 0.05 * jax.random.normal(jax.random.key(0), (21,))
    post = ds.posterior(model, {"amp": 1.0, "rate": 1.0}, observed, sigma=0.05,
                        prior={"amp": ds.Normal(2.0, 1.0), "rate": ds.HalfNormal(5.0)},
                        num_chains=2, num_warmup=300, num_samples=300, key=jax.random.key(1))
    fig = ds.plot.posterior_corner(post)  # the draws over the fit's error ellipses
    fig.savefig("posterior-corner.png")
    ```
    """
    draws, known = _draws(post, "posterior_corner")
    columns = _select(names, known, "posterior_corner")
    bins = count(bins, "bins", "posterior_corner", low=1)
    mean, cov = _gaussian(getattr(post, "fit", None) if fit is None else fit, len(known))
    chains, length, _ = draws.shape
    flat = draws.reshape(chains * length, -1)
    odd = flat[_divergent(post, chains, length, "posterior_corner").reshape(-1)]
    fig = _figure(fig, "posterior_corner", (1.2 + 2.2 * len(columns),) * 2)
    shown = flat[:: max(1, len(flat) // 2000)]
    k = len(columns)
    grid = fig.add_gridspec(k, k)
    axes: dict[tuple[int, int], Axes] = {}
    for row in range(k):
        for col in range(row + 1):
            i, j = columns[row], columns[col]
            share = axes.get((row - 1, col)) if row > col else None
            ax = fig.add_subplot(grid[row, col], sharex=axes.get((col, col)) or share)
            axes[row, col] = ax
            if row == col:
                _corner_diagonal(ax, flat[:, i], bins, mean, cov, i)
            else:
                _corner_pair(ax, (shown, odd), i, j, mean, cov, label=(row, col) == (1, 0))
                if col == 0:
                    ax.set_ylabel(known[i])
                else:
                    ax.tick_params(labelleft=False)
            if row == k - 1:
                ax.set_xlabel(known[j])
            else:
                ax.tick_params(labelbottom=False)
    _corner_key(fig, axes, k)
    return fig


def _gaussian(fit: Any, n: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The fit's values and covariance, checked, or `(None, None)` without a fit."""
    if fit is None or fit is False:
        return None, None
    if not (hasattr(fit, "values") and hasattr(fit, "covariance")):
        raise TypeError(
            "posterior_corner: fit must be a ds.FitResult (with .values and .covariance), "
            f"None or False; got {type(fit).__name__}."
        )
    mean = np.atleast_1d(float_array(fit.values, "fit.values", "posterior_corner"))
    cov = float_array(fit.covariance, "fit.covariance", "posterior_corner")
    p = mean.size
    if mean.ndim != 1 or cov.shape != (p, p) or p > n:
        raise ValueError(
            f"posterior_corner: fit has values of shape {mean.shape} and covariance of shape "
            f"{cov.shape}; expected (p,) and (p, p) for the first p <= {n} names of post."
        )
    return mean, cov


def _corner_diagonal(ax: Axes, x: np.ndarray, bins: int, mean, cov, i: int) -> None:
    """Parameter `i`'s histogram and, with a fit, its normal density in counts per bin."""
    counts, edges = np.histogram(x, bins=bins)
    ax.stairs(counts, edges, color="C0", fill=True, alpha=0.45)
    if mean is not None and i < len(mean) and np.isfinite(cov[i, i]) and cov[i, i] > 0:
        # Wide enough for the 2-sigma ellipses below, narrow enough for the histogram.
        sd = np.sqrt(cov[i, i])
        lo, hi = min(edges[0], mean[i] - 2.5 * sd), max(edges[-1], mean[i] + 2.5 * sd)
        grid = np.linspace(lo, hi, 200)
        scale = len(x) * (edges[1] - edges[0]) / (sd * np.sqrt(2 * np.pi))
        ax.plot(grid, scale * np.exp(-0.5 * ((grid - mean[i]) / sd) ** 2), color="C1")
        ax.set_xlim(lo - 0.03 * (hi - lo), hi + 0.03 * (hi - lo))
    ax.set_yticks([])


def _corner_pair(ax: Axes, points, i: int, j: int, mean, cov, label: bool) -> None:
    """The draws of `i` against `j`, the divergent ones, and the fit's ellipses."""
    shown, odd = points
    ax.scatter(
        shown[:, j], shown[:, i], s=2, color="C0", alpha=0.3, lw=0, label=_if(label, "draws")
    )
    if len(odd):
        ax.scatter(odd[:, j], odd[:, i], s=6, color="red", lw=0, label=_if(label, "divergent"))
    if mean is None or max(i, j) >= len(mean):
        return
    sub = cov[np.ix_([j, i], [j, i])]
    if not np.all(np.isfinite(sub)):
        return
    ax.scatter(mean[j], mean[i], color="C1", s=12, zorder=3, label=_if(label, "fit"))
    for radius, style, inside in [(1, "-", 39), (2, "--", 86)]:
        ex, ey = _ellipse(mean[[j, i]], sub, radius)
        name = f"fit {radius}σ ellipse ({inside}%)"
        ax.plot(ex, ey, color="C1", ls=style, lw=1.2, label=_if(label, name))


def _corner_key(fig: FigureBase, axes: dict[tuple[int, int], Axes], k: int) -> None:
    """One legend, in the empty upper triangle beside the top-left panel."""
    if k == 1:
        return
    handles, labels = axes[1, 0].get_legend_handles_labels()
    legend = fig.legend(
        handles,
        labels,
        loc="upper left",
        bbox_to_anchor=(1.08, 1.0),
        bbox_transform=axes[0, 0].transAxes,
    )
    for handle, text in zip(legend.legend_handles, labels, strict=True):
        if text == "draws":  # the points are too faint to read as a key
            handle.set_sizes([16])
            handle.set_alpha(0.7)


def posterior_predictive(
    ts: Any,
    bands: Any,
    *,
    observed: Any = None,
    ax: Axes | None = None,
    label: str | None = None,
) -> Figure:
    """Posterior-predictive bands over time, with the observed data.


    `bands` holds `k` (odd) quantile curves of the model's prediction over the posterior
    draws, in increasing order: `(lower, median, upper)`, or e.g. the 5, 25, 50, 75 and
    95% curves. Curves `i` and `k-1-i` bound a shaded band (the outermost palest) and the
    middle curve is drawn as a line. Curves of shape `(n, m)` give `m` components, each in
    its own colour, with the data of the same component as points of that colour. Data
    that fall outside the bands far more often than their level says mark a misfit.


    **Arguments:**


    - `ts`: the times, shape `(n,)`.
    - `bands`: a sequence of `k` odd, `k >= 3`, arrays each of shape `(n,)` or `(n, m)`
      (or one array `(k, n)` or `(k, n, m)`).
    - `observed`: the data, shape `(n,)` or `(n, m)` (NaN for missing values), or `None`.
    - `ax`: the axes to draw on; `None` makes a new figure.
    - `label`: the legend entry of the median line (default `"posterior median"`).


    **Returns:** the `matplotlib.figure.Figure` drawn on.


    **Example:**


    ```python
    ts = jnp.linspace(0.0, 2.0, 21)
    model = lambda p: p["amp"] * jnp.exp(-p["rate"] * ts)
    observed = model({"amp": 2.0, "rate": 1.5}) + 0.05 * jax.random.normal(jax.random.key(0), (21,))
    post = ds.posterior(model, {"amp": 1.0, "rate": 1.0}, observed, sigma=0.05,
                        prior={"amp": ds.Normal(2.0, 1.0), "rate": ds.HalfNormal(5.0)},
                        num_chains=2, num_warmup=300, num_samples=300, key=jax.random.key(1))
    curves = jax.vmap(model)(post.params())  # (600, 21): one curve per draw
    bands = np.quantile(np.asarray(curves), [0.05, 0.5, 0.95], axis=0)
    fig = ds.plot.posterior_predictive(ts, bands, observed=observed)
    fig.savefig("predictive.png")
    ```
    """
    check_ax(ax, "posterior_predictive")
    check_label(label, "posterior_predictive")
    ts, bands, observed = _predictive_inputs(ts, bands, observed)
    k, n, m = bands.shape
    ax = new_or(ax)
    labels = component_labels(label or "posterior median", m)
    for c in range(m):
        (line,) = ax.plot(ts, bands[k // 2, :, c], lw=1.5, label=labels[c], zorder=2)
        color = line.get_color()
        for b in range(k // 2):
            alpha = 0.12 + 0.3 * (b + 1) / (k // 2)
            name = _if(c == 0, "band" if k == 3 else f"band {b}-{k - 1 - b}")
            lo, hi = bands[b, :, c], bands[k - 1 - b, :, c]
            ax.fill_between(ts, lo, hi, color=color, alpha=alpha, lw=0, label=name)
        if observed is not None:
            name = "observed" if m == 1 else f"observed[{c}]"
            ax.scatter(ts, observed[:, c], s=10, color=color, ec="k", lw=0.4, zorder=3, label=name)
    label_axes(ax, "t", "value")
    ax.legend()
    return ax.figure


def _predictive_inputs(ts: Any, bands: Any, observed: Any):
    """`ts` `(n,)`, `bands` `(k, n, m)` and `observed` `(n, m)` or `None`, checked."""
    fname = "posterior_predictive"
    ts = float_array(ts, "ts", fname)
    if ts.ndim != 1 or len(ts) == 0:
        raise ValueError(f"{fname} needs non-empty 1-d times ts; got shape {ts.shape}.")
    n = len(ts)
    if isinstance(bands, str) or not hasattr(bands, "__len__"):
        raise TypeError(f"{fname}: bands must be a sequence of quantile curves; got {bands!r}.")
    bands = float_array(bands, "bands", fname)
    k = bands.shape[0] if bands.ndim else 0
    if bands.ndim < 2 or k < 3 or k % 2 == 0 or bands.shape[1] != n:
        raise ValueError(
            f"{fname}: bands must be an odd number k >= 3 of curves, e.g. (lower, median, "
            f"upper), each of shape ({n},) or ({n}, m) like ts; got shape {bands.shape}."
        )
    bands = bands.reshape(k, n, -1)
    if np.any(np.diff(bands, axis=0) < -1e-12 * (1 + np.abs(bands[1:]))):
        raise ValueError(f"{fname}: bands must be in increasing order (lower first, upper last).")
    if observed is not None:
        observed = components(float_array(observed, "observed", fname), n, f"{fname}: observed")
        if observed.shape[1] != bands.shape[2]:
            raise ValueError(
                f"{fname}: observed has {observed.shape[1]} components per time, the bands "
                f"{bands.shape[2]}."
            )
    return ts, bands, observed
