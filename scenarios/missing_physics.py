"""Missing physics: a universal differential equation learns Lotka-Volterra's interaction terms from 5 time units of noisy data, and sparse regression of what it learned, judged on the data, names them (x*y) for a forecast three times as far.

The case of Rackauckas et al. 2020 ("Universal differential equations for scientific
machine learning", arXiv:2001.04385, the Lotka-Volterra example): prey x and predators y,

    x' = alpha x - beta x y,   y' = gamma x y - delta y,

alpha = 1.3, beta = 0.9, gamma = 0.8, delta = 1.8, from (x, y) = (0.44249296, 4.6280594),
read every 0.25 on t in [0, 5] with Gaussian noise of 5% of each species' mean (seed 0):
21 readings, the setting of the SciML tutorial "Automatically discover missing physics
by embedding machine learning into differential equations". That is still a short noisy
record, a little less than one cycle (the period is about 5.4); the forecast runs to
t = 15, three times as far. The paper's own window, [0, 3] read every 0.1, was tried
first and is too short: the prey stay below 1.7 there, x*y and y^2 look alike along that
one arc, and the network's correction for x' regresses onto x and y^2 (x*y alone is not
even on the threshold path), although the readings themselves favour x*y.

Two models are trained on those readings only, the same way (Adam, then L-BFGS,
through `ds.simulate` with RK4 at dt = 0.0625, the initial state trained along with the
weights; the networks see the state divided by the readings' mean and return multiples
of it):

- hybrid (UDE): `ds.systems.HybridODE(physics, correction)`, the physics the known linear
  terms alpha x and -delta y (alpha and delta known, as in the paper), the correction an
  `eqx.nn.MLP` of (x, y) with two outputs, the missing interaction terms;
- neural ODE: `ds.ODESystem(lambda t, y, net: net(y), net)`, no physics at all.

Then the discovery. The hybrid's correction, evaluated at its own fitted states along the
training window, is regressed onto a polynomial library of x and y (`ds.Library.
polynomial`, degree 2, no constant) by `ds.sparse_path`, each equation on its own: every
distinct law on SINDy's threshold path with at most `max_terms` terms that explains at
least `min_r2` of the network's output. Every combination of one law per equation
replaces the network (`eqx.tree_at`), `ds.fit` refits its coefficients and the initial
state on the readings, and the one with the least BIC on the readings, n log(RSS/n) +
p log n (RSS in units of the noise, n = 42 values, p the values fitted: the law's
coefficients and the 2 initial values), is the
recovered model; a candidate whose rollout blows up is skipped, and said so. The
network only proposes the terms; the data choose among them. Targets: only x*y in each
equation, with coefficients within 10% of -beta and gamma.

What it shows: `missing_physics_forecast.png`, the truth, the readings and the three
models (neural ODE, hybrid, recovered) over [0, 15] with the training window shaded, and
the error of each over time. It prints the training times, the candidates with their
BIC, each model's forecast error over [0, 15] (RMS against the noise-free truth, relative
to the truth's RMS), the law chosen and the refitted coefficients against the truth.
`run(config)` returns the same figures as a dict (benchmarks/discovery.py calls it).

Run: `diffsim run missing_physics` or `python scenarios/missing_physics.py --out out`
(`--smoke`: a few training steps; whatever the untrained network proposes is refitted
and judged the same way).
"""

import dataclasses
import itertools
import time

import jax
import matplotlib

# Before anything creates an array: the rollouts and their gradients are in float64.
jax.config.update("jax_enable_x64", True)
# This script only writes PNG files, so it never needs a window, whatever MPLBACKEND says.
matplotlib.use("Agg")

import equinox as eqx  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import diffsim as ds  # noqa: E402
from diffsim._scenario import POSITIVE, Limit, save_figure, scenario_args  # noqa: E402

