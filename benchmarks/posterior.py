"""Sampling speed: `ds.posterior` (blackjax NUTS through `ds.simulate`) against NumPyro's
NUTS on the same model written with diffrax, in effective samples per second.

A damped pendulum, $\\ddot\\theta = -(g/L)\\sin\\theta - c\\dot\\theta$, g = 9.81 known,
released at rest from $\\theta_0$; 100 angle readings at t = 0.1, 0.2, ..., 10 s; truth
L = 1.3 m, c = 0.2 1/s, $\\theta_0$ = 1 rad, noise sigma = 0.05 rad. RK4 at dt = 0.01 s
(1000 steps), float64, on both sides. Priors: L ~ LogNormal(0, 0.5) (of log L),
c ~ HalfNormal(0.5), $\\theta_0$ ~ Normal(1, 0.5), sigma ~ HalfNormal(0.2). 4 chains x 1000
warmup x 1000 draws (`--quick`: 200 + 200), target acceptance 0.8, diagonal mass, depth <= 10.

- diffsim: `ds.posterior(model, params0, y, prior=..., noise=ds.HalfNormal(0.2))`, the model
  `ds.simulate(..., integrator=ds.RK4(), saveat=ds.SaveAt(ts=ts)).ys.q`, default adjoint;
  timed as a user calls it (its `ds.fit` included; on a CPU the chains run one after
  another), with `start=` a fit, and with `batch_size=4` (the 4 chains vmapped).
- NumPyro: `diffrax.diffeqsolve` with the classical RK4 tableau as a `diffrax.AbstractERK`,
  `ConstantStepSize`, `SaveAt(ts=ts)`, `max_steps=1000`, and diffrax's fastest adjoint
  here, `RecursiveCheckpointAdjoint(checkpoints=1000)` (a gradient in 11 ms; 32 ms with the
  default checkpoints, 50 ms with `DirectAdjoint`); `MCMC(NUTS(model))` with
  `chain_method="vectorized"` (its 4-chain gradient 15 ms; `"sequential"` 38 ms), starting
  where diffsim's chains do.

Each timed run is the second call (a new key); compile time is the first minus the second,
and XLA's lowering + compile time of the first call (`jax.monitoring`). ESS/s: the smallest
bulk ESS (`diffsim.inference._diagnostics.ess_bulk`, both sides) of the four over the wall
time, warmup included. Target: ESS/s >= 3x NumPyro's; means within 3 combined MCSE.
Run: `python benchmarks/posterior.py [--quick] [--numpyro vectorized]`. NumPyro is a
comparison only: without it the NumPyro rows are skipped.
"""

import argparse
import os
import re
import statistics
import sys
import time

import jax

jax.config.update("jax_enable_x64", True)

import blackjax  # noqa: E402
import diffrax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import diffsim as ds  # noqa: E402
from diffsim.inference._density import Problem, layout, log_density, to_unconstrained  # noqa: E402
from diffsim.inference._diagnostics import ess_bulk  # noqa: E402
from diffsim.inference._likelihood import GaussianNoise  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rollout import _DiffraxRK4, machine  # noqa: E402  (diffrax 0.7 ships no RK4)

try:
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer import MCMC, NUTS
    from numpyro.infer.util import initialize_model
except ImportError:  # a comparison only: the rest runs without it
    numpyro = None

G, LENGTH, DAMPING, ANGLE0, NOISE = 9.81, 1.3, 0.2, 1.0, 0.05
DT, T1, N_STEPS, TS = 0.01, 10.0, 1000, np.linspace(0.1, 10.0, 100)
NAMES = ("length", "damping", "angle0", "sigma")
PRIORS = (ds.LogNormal(0.0, 0.5), ds.HalfNormal(0.5), ds.Normal(1.0, 0.5))  # as in where
NOISE_PRIOR = ds.HalfNormal(0.2)
PARAMS0 = {"pendulum": ds.systems.Pendulum(length=1.0, damping=0.1), "angle0": 0.8}
TARGET, CHAINS, MAIN = 3.0, 4, "ds.posterior (runs ds.fit)"


def model(p):
    pendulum = p["pendulum"]
    y0 = pendulum.initial_state(p["angle0"])
    saveat = ds.SaveAt(ts=jnp.asarray(TS))
    return ds.simulate(pendulum, y0, t1=T1, dt=DT, integrator=ds.RK4(), saveat=saveat).ys.q


