"""Rollout speed: `ds.simulate` against a hand-written `lax.scan`, `vmap(diffrax)` and NumPy.

Two problems, float32, RK4 at dt = 0.01, final state only:

- ensemble: 10,000 damped pendulums (lengths 0.5..2 m, damping 0.1 /s, from 1 rad at
  rest), 1000 steps;
- single: one pendulum (length 1.3 m, damping 0.001 /s), 100,000 steps. The damping is
  light so that the final state is O(1) and the agreement check below means something.

Every method does the same arithmetic, $\\ddot\\theta = -(g/L)\\sin\\theta - c\\dot\\theta$
stepped by the classical RK4 tableau, and the final states are compared with the scan's.
Each function is jit-compiled and run once before timing; timed calls end in
`block_until_ready`; the methods take turns within each round (so load from other work on
a shared machine hits them alike) and the reported figure is the median over rounds.
Ratios are of the medians, with the median of the per-round ratios beside them.

Run: `python benchmarks/rollout.py` (`make bench`), `--quick` for fewer repeats,
`--breakdown` to also time what `ds.simulate` adds to the scan step by step.
"""

import argparse
import datetime
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import ClassVar

import diffrax
import equinox as eqx
import jax
import jax.lax as lax
import jax.numpy as jnp
import numpy as np

import diffsim as ds

G = 9.81
DT = 0.01
THETA0 = 1.0

N_ENSEMBLE = 10_000
STEPS_ENSEMBLE = 1_000
DAMPING_ENSEMBLE = 0.1

STEPS_SINGLE = 100_000
LENGTH_SINGLE = 1.3
DAMPING_SINGLE = 0.001

# Targets from the issue: ds.simulate within 10% of the scan, and well ahead of diffrax.
MAX_SIMULATE_OVER_SCAN = 1.1
MIN_DIFFRAX_OVER_SIMULATE = 2.5
# Methods that round differently (diffrax sums dt * k_i, NumPy has its own sin) drift
# apart by float32 rounding, which grows with the number of steps; see check_agreement.
AGREEMENT_TOL = 1e-5


# --------------------------------------------------------------------------------------
# The methods. Each `make_*` returns a function of the lengths that gives (q, v) at t1.


def make_simulate_vmap(damping: float, t1: float) -> Callable:
    """ds.simulate as a user would write it, vmapped over one Pendulum per length."""
    y0 = ds.PhaseState(q=jnp.float32(THETA0), v=jnp.float32(0.0))

    def one(length):
        pendulum = ds.systems.Pendulum(length=length, damping=damping)
        traj = ds.simulate(pendulum, y0, t1=t1, dt=DT, integrator=ds.RK4())
        return traj.ys.q[-1], traj.ys.v[-1]

    return jax.jit(lambda lengths: jax.vmap(one)(lengths))


def make_simulate_array(damping: float, t1: float) -> Callable:
    """ds.simulate of one Pendulum whose length is an array, with an array state."""

    def run(lengths):
        pendulum = ds.systems.Pendulum(length=lengths, damping=damping)
        y0 = ds.PhaseState(q=jnp.full_like(lengths, THETA0), v=jnp.zeros_like(lengths))
        traj = ds.simulate(pendulum, y0, t1=t1, dt=DT, integrator=ds.RK4())
        return traj.ys.q[-1], traj.ys.v[-1]

    return jax.jit(run)


def _acceleration(length, damping, q, v):
    # The same expression as ds.systems.Pendulum.acceleration.
    return -(G / length) * jnp.sin(q) - damping * v


