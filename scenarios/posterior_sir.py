"""SIR posterior: an epidemic's infection and recovery rates sampled by NUTS from its first 15 days, against ds.fit's Gaussian error bars, and the forecast of its peak.

An SIR epidemic in a population normalised to 1, dS/dt = -beta S I, dI/dt = beta S I -
gamma I, with beta = 0.6 /day, gamma = 0.25 /day and 1e-4 infected on day 0 (known), is
read once a day for 40 days: the infected fraction times log-normal noise of 20%
(`likelihood=ds.LogNormalNoise()`), simulated with RK4 at dt = 0.25 day. Only the first
15 days are fitted: while S is still about 1 the data grow as exp((beta - gamma) t), so
beta - gamma is well identified and beta and gamma apart hardly at all.

`ds.posterior` samples beta and gamma (priors LogNormal with medians 0.5 and 0.2 /day and
sd 0.5 of the log) and the noise scale (`noise=ds.HalfNormal(0.5)`), with a dense mass
matrix and `target_accept=0.99` (the ridge bends in the sampler's coordinates: 8 of 8000
transitions diverge at 0.95, 1 at 0.99). The chains start from `ds.fit` of log I (least
squares on the log data, as the noise is multiplicative), given as `start=`. It shows:

- the posterior is a thin ridge along beta - gamma = const, bounded by the priors and by
  gamma > 0; the fit's Gaussian is a long ellipse about wherever the noise put the
  optimum (`posterior_sir_corner.png`: the draws over its 1- and 2-sigma ellipses);
- the forecast of the whole outbreak (`post.predict`): 90% bands of the infected
  fraction to day 70 and of the peak's height and day, against the truth, the data and
  the same forecast from draws of the fit's Gaussian (`posterior_sir_forecast.png`);
- printed: the posterior summary, the fit's estimates +- stderr, the 90% interval of the
  peak height from the posterior and from the fit's Gaussian, and whether the truth lies
  inside each.

Run: `diffsim run posterior_sir` or `python scenarios/posterior_sir.py --out out`
(`--smoke`: 2 chains of 100 + 100 draws; `--set fit_days=20` and the like).
"""

import sys
import time

import jax
import matplotlib
import matplotlib.lines

# Before anything creates an array: the rollouts and the sampler are in float64.
jax.config.update("jax_enable_x64", True)
# This script only writes PNG files, so it never needs a window, whatever MPLBACKEND says.
matplotlib.use("Agg")

import jax.numpy as jnp  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import diffsim as ds  # noqa: E402
from diffsim._scenario import POSITIVE, Limit, save_figure, scenario_args  # noqa: E402

CONFIG = dict(
    beta=0.6,  # 1/day, the true infection rate
    gamma=0.25,  # 1/day, the true recovery rate
    infected0=1e-4,  # fraction of the population infected on day 0 (known)
    noise=0.2,  # relative (log-normal) noise of the daily readings
    n_days=40,  # days read, one reading a day
    fit_days=15,  # the first days, the only ones fitted
    forecast_days=70,  # days forecast
    num_chains=4,  # NUTS chains
    num_warmup=1000,  # NUTS warmup draws per chain
    num_samples=2000,  # NUTS kept draws per chain
    target_accept=0.99,  # NUTS's target acceptance rate during warmup
    n_gaussian=4000,  # draws from the fit's Gaussian for its forecast
    seed=0,  # random seed of the noise (the sampler's key is seed + 1)
)
SMOKE = dict(num_chains=2, num_warmup=100, num_samples=100, n_gaussian=200)
LIMITS = dict(beta=POSITIVE, gamma=POSITIVE, infected0=Limit(0, 0.5, strict=True),
              fit_days=Limit(3, 1000), target_accept=Limit(0, 1, strict=True))  # fmt: skip

DT = 0.25  # day
PER_DAY = 4  # steps a day
PRIOR = (ds.LogNormal(np.log(0.5), 0.5), ds.LogNormal(np.log(0.2), 0.5))  # beta, gamma
START = {"beta": 0.5, "gamma": 0.2}  # the prior's medians: where the fit starts
Q = (0.05, 0.5, 0.95)


