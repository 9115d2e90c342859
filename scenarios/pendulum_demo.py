"""Pendulum demo: energy drift of five integrators, a damped swing and a gradient check.

A pendulum (L = 1 m, g = 9.81 m/s^2) is released at rest from 2.5 rad, far outside the
small-angle regime, and simulated for 100 s at dt = 0.05 s (about 30 swings, 2000 steps)
with each fixed-step integrator: Euler, SemiImplicitEuler, Leapfrog, Yoshida4 and RK4.
What it shows:

- energy: Euler gains energy every step until the pendulum swings over the top; the
  symplectic methods (SemiImplicitEuler, Leapfrog, Yoshida4) keep a bounded, oscillating
  error; RK4 is accurate but drifts steadily (`energy_drift.png`);
- a damped pendulum (c = 0.1 1/s) losing its swing, against the undamped one, in time
  (`pendulum_trajectory.png`) and in phase space: a closed orbit and an inward spiral
  (`pendulum_phase.png`);
- differentiation: d(final angle)/d(length) by `jax.grad` through `ds.simulate`, checked
  against a central finite difference.

Run: `python scenarios/pendulum_demo.py --out out` (`--smoke` simulates 10 s instead).
Exits with status 1 if the gradient check fails.
"""

import argparse
import time
from pathlib import Path

import jax
import matplotlib

# Before anything creates an array: the finite-difference check needs float64.
jax.config.update("jax_enable_x64", True)
# This script only writes PNG files, so it never needs a window, whatever MPLBACKEND says.
matplotlib.use("Agg")

import jax.numpy as jnp  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402

import diffsim as ds  # noqa: E402
import diffsim.plot as dsplot  # noqa: E402

LENGTH = 1.0  # m
ANGLE0 = 2.5  # rad
DAMPING = 0.1  # 1/s
DT = 0.05  # s
SAVE_EVERY = 1  # every step: fast swings stay smooth curves in the phase portrait
INTEGRATORS = (ds.Euler(), ds.SemiImplicitEuler(), ds.Leapfrog(), ds.Yoshida4(), ds.RK4())
# Central difference step: truncation error ~h^2, round-off ~1e-16/h; both far below rtol.
FD_STEP = 1e-5
GRAD_RTOL = 1e-6


def relative_energy_error(system, traj) -> jax.Array:
    energy = jax.vmap(system.energy)(traj.ys)
    return jnp.abs(energy - energy[0]) / jnp.abs(energy[0])


def gradient_check(y0, t1: float) -> tuple[float, float]:
    """d(final angle)/d(length) by autodiff and by central finite difference."""

    def final_angle(length):
        pendulum = ds.systems.Pendulum(length=length)
        return ds.simulate(pendulum, y0, t1=t1, dt=DT, integrator=ds.RK4()).ys.q[-1]

    grad = jax.grad(final_angle)(jnp.asarray(LENGTH))
    fd = (final_angle(LENGTH + FD_STEP) - final_angle(LENGTH - FD_STEP)) / (2 * FD_STEP)
    return float(grad), float(fd)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("out"), help="output folder")
    parser.add_argument("--smoke", action="store_true", help="simulate 10 s instead of 100 s")
    args = parser.parse_args(argv)
    t1 = 10.0 if args.smoke else 100.0
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()

    pendulum = ds.systems.Pendulum(length=LENGTH)
    damped = ds.systems.Pendulum(length=LENGTH, damping=DAMPING)
    y0 = pendulum.initial_state(ANGLE0)
    saveat = ds.SaveAt(every=SAVE_EVERY)
    runs = {
        type(integrator).__name__: (
            pendulum,
            ds.simulate(pendulum, y0, t1=t1, dt=DT, integrator=integrator, saveat=saveat),
        )
        for integrator in INTEGRATORS
    }
    damped_traj = ds.simulate(damped, y0, t1=t1, dt=DT, integrator=ds.RK4(), saveat=saveat)
    grad, fd = gradient_check(y0, t1)

    print(
        f"Pendulum L={LENGTH} m, released from {ANGLE0} rad, {t1:g} s at dt={DT} "
        f"({round(t1 / DT)} steps)"
    )
    print(f"  {'integrator':<18} {'max |dE|/E0':>12} {'final |dE|/E0':>14}")
    for name, (system, traj) in runs.items():
        err = relative_energy_error(system, traj)
        print(f"  {name:<18} {float(err.max()):>12.2e} {float(err[-1]):>14.2e}")
    energy = jax.vmap(damped.energy)(damped_traj.ys)
    print(
        f"Damped (c={DAMPING} 1/s, RK4): energy {float(energy[0]):.3f} J -> "
        f"{float(energy[-1]):.3g} J"
    )
    rel = abs(grad - fd) / abs(fd)
    ok = rel < GRAD_RTOL
    print(
        f"d(final angle)/d(length) at t={t1:g} s: jax.grad {grad:.10g}, "
        f"finite difference {fd:.10g}, relative difference {rel:.1e} "
        f"({'ok' if ok else f'FAIL: above {GRAD_RTOL:g}'})"
    )
    print(f"Figures in {args.out}/:")

    reference = runs["Yoshida4"][1]
    fig = dsplot.trajectory(reference, label="undamped (Yoshida4)")
    dsplot.trajectory(damped_traj, ax=fig.axes[0], label=f"damped, c={DAMPING} 1/s (RK4)")
    ax = fig.axes[0]
    ax.set(xlabel="t (s)", ylabel="angle (rad)", title=f"Pendulum released from {ANGLE0} rad")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.set_size_inches(11, 4)
    _save(fig, args.out / "pendulum_trajectory.png")

    fig = dsplot.phase_portrait(reference, label="undamped (Yoshida4)")
    dsplot.phase_portrait(damped_traj, ax=fig.axes[0], label=f"damped, c={DAMPING} 1/s (RK4)")
    ax = fig.axes[0]
    ax.set(xlabel="angle (rad)", ylabel="angular velocity (rad/s)", title="Phase portrait")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncols=2)
    fig.set_size_inches(6.5, 6)
    _save(fig, args.out / "pendulum_phase.png")

    fig = dsplot.energy_drift(runs)
    ax = fig.axes[0]
    ax.set(xlabel="t (s)", title=f"Relative energy error, pendulum from {ANGLE0} rad, dt={DT} s")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.set_size_inches(9, 4.5)
    _save(fig, args.out / "energy_drift.png")

    print(f"Done in {time.perf_counter() - start:.1f} s")
    return 0 if ok else 1


def _save(fig, path: Path) -> None:
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"  {path.name}")


if __name__ == "__main__":
    raise SystemExit(main())
