"""Is `ds.WisdomHolman` a match for REBOUND's WHFast? Energy error and time per step on the
outer solar system, and position accuracy against `ds.Yoshida4` at a ten times smaller
step.

The Sun (with the inner planets' mass), Jupiter, Saturn, Uranus and Neptune from
`ds.systems.solar_system` (Hairer, Lubich & Wanner's initial state, barycentric), float64:

- energy: 10^5 years (365,200 days) at dt = 100 days, `ds.WisdomHolman` against REBOUND's
  WHFast (Jacobi coordinates, no symplectic corrector, `safe_mode = 0`), the largest
  relative energy error over 3652 samples (every 100 steps); `ds.Yoshida4` at dt = 10
  days as well;
- time per step: the run time of the whole rollout after compilation (median of 3)
  divided by its steps. WHFast's is `sim.integrate` over the same steps, in C;
- positions after 1000 years (365,200 days) against `ds.Yoshida4` at dt = 1 day: WH and
  WHFast at dt = 100 days, `ds.Yoshida4` at dt = 10 days.

Targets: WH energy error <= 2x WHFast's, WH time per step <= 2x WHFast's. REBOUND is a
comparison only, not a dependency (`pip install rebound`); without it the script skips
the WHFast rows. Run: `python benchmarks/wisdom_holman.py` (about a minute on the 2-core
CPU; `--quick`: 1000 years).
"""

import statistics
import sys
import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import diffsim as ds  # noqa: E402

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from rollout import machine  # noqa: E402

try:
    import rebound
except ImportError:  # a comparison only: the rest runs without it
    rebound = None

YEAR = 365.25


def outer_planets():
    full, y0 = ds.systems.solar_system()
    system = ds.systems.NBody(masses=full.masses[:5], G=full.G)
    masses = system.masses[:, None]
    q, v = y0.q[:5], y0.v[:5]
    total = jnp.sum(masses)
    q = q - jnp.sum(masses * q, 0) / total
    v = v - jnp.sum(masses * v, 0) / total
    return system, ds.PhaseState(q=q, v=v)


def diffsim_run(system, y0, integrator, dt, n, every):
    energy = lambda t, y: system.energy(y)  # noqa: E731
    with jax.default_device(jax.devices("cpu")[0]):
        run = jax.jit(
            lambda y: (
                ds.simulate(
                    system,
                    y,
                    n_steps=n,
                    dt=dt,
                    integrator=integrator,
                    saveat=ds.SaveAt(every=every, fn=energy),
                ).ys
            )
        )
        final = jax.jit(
            lambda y: ds.simulate(system, y, n_steps=n, dt=dt, integrator=integrator).ys.q[-1]
        )
        start = time.perf_counter()
        energies = np.asarray(run(y0))
        compile_s = time.perf_counter() - start
        jax.block_until_ready(final(y0))
        times = []
        for _ in range(3):
            start = time.perf_counter()
            jax.block_until_ready(final(y0))
            times.append(time.perf_counter() - start)
    error = np.abs(energies / energies[0] - 1).max()
    return error, statistics.median(times) / n, compile_s


def diffsim_position(system, y0, integrator, dt, days):
    n = round(days / dt)
    traj = ds.simulate(system, y0, n_steps=n, dt=dt, integrator=integrator)
    return np.asarray(traj.ys.q[-1])


def rebound_sim(system, y0, dt):
    sim = rebound.Simulation()
    sim.G = float(system.G)
    for m, q, v in zip(np.asarray(system.masses), np.asarray(y0.q), np.asarray(y0.v), strict=True):
        sim.add(m=float(m), x=q[0], y=q[1], z=q[2], vx=v[0], vy=v[1], vz=v[2])
    sim.integrator = "whfast"
    sim.integrator.safe_mode = 0
    sim.dt = dt
    return sim


def rebound_run(system, y0, dt, n, every):
    sim = rebound_sim(system, y0, dt)
    e0 = sim.energy()
    errors = []
    for k in range(every, n + 1, every):
        sim.integrate(k * dt, exact_finish_time=0)
        errors.append(abs(sim.energy() / e0 - 1))
    times = []
    for _ in range(3):
        sim = rebound_sim(system, y0, dt)
        start = time.perf_counter()
        sim.integrate(n * dt, exact_finish_time=0)
        times.append(time.perf_counter() - start)
    return max(errors), statistics.median(times) / n


def rebound_position(system, y0, dt, days):
    sim = rebound_sim(system, y0, dt)
    sim.integrate(days, exact_finish_time=0)
    return np.array([[p.x, p.y, p.z] for p in sim.particles])


def main(argv=None) -> int:
    quick = "--quick" in (argv if argv is not None else sys.argv[1:])
    days = 365_200.0 if quick else 36_520_000.0
    print(machine(*([rebound] if rebound else [])))
    system, y0 = outer_planets()
    print(f"Sun + 4 giant planets, {days / YEAR:,.0f} years, float64\n")
    rows = {}
    rows["WisdomHolman dt=100"] = diffsim_run(
        system, y0, ds.WisdomHolman(), 100.0, round(days / 100), 100
    )
    rows["Yoshida4 dt=10"] = diffsim_run(system, y0, ds.Yoshida4(), 10.0, round(days / 10), 1000)
    if rebound is not None:
        rows["WHFast dt=100"] = (*rebound_run(system, y0, 100.0, round(days / 100), 100), 0.0)
    print(f"{'method':<22}{'max |dE/E|':>12}{'us/step':>10}{'us/100 d':>10}{'compile s':>11}")
    for name, (error, per_step, compile_s) in rows.items():
        dt = float(name.split("dt=")[1])
        per_100d = per_step * 100 / dt
        print(
            f"{name:<22}{error:12.2e}{per_step * 1e6:10.2f}{per_100d * 1e6:10.2f}{compile_s:11.2f}"
        )

    horizon = 365_200.0
    truth = diffsim_position(system, y0, ds.Yoshida4(), 1.0, horizon)
    print(
        f"\nlargest position error after {horizon / YEAR:,.0f} years (AU), "
        "against Yoshida4 at dt = 1 day:"
    )
    positions = {
        "WisdomHolman dt=100": diffsim_position(system, y0, ds.WisdomHolman(), 100.0, horizon),
        "Yoshida4 dt=10": diffsim_position(system, y0, ds.Yoshida4(), 10.0, horizon),
    }
    if rebound is not None:
        positions["WHFast dt=100"] = rebound_position(system, y0, 100.0, horizon)
    for name, q in positions.items():
        print(f"  {name:<22}{np.abs(q - truth).max():10.2e}")

    if rebound is None:
        print("\nrebound is not installed (pip install rebound): WHFast rows skipped.")
        return 0
    wh, fast = rows["WisdomHolman dt=100"], rows["WHFast dt=100"]
    for label, ratio in (("energy error", wh[0] / fast[0]), ("time per step", wh[1] / fast[1])):
        verdict = "PASS" if ratio <= 2 else "FAIL"
        print(f"\nWisdomHolman / WHFast {label}: {ratio:.2f} (target <= 2) {verdict}", end="")
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