CONFIG = dict(
    t_train=5.0,  # time observed, from t = 0 (the SciML tutorial's window)
    t_forecast=15.0,  # end of the forecast window, from t = 0
    interval=0.25,  # time between readings
    substeps=4,  # RK4 steps per reading interval (dt = interval / substeps)
    noise=0.05,  # noise sd, as a fraction of each species' mean over the training window
    n_adam=2000,  # Adam steps per model
    n_lbfgs=500,  # L-BFGS steps per model, after Adam
    learning_rate=1e-2,  # Adam's first step size (cosine decay to a tenth)
    width=8,  # hidden units per layer of each MLP
    depth=2,  # hidden layers of each MLP
    activation="tanh",  # of the hidden layers: "tanh", or "rbf" (exp(-x^2), the paper's)
    degree=2,  # degree of the polynomial library (without the constant)
    max_terms=3,  # most library terms per equation in a candidate law
    min_r2=0.8,  # least share of the network's correction a candidate law must explain
    seed=0,  # random seed: readings and network weights
)
SMOKE = dict(n_adam=20, n_lbfgs=0, t_forecast=6.0, max_terms=1)
LIMITS = dict(t_train=POSITIVE, t_forecast=POSITIVE, interval=POSITIVE,
              n_lbfgs=Limit(0, 10**6), degree=Limit(1, 5), max_terms=Limit(1, 20),
              min_r2=Limit(0.0, 1.0, strict=True))  # fmt: skip

ALPHA, BETA, GAMMA, DELTA = 1.3, 0.9, 0.8, 1.8
X0 = (0.44249296, 4.6280594)
TRUE_TERMS = {"dx": {"x*y": -BETA}, "dy": {"x*y": GAMMA}}
TOLERANCE = 0.10  # relative, on the recovered interaction coefficients
ACTIVATIONS = {"tanh": jax.nn.tanh, "rbf": lambda x: jnp.exp(-(x**2))}


def lotka_volterra(t, y, p):
    """The true vector field, p = (alpha, beta, gamma, delta)."""
    a, b, c, d = p
    return jnp.stack([a * y[0] - b * y[0] * y[1], c * y[0] * y[1] - d * y[1]])


def known_physics(t, y, p):
    """The part the hybrid is told: growth of the prey, decay of the predators."""
    return jnp.stack([p[0] * y[0], -p[1] * y[1]])


def _neural_field(t, y, net):
    return net(y)


class ScaledMLP(eqx.Module):
    """An MLP of the state divided by `scale`, its output multiplied by it: the network
    sees and returns numbers of about 1. `scale` (the readings' mean per species) is a
    constant, not trained."""

    mlp: eqx.nn.MLP
    scale: tuple[float, ...] = eqx.field(static=True)

    def __call__(self, y):
        s = jnp.asarray(self.scale, y.dtype)
        return s * self.mlp(y / s)


def _rollout(system, y0, n, grid, throw=True):
    """States at every reading time 0, interval, ..., n * interval; `grid` is (interval,
    substeps), Python numbers (static under jit)."""
    interval, k = grid
    return ds.simulate(
        system,
        y0,
        n_steps=n * k,
        dt=interval / k,
        saveat=ds.SaveAt(every=k),
        adjoint=ds.Direct(),
        throw=throw,
    ).ys


def _loss(model, observed, sigma, grid):
    """Mean squared misfit in units of the noise: about 1 at the noise level."""
    system, y0 = model
    ys = _rollout(system, y0, observed.shape[0] - 1, grid)
    return jnp.mean(((ys - observed) / sigma) ** 2)


@eqx.filter_jit
def _lbfgs_step(model, state, optimiser, observed, sigma, grid):
    params, static = eqx.partition(model, eqx.is_inexact_array)

    def f(p):
        return _loss(eqx.combine(p, static), observed, sigma, grid)

    value, grad = optax.value_and_grad_from_state(f)(params, state=state)
    updates, state = optimiser.update(grad, state, params, value=value, grad=grad, value_fn=f)
    return eqx.combine(optax.apply_updates(params, updates), static), state, value


def train(system, observed, sigma, config):
    """Adam (`ds.make_train_step`), then L-BFGS (optax, with its line search) on the
    system and its initial state together. Returns ((system, y0), loss, seconds)."""
    start = time.perf_counter()
    grid = (config.interval, config.substeps)
    model = (system, jnp.asarray(observed[0]))  # the first reading: the initial guess
    schedule = optax.cosine_decay_schedule(config.learning_rate, config.n_adam, alpha=0.1)
    step = ds.make_train_step(_loss, optax.adam(schedule), clip_norm=10.0)
    state = step.init(model)
    for _ in range(config.n_adam):
        model, state, _ = step(model, state, observed, sigma, grid)
    optimiser = optax.lbfgs()
    state = optimiser.init(eqx.filter(model, eqx.is_inexact_array))
    for _ in range(config.n_lbfgs):
        model, state, _ = _lbfgs_step(model, state, optimiser, observed, sigma, grid)
    loss = float(_loss(model, observed, sigma, grid))
    return model, loss, time.perf_counter() - start


