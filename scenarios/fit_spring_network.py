"""Spring network fit: the 42 stiffnesses of a falling cloth recovered from noisy node positions.

A 4 x 4 cloth (`ds.systems.SpringMassNetwork.cloth`: 16 nodes of 50 g, 0.1 m apart, 24
structural and 18 shear springs with dashpots of 0.05 N s/m) hangs from two corners and
is released flat, at rest, under gravity. Every spring has its own stiffness, drawn
uniformly from 30..80 N/m. The 3-d positions of the 14 free nodes are recorded every
0.02 s for 1 s (50 frames, 2100 values) with Gaussian noise of 1 mm; the rollout is RK4
at dt = 5 ms, the same model that is fitted, and the noise and stiffnesses come from a
fixed seed.

`ds.fit` (Levenberg-Marquardt, Jacobian by forward-mode autodiff through the rollout)
starts from the nominal 50 N/m for every spring, keeps the stiffnesses positive with
`bounds`, and estimates the noise from the residuals. What it shows:

- each spring's fitted stiffness against the truth, in standard errors; the script exits
  with status 1 unless every spring is within 4 standard errors and at least 80% are
  within 2 (about 95% are expected to be);
- a figure (`fit_spring_network.png`): the cloth's springs coloured by that error, fitted
  against true stiffness with error bars, and data, fit and residuals of one corner's
  height.

Run: `diffsim run fit_spring_network` or `python scenarios/fit_spring_network.py --out out`
(`--smoke` fits a 3 x 3 cloth, 20 springs, over 0.5 s instead; `--set nx=5` and the like).
The full run takes under a minute on a 2-core CPU, most of it in the fit.
"""

import time

import jax
import matplotlib

# Before anything creates an array: the fit and its error bars are computed in float64.
jax.config.update("jax_enable_x64", True)
# This script only writes PNG files, so it never needs a window, whatever MPLBACKEND says.
matplotlib.use("Agg")

import equinox as eqx  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

import diffsim as ds  # noqa: E402
import diffsim.plot as dsplot  # noqa: E402
from diffsim._scenario import save_figure, scenario_args  # noqa: E402

CONFIG = dict(
    nx=4,  # nodes along x
    ny=4,  # nodes along y
    t1=1.0,  # s, length of the recorded motion
    noise=1e-3,  # m, reading noise of each coordinate
    seed=1,  # random seed of the noise and the true stiffnesses
    progress=True,  # print the loss at every iteration
)
SMOKE = dict(nx=3, ny=3, t1=0.5)  # 20 springs

SPACING = 0.1  # m
NODE_MASS = 0.05  # kg
NOMINAL_STIFFNESS = 50.0  # N/m, the start of the fit
STIFFNESS_RANGE = (30.0, 80.0)  # N/m, the truth is drawn from it
SPRING_DAMPING = 0.05  # N s/m, known
DT = 5e-3  # s
RECORD_EVERY = 4  # steps: one frame every 0.02 s
MAX_SIGMAS = 4.0
MIN_WITHIN_2 = 0.8


def make_model(network, y0, free, t1):
    """`model(network) -> positions` of the free nodes at the frames, `(frames, n_free, 3)`."""

    def model(net):
        traj = ds.simulate(net, y0, t1=t1, dt=DT, saveat=ds.SaveAt(every=RECORD_EVERY))
        return traj.ys.q[1:, free]  # SaveAt(every=k) includes t0, which is not a frame

    return model


