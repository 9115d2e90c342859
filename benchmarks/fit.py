"""Fitting speed: `ds.fit` against SciPy's least_squares with finite differences, and Adam.

The problem (the same as `scenarios/fit_pendulum.py`): the length and damping of a
pendulum, $\\ddot\\theta = -(g/L)\\sin\\theta - c\\dot\\theta$, from 200 angle readings
(every 0.05 s for 10 s) with Gaussian noise of 0.02 rad; truth L = 1.3 m, c = 0.2 1/s,
released at rest from 1 rad; RK4 at dt = 0.01 s (1000 steps); float64. Every method
starts from L = 1 m, c = 0.05 1/s and minimises the same sum of squared residuals:

- `ds.fit`: the default Levenberg-Marquardt (optimistix), Jacobian by forward-mode
  autodiff through `ds.simulate`, rtol = atol = 1e-8, `bounds=((0, None), (0, None))`.
  Timed twice: the first call in the process (tracing and compiling included), and later
  calls on new data with the same model function.
- SciPy: `scipy.optimize.least_squares` (default 'trf', Jacobian by its default '2-point'
  finite differences, ftol = xtol = gtol = 1e-8, bounds (0, inf)) on RK4 in a Python loop
  over the steps with scalar math, the arithmetic of `ds.RK4` operation for operation
  (what one writes without autodiff). Two variants of the same code: with the
  parameters converted to Python floats, and with the NumPy float64 scalars that
  `L, c = x` gives (NumPy scalar arithmetic is several times slower).
- Adam: a plain optax loop, `jax.jit(jax.value_and_grad(loss))` through `ds.simulate`
  on the raw (L, c), stopped once both parameters are within 0.1 standard error of
  `ds.fit`'s estimate (so that its parameter error matches `ds.fit`'s) or after
  `--adam-max-iters`. The learning rate is the best of a grid (`ADAM_LEARNING_RATES`),
  each tried from the same start.

The data are made by the NumPy simulator (so that the first `ds.fit` call really is the
first JAX work in the process) and checked against `ds.simulate`. Timed calls end in
`block_until_ready`; `ds.fit` and SciPy take turns within each round, each round on a new
noisy dataset, and the figures are medians over rounds.

Then, unless `--no-breakdown`, where the time goes: one model evaluation and one Jacobian
in each simulator, optimistix's LM on its own (jit-compiled, no `ds.fit` around it) on
`ds.simulate` and on a hand-written `lax.scan` of the same RK4, and `ds.fit` on the scan.

Run: `python benchmarks/fit.py` (`make bench`), `--quick` for 3 rounds. It exits with
status 1 only when the methods disagree (SciPy more than 0.1 stderr from `ds.fit`, or the
simulators differ); missed speed targets print FAIL.
"""

import argparse
import math
import os
import statistics
import sys
import time

import jax

# Before anything creates an array: the fit, its error bars and the comparison are float64.
jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
import scipy  # noqa: E402
import scipy.optimize  # noqa: E402

import diffsim as ds  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rollout import machine  # noqa: E402

G = 9.81
LENGTH, DAMPING = 1.3, 0.2  # the truth
LENGTH0, DAMPING0 = 1.0, 0.05  # the start
ANGLE0 = 1.0
NOISE = 0.02
DT = 0.01
READ_EVERY = 5
N_READINGS = 200
N_STEPS = READ_EVERY * N_READINGS
TOL = 1e-8  # ds.fit's rtol and atol; SciPy's ftol, xtol and gtol

# Adam stops when every parameter is this many standard errors from ds.fit's estimate.
MATCH_STDERR = 0.1
ADAM_LEARNING_RATES = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1)

# Targets from the issue.
MIN_SPEEDUP_OVER_SCIPY = 5.0
MIN_ADAM_ITERATIONS_RATIO = 10.0


# --------------------------------------------------------------------------------------
# The simulators.


def model(pendulum):
    """`ds.fit`'s model: the angle at the 200 reading times."""
    y0 = pendulum.initial_state(ANGLE0)
    traj = ds.simulate(pendulum, y0, t1=N_STEPS * DT, dt=DT, saveat=ds.SaveAt(every=READ_EVERY))
    return traj.ys.q[1:]  # SaveAt(every=k) includes t0, which is not a reading


READING_TIMES = np.arange(1, N_READINGS + 1) * READ_EVERY * DT