def rates_of(r):
    """The sampled values: `where=` of the fit and the posterior."""
    return (r["beta"], r["gamma"])


def sir(t, y, p):
    """(dS/dt, dI/dt) of y = (S, I); R = 1 - S - I."""
    s, i = y[0], y[1]
    infections = p["beta"] * s * i
    return jnp.stack([-infections, infections - p["gamma"] * i])


def infected(rates, infected0: float, days: int):
    """The infected fraction at every step (dt = 0.25 day) of days 0 ... `days`."""
    y0 = jnp.array([1.0 - infected0, infected0], jnp.result_type(rates["beta"], float))
    traj = ds.simulate(
        ds.ODESystem(sir, rates), y0, n_steps=days * PER_DAY, dt=DT, saveat=ds.SaveAt(every=1)
    )
    return traj.ys[:, 1]


def forecast(rates, infected0: float, days: int):
    """The daily infected fraction over days 0 ... `days`, and the peak's height and day
    (on the 0.25-day grid)."""
    i = infected(rates, infected0, days)
    return {"infected": i[::PER_DAY], "peak": jnp.max(i), "peak_day": DT * jnp.argmax(i)}


def sample_fit_gaussian(res, n: int, seed: int):
    """`n` draws of (beta, gamma) from the fit's Gaussian, less those with a rate that is
    not positive (the Gaussian knows no bounds), and how many were dropped."""
    rng = np.random.default_rng(seed)
    draws = rng.multivariate_normal(np.asarray(res.values), np.asarray(res.covariance), size=n)
    keep = np.all(draws > 0, axis=1)
    return draws[keep], int(np.sum(~keep))


def sample_posterior(config, model, early, res):
    """NUTS draws of (beta, gamma, sigma) given the first days, started from `res`."""
    t = time.perf_counter()
    post = ds.posterior(
        model,
        START,
        early,
        where=rates_of,
        prior=PRIOR,
        noise=ds.HalfNormal(0.5),
        likelihood=ds.LogNormalNoise(),
        start=res,
        dense_mass=True,
        target_accept=config.target_accept,
        num_chains=config.num_chains,
        num_warmup=config.num_warmup,
        num_samples=config.num_samples,
        key=jax.random.key(config.seed + 1),
    )
    print(f"ds.posterior ({time.perf_counter() - t:.1f} s, compilation included):")
    print(post.summary())
    return post


def interval_line(name: str, lo: float, hi: float, truth: float) -> str:
    inside = "inside" if lo <= truth <= hi else "OUTSIDE"
    return f"  {name:16s} [{lo:.4f}, {hi:.4f}]   truth {truth:.4f} {inside}"


def report_peak(bands, gaussian_peaks, dropped: int, true_fc) -> None:
    """The peak's height and day: posterior quantiles, the fit's Gaussian, the truth."""
    lower, median, upper = bands
    true_peak = float(true_fc["peak"])
    g_lo, g_hi = np.quantile(gaussian_peaks, [Q[0], Q[2]])
    print(f"Peak of the outbreak: truth {true_peak:.4f} on day {float(true_fc['peak_day']):g}")
    print(
        f"  posterior: median height {float(median['peak']):.4f}, median day "
        f"{float(median['peak_day']):.1f} (90%: days {float(lower['peak_day']):.1f}-"
        f"{float(upper['peak_day']):.1f})"
    )
    print("90% interval of the peak height:")
    print(interval_line("posterior", float(lower["peak"]), float(upper["peak"]), true_peak))
    print(interval_line("fit's Gaussian", g_lo, g_hi, true_peak))
    print(
        f"  (the fit's Gaussian: {len(gaussian_peaks) + dropped} draws, {dropped} dropped "
        "for a rate that is not positive)"
    )


