"""diffsim.plot's posterior figures: trace, rank, corner and predictive plots of a
`ds.Posterior` built from synthetic draws carry the draws, and refuse bad input."""

import dataclasses

import jax
import jax.numpy as jnp
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.collections import PathCollection, PolyCollection
from matplotlib.figure import Figure
from matplotlib.patches import StepPatch

import diffsim as ds
import diffsim.plot as dsplot
from diffsim.inference._result import Posterior, diagnostics

matplotlib.use("Agg")  # headless; these tests only read the artists back

C, D = 4, 200
NAMES = ("a", "b", "sigma")
MEAN = np.array([1.0, -2.0])
COV = np.array([[0.04, 0.03], [0.03, 0.09]])
_DIAGNOSTICS = jax.jit(diagnostics)  # compiled once for every posterior built here


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _draws(seed=0):
    """(C, D, 3): two correlated normal parameters, then a positive noise scale."""
    rng = np.random.default_rng(seed)
    ab = MEAN + rng.standard_normal((C, D, 2)) @ np.linalg.cholesky(COV).T
    sigma = np.exp(np.log(0.1) + 0.2 * rng.standard_normal((C, D, 1)))
    return np.concatenate([ab, sigma], axis=-1)


def _fit():
    return ds.FitResult(
        params={"a": MEAN[0], "b": MEAN[1]},
        loss=jnp.asarray(1.0),
        history=jnp.ones(3),
        stderr={"a": 0.2, "b": 0.3},
        covariance=jnp.asarray(COV),
        n_steps=jnp.asarray(3),
        converged=jnp.asarray(True),
        names=("a", "b"),
        values=jnp.asarray(MEAN),
    )


def _posterior(fit=True):
    draws = _draws()
    divergent = np.zeros((C, D), bool)
    divergent[1, [10, 50]] = True
    divergent[3, 120] = True
    rhat, ess_bulk, ess_tail = _DIAGNOSTICS(jnp.asarray(draws))
    zeros = jnp.zeros((C, D))
    return Posterior(
        samples={"a": draws[..., 0], "b": draws[..., 1]},
        noise=draws[..., 2],
        draws=jnp.asarray(draws),
        names=NAMES,
        log_likelihood=zeros,
        log_density=zeros,
        divergent=jnp.asarray(divergent),
        tree_depth=jnp.zeros((C, D), int),
        acceptance=zeros + 0.8,
        step_size=jnp.full(C, 0.1),
        rhat=rhat,
        ess_bulk=ess_bulk,
        ess_tail=ess_tail,
        fit=_fit() if fit else None,
        params0={"a": 0.0, "b": 0.0},
        where=None,
    )


@pytest.fixture(scope="module")
def post():
    return _posterior()


def _stairs(ax):
    return [p for p in ax.patches if isinstance(p, StepPatch)]


def test_trace_draws_every_chain_and_the_divergences(post):
    fig = dsplot.posterior_trace(post)
    assert isinstance(fig, plt.Figure)
    assert len(fig.axes) == 2 * len(NAMES)
    draws, divergent = np.asarray(post.draws), np.asarray(post.divergent)
    for row, name in enumerate(NAMES):
        trace, marginal = fig.axes[2 * row], fig.axes[2 * row + 1]
        lines = trace.get_lines()
        assert len(lines) == C + 1  # the chains, then the divergent ticks
        for c in range(C):
            np.testing.assert_allclose(lines[c].get_xdata(), np.arange(D))
            np.testing.assert_allclose(lines[c].get_ydata(), draws[c, :, row])
        chain, index = np.nonzero(divergent)
        np.testing.assert_allclose(lines[-1].get_xdata(), index)
        np.testing.assert_allclose(lines[-1].get_ydata(), draws[chain, index, row])
        title = trace.get_title(loc="left")
        assert title.startswith(name)
        assert f"R-hat {float(post.rhat[row]):.3f}" in title
        assert f"bulk ESS {float(post.ess_bulk[row]):.0f}" in title
        stairs = _stairs(marginal)
        assert len(stairs) == C
        assert all(s.get_data().values.sum() == D for s in stairs)
    assert [t.get_text() for t in fig.legends[0].get_texts()][-1] == "divergent"


def test_trace_subset_and_given_figure(post):
    fig = plt.figure()
    assert dsplot.posterior_trace(post, names=["sigma"], fig=fig) is fig
    assert len(fig.axes) == 2
    assert fig.axes[0].get_title(loc="left").startswith("sigma")
    np.testing.assert_allclose(fig.axes[0].get_lines()[2].get_ydata(), post.draws[2, :, 2])


