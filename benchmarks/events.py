"""Events (`ds.simulate(..., events=ds.Event(...))`): accuracy against closed forms and
the cost against the same rollout without events.

A ball dropped from height h at rest onto a floor with restitution e (a
`ds.systems.Projectile` in one dimension and an `Event` on its height with a reset
$v \\mapsto -e v$) hits the floor at

$$t_1 = \\sqrt{2h/g}, \\qquad t_{k+1} = t_k + 2 t_1 e^k .$$

- accuracy (float64): the first 50 bounce times (e = 0.95, h = 1 m) with `ds.RK4` at
  dt = 0.01 and with `ds.Tsit5(rtol=atol=1e-10)`; the derivative of the 6th bounce time
  with respect to e against its closed form $2 t_1 \\sum_{j<6} j e^{j-1}$, by reverse and
  forward mode.
- cost (float32): `jax.jit(jax.vmap(...))` over N balls (heights 1..2 m, e = 0.9, 5 s at
  dt = 0.01, `ds.RK4`, final state), with the event against without it (free fall
  through the floor: the same steps, no event work). Target (issue 17): N = 10^4 with
  events <= 2x without. Median of rounds, the two taking turns.

Run: `python benchmarks/events.py` (`--quick` for fewer rounds).
"""

import argparse
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

import diffsim as ds

G = 9.81


def _ball(e, h, t1, max_events, dtype=jnp.float64, **timing):
    ball = ds.systems.Projectile(gravity=G)
    floor = ds.Event(
        lambda t, y: y.q[0], direction=-1, reset=lambda t, y: ds.PhaseState(y.q, -e * y.v)
    )
    y0 = ds.PhaseState(q=jnp.stack([jnp.asarray(h, dtype)]), v=jnp.zeros(1, dtype))
    return ds.simulate(ball, y0, t1=t1, events=floor, max_events=max_events, **timing)


def _closed(e, h, k):
    first = np.sqrt(2 * h / G)
    return first + np.concatenate([[0.0], np.cumsum(2 * first * e ** np.arange(1, k))])


def accuracy() -> None:
    jax.config.update("jax_enable_x64", True)
    e, h = 0.95, 1.0
    closed = _closed(e, h, 50)
    t1 = float(np.round(closed[-1] + 0.5 * (closed[-1] - closed[-2]), 2))
    timings = {
        "RK4, dt = 0.01": dict(integrator=ds.RK4(), dt=0.01),
        "Tsit5, tol 1e-10": dict(integrator=ds.Tsit5(rtol=1e-10, atol=1e-10), adjoint=ds.Direct()),
    }
    print(
        "| integrator | bounces | max error of the 50 bounce times | d t6 / de: reverse, forward, closed form |"
    )
    print("|---|---|---|---|")
    for label, timing in timings.items():
        traj = _ball(e, h, t1, 50, **timing)
        error = np.abs(np.asarray(traj.events.times) - closed).max()

        def sixth(e, timing=timing):
            return _ball(e, 1.3, 3.5, 8, **timing).events.times[5]

        j = np.arange(1, 6)
        exact = 2 * np.sqrt(2 * 1.3 / G) * np.sum(j * 0.8 ** (j - 1))
        rev, fwd = jax.grad(sixth)(0.8), jax.jacfwd(sixth)(0.8)
        print(
            f"| {label} | {int(traj.events.count)} | {error:.1e} | "
            f"{float(rev):.10f}, {float(fwd):.10f}, {exact:.10f} |"
        )
    jax.config.update("jax_enable_x64", False)


def _timed(fns: dict, args, rounds: int) -> dict:
    for f in fns.values():
        jax.block_until_ready(f(args))
    times = {k: [] for k in fns}
    for _ in range(rounds):
        for k, f in fns.items():
            start = time.perf_counter()
            jax.block_until_ready(f(args))
            times[k].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


def cost(rounds: int) -> None:
    def with_event(h):
        return _ball(0.9, h, 5.0, 64, jnp.float32, dt=0.01, throw=False).ys.q[-1, 0]

    def without(h):
        ball = ds.systems.Projectile(gravity=G)
        y0 = ds.PhaseState(q=jnp.stack([h]), v=jnp.zeros(1))
        return ds.simulate(ball, y0, t1=5.0, dt=0.01, throw=False).ys.q[-1, 0]

    print("\n| N balls | without events | with events | ratio (target <= 2 at N = 10^4) |")
    print("|---|---|---|---|")
    for n in (1, 100, 10_000):
        hs = jnp.linspace(1.0, 2.0, n, dtype=jnp.float32)
        fns = {"without": jax.jit(jax.vmap(without)), "with": jax.jit(jax.vmap(with_event))}
        t = _timed(fns, hs, rounds)
        print(
            f"| {n} | {t['without'] * 1e3:.2f} ms | {t['with'] * 1e3:.2f} ms | "
            f"{t['with'] / t['without']:.0f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer timing rounds")
    args = parser.parse_args()
    print(f"{platform.processor() or platform.machine()}, jax {jax.__version__}\n")
    accuracy()
    cost(rounds=3 if args.quick else 7)


if __name__ == "__main__":
    main()