where = lambda p: (p["pendulum"].length, p["pendulum"].damping, p["angle0"])  # noqa: E731


def observations():
    truth = {"pendulum": ds.systems.Pendulum(length=LENGTH, damping=DAMPING), "angle0": ANGLE0}
    clean = np.asarray(model(truth))
    return clean + NOISE * np.random.default_rng(0).standard_normal(clean.shape)


def _field(t, y, args):
    (q, v), (length, damping) = y, args
    return v, -(G / length) * jnp.sin(q) - damping * v


def diffrax_angles(length, damping, angle0):
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(_field), _DiffraxRK4(), t0=0.0, t1=T1, dt0=DT,
        y0=(angle0, jnp.zeros_like(angle0)), args=(length, damping),
        saveat=diffrax.SaveAt(ts=jnp.asarray(TS)), stepsize_controller=diffrax.ConstantStepSize(),
        max_steps=N_STEPS, adjoint=diffrax.RecursiveCheckpointAdjoint(checkpoints=N_STEPS),
    )  # fmt: skip
    return sol.ys[0]


def numpyro_model(y):
    length = numpyro.sample("length", dist.LogNormal(0.0, 0.5))
    damping = numpyro.sample("damping", dist.HalfNormal(0.5))
    angle0 = numpyro.sample("angle0", dist.Normal(1.0, 0.5))
    sigma = numpyro.sample("sigma", dist.HalfNormal(0.2))
    numpyro.sample("obs", dist.Normal(diffrax_angles(length, damping, angle0), sigma), obs=y)


short = lambda name: re.findall(r"\w+", name)[-1]  # noqa: E731  (['pendulum'].length -> length)
COMPILE_EVENTS = ("/jax/core/compile/jaxpr_to_mlir_module_duration",
                  "/jax/core/compile/backend_compile_duration")  # fmt: skip
compiling = [0.0]
jax.monitoring.register_event_duration_secs_listener(
    lambda event, secs, **_: compiling.append(compiling.pop() + secs * (event in COMPILE_EVENTS))
)


def twice(fn, *args, **kw):
    """`fn(key, *args) -> (result, seconds)` called twice with new keys: (seconds of the
    second call, first minus second, XLA lowering + compile seconds of the first, result)."""
    before = compiling[0]
    first = fn(jax.random.key(11), *args, **kw)[1]
    xla = compiling[0] - before
    out, second = fn(jax.random.key(12), *args, **kw)
    return second, first - second, xla, out


def once(fn, *args, **kw):
    """Like `twice`, one call: its seconds less XLA's lowering + compile seconds (tracing
    stays in, a few seconds against NumPyro's minutes)."""
    before = compiling[0]
    out, seconds = fn(jax.random.key(12), *args, **kw)
    xla = compiling[0] - before
    return seconds - xla, None, xla, out


def run_diffsim(key, y, warmup, samples, **kw):
    return timed(lambda: jax.block_until_ready(
        ds.posterior(model, PARAMS0, y, where=where, prior=PRIORS, noise=NOISE_PRIOR, key=key,
                     num_chains=CHAINS, num_warmup=warmup, num_samples=samples, warn=False, **kw)
    ))  # fmt: skip


def numpyro_starts(fit, y, key):
    """Unconstrained starts like ds.posterior's: the fit's optimum plus one stderr x N(0, 1)
    (the noise: the residual scale plus 10%); positive parameters in log space."""
    scale = np.sqrt(2 * float(fit.loss) / (len(y) - 3))
    spread = np.append(np.sqrt(np.diag(np.asarray(fit.covariance))), 0.1 * scale)
    x = np.append(fit.values, scale) + spread * np.asarray(jax.random.normal(key, (CHAINS, 4)))
    return {n: jnp.asarray(x[:, i] if n == "angle0" else np.log(np.abs(x[:, i])))
            for i, n in enumerate([short(n) for n in fit.names] + ["sigma"])}  # fmt: skip


