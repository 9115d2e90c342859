"""Pendulum demo: fit length and damping to noisy angles, then forecast with 10,000 pendulums.

A pendulum (L = 1.3 m, c = 0.2 1/s, g = 9.81 m/s^2) is released at rest from 1 rad. Its
angle is read every 0.05 s for the first 3 s (a little over one swing) with Gaussian
noise of 0.1 rad; the readings after 3 s are held back. The readings are simulated (RK4, dt = 0.01 s) with the
same model that is fitted, and the noise comes from a fixed seed.

1. `ds.fit` (Levenberg-Marquardt, derivatives through the rollout) recovers L and c from
   L = 1 m, c = 0.05 1/s, with standard errors and their covariance.
2. The fitted uncertainty is propagated forward: 10,000 (L, c) pairs drawn from the
   fit's Gaussian (mean and full covariance) run as one `ds.ensemble` to t = 20 s,
   reduced on the fly to quantiles of the angle (`ds.Quantiles`), so no member's
   trajectory is ever stored.

Writes under --out: `pendulum_demo.png` (data, fit, residuals, and the 50% and 95%
forecast bands against the held-back readings), `pendulum_demo_corner.png` (the fitted
parameters' uncertainty: the Gaussian and the drawn ensemble) and `pendulum_demo_summary.json`.
Prints the fit table, how far the truth lies from the fit in standard errors, the
forecast band's width, and how often the true (noise-free) angle stays inside it.

Run: `diffsim run pendulum_demo` or `make demo` (about 20 s on a 2-core CPU, compilation
included); `--smoke` for a small version; `--set n_members=100000` and the like.
"""

import json
import sys
import time

import jax

# Before anything creates an array: the fit's error bars are computed in float64.
jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import diffsim as ds  # noqa: E402
import diffsim.plot as dsplot  # noqa: E402
from diffsim._scenario import save_figure, scenario_args  # noqa: E402

CONFIG = dict(
    length=1.3,  # m, the true pendulum length
    damping=0.2,  # 1/s, the true damping rate
    angle0=1.0,  # rad, the angle it is released from at rest
    noise=0.1,  # rad, standard deviation of the reading noise
    t_observed=3.0,  # s of readings used by the fit
    t_forecast=20.0,  # s, the end of the forecast
    n_members=10_000,  # ensemble members drawn from the fit's posterior
    seed=2,  # random seed: noise and ensemble draws
    progress=True,  # progress of the fit (stdout) and the ensemble (stderr)
)
SMOKE = dict(t_forecast=6.0, n_members=256)

DT = 0.01  # s, the integrator step
READ_EVERY = 5  # steps: one reading every 0.05 s
START = dict(length=1.0, damping=0.05)
QUANTILES = (0.025, 0.25, 0.5, 0.75, 0.975)


def _angles(t1: float):
    """`model(pendulum) -> angles` at the reading times `0.05, 0.10, ..., t1`."""
    n_steps = round(t1 / DT)

    def model(pendulum, angle0):
        traj = ds.simulate(
            pendulum,
            pendulum.initial_state(angle0),
            dt=DT,
            n_steps=n_steps,
            saveat=ds.SaveAt(every=READ_EVERY, fn=lambda t, y: y.q),
            throw=False,
        )
        return traj

    return model