def _rk4_step(length, damping, q, v, dt):
    # The same operations, in the same order, as ds.RK4.step on a PhaseState.
    half = 0.5 * dt
    k1q, k1v = v, _acceleration(length, damping, q, v)
    k2q, k2v = v + half * k1v, _acceleration(length, damping, q + half * k1q, v + half * k1v)
    k3q, k3v = v + half * k2v, _acceleration(length, damping, q + half * k2q, v + half * k2v)
    k4q, k4v = v + dt * k3v, _acceleration(length, damping, q + dt * k3q, v + dt * k3v)
    q1 = q + dt * ((1 / 6) * k1q + (1 / 3) * k2q + (1 / 3) * k3q + (1 / 6) * k4q)
    v1 = v + dt * ((1 / 6) * k1v + (1 / 3) * k2v + (1 / 3) * k3v + (1 / 6) * k4v)
    return q1, v1


def _scan_one(length, damping, n_steps):
    def body(carry, _):
        return _rk4_step(length, damping, *carry, DT), None

    init = (jnp.float32(THETA0), jnp.float32(0.0))
    return lax.scan(body, init, None, length=n_steps)[0]


def make_scan(damping: float, n_steps: int, batched: bool = True) -> Callable:
    """The reference: a hand-written lax.scan of the RK4 step, vmapped over the lengths."""
    one = lambda length: _scan_one(length, damping, n_steps)  # noqa: E731
    return jax.jit(jax.vmap(one) if batched else one)


class _DiffraxRK4(diffrax.AbstractERK):
    """The classical RK4 tableau (diffrax 0.7 ships no RK4); no error estimate."""

    tableau: ClassVar[diffrax.ButcherTableau] = diffrax.ButcherTableau(
        c=np.array([1 / 2, 1 / 2, 1.0]),
        b_sol=np.array([1 / 6, 1 / 3, 1 / 3, 1 / 6]),
        b_error=np.zeros(4),
        a_lower=(np.array([1 / 2]), np.array([0.0, 1 / 2]), np.array([0.0, 0.0, 1.0])),
    )
    interpolation_cls: ClassVar[Callable[..., diffrax.AbstractLocalInterpolation]] = (
        diffrax.ThirdOrderHermitePolynomialInterpolation.from_k
    )

    def order(self, terms):
        return 4


def make_diffrax(damping: float, n_steps: int, batched: bool = True) -> Callable:
    """jax.vmap of diffrax.diffeqsolve with the RK4 tableau at a constant step."""

    def field(t, y, length):
        q, v = y
        return v, _acceleration(length, damping, q, v)

    term = diffrax.ODETerm(field)

    def one(length):
        sol = diffrax.diffeqsolve(
            term,
            _DiffraxRK4(),
            t0=0.0,
            t1=n_steps * DT,
            dt0=DT,
            y0=(jnp.float32(THETA0), jnp.float32(0.0)),
            args=length,
            saveat=diffrax.SaveAt(t1=True),
            stepsize_controller=diffrax.ConstantStepSize(),
            max_steps=n_steps,
        )
        q, v = sol.ys
        return q[-1], v[-1], sol.stats["num_steps"]

    return jax.jit(jax.vmap(one) if batched else one)


def _rk4_loop(length, q, v, damping, n_steps, sin):
    """RK4 in a Python loop, with the scan's arithmetic; Python-float constants take the
    dtype of the arrays (NumPy's NEP 50), so float32 arrays stay float32."""
    half = 0.5 * DT

    def acceleration(q, v):
        return -(G / length) * sin(q) - damping * v

    for _ in range(n_steps):
        k1q, k1v = v, acceleration(q, v)
        k2q, k2v = v + half * k1v, acceleration(q + half * k1q, v + half * k1v)
        k3q, k3v = v + half * k2v, acceleration(q + half * k2q, v + half * k2v)
        k4q, k4v = v + DT * k3v, acceleration(q + DT * k3q, v + DT * k3v)
        q = q + DT * ((1 / 6) * k1q + (1 / 3) * k2q + (1 / 3) * k3q + (1 / 6) * k4q)
        v = v + DT * ((1 / 6) * k1v + (1 / 3) * k2v + (1 / 3) * k3v + (1 / 6) * k4v)
    return q, v


