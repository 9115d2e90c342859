"""Is `flat_jit` still needed? Eager dispatch of `ds.ensemble` and `ds.fit` with and
without it.

`diffsim/_flat_jit.py` is a second dispatch path beside `eqx.filter_jit`: eager calls of
`ds.ensemble` (one device) and `ds.fit` flatten their arguments once and call a `jax.jit`
of the array leaves, instead of `eqx.filter_jit`'s partition and recombine of the whole
argument and result pytrees on every call. It is kept only if a benchmark target needs
it. This script measures the same call both ways in one process, by turning the
`flat_jit` path off (the eager entry points then fall through to `eqx.filter_jit`, as
traced calls always do):

- the ensemble target `ds.ensemble / hand-written scan <= 1.1` (benchmarks/ensemble.py)
  at N = 2^10, the size where Python overhead weighs most: the Lorenz ensemble, Tsit5
  tableau, 1000 steps, float32, returning the `Trajectory`;
- a short ensemble (1024 members x 10 steps), where the call is almost all overhead;
- the fit target `SciPy / ds.fit >= 5` (benchmarks/fit.py): one `ds.fit` of the
  pendulum model on the same data.

The two paths take turns in every round; figures are medians.

Run: `python benchmarks/dispatch.py` (about a minute on the 2-core CPU).
"""

import contextlib
import statistics
import sys
import time

import jax
import jax.numpy as jnp

import diffsim as ds
import diffsim.ensembles._ensemble as ensemble_module
import diffsim.fitting._fit as fit_module
from diffsim._flat_jit import NOT_APPLICABLE

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import ensemble as ens  # noqa: E402
from rollout import machine  # noqa: E402


@contextlib.contextmanager
def without_flat_jit():
    """Eager calls fall through to eqx.filter_jit, the path of traced calls."""
    saved = ensemble_module._ensemble_eager, fit_module._fit_core_eager
    ensemble_module._ensemble_eager = lambda *a, **k: NOT_APPLICABLE
    fit_module._fit_core_eager = lambda *a, **k: NOT_APPLICABLE
    try:
        yield
    finally:
        ensemble_module._ensemble_eager, fit_module._fit_core_eager = saved


def _time(fn, *args) -> float:
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    return time.perf_counter() - start


def compare(label: str, fn, args: tuple, rounds: int, reference=None) -> dict:
    """Median seconds of `fn(*args)` with and without flat_jit (and of `reference`)."""
    with without_flat_jit():
        jax.block_until_ready(fn(*args))  # compile the filter_jit program
    jax.block_until_ready(fn(*args))
    if reference is not None:
        jax.block_until_ready(reference(*args))
    times = {"flat_jit": [], "filter_jit": [], "reference": []}
    for r in range(rounds):
        order = ["flat_jit", "filter_jit"] if r % 2 == 0 else ["filter_jit", "flat_jit"]
        for name in order:
            if name == "flat_jit":
                times[name].append(_time(fn, *args))
            else:
                with without_flat_jit():
                    times[name].append(_time(fn, *args))
        if reference is not None:
            times["reference"].append(_time(reference, *args))
    med = {k: statistics.median(v) for k, v in times.items() if v}
    line = (
        f"{label:44s} flat_jit {med['flat_jit'] * 1e3:8.3f} ms   "
        f"filter_jit {med['filter_jit'] * 1e3:8.3f} ms   "
        f"difference {(med['filter_jit'] - med['flat_jit']) * 1e3:+.3f} ms"
    )
    if reference is not None:
        line += (
            f"\n{'':44s} scan {med['reference'] * 1e3:8.3f} ms   ratio to scan: "
            f"flat_jit {med['flat_jit'] / med['reference']:.3f}, "
            f"filter_jit {med['filter_jit'] / med['reference']:.3f} (target <= 1.1)"
        )
    print(line, flush=True)
    return med


def main() -> int:
    print(machine())
    rhos = ens.rhos_for(2**10)
    compare(
        "ds.ensemble, Lorenz 2^10 x 1000 Tsit5 steps",
        ens.make_ensemble_eager(ens.member_trajectory),
        (rhos,),
        rounds=41,
        reference=ens.make_scan(),
    )

    def short_member(rho):
        system = ds.systems.Lorenz(rho=rho)
        return ds.simulate(system, ens.u0(), n_steps=10, dt=1e-3, throw=False)

    compare(
        "ds.ensemble, Lorenz 2^10 x 10 steps",
        lambda r: ds.ensemble(short_member, r),
        (rhos,),
        rounds=201,
    )

    jax.config.update("jax_enable_x64", True)
    import fit as fit_bench  # float64 from here on, as benchmarks/fit.py runs

    data = jnp.asarray(fit_bench.make_data(0))
    compare(
        "ds.fit, pendulum (2 parameters, 1000 RK4 steps)",
        lambda d: fit_bench.fit_ds(d)[2]["res"].values,
        (data,),
        rounds=21,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