def model_ts(pendulum):
    """The same readings saved with `SaveAt(ts=...)`, the form of `ds.fit`'s docstring
    (times need not lie on the step grid; here they do, so the values are the same)."""
    y0 = pendulum.initial_state(ANGLE0)
    ts = jnp.asarray(READING_TIMES)
    return ds.simulate(pendulum, y0, t1=N_STEPS * DT, dt=DT, saveat=ds.SaveAt(ts=ts)).ys.q


def simulate_numpy(length, damping):
    """RK4 in a Python loop over the steps, with the operations of `ds.RK4.step` and
    `Pendulum.acceleration` in the same order; scalar math."""
    half = 0.5 * DT
    q, v = ANGLE0, 0.0
    angles = np.empty(N_READINGS)

    def acceleration(q, v):
        return -(G / length) * math.sin(q) - damping * v

    for n in range(1, N_STEPS + 1):
        k1q, k1v = v, acceleration(q, v)
        k2q, k2v = v + half * k1v, acceleration(q + half * k1q, v + half * k1v)
        k3q, k3v = v + half * k2v, acceleration(q + half * k2q, v + half * k2v)
        k4q, k4v = v + DT * k3v, acceleration(q + DT * k3q, v + DT * k3v)
        q = q + DT * ((1 / 6) * k1q + (1 / 3) * k2q + (1 / 3) * k3q + (1 / 6) * k4q)
        v = v + DT * ((1 / 6) * k1v + (1 / 3) * k2v + (1 / 3) * k3v + (1 / 6) * k4v)
        if n % READ_EVERY == 0:
            angles[n // READ_EVERY - 1] = q
    return angles


def make_data(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return simulate_numpy(LENGTH, DAMPING) + NOISE * rng.standard_normal(N_READINGS)


# --------------------------------------------------------------------------------------
# The three methods. Each returns (estimate [L, c], seconds, info dict).


START = ds.systems.Pendulum(length=LENGTH0, damping=DAMPING0)


def fit_ds(data, model_fn=model):
    t = time.perf_counter()
    res = ds.fit(
        model_fn,
        START,
        data,
        where=lambda p: (p.length, p.damping),
        bounds=((0, None), (0, None)),
        rtol=TOL,
        atol=TOL,
    )
    jax.block_until_ready(res)
    seconds = time.perf_counter() - t
    estimate = np.array([float(res.params.length), float(res.params.damping)])
    stderr = np.array([float(res.stderr.length), float(res.stderr.damping)])
    return estimate, seconds, {"iterations": int(res.n_steps), "stderr": stderr, "res": res}


def fit_scipy(data, python_floats: bool):
    runs = [0]

    def residuals(x):
        runs[0] += 1
        length, damping = (float(x[0]), float(x[1])) if python_floats else x
        return simulate_numpy(length, damping) - data

    t = time.perf_counter()
    sol = scipy.optimize.least_squares(
        residuals, [LENGTH0, DAMPING0], bounds=(0, np.inf), ftol=TOL, xtol=TOL, gtol=TOL
    )
    seconds = time.perf_counter() - t
    info = {"iterations": int(sol.njev), "evaluations": runs[0], "status": int(sol.status)}
    return np.asarray(sol.x), seconds, info


def make_adam_step():
    """One jit-compiled Adam step; the learning rate is a hyperparameter in the state, so
    that every rate in the grid shares one compilation."""
    opt = optax.inject_hyperparams(optax.adam)(learning_rate=1e-3)

    def loss(x, data):
        pendulum = ds.systems.Pendulum(length=x[0], damping=x[1])
        return 0.5 * jnp.sum((model(pendulum) - data) ** 2)

    @jax.jit
    def step(x, state, data):
        value, grad = jax.value_and_grad(loss)(x, data)
        updates, state = opt.update(grad, state, x)
        return optax.apply_updates(x, updates), state, value

    def init(lr, x):
        state = opt.init(x)
        state.hyperparams["learning_rate"] = jnp.asarray(lr)
        return state

    return step, init


def fit_adam(step, init, data, lr, target, stderr, max_iters):
    x = jnp.array([LENGTH0, DAMPING0])
    state = init(lr, x)
    data = jnp.asarray(data)
    t = time.perf_counter()
    iterations = max_iters
    for i in range(1, max_iters + 1):
        x, state, _ = step(x, state, data)
        if np.all(np.abs(np.asarray(x) - target) <= MATCH_STDERR * stderr):
            iterations = i
            break
    seconds = time.perf_counter() - t
    reached = bool(np.all(np.abs(np.asarray(x) - target) <= MATCH_STDERR * stderr))
    return np.asarray(x), seconds, {"iterations": iterations, "reached": reached}


# --------------------------------------------------------------------------------------
# Where the time goes.


def _scan_model(x):
    """The model as a hand-written lax.scan of the same RK4 step (no ds.simulate)."""
    length, damping = x[0], x[1]

    def acceleration(q, v):
        return -(G / length) * jnp.sin(q) - damping * v

    def step(carry, _):
        q, v = carry
        half = 0.5 * DT
        k1q, k1v = v, acceleration(q, v)
        k2q, k2v = v + half * k1v, acceleration(q + half * k1q, v + half * k1v)
        k3q, k3v = v + half * k2v, acceleration(q + half * k2q, v + half * k2v)
        k4q, k4v = v + DT * k3v, acceleration(q + DT * k3q, v + DT * k3v)
        q = q + DT * ((1 / 6) * k1q + (1 / 3) * k2q + (1 / 3) * k3q + (1 / 6) * k4q)
        v = v + DT * ((1 / 6) * k1v + (1 / 3) * k2v + (1 / 3) * k3v + (1 / 6) * k4v)
        return (q, v), q

    _, qs = jax.lax.scan(step, (jnp.asarray(ANGLE0), jnp.asarray(0.0)), None, length=N_STEPS)
    return qs[READ_EVERY - 1 :: READ_EVERY]


def _simulate_model(x):
    return model(ds.systems.Pendulum(length=x[0], damping=x[1]))


def _median_time(fn, *args, repeats: int) -> float:
    jax.block_until_ready(fn(*args))
    samples = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


def breakdown(data, repeats: int) -> None:
    """One model evaluation and one Jacobian, in each simulator; and optimistix's LM on its
    own (no ds.fit around it) on ds.simulate and on a hand-written scan, all jit-compiled."""
    import optimistix as optx

    x = jnp.array([LENGTH, DAMPING])
    x0 = jnp.array([LENGTH0, DAMPING0])
    data = jnp.asarray(data)
    rows = [
        ("NumPy loop, Python floats", lambda: simulate_numpy(LENGTH, DAMPING)),
        ("NumPy loop, NumPy scalars", lambda: simulate_numpy(*np.array([LENGTH, DAMPING]))),
    ]
    for name, fn in [("ds.simulate", _simulate_model), ("lax.scan", _scan_model)]:
        rows.append((f"{name}, jit", jax.jit(fn)))
        rows.append((f"{name}, jit(jacfwd) (2 tangents)", jax.jit(jax.jacfwd(fn))))

        def lm(y, fn=fn):
            sol = optx.least_squares(
                lambda u, _: fn(u) - y,
                optx.LevenbergMarquardt(rtol=TOL, atol=TOL),
                x0,
                max_steps=256,
                throw=False,
            )
            return sol.value, sol.stats["num_steps"]

        rows.append((f"{name}, jit(optimistix LM) alone", jax.jit(lm)))
    print("\n== Where the time goes (medians; jit-compiled functions compiled first)")

    def scan_pendulum(p):
        return _scan_model(jnp.stack([p.length, p.damping]))

    fit_ds(data, scan_pendulum)  # compile
    samples = [fit_ds(data * (1 + 1e-6 * i), scan_pendulum)[1] for i in range(repeats)]
    print(f"  {'ds.fit on the lax.scan model, later calls':<44} {_ms(statistics.median(samples))}")
    for name, fn in rows:
        if "LM" in name:
            value, steps = fn(data)
            seconds = _median_time(fn, data, repeats=repeats)
            note = f"  {int(steps)} iterations, L={float(value[0]):.8f}"
        elif name.startswith("NumPy"):
            seconds = _median_time(fn, repeats=repeats)
            note = ""
        else:
            seconds = _median_time(fn, x, repeats=repeats)
            note = ""
        print(f"  {name:<44} {_ms(seconds)}{note}")


# --------------------------------------------------------------------------------------


def check_target(label: str, value: float, op: str, bound: float, paired=None) -> bool:
    ok = value >= bound if op == ">=" else value <= bound
    extra = "" if paired is None else f" (paired {paired:.2f})"
    print(
        f"  {label:<52} {value:6.2f}{extra:<15} target {op} {bound:g}   {'PASS' if ok else 'FAIL'}"
    )
    return ok


def _ms(seconds: float) -> str:
    return f"{1e3 * seconds:9.1f} ms"


def count_model_evaluations(data) -> int:
    """Rollouts in one ds.fit call (the solve and the covariance), counted by a callback in
    a copy of the model; this compiles a new fit, so it is not timed."""
    calls = [0]

    def bump():
        calls[0] += 1

    def counted(pendulum):
        jax.debug.callback(bump)
        return model(pendulum)

    fit_ds(data, counted)
    return calls[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 timed rounds instead of 9")
    parser.add_argument("--repeats", type=int, help="timed rounds (new data each)")
    parser.add_argument("--adam-max-iters", type=int, default=5000)
    parser.add_argument(
        "--no-breakdown", action="store_true", help="skip timing the parts (saves ~15 s)"
    )
    args = parser.parse_args()
    rounds = args.repeats or (3 if args.quick else 9)
    print(machine(scipy, optax))
    print(
        f"Pendulum L={LENGTH} m, c={DAMPING} 1/s from {ANGLE0} rad; {N_READINGS} readings "
        f"over {N_STEPS * DT:g} s, noise {NOISE} rad; RK4 dt={DT} ({N_STEPS} steps); float64."
        f"\nStart L={LENGTH0}, c={DAMPING0}; tolerances {TOL:g}."
    )
    ok_numbers = True

    # --- ds.fit, first call: nothing has been compiled yet in this process. ----------
    data0 = make_data(0)
    est_fit, first_seconds, info = fit_ds(data0)
    stderr0 = info["stderr"]
    res0 = info["res"]
    truth = np.array([LENGTH, DAMPING])
    at_truth = np.asarray(model(ds.systems.Pendulum(length=LENGTH, damping=DAMPING)))
    sim_diff = float(np.max(np.abs(simulate_numpy(LENGTH, DAMPING) - at_truth)))
    print(f"\nNumPy simulator vs ds.simulate at the truth: max |diff| {sim_diff:.1e} rad")
    ok_numbers &= sim_diff < 1e-12

    # --- Timed rounds: ds.fit (warm) and SciPy take turns, new data each round. ------
    fit_ds(data0, model_ts)  # compile
    methods = {
        "ds.fit": lambda d: fit_ds(d),
        "ds.fit, SaveAt(ts) model": lambda d: fit_ds(d, model_ts),
        "SciPy, Python floats": lambda d: fit_scipy(d, python_floats=True),
        "SciPy, NumPy scalars": lambda d: fit_scipy(d, python_floats=False),
    }
    names = list(methods)
    times = {name: [] for name in names}
    iterations = {name: [] for name in names}
    evaluations = {name: [] for name in names if name.startswith("SciPy")}
    worst_disagreement = {name: 0.0 for name in names if name != "ds.fit"}
    for r in range(rounds):
        data = make_data(1 + r)
        estimates, stderr = {}, None
        for k in range(len(names)):
            name = names[(r + k) % len(names)]
            est, seconds, info = methods[name](data)
            times[name].append(seconds)
            iterations[name].append(info["iterations"])
            estimates[name] = est
            if name == "ds.fit":
                stderr = info["stderr"]
            elif name in evaluations:
                evaluations[name].append(info["evaluations"])
        for name in worst_disagreement:
            gap = float(np.max(np.abs(estimates[name] - estimates["ds.fit"]) / stderr))
            worst_disagreement[name] = max(worst_disagreement[name], gap)

    # --- Model evaluations of ds.fit. ----------------------------------------------
    n_evals = count_model_evaluations(data0)

    # --- Adam: a grid of learning rates on data0, each to ds.fit's parameter error. --
    step, init = make_adam_step()
    t = time.perf_counter()
    jax.block_until_ready(step(jnp.array([LENGTH0, DAMPING0]), init(1e-3, jnp.zeros(2)), data0))
    adam_compile = time.perf_counter() - t
    adam = {}
    for lr in ADAM_LEARNING_RATES:
        adam[lr] = fit_adam(step, init, data0, lr, est_fit, stderr0, args.adam_max_iters)
    best_lr = min(adam, key=lambda lr: (not adam[lr][2]["reached"], adam[lr][2]["iterations"]))
    est_adam, adam_seconds, adam_info = adam[best_lr]

    # --- Accuracy on data0: each method against the truth and against ds.fit. --------
    est_scipy, _, scipy_info = fit_scipy(data0, python_floats=True)
    print(f"\n== Estimates on the first dataset (seed 0), in units of ds.fit's stderr {stderr0}")
    print(f"  {'method':<26} {'L':>12} {'c':>12} {'vs truth (L, c)':>18} {'vs ds.fit':>16}")
    for name, est in [
        ("ds.fit", est_fit),
        ("SciPy", est_scipy),
        (f"Adam lr={best_lr:g}", est_adam),
    ]:
        vs_truth = (est - truth) / stderr0
        vs_fit = (est - est_fit) / stderr0
        print(
            f"  {name:<26} {est[0]:12.8f} {est[1]:12.8f} "
            f"{vs_truth[0]:+8.3f} {vs_truth[1]:+8.3f} {vs_fit[0]:+8.1e} {vs_fit[1]:+8.1e}"
        )
    print(f"  ds.fit: {res0.n_steps} iterations, loss history {np.asarray(res0.history)}")

    print(f"\n== Wall time, medians over {rounds} rounds (new data each; min-max in brackets)")
    fit_warm = statistics.median(times["ds.fit"])
    print(f"  {'ds.fit, first call (compile included)':<40} {_ms(first_seconds)}")
    for name in names:
        ts = times[name]
        its = statistics.median(iterations[name])
        if name == "ds.fit":
            extra = f"{n_evals} model evaluations (in seed 0's fit)"
        elif name in evaluations:
            extra = f"{statistics.median(evaluations[name]):.0f} simulator runs"
        else:
            extra = "the same fit, readings saved with SaveAt(ts=...)"
        label = "ds.fit, later calls" if name == "ds.fit" else name
        print(
            f"  {label:<40} {_ms(statistics.median(ts))} [{1e3 * min(ts):.1f}-"
            f"{1e3 * max(ts):.1f}]  {its:.0f} iterations, {extra}"
        )
    per_round = ", ".join(
        f"{1e3 * t:.0f} ({n})" for t, n in zip(times["ds.fit"], iterations["ds.fit"], strict=True)
    )
    print(f"  ds.fit per round, ms (iterations): {per_round}")
    for name, gap in worst_disagreement.items():
        print(f"  {name} vs ds.fit, worst over rounds: {gap:.1e} stderr")
        ok_numbers &= gap < MATCH_STDERR
    print(f"  SciPy (seed 0): status {scipy_info['status']}, {scipy_info['iterations']} iterations")

    print(
        f"\n== Adam (seed 0), stopped within {MATCH_STDERR} stderr of ds.fit's estimate; "
        f"compile {_ms(adam_compile).strip()}"
    )
    for lr, (_, seconds, info) in adam.items():
        mark = "  <- best" if lr == best_lr else ""
        status = (
            f"{info['iterations']:5d} iterations"
            if info["reached"]
            else (f"not within {MATCH_STDERR} stderr after {info['iterations']} iterations")
        )
        print(f"  lr={lr:<6g} {status}, {_ms(seconds)}{mark}")

    print("\n== Targets")
    for name in ("SciPy, Python floats", "SciPy, NumPy scalars"):
        paired = statistics.median(
            [a / b for a, b in zip(times[name], times["ds.fit"], strict=True)]
        )
        check_target(
            f"{name} / ds.fit (later calls), median time",
            statistics.median(times[name]) / fit_warm,
            ">=",
            MIN_SPEEDUP_OVER_SCIPY,
            paired,
        )
    check_target(
        f"Adam (lr={best_lr:g}) / ds.fit iterations (seed 0)",
        adam_info["iterations"] / int(res0.n_steps),
        ">=",
        MIN_ADAM_ITERATIONS_RATIO,
    )
    if not adam_info["reached"]:
        print("  (Adam never came within the tolerance: the ratio is a lower bound)")
    print(
        f"  for reference: ds.fit's first call / SciPy, Python floats: "
        f"{first_seconds / statistics.median(times['SciPy, Python floats']):.0f}x slower"
    )
    if not args.no_breakdown:
        breakdown(data0, repeats=max(rounds, 5))
    if not ok_numbers:
        print("FAIL: the methods disagree (see above)")
    return 0 if ok_numbers else 1


if __name__ == "__main__":
    sys.exit(main())