def make_numpy(damping: float, n_steps: int) -> Callable:
    """Vectorised NumPy, float32, the same arithmetic as the scan."""

    def run(lengths):
        length = np.asarray(lengths, np.float32)
        q0, v0 = np.full_like(length, THETA0), np.zeros_like(length)
        q, v = _rk4_loop(length, q0, v0, damping, n_steps, np.sin)
        assert q.dtype == np.float32 and v.dtype == np.float32
        return q, v

    return run


def reference_float64(lengths, damping: float, n_steps: int):
    """The same RK4 in float64 (NumPy; plain Python floats for one pendulum), to show that
    the float32 methods differ from each other only by rounding."""
    length = np.asarray(lengths, np.float64)
    if length.ndim == 0:
        return _rk4_loop(float(length), THETA0, 0.0, damping, n_steps, math.sin)
    q0, v0 = np.full_like(length, THETA0), np.zeros_like(length)
    return _rk4_loop(length, q0, v0, damping, n_steps, np.sin)


# --------------------------------------------------------------------------------------
# What ds.simulate adds to the scan, one piece at a time (--breakdown). These copy the
# loop body of diffsim/engine/_fixed.py's simulate_fixed; update them if it changes.


def _nonfinite_body(length, damping):
    def body(carry):
        q, v, k, bad = carry
        q1, v1 = _rk4_step(length, damping, q, v, DT)
        finite = jnp.stack([jnp.all(jnp.isfinite(q1)), jnp.all(jnp.isfinite(v1))]).all()
        bad = jnp.where((bad < 0) & ~finite, k, bad)
        return q1, v1, k + 1, bad

    return body


def _flat(body, carry, n):
    return lax.scan(lambda c, _: (body(c), None), carry, None, length=n)[0]


def _segmented(body, carry, n):
    """The loop layout of ds.Checkpointed(): ceil(sqrt(n))-step segments, each a
    jax.checkpoint-ed inner scan, run by an outer scan, then the remainder."""
    s = math.ceil(math.sqrt(n))
    n_seg, rem = divmod(n, s)
    segment = jax.checkpoint(lambda c: _flat(body, c, s), prevent_cse=False)
    carry = _flat(segment, carry, n_seg)
    if rem:
        carry = jax.checkpoint(lambda c: _flat(body, c, rem), prevent_cse=False)(carry)
    return carry


def make_breakdown(damping: float, n_steps: int, lengths: jax.Array) -> dict:
    def init():
        return (jnp.float32(THETA0), jnp.float32(0.0), jnp.int32(0), jnp.int32(-1))

    def with_counter(length):
        def body(carry):
            q, v, k = carry
            return (*_rk4_step(length, damping, q, v, DT), k + 1)

        q, v, _ = _flat(body, init()[:3], n_steps)
        return q, v

    def with_check(length):
        q, v, _, bad = _flat(_nonfinite_body(length, damping), init(), n_steps)
        return q, v, bad

    def with_check_checkpointed(length):
        body = _nonfinite_body(length, damping)
        q, v, _, bad = _segmented(body, init(), n_steps)
        return q, v, bad

    t1 = n_steps * DT
    y0 = ds.PhaseState(q=jnp.float32(THETA0), v=jnp.float32(0.0))

    def simulate_with(**kwargs):
        def one(length):
            pendulum = ds.systems.Pendulum(length=length, damping=damping)
            traj = ds.simulate(pendulum, y0, t1=t1, dt=DT, integrator=ds.RK4(), **kwargs)
            return traj.ys.q[-1], traj.ys.v[-1]

        return one

    rows = {
        "lax.scan (reference)": lambda length: _scan_one(length, damping, n_steps),
        "+ step counter": with_counter,
        "+ counter + non-finite check": with_check,
        "+ ... in Checkpointed segments": with_check_checkpointed,
        "ds.simulate(adjoint=ds.Direct())": simulate_with(adjoint=ds.Direct()),
        "ds.simulate(throw=False)": simulate_with(throw=False),
        "ds.simulate (default)": simulate_with(),
    }
    if lengths.ndim == 0:
        return {name: jax.jit(f) for name, f in rows.items()}
    return {name: jax.jit(jax.vmap(f)) for name, f in rows.items()}