def run_numpyro(key, mcmc, y, init):
    """Warmup, then sampling (two calls, so that each is timed; the warmup's seconds
    exclude XLA compiling)."""
    y, fields, begin = jnp.asarray(y), ("num_steps", "diverging"), time.perf_counter()
    compiled_before = compiling[0]
    mcmc.warmup(key, y, init_params=init, extra_fields=fields, collect_warmup=True)
    warm_s = time.perf_counter() - begin - (compiling[0] - compiled_before)
    warm = np.asarray(mcmc.get_extra_fields(group_by_chain=True)["num_steps"], float)
    mcmc.run(jax.random.fold_in(key, 1), y, extra_fields=fields)
    draws = jax.block_until_ready(mcmc.get_samples(group_by_chain=True))
    return (draws, warm_s, warm), time.perf_counter() - begin


def stats_of(draws):
    """Per parameter (mean, sd, bulk ESS) of `(chains, draws)` arrays."""
    return {n: (float(x.mean()), float(x.std(ddof=1)), float(ess_bulk(jnp.asarray(x))))
            for n, x in draws.items()}  # fmt: skip


def time_call(fn, x, repeats=20):
    jax.block_until_ready(fn(x))
    return statistics.median(timed(lambda: jax.block_until_ready(fn(x)))[1] for _ in "." * repeats)


def timed(fn):
    begin = time.perf_counter()
    return fn(), time.perf_counter() - begin


def gradient_times(y, fit):
    """Median time of one gradient of each log density (and of the solve alone) near the
    posterior mode: one chain; 4 chains vmapped; 4 chains one after another (lax.map)."""
    lay, priors = layout(PARAMS0, where, None, PRIORS, NOISE_PRIOR)
    leaves = [jnp.asarray(v, float) for v in jax.tree.leaves(PARAMS0)]
    obs = jnp.asarray(y)
    problem = Problem(leaves, obs, obs == obs, None, tuple(priors), NOISE_PRIOR)
    x = jnp.append(jnp.asarray(fit.values), NOISE)  # in the order of lay.names
    value = {short(n): v for n, v in zip(lay.names, x, strict=True)}
    rows = {
        "diffsim log density": lambda u: log_density(model, GaussianNoise(), lay, problem, u)[0],
        "ds.simulate alone": lambda x: jnp.sum(model(lay.rebuild(leaves, x[:3]))),
    }
    args = {"diffsim log density": to_unconstrained(lay, list(x)), "ds.simulate alone": x}
    if numpyro is not None:
        _, potential, _, _ = initialize_model(jax.random.key(0), numpyro_model, model_args=(obs,))
        rows["NumPyro potential energy"] = potential
        args["NumPyro potential energy"] = {n: jnp.log(v) for n, v in value.items()}
        args["NumPyro potential energy"]["angle0"] = value["angle0"]
        rows["diffeqsolve alone"] = lambda v: jnp.sum(diffrax_angles(v[0], v[1], v[2]))
        args["diffeqsolve alone"] = jnp.stack([value["length"], value["damping"], value["angle0"]])
    out = {}
    for name, fn in rows.items():
        grad, x4 = jax.grad(fn), jax.tree.map(lambda a: jnp.stack([a] * CHAINS), args[name])
        out[name] = [time_call(jax.jit(grad), args[name]), time_call(jax.jit(jax.vmap(grad)), x4),
                     time_call(jax.jit(lambda z, g=grad: jax.lax.map(g, z)), x4)]  # fmt: skip
    return out