def add_truth(corner, values) -> None:
    """Dotted lines at the true values on a corner plot, and a key entry for them."""
    k = len(values)
    axes = iter(corner.axes)  # row-major lower triangle
    for row in range(k):
        for col in range(row + 1):
            ax = next(axes)
            ax.axvline(values[col], color="k", ls=":", lw=1)
            if row != col:
                ax.axhline(values[row], color="k", ls=":", lw=1)
    legend = corner.legends[0]
    handles, labels = legend.legend_handles, [t.get_text() for t in legend.texts]
    legend.remove()
    handles.append(matplotlib.lines.Line2D([], [], color="k", ls=":", lw=1))
    where = dict(
        loc="upper left", bbox_to_anchor=(1.08, 1.0), bbox_transform=corner.axes[0].transAxes
    )
    legend = corner.legend(handles, labels + ["truth"], **where)
    legend.legend_handles[0].set_sizes([16])
    legend.legend_handles[0].set_alpha(0.7)


def draw_corner(post, truth: dict, path):
    """The corner plot of the draws over the fit's Gaussian, and a zoom on the ridge."""
    fig = plt.figure(figsize=(13, 6.4), layout="constrained")
    left, right = fig.subfigures(1, 2, width_ratios=(1.45, 1))
    ds.plot.posterior_corner(post, fig=left)
    add_truth(left, [truth["beta"], truth["gamma"], truth["sigma"]])
    ax = right.add_subplot()
    rates = np.asarray(post.draws)[..., :2].reshape(-1, 2)
    ax.scatter(rates[:, 0], rates[:, 1], s=2, alpha=0.3, lw=0, color="C0", label="draws")
    lo, hi = np.quantile(rates, [0.001, 0.999], axis=0)
    beta = np.linspace(lo[0], hi[0], 50)
    r = truth["beta"] - truth["gamma"]
    ax.plot(beta, beta - r, color="0.4", lw=1, ls="--", label=f"beta - gamma = {r:g} (truth)")
    mean, cov = np.asarray(post.fit.values), np.asarray(post.fit.covariance)
    angle = np.linspace(0, 2 * np.pi, 400)
    ring = mean + 2 * np.stack([np.cos(angle), np.sin(angle)], 1) @ np.linalg.cholesky(cov).T
    ax.plot(*ring.T, color="C1", ls="--", lw=1.2, label="fit's 2σ ellipse (86%)")
    ax.scatter(truth["beta"], truth["gamma"], marker="*", s=150, color="k", label="truth", zorder=3)
    ax.set(xlim=(lo[0], hi[0]), ylim=(lo[1], hi[1]), xlabel="beta (1/day)", ylabel="gamma (1/day)")
    ax.set_title("Zoom on the draws: a ridge, bounded by the priors", loc="left")
    legend = ax.legend(loc="upper left")
    legend.legend_handles[0].set_sizes([16])
    legend.legend_handles[0].set_alpha(0.7)
    fig.suptitle("SIR from the first days: NUTS draws over ds.fit's Gaussian")
    save_figure(fig, path, dpi=100)


def draw_forecast(config, data, bands, peaks, path):
    """The forecast bands over the data (linear and log scale) and the peak's height
    against its day, posterior and fit's Gaussian."""
    ts, observed, true_curve, gaussian_bands = data
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6), layout="constrained")
    fitted, held = slice(1, config.fit_days + 1), slice(config.fit_days + 1, config.n_days + 1)
    for ax in axes[:2]:
        ds.plot.posterior_predictive(ts, bands, ax=ax, label="posterior median")
        ax.collections[-1].set_label("posterior 90% band")
        ax.plot(ts, true_curve, color="k", lw=1.2, label="truth")
        for curve in gaussian_bands[::2]:
            ax.plot(ts, curve, color="C1", ls="--", lw=1)
        ax.lines[-1].set_label("fit's Gaussian, 5% and 95%")
        ax.scatter(ts[fitted], observed[: config.fit_days], s=14, color="k", label="data (fitted)")
        ax.scatter(
            ts[held], observed[config.fit_days :], s=14, fc="none", ec="k", label="data (not)"
        )
        ax.axvspan(0, config.fit_days, color="0.9", zorder=0)
        ax.set(xlabel="day", ylabel="infected fraction")
    axes[0].legend(fontsize=8)
    axes[0].set_title(f"Forecast from days 1-{config.fit_days}")
    axes[1].set(yscale="log", ylim=(0.3 * config.infected0, 1.0), title="The same, log scale")
    axes[1].get_legend().remove()
    ax = axes[2]
    for (height, day), color, name in zip(peaks[:2], ["C0", "C1"], ["posterior", "fit's Gaussian"], strict=True):  # fmt: skip
        ax.scatter(day, height, s=3, alpha=0.3, color=color, lw=0, label=f"{name} draws")
    ax.scatter(peaks[2][1], peaks[2][0], marker="*", s=160, color="k", label="truth", zorder=3)
    ax.set(xlabel="day of the peak", ylabel="peak infected fraction", title="The peak")
    legend = ax.legend()
    for handle in legend.legend_handles[:2]:
        handle.set_sizes([16])
        handle.set_alpha(0.8)
    save_figure(fig, path, dpi=100)


