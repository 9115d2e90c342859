"""Lorenz ensemble: 10,000 Lorenz systems swept over rho in [0, 21], one compiled ensemble.

The Lorenz ensemble benchmark (as in DiffEqGPU.jl's and `benchmarks/ensemble.py`) drawn as
a picture: sigma = 10, beta = 8/3, rho = linspace(0, 21, N), every member starting from
u0 = (1, 0, 0), integrated over t in [0, 1] with a fixed-step Tsit5 (dt = 1e-3) by
`ds.ensemble`. Below rho = 1 the origin attracts every trajectory; above it two fixed
points (+-sqrt(beta (rho - 1)), +-sqrt(beta (rho - 1)), rho - 1) appear. By t = 1 the
members with small rho have settled near them while those with larger rho are still
swinging round (their first overshoot comes sooner and larger as rho grows), which the
final state against rho shows as a smooth curve leaving the fixed-point branches.

Writes under --out: `lorenz_ensemble.png` (the final x, y, z against rho with the fixed
points for reference; x(t) of a few members; and the 5-95% and 25-75% bands of z(t) over
the whole ensemble, `ds.plot.ensemble_band`) and `lorenz_ensemble_summary.json`.

Run: `diffsim run lorenz_ensemble` (`--smoke`: 256 members; `--set n_members=100000`).
"""

import json
import time

import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import diffsim as ds
import diffsim.plot as dsplot
from diffsim._scenario import save_figure, scenario_args

CONFIG = dict(
    n_members=10_000,  # members, rho evenly spaced over [0, rho_max]
    rho_max=21.0,  # the largest Rayleigh number rho
    t1=1.0,  # time units, length of each run
    dt=1e-3,  # time units, Tsit5 fixed step
    save_every=10,  # steps between saved states
    batch_size=2_048,  # members at once
    progress=True,  # chunk progress of the ensemble (stderr)
)
SMOKE = dict(n_members=256, batch_size=128)
SIGMA, BETA = 10.0, 8.0 / 3.0
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def main(argv: list[str] | None = None) -> int:
    config, out = scenario_args(__doc__, CONFIG, SMOKE, argv, name="lorenz_ensemble")
    start = time.perf_counter()
    rhos = jnp.linspace(0.0, config.rho_max, config.n_members)
    y0 = jnp.array([1.0, 0.0, 0.0])
    n_steps = round(config.t1 / config.dt)

    def member(rho):
        return ds.simulate(
            ds.systems.Lorenz(sigma=SIGMA, rho=rho, beta=BETA),
            y0,
            dt=config.dt,
            n_steps=n_steps,
            integrator=ds.Tsit5Fixed(),
            saveat=ds.SaveAt(every=config.save_every),
            throw=False,
        )

    res = ds.ensemble(member, rhos, batch_size=config.batch_size, progress=config.progress)
    ys = np.asarray(res.values.ys)  # (member, time, 3)
    ts = np.asarray(res.values.ts[0])
    seconds = time.perf_counter() - start
    final = ys[:, -1]
    rho = np.asarray(rhos)
    print(
        f"Lorenz ensemble: {config.n_members:,} members, rho in [0, {config.rho_max:g}], "
        f"t in [0, {config.t1:g}] at dt={config.dt:g} (Tsit5Fixed, {n_steps:,} steps): "
        f"{seconds:.1f} s including compilation; {int(res.num_failed)} failed"
    )
    print(
        f"  final z: {final[:, 2].min():.3f} .. {final[:, 2].max():.3f}; final |x| at "
        f"rho={rho[-1]:g}: {abs(final[-1, 0]):.3f} (fixed point {np.sqrt(BETA * (rho[-1] - 1)):.3f})"
    )

    # The Lorenz system is dimensionless: every axis says so rather than carry a unit.
    unitless = "(dimensionless)"
    fig = plt.figure(figsize=(10, 6.6), layout="constrained")
    grid = fig.add_gridspec(2, 2, width_ratios=(1.1, 1))
    ax = fig.add_subplot(grid[:, 0])
    for i, name in enumerate("xyz"):
        ax.plot(rho, final[:, i], lw=1.2, label=f"{name}(t = {config.t1:g})")
    branch = rho[rho >= 1]
    ax.plot(branch, branch - 1, color="C2", ls=":", lw=1.2, label="fixed point z = ρ - 1")
    ax.plot(branch, np.sqrt(BETA * (branch - 1)), color="0.4", ls=":", lw=1.2,
            label="fixed point |x| = |y|")  # fmt: skip
    ax.set(
        xlabel=f"ρ {unitless}",
        ylabel=f"final state {unitless}",
        title=f"Final state of {config.n_members:,} members",
    )
    ax.legend(loc="lower left")
    ax = fig.add_subplot(grid[0, 1])
    for k in np.linspace(0, config.n_members - 1, 6).round().astype(int):
        ax.plot(ts, ys[k, :, 0], lw=1.2, label=f"{rho[k]:.1f}")
    ax.set(ylabel=f"x {unitless}", title="x(t) of a few members")
    ax.tick_params(labelbottom=False)
    ax.legend(title="ρ", loc="lower left", ncols=3, fontsize=9, title_fontsize=9)
    ax = fig.add_subplot(grid[1, 1], sharex=ax)
    bands = np.quantile(ys[:, :, 2], QUANTILES, axis=0)
    dsplot.ensemble_band(ts, bands, q=QUANTILES, ax=ax, label="median")
    ax.set(
        xlabel=f"t {unitless}",
        ylabel=f"z {unitless}",
        title="Spread of z(t) over the ensemble",
    )
    ax.legend(loc="upper left", fontsize=9)
    save_figure(fig, out / "lorenz_ensemble.png", dpi=95)

    summary = dict(
        n_members=config.n_members,
        rho_max=config.rho_max,
        t1=config.t1,
        dt=config.dt,
        num_failed=int(res.num_failed),
        final_z_range=[float(final[:, 2].min()), float(final[:, 2].max())],
        seconds=seconds,
    )
    (out / "lorenz_ensemble_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"Wrote {out}/lorenz_ensemble.png, lorenz_ensemble_summary.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
