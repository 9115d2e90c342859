"""What resumability costs: `ds.ensemble(..., checkpoint=PATH)` and `out=STORE` against the
same ensemble without them.

The Lorenz ensemble of `benchmarks/ensemble.py` (Tsit5 tableau, dt = 0.001, 1000 steps,
float32, rho = linspace(0, 21, N)), N = 2^17 members in chunks of `batch_size` = 16384
(the issue's "chunks of >= 10^4 members"), three ways:

- `reduce`: `ds.Moments()` of the final state; the checkpoint commits each segment's
  reducer state;
- `per-member`: every member's final state returned; the checkpoint commits each
  segment's outputs;
- `out=`: every member's final state written to a zarr store (and the result codes to
  its commit record).

Each run with a checkpoint starts from an empty folder (a fresh run, all segments
computed and committed: the whole cost of resumability). Methods take turns; medians.
Target (issue 19): a checkpointed run <= 1.1x an unchecked one.

Run: `python benchmarks/ensemble_resume.py` (~2 minutes on the 2-core CPU),
`--n-power 15` for a quicker look.
"""

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp

import diffsim as ds

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from rollout import machine  # noqa: E402

MAX_OVERHEAD = 1.1
U0 = (jnp.float32(1.0), jnp.float32(0.0), jnp.float32(0.0))


def final_state(rho):
    lorenz = ds.systems.Lorenz(rho=rho)
    traj = ds.simulate(lorenz, U0, t1=1.0, dt=1e-3, integrator=ds.Tsit5Fixed(), throw=False)
    return traj.ys


def runs(rhos, batch_size: int, scratch: Path) -> dict:
    """name -> a function that runs it once, from an empty folder where it has one."""

    def fresh(name):
        path = scratch / name
        shutil.rmtree(path, ignore_errors=True)
        return path

    def block(res):
        jax.block_until_ready(jax.tree.leaves(res))

    return {
        "reduce": lambda: block(ds.ensemble(final_state, rhos, batch_size=batch_size,
                                            reduce=ds.Moments())),
        "reduce, checkpoint=": lambda: block(ds.ensemble(
            final_state, rhos, batch_size=batch_size, reduce=ds.Moments(),
            checkpoint=fresh("r"))),
        "per-member": lambda: block(ds.ensemble(final_state, rhos, batch_size=batch_size)),
        "per-member, checkpoint=": lambda: block(ds.ensemble(
            final_state, rhos, batch_size=batch_size, checkpoint=fresh("m"))),
        "per-member, out= (zarr)": lambda: block(ds.ensemble(
            final_state, rhos, batch_size=batch_size, out=fresh("z")).num_failed),
    }  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-power", type=int, default=17)
    parser.add_argument("--batch-size", type=int, default=16384)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    n = 2**args.n_power
    rhos = jnp.linspace(0.0, 21.0, n, dtype=jnp.float32)
    print(machine())
    print(f"Lorenz, Tsit5 tableau, 1000 steps, float32, N = 2^{args.n_power}, "
          f"batch_size = {args.batch_size}, {args.rounds} rounds")  # fmt: skip
    with tempfile.TemporaryDirectory() as scratch:
        fns = runs(rhos, args.batch_size, Path(scratch))
        for fn in fns.values():
            fn()  # compile
        times = {name: [] for name in fns}
        names = list(fns)
        for r in range(args.rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                start = time.perf_counter()
                fns[name]()
                times[name].append(time.perf_counter() - start)
    med = {name: statistics.median(ts) for name, ts in times.items()}
    ok = True
    for name, base in (
        ("reduce, checkpoint=", "reduce"),
        ("per-member, checkpoint=", "per-member"),
        ("per-member, out= (zarr)", "per-member"),
    ):
        over = med[name] / med[base]
        target = name.endswith("checkpoint=")
        verdict = ("PASS" if over <= MAX_OVERHEAD else "FAIL") if target else "(no target)"
        ok &= over <= MAX_OVERHEAD or not target
        print(f"  {name:<26} {med[name] * 1e3:8.1f} ms  vs {base:<11} {med[base] * 1e3:8.1f} ms"
              f"  = {over:.3f}x  {verdict}")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