def main(argv: list[str] | None = None) -> int:
    config, out = scenario_args(__doc__, CONFIG, SMOKE, argv, name="pendulum_demo")
    if not 0 < config.t_observed < config.t_forecast:
        print("pendulum_demo: error: need 0 < t_observed < t_forecast", file=sys.stderr)
        return 2
    start = time.perf_counter()
    rollout = _angles(config.t_forecast)
    truth = ds.systems.Pendulum(length=config.length, damping=config.damping)
    full = rollout(truth, config.angle0)
    ts_all = np.asarray(full.ts)[1:]  # SaveAt(every=k) includes t0, which is not a reading
    true_angles = np.asarray(full.ys)[1:]
    rng = np.random.default_rng(config.seed)
    readings = true_angles + config.noise * rng.standard_normal(true_angles.shape)
    seen = ts_all <= config.t_observed + 1e-9
    n_seen = int(seen.sum())
    print(
        f"Pendulum L={config.length:g} m, c={config.damping:g} 1/s from {config.angle0:g} rad: "
        f"{n_seen} readings over {config.t_observed:g} s, noise {config.noise:g} rad "
        f"(seed {config.seed}); {len(ts_all) - n_seen} more held back to {config.t_forecast:g} s"
    )

    # 1. The fit, on the readings up to t_observed only.
    observe = _angles(config.t_observed)

    def model(pendulum):
        return observe(pendulum, config.angle0).ys[1:]

    res = ds.fit(
        model,
        ds.systems.Pendulum(**START),
        readings[seen],
        where=lambda p: (p.length, p.damping),
        bounds=((0, None), (0, None)),
        progress=config.progress,
    )
    fit_seconds = time.perf_counter() - start
    print(res.summary())
    values, stderr = np.asarray(res.values), np.sqrt(np.diag(np.asarray(res.covariance)))
    distance = np.abs(values - [config.length, config.damping]) / stderr
    print(
        f"Truth is {distance[0]:.2f} (length) and {distance[1]:.2f} (damping) standard errors "
        f"from the fit, {fit_seconds:.1f} s including compilation"
    )

    # 2. The forecast: the fitted Gaussian pushed through the model, one compiled ensemble.
    draws = jax.random.multivariate_normal(
        jax.random.key(config.seed), jnp.asarray(values), jnp.asarray(res.covariance),
        (config.n_members,),
    )  # fmt: skip
    draws = jnp.clip(draws, 1e-6, None)  # physical: a 3-sigma-wide Gaussian stays positive
    members = ds.systems.Pendulum(length=draws[:, 0], damping=draws[:, 1])
    reach = 1.05 * abs(config.angle0)
    t = time.perf_counter()
    ens = ds.ensemble(
        lambda p: rollout(p, config.angle0),
        members,
        batch_size=2_500,
        reduce=ds.Quantiles(q=QUANTILES, low=-reach, high=reach, bins=2000),
        progress=config.progress,
    )
    bands = np.asarray(ens.values.ys)[:, 1:]  # (quantile, time)
    ensemble_seconds = time.perf_counter() - t
    ahead = ~seen
    inside95 = (bands[0] <= true_angles) & (true_angles <= bands[-1])
    width95 = bands[-1] - bands[0]
    print(
        f"Forecast: {config.n_members:,} members to t={config.t_forecast:g} s in "
        f"{ensemble_seconds:.1f} s; 95% band width {width95[seen].mean():.3f} rad while "
        f"observed, {width95[ahead].mean():.3f} rad ahead, {width95[-1]:.3f} rad at the end; "
        f"true angle inside it at {inside95[ahead].mean():.0%} of future reading times"
    )

    # Figures and summary.
    fitted = np.asarray(rollout(res.params, config.angle0).ys)[1:]
    fig = dsplot.fit_residuals(
        ts_all[seen], readings[seen], fitted[seen], sigma=config.noise, label="fit"
    )
    top, bottom = fig.axes
    dsplot.ensemble_band(ts_all, bands, q=QUANTILES, ax=top, label="forecast median", color="C2")
    top.plot(ts_all[ahead], fitted[ahead], color="C0", lw=1, ls="--", label="fit, extended")
    top.scatter(
        ts_all[ahead], readings[ahead], s=8, color="0.5", alpha=0.6, label="held back", zorder=1
    )
    top.axvline(config.t_observed, color="0.3", lw=0.8, ls=":", label="end of data")
    top.legend(loc="upper right", ncols=4, fontsize=9)
    top.set_xlabel("")  # the time axis is shared with the residuals below
    top.set(
        ylabel="angle (rad)",
        title=(
            f"Fit: L = {values[0]:.3f} $\\pm$ {stderr[0]:.3f} m (true {config.length:g}), "
            f"c = {values[1]:.3f} $\\pm$ {stderr[1]:.3f} 1/s (true {config.damping:g}); "
            f"forecast from {config.n_members:,} pendulums"
        ),
    )
    bottom.set(xlabel="t (s)", ylabel="residual (rad)")
    bottom.patches[0].set_label(f"$\\pm\\sigma$ = {config.noise:.2g} rad (noise)")
    bottom.legend(loc="upper right", fontsize=9)
    fig.set_size_inches(10, 6)
    save_figure(fig, out / "pendulum_demo.png", dpi=100)

    shown = np.asarray(draws[: min(config.n_members, 3000)])
    fig = dsplot.parameter_corner(
        values,
        np.asarray(res.covariance),
        samples=shown,
        names=["length (m)", "damping (1/s)"],
        truth=[config.length, config.damping],
    )
    fig.suptitle("Fitted uncertainty and the ensemble drawn from it")
    save_figure(fig, out / "pendulum_demo_corner.png", dpi=110)

    summary = dict(
        truth=dict(length=config.length, damping=config.damping),
        fit=dict(zip(["length", "damping"], values.tolist(), strict=True)),
        stderr=dict(zip(["length", "damping"], stderr.tolist(), strict=True)),
        covariance=np.asarray(res.covariance).tolist(),
        truth_in_stderr=distance.tolist(),
        fit_iterations=int(res.n_steps),
        n_readings=n_seen,
        noise=config.noise,
        n_members=config.n_members,
        forecast_quantiles=list(QUANTILES),
        band95_width_end=float(width95[-1]),
        truth_inside_band95=float(inside95[ahead].mean()),
        seconds=dict(fit=fit_seconds, ensemble=ensemble_seconds),
    )
    (out / "pendulum_demo_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"Wrote {out}/pendulum_demo.png, pendulum_demo_corner.png, pendulum_demo_summary.json")
    print(f"Done in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
