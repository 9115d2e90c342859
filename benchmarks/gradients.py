"""Gradients through long rollouts: memory and time of each adjoint.

Problem (issue "Gradients through whole rollouts"): 256 pendulums, Leapfrog, dt = 1e-3,
100,000 steps, float32; loss = sum of final angles squared; gradient w.r.t. the 256
lengths. For each way of differentiating: XLA's compiled temp memory
(`jit(grad).lower(...).compile().memory_analysis()`), median fwd+bwd time over repeats
(compile excluded), and agreement with `Direct`.

Compared with diffrax on the same problem with the same arithmetic: a diffrax solver whose
step is exactly our Leapfrog step, under `RecursiveCheckpointAdjoint` (diffrax's default)
and `BacksolveAdjoint`. Backsolve integrates an augmented adjoint ODE whose state has no
(q, v) split, so it cannot run a kick-drift-kick step; it uses diffrax's Heun (also two
vector-field evaluations a step) and gives an approximate gradient.

Run: `python benchmarks/gradients.py [--quick] [--steps N]`.
"""

import argparse
import statistics
import time
from typing import ClassVar

import diffrax
import jax
import jax.numpy as jnp
import numpy as np

import diffsim as ds

N_PENDULUMS = 256
DT = 1e-3


def lengths0():
    return jnp.linspace(0.5, 2.0, N_PENDULUMS, dtype=jnp.float32)


def theta0():
    return jnp.linspace(0.1, 1.5, N_PENDULUMS, dtype=jnp.float32)


def diffsim_loss(adjoint, n_steps):
    def loss(lengths):
        pendulum = ds.systems.Pendulum(length=lengths)
        y0 = ds.PhaseState(q=theta0(), v=jnp.zeros(N_PENDULUMS, jnp.float32))
        traj = ds.simulate(
            pendulum, y0, n_steps=n_steps, dt=DT, integrator=ds.Leapfrog(), adjoint=adjoint
        )
        return jnp.sum(traj.ys.q[-1] ** 2)

    return loss


class DiffraxLeapfrog(diffrax.AbstractSolver):
    """diffsim's Leapfrog step, as a diffrax solver (for a like-for-like comparison)."""

    term_structure: ClassVar = diffrax.AbstractTerm
    interpolation_cls: ClassVar = diffrax.LocalLinearInterpolation

    def order(self, terms):
        return 2

    def init(self, terms, t0, t1, y0, args):
        return None

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        h = t1 - t0
        q, v = y0
        a0 = terms.vf(t0, (q, v), args)[1]
        v_half = v + 0.5 * h * a0
        q1 = q + h * v_half
        v1 = v_half + 0.5 * h * terms.vf(t1, (q1, v + h * a0), args)[1]
        y1 = (q1, v1)
        return y1, None, dict(y0=y0, y1=y1), None, diffrax.RESULTS.successful

    def func(self, terms, t0, y0, args):
        return terms.vf(t0, y0, args)


def _pendulum_vf(t, y, lengths):
    q, v = y
    return v, -(9.81 / lengths) * jnp.sin(q)


def diffrax_loss(adjoint, solver, n_steps):
    def loss(lengths):
        y0 = (theta0(), jnp.zeros(N_PENDULUMS, jnp.float32))
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(_pendulum_vf),
            solver,
            0.0,
            n_steps * DT,
            DT,
            y0,
            args=lengths,
            stepsize_controller=diffrax.ConstantStepSize(),
            adjoint=adjoint,
            max_steps=n_steps,
            saveat=diffrax.SaveAt(t1=True),
        )
        return jnp.sum(sol.ys[0][-1] ** 2)

    return loss