def candidates(model, config):
    """The candidate laws: `ds.sparse_path` of each equation's correction, at the hybrid's
    fitted states (every RK4 step of the training window), onto polynomials of x and y;
    every combination of one law per equation, as a two-output `ds.SparseModel`. Each
    equation has its own path: the two terms need not vanish at the same threshold."""
    system, y0 = model
    n = round(config.t_train / config.interval) * config.substeps
    dt = config.interval / config.substeps
    states = ds.simulate(system, y0, n_steps=n, dt=dt, saveat=ds.SaveAt(every=1)).ys
    outputs = jax.vmap(system.correction)(states)
    library = ds.Library.polynomial(("x", "y"), degree=config.degree, bias=False)
    paths = [
        ds.sparse_path(
            library,
            states,
            outputs[:, k],
            output_names=(name,),
            max_terms=config.max_terms,
            min_r2=config.min_r2,
        )
        for k, name in enumerate(TRUE_TERMS)
    ]
    return [ds.SparseModel.stack(parts) for parts in itertools.product(*paths)]


def refit(model, sparse, observed, sigma, config):
    """The hybrid with `sparse` in place of its network; `ds.fit` of the coefficients and
    the initial state on the readings. Returns ((system, y0), refitted sparse model whose
    stderr are the fit's, chi^2, BIC), or None when the fit fails (the rollout blows up
    or gives no finite misfit)."""
    system, y0 = model
    n = observed.shape[0] - 1
    try:
        res = ds.fit(
            lambda p: _rollout(p[0], p[1], n, (config.interval, config.substeps)),
            (eqx.tree_at(lambda m: m.correction, system, sparse), y0),
            observed,
            where=lambda p: (p[0].correction.coefficients, p[1]),
            sigma=jnp.broadcast_to(sigma, observed.shape),
            throw=False,
        )
    except ds.SimulationError:
        return None
    chi2 = 2 * float(res.loss)
    if not np.isfinite(chi2):
        return None
    fitted = res.params[0].correction
    stderr = tuple(float(s) for s in np.asarray(res.stderr[0].correction.coefficients))
    fitted = dataclasses.replace(fitted, stderr=stderr)
    system = eqx.tree_at(lambda m: m.correction, res.params[0], fitted)
    m, p = observed.size, len(sparse.coefficients) + observed.shape[1]
    bic = m * np.log(chi2 / m) + p * np.log(m)
    return (system, res.params[1]), fitted, chi2, float(bic)


def select(model, observed, sigma, config):
    """Every candidate refitted on the readings; the one of least BIC. Returns (the
    recovered (system, y0) or None, its sparse model or None, a row per candidate:
    (expression, coefficients fitted, chi^2, BIC), NaN for one whose fit failed)."""
    rows, best = [], (np.inf, None, None)
    for sparse in candidates(model, config):
        out = refit(model, sparse, observed, sigma, config)
        p = len(sparse.coefficients) + observed.shape[1]
        text = sparse.expression().replace("\n", ";  ")
        if out is None:
            rows.append((text, p, float("nan"), float("nan")))
            continue
        recovered, fitted, chi2, bic = out
        rows.append((text, p, chi2, bic))
        if bic < best[0]:
            best = (bic, recovered, fitted)
    return best[1], best[2], rows


def forecast_error(ys, truth):
    """RMS of (forecast - truth) over both species, relative to the truth's RMS; inf for
    a forecast that blew up."""
    ys = np.asarray(ys)
    if not np.all(np.isfinite(ys)):
        return float("inf")
    return float(np.sqrt(np.mean((ys - truth) ** 2) / np.mean(truth**2)))


def structure_and_coefficients(sparse):
    """(whether each equation holds x*y and nothing else, {"beta": (value, stderr, truth),
    "gamma": ...}) of a found sparse model, or of None (nothing recovered)."""
    terms = sparse.terms() if sparse is not None else {"dx": {}, "dy": {}}
    right = all(set(terms[k]) == set(TRUE_TERMS[k]) for k in TRUE_TERMS)
    coefficients = {}
    for name, key, sign, true in (("beta", "dx", -1, BETA), ("gamma", "dy", 1, GAMMA)):
        c, se = terms[key].get("x*y", (float("nan"), float("nan")))
        coefficients[name] = (sign * c, se, true)
    return right, coefficients