def run_breakdown(label: str, damping: float, n_steps: int, x, repeats: int, reps_compile: int):
    fns = make_breakdown(damping, n_steps, x)
    times = time_interleaved(fns, (x,), repeats)
    print_times(f"\n== Breakdown, {label}", times, "lax.scan (reference)")
    makers = {name: (lambda name=name: make_breakdown(damping, n_steps, x)[name]) for name in fns}
    print_first_calls(makers, (x,), reps_compile)


# --------------------------------------------------------------------------------------
# Timing.


def _call(fn, *args):
    return jax.block_until_ready(fn(*args))


def time_interleaved(fns: dict, args: tuple, repeats: int) -> dict[str, list[float]]:
    """Time each function `repeats` times, taking turns (the order rotates every round)."""
    for fn in fns.values():
        _call(fn, *args)  # compile and warm up
    names = list(fns)
    times = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start = time.perf_counter()
            _call(fns[name], *args)
            times[name].append(time.perf_counter() - start)
    return times


def time_first_call(make: Callable[[], Callable], args: tuple, repeats: int) -> dict:
    """Trace + lower, XLA compile, and the whole first call, from empty jit caches."""
    rows = []
    for _ in range(repeats):
        jax.clear_caches()
        fn = make()
        start = time.perf_counter()
        lowered = fn.lower(*args)
        traced = time.perf_counter()
        compiled = lowered.compile()
        built = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        done = time.perf_counter()
        rows.append((traced - start, built - traced, done - start))
    return {
        key: statistics.median(r[i] for r in rows)
        for i, key in enumerate(("trace+lower", "compile", "first call"))
    }


def print_first_calls(makers: dict, args: tuple, repeats: int) -> dict:
    print(f"  first call, median of {repeats} from empty caches:")
    print(f"  {'method':<36} {'trace+lower':>11} {'XLA compile':>11} {'first call':>11}")
    out = {}
    for name, make in makers.items():
        c = out[name] = time_first_call(make, args, repeats)
        line = "".join(_fmt(c[k]) + " " for k in ("trace+lower", "compile", "first call"))
        print(f"  {name:<36} {line}")
    return out


def _fmt(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:8.3f} s "
    return f"{seconds * 1e3:8.2f} ms"


def _median(xs):
    return statistics.median(xs)


def ratio(times: dict, num: str, den: str) -> tuple[float, float]:
    """(median(num) / median(den), median over rounds of num / den)."""
    of_medians = _median(times[num]) / _median(times[den])
    paired = _median([a / b for a, b in zip(times[num], times[den], strict=True)])
    return of_medians, paired


def print_times(title: str, times: dict, reference: str) -> None:
    print(f"\n{title}")
    print(f"  {'method':<36} {'median':>11} {'min':>11} {'max':>11}  / {reference}")
    for name, ts in times.items():
        r, paired = ratio(times, name, reference)
        print(
            f"  {name:<36} {_fmt(_median(ts))} {_fmt(min(ts))} {_fmt(max(ts))}"
            f"  {r:5.2f}x ({paired:.2f})"
        )


def check_target(label: str, value: float, paired: float, op: str, bound: float) -> bool:
    ok = value <= bound if op == "<=" else value >= bound
    verdict = "PASS" if ok else "FAIL"
    print(f"  {label:<44} {value:6.2f} (paired {paired:.2f})  target {op} {bound}  {verdict}")
    return ok


def _max_abs_diff(a, b) -> float:
    diffs = [np.max(np.abs(np.asarray(x) - np.asarray(y))) for x, y in zip(a, b, strict=True)]
    return float(max(diffs))