def measure(name, loss, repeats):
    x = lengths0()
    start = time.perf_counter()
    compiled = jax.jit(jax.value_and_grad(loss)).lower(x).compile()
    compile_s = time.perf_counter() - start
    memory = compiled.memory_analysis().temp_size_in_bytes
    compiled(x)[1].block_until_ready()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        value, grad = compiled(x)
        grad.block_until_ready()
        times.append(time.perf_counter() - start)
    return dict(
        name=name,
        memory=memory,
        time=statistics.median(times),
        compile=compile_s,
        grad=np.asarray(grad),
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument(
        "--long", type=int, default=1_000_000, help="steps for the long run (0: skip)"
    )
    args = parser.parse_args()
    repeats = 3 if args.quick else 5
    n = args.steps
    print(f"{N_PENDULUMS} pendulums, Leapfrog, dt={DT}, {n} steps, float32, grad w.r.t. lengths")
    print(
        f"jax {jax.__version__}, diffrax {diffrax.__version__}, backend {jax.default_backend()}\n"
    )

    rows = [
        measure("diffsim Direct", diffsim_loss(ds.Direct(), n), repeats),
        measure("diffsim Checkpointed", diffsim_loss(ds.Checkpointed(), n), repeats),
        measure(
            "diffsim Checkpointed(levels=3)", diffsim_loss(ds.Checkpointed(levels=3), n), repeats
        ),
        measure("diffsim Reversible", diffsim_loss(ds.Reversible(), n), repeats),
        measure(
            "diffsim Reversible(checkpoint_every=1000)",
            diffsim_loss(ds.Reversible(checkpoint_every=1000), n),
            repeats,
        ),
        measure(
            "diffrax RecursiveCheckpoint (same step)",
            diffrax_loss(diffrax.RecursiveCheckpointAdjoint(), DiffraxLeapfrog(), n),
            repeats,
        ),
        measure(
            "diffrax Backsolve (Heun)",
            diffrax_loss(diffrax.BacksolveAdjoint(), diffrax.Heun(), n),
            repeats,
        ),
    ]
    direct = rows[0]
    header = f"{'method':44s} {'temp memory':>12s} {'mem/Direct':>10s} {'fwd+bwd':>9s} {'t/Direct':>8s} {'compile':>8s} {'rel.err vs Direct':>17s}"
    print(header)
    print("-" * len(header))
    for r in rows:
        err = np.max(np.abs(r["grad"] - direct["grad"])) / np.max(np.abs(direct["grad"]))
        print(
            f"{r['name']:44s} {r['memory'] / 2**20:9.2f} MB {r['memory'] / direct['memory']:10.4f} "
            f"{r['time']:8.3f}s {r['time'] / direct['time']:8.2f} {r['compile']:7.2f}s {err:17.2e}"
        )

    by = {r["name"]: r for r in rows}
    rec = by["diffrax RecursiveCheckpoint (same step)"]
    checks = [
        (
            "Reversible memory <= 1% of Direct",
            by["diffsim Reversible"]["memory"] <= 0.01 * direct["memory"],
        ),
        (
            "Reversible time <= 1.5x Direct",
            by["diffsim Reversible"]["time"] <= 1.5 * direct["time"],
        ),
        (
            "Checkpointed memory <= 2% of Direct",
            by["diffsim Checkpointed"]["memory"] <= 0.02 * direct["memory"],
        ),
        (
            "Checkpointed time <= 1.3x Direct",
            by["diffsim Checkpointed"]["time"] <= 1.3 * direct["time"],
        ),
        (
            "Reversible >= 2x faster than diffrax RecursiveCheckpoint",
            rec["time"] >= 2 * by["diffsim Reversible"]["time"],
        ),
        (
            "Checkpointed >= 2x faster than diffrax RecursiveCheckpoint",
            rec["time"] >= 2 * by["diffsim Checkpointed"]["time"],
        ),
    ]
    print()
    for label, ok in checks:
        print(f"  [{'PASS' if ok else 'FAIL'}] {label}")

    if args.long:
        print(f"\nLong rollout: {args.long:,} steps (the same problem), one fwd+bwd each")
        for name, adjoint in [("Reversible", ds.Reversible()), ("Checkpointed", ds.Checkpointed())]:
            r = measure(f"diffsim {name}", diffsim_loss(adjoint, args.long), 1)
            print(
                f"  {name:14s} temp memory {r['memory'] / 2**20:8.2f} MB, fwd+bwd {r['time']:.2f} s, "
                f"compile {r['compile']:.2f} s, finite: {np.isfinite(r['grad']).all()}"
            )


if __name__ == "__main__":
    main()
