"""Outer solar system: energy drift of six integrators over 550 years, and the orbits.

The Sun (with the inner planets' mass), Jupiter, Saturn, Uranus, Neptune and Pluto, from
the initial state of Hairer, Lubich & Wanner, *Geometric Numerical Integration*, sec.
I.2.4 (`ds.systems.solar_system`, barycentric frame), are integrated for 200,000 days
(about 550 years, two orbits of Pluto) at dt = 50 days with each fixed-step integrator:
Euler, SemiImplicitEuler, Leapfrog, Yoshida4, RK4 and WisdomHolman. What it shows:

- energy (`solar_system_energy.png`): Euler's error grows until the orbits are wrong;
  the symplectic methods (SemiImplicitEuler, Leapfrog, Yoshida4) keep a bounded,
  oscillating error; RK4 is more accurate per step than Leapfrog but drifts steadily;
  WisdomHolman (Kepler orbits plus planet-planet kicks) is second order like Leapfrog
  but its error is a thousandth of it (the planet/star mass ratio), below Yoshida4's;
- the orbits in the ecliptic plane (`solar_system_orbits.png`, Yoshida4), with Euler's
  Jupiter spiralling outwards for contrast;
- `solar_system_summary.json`: each integrator's largest relative energy error and run time.

Run: `diffsim run solar_system` (`--smoke`: 20,000 days, Yoshida4 and WisdomHolman;
`--set dt=10` or `--set integrators=Leapfrog,RK4` and the like).
"""

import json
import sys
import time

import jax

# Energy errors of 1e-9 need float64 to be seen at all.
jax.config.update("jax_enable_x64", True)

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import diffsim as ds  # noqa: E402
import diffsim.plot as dsplot  # noqa: E402
from diffsim._progress import ProgressBar, saveat_fn  # noqa: E402
from diffsim._scenario import save_figure, scenario_args  # noqa: E402

CONFIG = dict(
    t1=200_000.0,  # days, length of each rollout
    dt=50.0,  # days, the integrators' fixed step
    save_every=2,  # steps between saved states: 100 days, 40 per orbit of Jupiter
    integrators="Euler,SemiImplicitEuler,Leapfrog,Yoshida4,RK4,WisdomHolman",  # comma-separated integrators to compare
    progress=True,  # a progress bar per rollout (on a terminal)
)
SMOKE = dict(t1=20_000.0, integrators="Yoshida4,WisdomHolman")
# Sun black, then the Okabe-Ito qualitative palette: orange, blue, green, reddish purple,
# sky blue. Neighbouring (and crossing: Neptune, Pluto) orbits differ clearly in hue, also
# for colour-blind readers.
BODY_COLORS = ["black", "#E69F00", "#0072B2", "#009E73", "#CC79A7", "#56B4E9"]


def main(argv: list[str] | None = None) -> int:
    config, out = scenario_args(__doc__, CONFIG, SMOKE, argv, name="solar_system")
    names = [name.strip() for name in config.integrators.split(",") if name.strip()]
    unknown = [n for n in names if not isinstance(getattr(ds, n, None), type)]
    if not names or unknown:
        print(
            f"solar_system: error: --set integrators: unknown {unknown or names}", file=sys.stderr
        )
        return 2
    system, y0 = ds.systems.solar_system(barycentric=True)
    n_steps = round(config.t1 / config.dt)
    print(
        f"Outer solar system: {y0.q.shape[0]} bodies, {config.t1:,.0f} days "
        f"({config.t1 / 365.25:,.0f} years) at dt={config.dt:g} days ({n_steps:,} steps)"
    )
    start = time.perf_counter()
    runs, summary = {}, {}
    for name in names:
        bar = ProgressBar(f"{name:<18}", enabled=None if config.progress else False)
        save = lambda t, y: y  # noqa: E731
        if config.progress:  # off, nothing is staged: the rollout is exactly the plain one
            save = saveat_fn(save, bar, t0=0.0, t1=config.t1)
        t = time.perf_counter()
        traj = ds.simulate(
            system,
            y0,
            dt=config.dt,
            n_steps=n_steps,
            integrator=getattr(ds, name)(),
            saveat=ds.SaveAt(every=config.save_every, fn=save),
            throw=False,
        )
        energy = np.asarray(jax.vmap(system.energy)(traj.ys))
        bar.close()
        seconds = time.perf_counter() - t
        drift = np.abs(energy - energy[0]) / abs(energy[0])
        runs[name] = (system, traj)
        summary[name] = dict(max_relative_energy_error=float(np.nanmax(drift)), seconds=seconds)
        print(
            f"  {name:<18} max |dE|/|E0| {np.nanmax(drift):9.2e}   final {drift[-1]:9.2e}   "
            f"{seconds:5.1f} s (compile included)"
        )

    fig = dsplot.energy_drift(runs)
    ax = fig.axes[0]
    ax.set(
        xlabel="t (days)",
        ylabel="relative energy error |E(t) - E(0)| / |E(0)|",
        title=f"Outer solar system, dt = {config.dt:g} days",
    )
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.set_size_inches(9, 4.5)
    save_figure(fig, out / "solar_system_energy.png", dpi=100)

    reference = "Yoshida4" if "Yoshida4" in runs else names[-1]
    q = np.asarray(runs[reference][1].ys.q)
    fig, ax = plt.subplots(figsize=(8, 6), layout="constrained")
    for i, body in enumerate(ds.systems.SOLAR_SYSTEM_BODIES):
        color = BODY_COLORS[i % len(BODY_COLORS)]
        ax.plot(q[:, i, 0], q[:, i, 1], lw=1.2, color=color, label=body)
        ax.scatter(q[-1, i, 0], q[-1, i, 1], s=20, color=color, zorder=3)
    if "Euler" in runs and reference != "Euler":
        qe = np.asarray(runs["Euler"][1].ys.q)
        ax.plot(qe[:, 1, 0], qe[:, 1, 1], lw=0.7, ls=":", color="0.4", label="Jupiter, Euler")
    ax.set(xlabel="x (AU)", ylabel="y (AU)", aspect="equal")
    ax.set_title(
        f"Orbits over {config.t1 / 365.25:,.0f} years ({reference}; dots: final positions)"
    )
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    save_figure(fig, out / "solar_system_orbits.png", dpi=100)

    (out / "solar_system_summary.json").write_text(
        json.dumps(dict(t1_days=config.t1, dt_days=config.dt, integrators=summary), indent=2) + "\n"
    )
    print(
        f"Wrote {out}/solar_system_energy.png, solar_system_orbits.png, solar_system_summary.json"
    )
    print(f"Done in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