def check_agreement(results: dict, reference: str, exact) -> bool:
    """Print each method's distance from the scan and from float64; flag a method whose
    distance from the scan is more than rounding can explain: AGREEMENT_TOL plus 10x the
    scan's own float32 error."""
    scan_error = _max_abs_diff(results[reference][:2], exact)
    tol = AGREEMENT_TOL + 10 * scan_error
    print(f"  final state (q and v), max abs difference from {reference} / from float64 RK4:")
    ok = True
    for name, out in results.items():
        d = _max_abs_diff(out[:2], results[reference][:2])
        flag = "" if d <= tol else f"  DISAGREES (> {tol:.2g})"
        ok &= d <= tol
        print(f"    {name:<34} {d:9.3g} {_max_abs_diff(out[:2], exact):9.3g}{flag}")
    return ok


def machine(*modules) -> str:
    """One line naming the CPU, the JAX backend and the versions of `modules` (default
    diffrax and equinox), for the header of every benchmark's output."""
    model = platform.processor() or "unknown CPU"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    device = jax.devices()[0]
    versions = ", ".join(f"{m.__name__} {m.__version__}" for m in (modules or (diffrax, eqx)))
    return (
        f"{model}, {os.cpu_count()} CPUs; jax {jax.__version__} on {device.platform}, "
        f"{versions}, numpy {np.__version__}, "
        f"python {platform.python_version()}; {datetime.date.today().isoformat()}"
    )