def table(head, rows):
    print("\n| " + " | ".join(head) + " |\n|---|" + "--:|" * (len(head) - 1))
    for row in rows:
        print("| " + " | ".join(row) + " |", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="200 warmup + 200 draws")
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--numpyro", default="vectorized", help="chain methods, or ''")
    parser.add_argument("--numpyro-once", action="store_true",
                        help="time NumPyro's first call less XLA's compile time (half the "
                             "run; default: its second call)")  # fmt: skip
    args = parser.parse_args()
    warmup, samples = (200, 200) if args.quick else (args.warmup, args.samples)
    print(machine(*([blackjax, diffrax] + ([numpyro] if numpyro else []))))
    print(f"load average {os.getloadavg()[0]:.1f} at the start; {CHAINS} chains x {warmup} "
          f"warmup x {samples} draws", flush=True)  # fmt: skip
    y = observations()
    runs, stats, steps = {}, {}, {}  # runs: name -> (wall s, warmup s, compile s, XLA s)

    def diffsim_row(name, timing, **kw):
        t, compile_s, xla, post = timing
        warm = twice(run_diffsim, y, warmup, 4, **kw)[0] if "start" in kw else None
        runs[name] = (t, warm, compile_s, xla)
        stats[name] = stats_of({short(n): post.draws[..., i] for i, n in enumerate(post.names)})
        n = 2.0 ** np.asarray(post.tree_depth) - 1
        steps[name] = (np.nan, n.mean(), n.max(0).mean(), int(np.sum(post.divergent)))
        print(f"{name}: {t:.1f} s", flush=True)
        return post.fit

    fit = diffsim_row(MAIN, twice(run_diffsim, y, warmup, samples))
    t = run_diffsim(jax.random.key(13), y, warmup, samples, start=fit)
    diffsim_row("ds.posterior, start= given", (t[1], None, None, t[0]), start=fit)
    row = twice(run_diffsim, y, warmup, samples, start=fit, batch_size=CHAINS)
    diffsim_row(f"ds.posterior, start=, batch_size={CHAINS}", row, start=fit, batch_size=CHAINS)
    for method in filter(None, args.numpyro.split(",") if numpyro else []):
        kernel = NUTS(numpyro_model, target_accept_prob=0.8, max_tree_depth=10)
        mcmc = MCMC(kernel, num_warmup=warmup, num_samples=samples, num_chains=CHAINS,
                    chain_method=method, progress_bar=False, jit_model_args=True)  # fmt: skip
        init = numpyro_starts(fit, y, jax.random.key(6))
        timing = once if args.numpyro_once else twice
        t, compile_s, xla, (draws, warm_s, warm) = timing(run_numpyro, mcmc, y, init)
        name = f"NumPyro, {method}"
        runs[name], stats[name] = (t, warm_s, compile_s, xla), stats_of(draws)
        extra = mcmc.get_extra_fields(group_by_chain=True)
        n = np.asarray(extra["num_steps"], float)
        steps[name] = (warm.mean(), n.mean(), n.max(0).mean(), int(np.sum(extra["diverging"])))
        print(f"{name}: {t:.1f} s", flush=True)

    per_s = {k: min(s[2] for s in stats[k].values()) / runs[k][0] for k in runs}
    num = lambda v: "" if v is None else f"{v:.1f}"  # noqa: E731
    table(["run", "wall s", "of which warmup", "compile s (first - second)", "XLA compile s",
           "min bulk ESS", "ESS/s", f"{MAIN} / this"],
          [[k] + [num(v) for v in r] + [f"{per_s[k] * r[0]:.0f}", f"{per_s[k]:.2f}",
                                        f"{per_s[MAIN] / per_s[k]:.2f}"]
           for k, r in runs.items()])  # fmt: skip
    table(["run"] + [f"{n}: mean +- MCSE (bulk ESS)" for n in NAMES],
          [[k] + [f"{m:.5f} +- {sd / np.sqrt(e):.5f} ({e:.0f})" for m, sd, e in
                  (st[n] for n in NAMES)] for k, st in stats.items()])  # fmt: skip
    table(["run", "leapfrog steps / warmup iteration", "/ draw (diffsim: 2^depth - 1, a bound)",
           "max over chains / draw", "divergent"],
          [[k, f"{w:.1f}", f"{n:.1f}", f"{m:.1f}", str(d)]
           for k, (w, n, m, d) in steps.items()])  # fmt: skip
    table(
        ["gradient of", "1 chain (us)", "4 chains, vmap (us)", "4 chains, lax.map (us)"],
        [[k] + [f"{t * 1e6:.0f}" for t in v] for k, v in gradient_times(y, fit).items()],
    )

    print(f"\nload average {os.getloadavg()[0]:.1f} at the end")
    if numpyro is None:
        print("numpyro is not installed (pip install numpyro): NumPyro rows skipped.")
        return 0
    for name in [k for k in runs if k.startswith("ds.")]:
        for ref in [k for k in runs if k.startswith("NumPyro")]:
            pairs = [(stats[name][n], stats[ref][n]) for n in NAMES]
            agree = all(abs(a[0] - b[0]) <= 3 * np.hypot(a[1] / np.sqrt(a[2]), b[1] / np.sqrt(b[2]))
                        for a, b in pairs)  # fmt: skip
            ratio = per_s[name] / per_s[ref]
            print(f"{name} / {ref}: ESS/s x{ratio:.2f} (target >= {TARGET:g}) "
                  f"{'PASS' if ratio >= TARGET else 'FAIL'}; means within 3 MCSE: "
                  f"{'yes' if agree else 'NO'}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
