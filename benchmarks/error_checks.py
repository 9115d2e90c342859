"""What do the error checks cost? `ds.simulate` and `ds.ensemble` with `throw=True`
(the default: arguments checked up front, the status read back and raised in Python)
against `throw=False` and a hand-written `lax.scan`, in one process.

The error model (docs/errors.md) adds, per eager call: the argument checks (Python, on
concrete values), one read of the result code from the device (which waits for the
run: the figures below time calls to completion anyway), and in the compiled program a
final-state finiteness check (a reduction over the state, once per rollout, not per
step). The target is the rollout target: `ds.simulate / hand-written scan <= 1.1`, with
the checks on.

Cases, float32, RK4 at dt = 0.01, final state only:
- a short rollout (one pendulum, 1000 steps), where per-call overhead weighs most;
- the rollout benchmark's single case (one pendulum, 100,000 steps);
- an ensemble of 10,000 damped pendulums x 1000 steps (`ds.ensemble` of `ds.simulate`).

Run: `python benchmarks/error_checks.py` (about half a minute on the 2-core CPU).
"""

import statistics
import sys
import time

import jax
import jax.lax as lax
import jax.numpy as jnp

import diffsim as ds

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from rollout import machine  # noqa: E402

DT = 0.01


def _hand_scan(n: int):
    def accel(q, length, damping):
        return -(9.81 / length) * jnp.sin(q) - damping * 0.0

    @jax.jit
    def run(q0, length):
        def f(y):
            return jnp.stack([y[1], -(9.81 / length) * jnp.sin(y[0])])

        def step(y, _):
            k1 = f(y)
            k2 = f(y + 0.5 * DT * k1)
            k3 = f(y + 0.5 * DT * k2)
            k4 = f(y + DT * k3)
            return y + DT / 6 * (k1 + 2 * k2 + 2 * k3 + k4), None

        y, _ = lax.scan(step, jnp.stack([q0, jnp.zeros_like(q0)]), None, length=n)
        return y

    return run


def _simulate(n: int, throw: bool):
    def run(q0, length):
        system = ds.systems.Pendulum(length=length)
        y0 = ds.PhaseState(q=q0, v=jnp.zeros_like(q0))
        return ds.simulate(system, y0, n_steps=n, dt=DT, throw=throw).ys

    return run


def _ensemble(n: int, throw: bool):
    def member(length):
        system = ds.systems.Pendulum(length=length)
        y0 = ds.PhaseState(q=jnp.asarray(1.0, jnp.float32), v=jnp.asarray(0.0, jnp.float32))
        return ds.simulate(system, y0, n_steps=n, dt=DT, throw=throw).ys

    def run(lengths):
        return ds.ensemble(member, lengths, throw=throw).values

    return run


def _paired_ms(fns, args, rounds: int) -> list[float]:
    """Median ms of each of `fns` on `args`, called in turn in every round (so that
    drifts of a shared machine hit all alike)."""
    for fn in fns:
        jax.block_until_ready(fn(*args))
    times: list[list[float]] = [[] for _ in fns]
    for r in range(rounds):
        order = range(len(fns)) if r % 2 == 0 else reversed(range(len(fns)))
        for i in order:
            start = time.perf_counter()
            jax.block_until_ready(fns[i](*args))
            times[i].append(time.perf_counter() - start)
    return [1e3 * statistics.median(t) for t in times]


def main(rounds: int = 51) -> None:
    print(machine())
    q0, length = jnp.asarray(1.0, jnp.float32), jnp.asarray(1.0, jnp.float32)
    lengths = jnp.linspace(0.5, 2.0, 10_000, dtype=jnp.float32)
    for n in (1000, 100_000):
        fns = [_hand_scan(n), _simulate(n, True), _simulate(n, False)]
        scan, on, off = _paired_ms(fns, (q0, length), rounds)
        print(
            f"one pendulum, {n} steps: scan {scan:.3f} ms, simulate throw=True {on:.3f} ms "
            f"({on / scan:.2f}x scan), throw=False {off:.3f} ms; checks cost {on / off:.3f}x"
        )
    fns = [_ensemble(1000, True), _ensemble(1000, False)]
    on, off = _paired_ms(fns, (lengths,), max(5, rounds // 5))
    print(
        f"ensemble 10,000 x 1000 steps: throw=True {on:.2f} ms, throw=False {off:.2f} ms; "
        f"checks cost {on / off:.3f}x"
    )


if __name__ == "__main__":
    main()