def main(argv: list[str] | None = None) -> int:
    config, out = scenario_args(__doc__, CONFIG, SMOKE, argv, name="posterior_sir", limits=LIMITS)
    if not config.fit_days <= config.n_days <= config.forecast_days:
        print("posterior_sir: error: need fit_days <= n_days <= forecast_days", file=sys.stderr)
        return 2
    start_time = time.perf_counter()
    i0, days = config.infected0, config.forecast_days
    truth = {"beta": config.beta, "gamma": config.gamma}
    clean = np.asarray(infected(truth, i0, config.n_days))[PER_DAY::PER_DAY]
    rng = np.random.default_rng(config.seed)
    observed = clean * np.exp(config.noise * rng.standard_normal(config.n_days))
    early = observed[: config.fit_days]
    print(
        f"SIR beta={config.beta} /day, gamma={config.gamma} /day (R0 = "
        f"{config.beta / config.gamma:.2f}), I0 = {i0:g}: {config.n_days} daily readings with "
        f"{config.noise:.0%} log-normal noise (seed {config.seed}); the first "
        f"{config.fit_days} days fitted"
    )

    def model(rates):
        return infected(rates, i0, config.fit_days)[PER_DAY::PER_DAY]

    res = ds.fit(lambda r: jnp.log(model(r)), START, np.log(early), where=rates_of,
                 bounds=((0, None), (0, None)))  # fmt: skip
    print("ds.fit of log I (its Gaussian error bars):")
    print(res.summary())
    if not np.all(np.isfinite(np.asarray(res.covariance))):
        print("posterior_sir: ds.fit has no finite covariance: no Gaussian to compare with")
        return 1
    post = sample_posterior(config, model, early, res)

    # Forecasts: quantile bands over the posterior draws, and every draw of both.
    bands = post.predict(lambda r: forecast(r, i0, days), q=Q)
    per_draw = jax.jit(jax.vmap(lambda r: forecast(r, i0, days)))
    rates = np.asarray(post.draws)[..., :2].reshape(-1, 2)
    gaussian, dropped = sample_fit_gaussian(res, config.n_gaussian, config.seed + 2)
    post_fc = per_draw({"beta": rates[:, 0], "gamma": rates[:, 1]})
    gauss_fc = per_draw({"beta": gaussian[:, 0], "gamma": gaussian[:, 1]})
    true_fc = forecast(truth, i0, days)
    report_peak(bands, np.asarray(gauss_fc["peak"]), dropped, true_fc)

    gaussian_bands = np.quantile(np.asarray(gauss_fc["infected"]), Q, axis=0)
    data = (np.arange(days + 1), observed, np.asarray(true_fc["infected"]), gaussian_bands)
    peaks = [(np.asarray(f["peak"]), np.asarray(f["peak_day"])) for f in (post_fc, gauss_fc)]
    peaks.append((float(true_fc["peak"]), float(true_fc["peak_day"])))
    curves = tuple(b["infected"] for b in bands)
    draw_forecast(config, data, curves, peaks, out / "posterior_sir_forecast.png")
    draw_corner(post, truth | {"sigma": config.noise}, out / "posterior_sir_corner.png")
    print(f"Figures: {out}/posterior_sir_corner.png, posterior_sir_forecast.png")
    print(f"Done in {time.perf_counter() - start_time:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