def _data(config):
    n_train = round(config.t_train / config.interval)
    n_long = max(round(config.t_forecast / config.interval), n_train)
    truth = _rollout(
        ds.ODESystem(lotka_volterra, (ALPHA, BETA, GAMMA, DELTA)),
        jnp.asarray(X0),
        n_long,
        (config.interval, 10 * config.substeps),  # RK4 at a tenth of the models' dt
    )
    truth = np.asarray(truth)
    rng = np.random.default_rng(config.seed)
    sigma = config.noise * truth[: n_train + 1].mean(axis=0)
    observed = truth[: n_train + 1] + sigma * rng.standard_normal((n_train + 1, 2))
    return config.interval * np.arange(n_long + 1), truth, observed, sigma


def _systems(observed, config):
    """The untrained hybrid and neural ODE (their own weights from the seed)."""
    key_hybrid, key_neural = jax.random.split(jax.random.key(config.seed))
    scale = tuple(float(s) for s in np.abs(observed).mean(axis=0))
    mlp = dict(
        width_size=config.width, depth=config.depth, activation=ACTIVATIONS[config.activation]
    )
    return {
        "hybrid": ds.systems.HybridODE(
            ds.ODESystem(known_physics, (ALPHA, DELTA)),
            ScaledMLP(eqx.nn.MLP(2, 2, key=key_hybrid, **mlp), scale),
        ),
        "neural ODE": ds.ODESystem(
            _neural_field, ScaledMLP(eqx.nn.MLP(2, 2, key=key_neural, **mlp), scale)
        ),
    }


def run(config):
    """Train, list the candidate laws, refit each, choose by BIC and forecast; a dict of
    the figures (no printing)."""
    ts, truth, observed, sigma = _data(config)
    observed_j, sigma_j = jnp.asarray(observed), jnp.asarray(sigma)
    grid = (config.interval, config.substeps)
    models, losses, seconds = {}, {}, {}
    for name, system in _systems(observed, config).items():
        models[name], losses[name], seconds[name] = train(system, observed_j, sigma_j, config)
    start = time.perf_counter()
    recovered, found, rows = select(models["hybrid"], observed_j, sigma_j, config)
    seconds["regression + refits"] = time.perf_counter() - start
    if recovered is not None:
        models["recovered"] = recovered
        losses["recovered"] = float(_loss(recovered, observed_j, sigma_j, grid))
    forecasts = {
        name: np.asarray(_rollout(m[0], m[1], len(ts) - 1, grid, throw=False))
        for name, m in models.items()
    }
    right, coefficients = structure_and_coefficients(found)
    within = all(abs(v / t - 1) <= TOLERANCE for v, _, t in coefficients.values())
    return dict(
        ts=ts,
        t_train=config.t_train,
        truth=truth,
        observed=observed,
        forecasts=forecasts,
        train_seconds=seconds,
        losses=losses,
        forecast_error={n: forecast_error(f, truth) for n, f in forecasts.items()},
        candidates=rows,
        refitted=found.expression() if found is not None else "",
        found=found is not None,
        structure_ok=right,
        coefficients=coefficients,
        coefficients_ok=right and within,
    )