def test_rank_histograms_are_flat_for_mixed_chains(post):
    fig = dsplot.posterior_rank(post, bins=10)
    assert len(fig.axes) == len(NAMES)
    for ax, name in zip(fig.axes, NAMES, strict=True):
        assert ax.get_title(loc="left") == name
        stairs = _stairs(ax)
        assert len(stairs) == C
        counts = np.stack([s.get_data().values for s in stairs])
        assert counts.shape == (C, 10)
        np.testing.assert_array_equal(counts.sum(1), D)  # every draw of each chain
        assert np.all(np.abs(counts - D / 10) < 5 * np.sqrt(D / 10))  # i.i.d.: flat
        (uniform,) = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
        np.testing.assert_allclose(uniform.get_ydata(), D / 10)


def test_rank_shows_a_chain_that_is_off():
    shifted = _posterior()
    draws = np.asarray(shifted.draws).copy()
    draws[0, :, 0] += 1.0  # chain 0 sits high in "a"
    shifted = dataclasses.replace(shifted, draws=jnp.asarray(draws))
    ax = dsplot.posterior_rank(shifted, names=["a"]).axes[0]
    counts = _stairs(ax)[0].get_data().values
    assert counts[-5:].sum() > 0.9 * D  # chain 0 holds the top ranks


def test_corner_draws_over_the_fit_gaussian(post):
    fig = dsplot.posterior_corner(post, bins=25)
    assert len(fig.axes) == 6  # the lower triangle of 3 x 3, row by row
    diag = [fig.axes[k] for k in (0, 2, 5)]
    sd = np.sqrt(np.diag(COV))
    for i, ax in enumerate(diag):
        (stairs,) = _stairs(ax)
        values, edges, _ = stairs.get_data()
        assert values.sum() == C * D and len(values) == 25
        if i < 2:  # the scaled normal density: its peak is N * width / (sd sqrt(2 pi))
            (line,) = ax.get_lines()
            peak = C * D * (edges[1] - edges[0]) / (sd[i] * np.sqrt(2 * np.pi))
            np.testing.assert_allclose(line.get_ydata().max(), peak, rtol=1e-3)
        else:  # sigma: no Gaussian
            assert not ax.get_lines()
    pair = fig.axes[1]  # b against a
    one, two = pair.get_lines()
    for line, radius in [(one, 1), (two, 2)]:
        x, y = line.get_xdata(), line.get_ydata()
        np.testing.assert_allclose(
            [x.min(), x.max()], MEAN[0] + radius * sd[0] * np.array([-1, 1]), rtol=1e-3
        )
        np.testing.assert_allclose(
            [y.min(), y.max()], MEAN[1] + radius * sd[1] * np.array([-1, 1]), rtol=1e-3
        )
    points = [c for c in pair.collections if isinstance(c, PathCollection)]
    draws = np.asarray(post.draws).reshape(-1, 3)
    np.testing.assert_allclose(points[0].get_offsets(), draws[:, [0, 1]])
    np.testing.assert_allclose(
        points[1].get_offsets(), draws[np.asarray(post.divergent).ravel()][:, [0, 1]]
    )
    assert all(not fig.axes[k].get_lines() for k in (3, 4))  # sigma's row: no ellipses
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["draws", "divergent", "fit", "fit 1σ ellipse (39%)", "fit 2σ ellipse (86%)"]


def test_corner_fit_choices_and_subset(post):
    bare = _posterior(fit=False)
    assert not any(ax.get_lines() for ax in dsplot.posterior_corner(bare).axes)
    assert not any(ax.get_lines() for ax in dsplot.posterior_corner(post, fit=False).axes)
    fig = dsplot.posterior_corner(bare, fit=_fit(), names=["b", "a"])
    assert len(fig.axes) == 3
    assert fig.axes[2].get_xlabel() == "a" and fig.axes[1].get_ylabel() == "a"
    one = fig.axes[1].get_lines()[0]  # x: b, y: a
    np.testing.assert_allclose(one.get_xdata().max(), MEAN[1] + np.sqrt(COV[1, 1]), rtol=1e-3)
    assert len(dsplot.posterior_corner(post, names=["a"]).axes) == 1