def main(argv: list[str] | None = None) -> int:
    config, out = scenario_args(__doc__, CONFIG, SMOKE, argv, name="fit_spring_network")
    t1, nx, ny, NOISE, SEED = config.t1, config.nx, config.ny, config.noise, config.seed
    start = time.perf_counter()

    nominal, y0 = ds.systems.SpringMassNetwork.cloth(
        nx,
        ny,
        spacing=SPACING,
        node_mass=NODE_MASS,
        stiffness=NOMINAL_STIFFNESS,
        damping=SPRING_DAMPING,
    )
    n_springs = nominal.stiffness.shape[0]
    free = ~np.asarray(nominal.pinned)
    rng = np.random.default_rng(SEED)
    k_true = rng.uniform(*STIFFNESS_RANGE, n_springs)
    truth = eqx.tree_at(lambda net: net.stiffness, nominal, jnp.asarray(k_true))
    model = make_model(nominal, y0, free, t1)
    positions = np.asarray(model(truth))
    observed = positions + NOISE * rng.standard_normal(positions.shape)
    n_frames = positions.shape[0]
    print(
        f"Cloth {nx} x {ny}: {nx * ny} nodes ({int(free.sum())} free), {n_springs} springs, "
        f"stiffness {STIFFNESS_RANGE[0]:g}..{STIFFNESS_RANGE[1]:g} N/m (seed {SEED}); "
        f"{n_frames} frames over {t1:g} s, {observed.size} values, noise {NOISE * 1e3:g} mm"
    )

    fit_start = time.perf_counter()
    res = ds.fit(
        model,
        nominal,
        observed,
        where=lambda net: net.stiffness,
        bounds=(0.0, None),
        progress=config.progress,
    )
    fit_seconds = time.perf_counter() - fit_start
    k_fit = np.asarray(res.params.stiffness)
    k_err = np.asarray(res.stderr.stiffness)
    z = (k_fit - k_true) / k_err
    noise = float(np.sqrt(2 * float(res.loss) / (observed.size - n_springs)))
    print(
        f"ds.fit from {NOMINAL_STIFFNESS:g} N/m everywhere: {int(res.n_steps)} iterations, "
        f"{fit_seconds:.1f} s (compile included), loss {float(res.loss):.6g}"
    )

    rest = np.asarray(nominal.rest_lengths)
    edges = np.asarray(nominal.edges)
    kinds = np.where(np.isclose(rest, SPACING), "structural", "shear")
    print(
        f"  {'spring':>6} {'nodes':>7} {'kind':<10} {'true k':>8} {'fitted k':>9} "
        f"{'stderr':>7} {'(fit-true)/stderr':>18}"
    )
    for s in range(n_springs):
        print(
            f"  {s:6d} {edges[s, 0]:>3d}-{edges[s, 1]:<3d} {kinds[s]:<10} {k_true[s]:8.3f} "
            f"{k_fit[s]:9.3f} {k_err[s]:7.3f} {z[s]:+18.2f}"
        )
    within1 = float(np.mean(np.abs(z) < 1))
    within2 = float(np.mean(np.abs(z) < 2))
    ok = bool(np.all(np.abs(z) < MAX_SIGMAS)) and within2 >= MIN_WITHIN_2
    print(
        f"Recovery: {within1:.0%} of springs within 1 stderr (expected ~68%), {within2:.0%} "
        f"within 2 (~95%), largest {np.max(np.abs(z)):.2f} stderr, rms {np.sqrt(np.mean(z**2)):.2f}"
        f" (expected ~1); relative stderr {np.min(k_err / k_fit):.1%}..{np.max(k_err / k_fit):.1%}"
    )
    print(f"Noise estimated from the residuals: {noise * 1e3:.3f} mm (used: {NOISE * 1e3:g} mm)")
    print(
        "Recovery "
        + (
            "ok"
            if ok
            else f"FAIL: need every spring within {MAX_SIGMAS:g} stderr and "
            f"{MIN_WITHIN_2:.0%} within 2"
        )
    )

    predicted = np.asarray(model(res.params))
    path = out / "fit_spring_network.png"
    _figure(nominal, y0, free, k_true, k_fit, k_err, z, observed, predicted, noise, path)
    print(f"Figure: {path}")
    print(f"Done in {time.perf_counter() - start:.1f} s")
    return 0 if ok else 1


def _figure(nominal, y0, free, k_true, k_fit, k_err, z, observed, predicted, noise, path):
    fig = plt.figure(figsize=(10, 8.4), layout="constrained")
    upper, right = fig.subfigures(2, 1, height_ratios=(1.2, 1))
    left, middle = upper.subfigures(1, 2, width_ratios=(1.15, 1))

    # The cloth as laid out at release, each spring coloured by its error in stderr.
    ax = left.subplots()
    q0 = np.asarray(y0.q)[:, :2]
    edges = np.asarray(nominal.edges)
    lines = LineCollection(q0[edges], cmap="coolwarm", norm=plt.Normalize(-3, 3), lw=3)
    lines.set_array(z)
    ax.add_collection(lines)
    ax.scatter(*q0[free].T, color="k", s=15, zorder=3, label="free node")
    ax.scatter(*q0[~free].T, color="k", marker="s", s=50, zorder=3, label="pinned")
    left.colorbar(lines, ax=ax, label="(fitted - true) / stderr")
    ax.set(xlabel="x (m)", ylabel="y (m)", title="Springs at release", aspect="equal")
    ax.margins(0.08)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), ncols=2)

    ax = middle.subplots()
    lo, hi = 0.95 * k_true.min(), 1.05 * k_true.max()
    ax.plot([lo, hi], [lo, hi], color="0.5", lw=1, label="fitted = true")
    ax.errorbar(
        k_true, k_fit, yerr=2 * k_err, fmt="o", ms=3, capsize=2, label="fit $\\pm$ 2 stderr"
    )
    ax.axhline(NOMINAL_STIFFNESS, color="0.5", ls=":", lw=1, label="start")
    ax.set(xlabel="true stiffness (N/m)", ylabel="fitted stiffness (N/m)", title="Stiffness")
    ax.legend(loc="upper left")

    # The height of the free corner opposite the pinned edge: the largest motion.
    corner = int(np.flatnonzero(free)[-1])
    column = int(np.sum(free[:corner]))
    ts = DT * RECORD_EVERY * np.arange(1, observed.shape[0] + 1)
    axes = right.subplots(2, 1, sharex=True, height_ratios=(2.5, 1))
    dsplot.fit_residuals(
        ts, observed[:, column, 2], predicted[:, column, 2], sigma=noise, axes=tuple(axes)
    )
    axes[0].set(ylabel="height z (m)", title=f"Node {corner} (a free corner): height")
    axes[0].legend(loc="upper right", ncols=2)
    # Residuals of about a millimetre read better in mm than as 0.0025 m.
    axes[1].yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{1e3 * value:g}"))
    axes[1].set(xlabel="t (s)", ylabel="residual (mm)")
    axes[1].patches[0].set_label(f"$\\pm\\sigma$ = {noise * 1e3:.2g} mm")
    axes[1].legend(loc="upper right")
    save_figure(fig, path, dpi=95)


if __name__ == "__main__":
    raise SystemExit(main())