# --------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds instead of 15 / 31")
    parser.add_argument("--repeats", type=int, help="timed rounds for both problems")
    parser.add_argument(
        "--breakdown", action="store_true", help="also time what ds.simulate adds to a scan"
    )
    args = parser.parse_args()
    if jax.config.jax_enable_x64:
        sys.exit("This benchmark is float32: unset JAX_ENABLE_X64.")
    reps_ensemble = args.repeats or (3 if args.quick else 15)
    reps_single = args.repeats or (3 if args.quick else 31)
    reps_compile = 1 if args.quick else 3

    print(machine())
    print(
        f"RK4, dt={DT}, float32, final state only. Medians over {reps_ensemble} (ensemble) "
        f"and {reps_single} (single)\nrounds in which the methods take turns; ratios are of "
        "the medians, (paired) the median of per-round ratios."
    )
    ok_numbers = True
    passed = []

    # Warm-up, so that the first compile timed below is not charged with one-off setup.
    tiny = jnp.linspace(0.5, 2.0, 3, dtype=jnp.float32)
    for make in (make_simulate_vmap, make_simulate_array):
        _call(make(DAMPING_ENSEMBLE, 2 * DT), tiny)
    _call(make_scan(DAMPING_ENSEMBLE, 2), tiny)

    # --- Ensemble ----------------------------------------------------------------------
    lengths = jnp.linspace(0.5, 2.0, N_ENSEMBLE, dtype=jnp.float32)
    t1 = STEPS_ENSEMBLE * DT
    sim_vmap = "ds.simulate, vmap"
    sim_array = "ds.simulate, (N,) state"
    scan = "lax.scan, vmap"
    fns = {
        sim_vmap: make_simulate_vmap(DAMPING_ENSEMBLE, t1),
        sim_array: make_simulate_array(DAMPING_ENSEMBLE, t1),
        scan: make_scan(DAMPING_ENSEMBLE, STEPS_ENSEMBLE),
        "vmap(diffrax), RK4 tableau": make_diffrax(DAMPING_ENSEMBLE, STEPS_ENSEMBLE),
        "NumPy, vectorised": make_numpy(DAMPING_ENSEMBLE, STEPS_ENSEMBLE),
    }
    title = f"Ensemble: {N_ENSEMBLE} pendulums, {STEPS_ENSEMBLE} steps"
    print(f"\n== {title}")
    results = {name: _call(fn, lengths) for name, fn in fns.items()}
    steps = np.asarray(results["vmap(diffrax), RK4 tableau"][2])
    if not (steps == STEPS_ENSEMBLE).all():
        print(f"  diffrax took {steps.min()}..{steps.max()} steps, not {STEPS_ENSEMBLE}")
        ok_numbers = False
    exact = reference_float64(lengths, DAMPING_ENSEMBLE, STEPS_ENSEMBLE)
    ok_numbers &= check_agreement(results, scan, exact)
    times = time_interleaved(fns, (lengths,), reps_ensemble)
    print_times("  times", times, scan)
    print("  targets:")
    for name in (sim_vmap, sim_array):
        passed.append(
            check_target(f"{name} / scan", *ratio(times, name, scan), "<=", MAX_SIMULATE_OVER_SCAN)
        )
    for name in (sim_vmap, sim_array):
        passed.append(
            check_target(
                f"vmap(diffrax) / {name}",
                *ratio(times, "vmap(diffrax), RK4 tableau", name),
                ">=",
                MIN_DIFFRAX_OVER_SIMULATE,
            )
        )
    makers = {
        sim_vmap: lambda: make_simulate_vmap(DAMPING_ENSEMBLE, t1),
        sim_array: lambda: make_simulate_array(DAMPING_ENSEMBLE, t1),
        scan: lambda: make_scan(DAMPING_ENSEMBLE, STEPS_ENSEMBLE),
    }
    print_first_calls(makers, (lengths,), reps_compile)

    # --- Single pendulum, long rollout ---------------------------------------------------
    length = jnp.float32(LENGTH_SINGLE)
    t1 = STEPS_SINGLE * DT
    sim = "ds.simulate"
    scan = "lax.scan"

    fns = {
        sim: make_simulate_array(DAMPING_SINGLE, t1),  # a scalar length: a scalar state
        scan: make_scan(DAMPING_SINGLE, STEPS_SINGLE, batched=False),
        "diffrax": make_diffrax(DAMPING_SINGLE, STEPS_SINGLE, batched=False),
    }
    title = f"Single pendulum, {STEPS_SINGLE} steps (NumPy skipped: a Python loop per step)"
    print(f"\n== {title}")
    results = {name: _call(fn, length) for name, fn in fns.items()}
    if int(results["diffrax"][2]) != STEPS_SINGLE:
        print(f"  diffrax took {int(results['diffrax'][2])} steps, not {STEPS_SINGLE}")
        ok_numbers = False
    exact = reference_float64(length, DAMPING_SINGLE, STEPS_SINGLE)
    ok_numbers &= check_agreement(results, scan, exact)
    times = time_interleaved(fns, (length,), reps_single)
    print_times("  times", times, scan)
    print("  targets:")
    passed.append(
        check_target(f"{sim} / scan", *ratio(times, sim, scan), "<=", MAX_SIMULATE_OVER_SCAN)
    )
    r, paired = ratio(times, "diffrax", sim)
    print(f"  {'diffrax / ' + sim:<44} {r:6.2f} (paired {paired:.2f})  (no target)")
    makers = {
        sim: lambda: make_simulate_array(DAMPING_SINGLE, t1),
        scan: lambda: make_scan(DAMPING_SINGLE, STEPS_SINGLE, batched=False),
    }
    print_first_calls(makers, (length,), reps_compile)

    # --- Where ds.simulate's time goes ---------------------------------------------------
    if args.breakdown:
        for label, damping, n, x, reps in (
            ("ensemble", DAMPING_ENSEMBLE, STEPS_ENSEMBLE, lengths, reps_ensemble),
            ("single", DAMPING_SINGLE, STEPS_SINGLE, length, reps_single),
        ):
            run_breakdown(label, damping, n, x, reps, reps_compile)

    print(f"\nTargets: {sum(passed)} of {len(passed)} pass.")
    if not ok_numbers:
        print("The methods disagree numerically: the comparison is not of identical work.")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