def test_predictive_band_median_and_data():
    ts = np.linspace(0.0, 1.0, 11)
    median = np.exp(-ts)
    observed = median + 0.01
    fig = dsplot.posterior_predictive(ts, (median - 0.1, median, median + 0.1), observed=observed)
    (ax,) = fig.axes
    (line,) = ax.get_lines()
    np.testing.assert_allclose(line.get_ydata(), median)
    (band,) = [c for c in ax.collections if isinstance(c, PolyCollection)]
    vertices = band.get_paths()[0].vertices
    assert np.isclose(vertices[:, 1].min(), (median - 0.1).min())
    assert np.isclose(vertices[:, 1].max(), (median + 0.1).max())
    (points,) = [c for c in ax.collections if isinstance(c, PathCollection)]
    np.testing.assert_allclose(points.get_offsets(), np.stack([ts, observed], 1))
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "posterior median",
        "band",
        "observed",
    ]


def test_predictive_components_and_five_curves():
    ts = np.linspace(0.0, 1.0, 7)
    center = np.stack([np.sin(ts), np.cos(ts)], 1)  # (7, 2)
    bands = [center + d for d in (-0.2, -0.1, 0.0, 0.1, 0.2)]
    ax = dsplot.posterior_predictive(ts, bands, observed=center, label="x").axes[0]
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == ["x[0]", "x[1]"]
    np.testing.assert_allclose(lines[1].get_ydata(), center[:, 1])
    fills = [c for c in ax.collections if isinstance(c, PolyCollection)]
    points = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(fills) == 4 and len(points) == 2
    colors = [matplotlib.colors.to_rgb(line.get_color()) for line in lines]
    assert tuple(fills[2].get_facecolor()[0][:3]) == pytest.approx(colors[1])
    assert tuple(points[1].get_facecolor()[0][:3]) == pytest.approx(colors[1])


TS = np.linspace(0.0, 1.0, 5)
BANDS = (TS - 1, TS, TS + 1)


def _full():
    fig = Figure()  # not pyplot's: the count of pyplot's figures stays exact
    fig.add_subplot()
    return fig


BAD = [
    (lambda p: dsplot.posterior_trace(p, names=["a", "c"]), ValueError, "'c'", "names"),
    (lambda p: dsplot.posterior_rank(p, names="a"), TypeError, "names"),
    (lambda p: dsplot.posterior_corner(p, names=[1]), TypeError, "names"),
    (lambda p: dsplot.posterior_corner(p, names=[]), ValueError, "names"),
    (lambda p: dsplot.posterior_trace(p.draws), TypeError, "post", "ds.Posterior"),
    (lambda p: dsplot.posterior_rank({"draws": 1}), TypeError, "post"),
    (lambda p: dsplot.posterior_trace(p, fig=_full()), ValueError, "fig", "empty"),
    (lambda p: dsplot.posterior_corner(p, fig="new"), TypeError, "fig"),
    (lambda p: dsplot.posterior_rank(p, bins=1), ValueError, "bins"),
    (lambda p: dsplot.posterior_corner(p, bins=2.5), ValueError, "bins"),
    (lambda p: dsplot.posterior_corner(p, fit=np.eye(2)), TypeError, "fit"),
    (lambda p: dsplot.posterior_corner(p, fit=_fit_of(4)), ValueError, "fit", "first p"),
    (lambda p: dsplot.posterior_predictive(TS, BANDS[:2]), ValueError, "bands", "odd"),
    (lambda p: dsplot.posterior_predictive(TS, [TS[:3]] * 3), ValueError, "bands", "(5,)"),
    (lambda p: dsplot.posterior_predictive(TS, BANDS[::-1]), ValueError, "increasing"),
    (lambda p: dsplot.posterior_predictive(TS, 1.0), TypeError, "bands"),
    (lambda p: dsplot.posterior_predictive(TS, BANDS, observed=TS[:3]), ValueError, "observed"),
    (lambda p: dsplot.posterior_predictive(TS, BANDS, ax="ax"), TypeError, "ax"),
    (lambda p: dsplot.posterior_predictive(TS, BANDS, label=3), TypeError, "label"),
]


def _fit_of(p):
    return dataclasses.replace(_fit(), values=jnp.zeros(p), covariance=jnp.eye(p))


@pytest.mark.parametrize("call, exc, mentions", [(b[0], b[1], b[2:]) for b in BAD])
def test_bad_arguments_are_refused_before_drawing(post, call, exc, mentions):
    figures = len(plt.get_fignums())
    with pytest.raises(exc) as info:
        call(post)
    for word in mentions:
        assert word in str(info.value), str(info.value)
    assert len(plt.get_fignums()) == figures  # nothing drawn