def _print(result, config):
    print(
        f"Lotka-Volterra (alpha={ALPHA}, beta={BETA}, gamma={GAMMA}, delta={DELTA}), read "
        f"every {config.interval:g} on [0, {config.t_train:g}] with {config.noise:.0%} noise; "
        f"{config.n_adam} Adam + {config.n_lbfgs} L-BFGS steps per model ({config.depth} x "
        f"{config.width} {config.activation} units)"
    )
    seconds, losses = result["train_seconds"], result["losses"]
    print("Training (misfit: mean squared residual in units of the noise, 1 = noise level):")
    for name in ("hybrid", "neural ODE"):
        print(f"  {name:11s} {seconds[name]:6.1f} s   misfit {losses[name]:.3f}")
    print(f"  regression + refits {seconds['regression + refits']:6.1f} s")
    print("Candidate laws (sparse_path of each equation), refitted on the readings:")
    print(f"  {'BIC':>8s} {'chi^2':>8s}  p  law (coefficients from the network's outputs)")
    for text, p, chi2, bic in sorted(
        result["candidates"], key=lambda r: np.nan_to_num(r[3], nan=np.inf)
    ):
        if np.isfinite(bic):
            print(f"  {bic:8.1f} {chi2:8.1f} {p:2d}  {text}")
        else:
            print(f"  {'blew up':>17s} {p:2d}  {text}  (refit skipped: rollout not finite)")
    if result["found"]:
        print(
            f"Chosen (least BIC), refitted (coefficient +- stderr), misfit {losses['recovered']:.3f}:"
        )
        print("  " + result["refitted"].replace("\n", "\n  "))
    else:
        why = "could be refitted" if result["candidates"] else "on either path"
        print(f"No candidate law {why} (min_r2 = {config.min_r2:g}): nothing recovered.")
    print(f"Structure (x*y alone in each equation): {'ok' if result['structure_ok'] else 'NOT'}")
    for name, (value, se, true) in result["coefficients"].items():
        print(
            f"  {name:5s} = {value:.4f} +- {se:.4f}   (true {true}, "
            f"{100 * (value / true - 1):+.1f}%)"
        )
    verdict = "ok" if result["coefficients_ok"] else "MISSED"
    print(f"Coefficients within {TOLERANCE:.0%} of the truth: {verdict}")
    t_end = result["ts"][-1]
    print(f"Forecast error over [0, {t_end:g}] (RMS relative to the truth's RMS):")
    for name, error in result["forecast_error"].items():
        print(f"  {name:11s} {error:.4f}" if np.isfinite(error) else f"  {name:11s} diverged")


def _plot(result, config, path):
    ts, truth, observed = result["ts"], result["truth"], result["observed"]
    colors = {"neural ODE": "C2", "hybrid": "C1", "recovered": "C0"}
    labels = {"neural ODE": "neural ODE", "hybrid": "hybrid (UDE)", "recovered": "recovered"}
    fig, axes = plt.subplots(
        3, 1, figsize=(9, 8.5), sharex=True, height_ratios=(1, 1, 0.9), layout="constrained"
    )
    for ax in axes:
        ax.axvspan(0, config.t_train, color="0.92", label="training window")
    t_obs = ts[: len(observed)]
    norm = np.sqrt(np.mean(truth**2))
    for k, (ax, species) in enumerate(zip(axes[:2], ("prey x", "predators y"), strict=True)):
        ax.plot(ts, truth[:, k], color="k", lw=2.5, label="truth")
        ax.plot(t_obs, observed[:, k], ".", color="0.3", ms=4, label="readings")
        for name, ys in result["forecasts"].items():
            ax.plot(ts, ys[:, k], color=colors[name], lw=1.4, label=labels[name])
        ax.set(ylabel=species, ylim=(-0.5, 1.35 * truth[:, k].max()))
    for name, ys in result["forecasts"].items():
        error = np.sqrt(np.sum((ys - truth) ** 2, axis=1)) / norm
        e = result["forecast_error"][name]
        text = f"{e:.3f}" if np.isfinite(e) else "diverged"
        axes[2].semilogy(ts, error, color=colors[name], lw=1.4, label=f"{labels[name]}: {text}")
    axes[2].set(
        xlabel="t",
        ylabel="|forecast - truth| / RMS(truth)",
        ylim=(1e-4, 1e2),
        title="error over time (legend: relative RMS error over the window)",
    )
    found = result["refitted"].replace("\n", ",   ") if result["found"] else "no law recovered"
    n = len(result["candidates"])
    axes[0].set_title(f"recovered (least BIC of {n} candidate laws): {found}", fontsize=9)
    axes[0].legend(loc="upper left", ncols=3, fontsize=8)
    axes[2].legend(loc="lower right", fontsize=8)
    save_figure(fig, path, dpi=90)


def main(argv=None):
    config, out = scenario_args(__doc__, CONFIG, SMOKE, argv, name="missing_physics", limits=LIMITS)
    start = time.perf_counter()
    result = run(config)
    _print(result, config)
    path = out / "missing_physics_forecast.png"
    _plot(result, config, path)
    print(f"Figure: {path}")
    print(f"Done in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
