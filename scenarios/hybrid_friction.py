"""Hybrid friction: a pendulum + neural-network friction law learns an unknown friction curve, forecasts the swing down to its stop, and the law is read off the network.

The data come from a pendulum (L = 1 m, g = 9.81 m/s^2) with a friction law that the
models are not told: smoothed Coulomb friction plus quadratic air drag,

    theta'' = -(g/L) sin(theta) - f(omega),   f(omega) = mu tanh(omega/eps) + k omega |omega|

with mu = 0.3 1/s^2, eps = 0.05 rad/s, k = 0.08 1/rad. Coulomb friction removes a fixed
angle per swing, so a swing stops in a finite time (13-15 s from the large starts here);
linear damping never stops one. Eight records are observed (angle and angular velocity,
every 0.05 s, noise 0.01 rad and 0.03 rad/s) for `t_train` = 6 s: four swings of 1 to
2.6 rad, and four small ones that come to rest within the record, where the step of f
at omega = 0 decides the motion. The last `t_holdout` = 1.5 s of each record is held out.

Three models train with the same optimiser (Adam with a cosine-decayed step, multiple
shooting on 1 s windows starting at every second reading, residuals in units of their
noise); each keeps the parameters with the lowest held-out loss (early stopping):

- physics: `ds.systems.Pendulum(length, damping)`, the textbook model with linear
  damping;
- hybrid: `ds.systems.HybridSystem(physics=Pendulum(length), correction=network,
  features=omega)`: gravity from physics with a trained length, friction a network of
  omega alone (a universal differential equation, Rackauckas et al. 2020). The network
  sees asinh(omega / 0.03 rad/s), linear below the velocity noise and logarithmic above,
  so one input resolves a step near rest and the growth at speed; its output is in 1/s^2;
- neural ODE: theta'' = MLP(theta, omega), no physics (the same velocity input; output in
  units of 10 1/s^2).

Discovery: the trained network is evaluated at the visited angular velocities and
`ds.sparse_regression` fits its output (the acceleration correction, -f) on a library
of candidate terms: 1, v, v^2, v^3, tanh(v/0.05), tanh(v/0.5), v|v|, sign(v). The
network's outputs carry no noise, so the regression's own cross-validated threshold
keeps 7 of the 8 terms (they fit the network's small misfits). Instead, each law on the
threshold path (13 thresholds from 1e-3 to 1) takes the network's place in the hybrid,
and the sparsest whose held-out window loss is within one standard error of the best
law's is kept. `ds.fit` (Levenberg-Marquardt through the simulator, on independent 1 s
windows of the record) then refits its coefficients: the "discovered" model.

Measured at full size (2026-12-07, the shared 2-core CPU under a load of 2-4, 120 s in
all: physics 9 s, hybrid 54 s, neural ODE 26 s to train, discovery and refit 15 s).
Forecast RMS angle error over the 20 s after the record, from its last (noisy)
readings, through the stop, over the eight records: hybrid **0.0023 rad**, discovered
law 0.0020 rad, physics only 0.0379 rad (16x the hybrid's), neural ODE 0.0765 rad (33x).
Discovered: f(v) = (0.2958 ± 0.0038) tanh(v/0.05) + (0.0809 ± 0.0007) v|v|, i.e. mu
-1.4% and k +1.1% from the truth (the regression on the network alone gave 0.2947 and
0.0796); the hybrid's length is 0.9999 m.

Figures: `hybrid_friction_curve.png`, the learned friction, the discovered law and the
linear damping fit against the true law (visited range; near omega = 0);
`hybrid_friction_forecast.png`, two swings' forecasts over `t_forecast` s beyond the
record, and each model's RMS angle error over the eight records against time.
`run(config)` returns the numbers as a dict (benchmarks/discovery.py calls it).

Run: `python scenarios/hybrid_friction.py --out out` (`--smoke`: a few training steps).
"""

import sys
import time
import types
from collections.abc import Mapping

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
from diffsim._scenario import POSITIVE, save_figure, scenario_args  # noqa: E402

CONFIG = dict(
    t_train=6.0,  # s of observed record per swing
    t_holdout=1.5,  # s at the end of each record held out: early stopping, term selection
    t_forecast=20.0,  # s, forecast from the last observed state, beyond the record
    dt=0.05,  # s, RK4 step and reading interval
    segment=20,  # steps per multiple-shooting window (1 s)
    stride=2,  # readings between the starts of two training windows
    n_steps=800,  # Adam steps per model
    eval_every=25,  # Adam steps between two held-out evaluations
    learning_rate=1e-2,  # Adam step size
    width=32,  # hidden units of each MLP (two hidden layers)
    seed=0,  # random seed: readings and network weights
)
SMOKE = dict(
    t_train=2.0, t_holdout=0.5, t_forecast=2.0, segment=5, n_steps=4, eval_every=2, width=8
)
LIMITS = dict(t_train=POSITIVE, t_holdout=POSITIVE, t_forecast=POSITIVE)

LENGTH, GRAVITY = 1.0, 9.81
MU, EPS, DRAG = 0.3, 0.05, 0.08
NOISE_Q, NOISE_V = 0.01, 0.03
# Four swings, and four small ones that come to rest within the record: the regime where
# the Coulomb step at omega = 0 decides the motion (the last two never exceed 0.3 rad/s).
STARTS = [(2.6, -1.0), (2.0, 0.0), (-1.5, 1.0), (1.0, 0.0)]
STARTS += [(0.5, 0.0), (0.25, 0.0), (0.12, 0.0), (-0.08, 0.1)]
# The networks see asinh(omega / OMEGA_0): linear below the velocity noise, logarithmic
# above, so one unit of input resolves a step at small speeds and a growth at large ones.
OMEGA_0 = NOISE_V
V_WEIGHT = (NOISE_Q / NOISE_V) ** 2  # residuals in units of their noise
COLORS = {"physics": "C0", "hybrid": "C3", "discovered": "C1", "neural ODE": "C2"}


def true_friction(omega):
    """The friction deceleration f(omega) (1/s^2) that the models must discover."""
    return MU * jnp.tanh(omega / EPS) + DRAG * omega * jnp.abs(omega)


def _truth_acceleration(t, q, v, params):
    return -(GRAVITY / LENGTH) * jnp.sin(q) - true_friction(v)


def _neural_acceleration(t, q, v, net):
    return net(jnp.stack([q, v]))


def _library():
    """The candidate terms of the friction law: a cubic, a sharp and a soft smoothed step,
    a sign step and quadratic drag."""
    terms = {
        "tanh(v/0.05)": lambda x: jnp.tanh(x[0] / 0.05),
        "tanh(v/0.5)": lambda x: jnp.tanh(x[0] / 0.5),
        "v|v|": lambda x: x[0] * jnp.abs(x[0]),
        "sign(v)": lambda x: jnp.sign(x[0]),
    }
    return ds.Library.polynomial(("v",), degree=3) + ds.Library.terms(terms)


class _Network(eqx.Module):
    """An MLP of features whose last entry is an angular velocity, fed in as
    asinh(omega / OMEGA_0); its output is multiplied by `scale` (1/s^2)."""

    mlp: eqx.nn.MLP
    scale: float = eqx.field(static=True)

    def __call__(self, x):
        return self.scale * self.mlp(x.at[-1].set(jnp.arcsinh(x[-1] / OMEGA_0)))


class _Expansion(eqx.Module):
    """Every library term with a coefficient (zero for a dropped term): each candidate
    law of the regression path in one compiled rollout."""

    coefficients: jax.Array
    library: ds.Library = eqx.field(static=True)

    def __call__(self, x):
        return self.library(x) @ self.coefficients


def _rollout(model, y0, n, dt):
    """States at every step 0..n from y0. Windows are short (20 steps), so plain
    backpropagation (`ds.Direct`) stores little and compiles fastest."""
    return ds.simulate(
        model, y0, n_steps=n, dt=dt, saveat=ds.SaveAt(every=1), adjoint=ds.Direct()
    ).ys


def _window_rollouts(model, windows, dt):
    """Each window rolled out from its observed first state (multiple shooting)."""
    n = windows.q.shape[1] - 1
    return jax.vmap(lambda y0: _rollout(model, y0, n, dt))(jax.tree.map(lambda x: x[:, 0], windows))


def _window_losses(model, windows, dt):
    ys = _window_rollouts(model, windows, dt)
    return jnp.mean((ys.q - windows.q) ** 2, axis=1) + V_WEIGHT * jnp.mean(
        (ys.v - windows.v) ** 2, axis=1
    )


def _loss(model, windows, dt):
    return jnp.mean(_window_losses(model, windows, dt))


_held_out_losses = eqx.filter_jit(_window_losses)


def _windows(observed, first, last, seg, stride):
    """Windows of seg + 1 readings starting at reading first, first + stride, ... and
    ending by reading `last`, of every record: (records * starts, seg + 1)."""
    index = np.arange(first, last - seg + 1, stride)[:, None] + np.arange(seg + 1)[None, :]
    return jax.tree.map(lambda x: x[:, index].reshape(-1, seg + 1), observed)


def _data(config):
    """Noise-free truth over record + forecast, and noisy readings over the record."""
    n_train, n_forecast = round(config.t_train / config.dt), round(config.t_forecast / config.dt)
    truth_system = ds.MechanicalSystem(_truth_acceleration, {})
    y0s = ds.PhaseState(q=jnp.array([s[0] for s in STARTS]), v=jnp.array([s[1] for s in STARTS]))
    truth = jax.vmap(lambda y0: _rollout(truth_system, y0, n_train + n_forecast, config.dt))(y0s)
    rng = np.random.default_rng(config.seed)
    shape = (len(STARTS), n_train + 1)
    observed = ds.PhaseState(
        q=truth.q[:, : n_train + 1] + NOISE_Q * rng.standard_normal(shape),
        v=truth.v[:, : n_train + 1] + NOISE_V * rng.standard_normal(shape),
    )
    return truth, observed


def _models(config):
    key_hybrid, key_neural = jax.random.split(jax.random.key(config.seed))
    mlp = dict(activation=jax.nn.tanh, width_size=config.width, depth=2)
    return {
        "physics": ds.systems.Pendulum(
            length=jnp.asarray(0.8, float), damping=jnp.asarray(0.1, float)
        ),
        "hybrid": ds.systems.HybridSystem(
            physics=ds.systems.Pendulum(length=jnp.asarray(0.8, float)),
            # Friction decelerations are of order 1/s^2 (a few tenths to a few).
            correction=_Network(eqx.nn.MLP(1, "scalar", key=key_hybrid, **mlp), 1.0),
            features=lambda t, q, v: jnp.reshape(v, (1,)),
        ),
        # Its output is all of the acceleration, gravity included: of order g/L.
        "neural ODE": ds.MechanicalSystem(
            _neural_acceleration, _Network(eqx.nn.MLP(2, "scalar", key=key_neural, **mlp), 10.0)
        ),
    }


def _train(model, train_windows, held_windows, config):
    """Adam on the training windows; every `eval_every` steps the held-out loss, keeping
    the parameters where it is lowest (early stopping)."""
    schedule = optax.cosine_decay_schedule(config.learning_rate, config.n_steps, alpha=0.05)
    train = ds.make_train_step(_loss, optax.adam(schedule), clip_norm=10.0)
    opt_state = train.init(model)
    best, best_loss, best_step = model, np.inf, 0
    for step in range(1, config.n_steps + 1):
        model, opt_state, _ = train.step(model, opt_state, train_windows, config.dt)
        if step % config.eval_every == 0 or step == config.n_steps:
            loss = float(jnp.mean(_held_out_losses(model, held_windows, config.dt)))
            if loss < best_loss:
                best, best_loss, best_step = model, loss, step
    return best, best_loss, best_step


def _select(hybrid, library, x, y, held_windows, dt):
    """The sparsest law on the regression's threshold path that predicts the held-out
    windows as well as the best law on it (one standard error of the mean paired
    difference of the window losses). Returns (sparse model, candidates tried)."""
    path = ds.sparse_path(library, x, y, thresholds=np.geomspace(1e-3, 1.0, 13))
    candidates = {sparse.active: sparse for sparse in path}
    losses = {}
    for active, sparse in candidates.items():
        dense = np.zeros(len(library.names))
        dense[[j for j, _ in active]] = np.asarray(sparse.coefficients)
        model = eqx.tree_at(lambda m: m.correction, hybrid, _Expansion(jnp.asarray(dense), library))
        losses[active] = np.asarray(_held_out_losses(model, held_windows, dt))
    if not losses:
        return None, 0
    best = min(losses, key=lambda a: losses[a].mean())

    def close(a):
        diff = losses[a] - losses[best]
        return diff.mean() <= diff.std(ddof=1) / np.sqrt(len(diff))

    chosen = min((a for a in losses if close(a)), key=lambda a: (len(a), losses[a].mean()))
    return candidates[chosen], len(candidates)


def _discover(hybrid, observed, held_windows, fit_windows, dt):
    """Sparse regression of the trained network at the visited angular velocities, the
    term selection on held-out data, and a refit of the coefficients on the record."""
    library = _library()
    x = observed.v.reshape(-1, 1)
    y = jax.vmap(hybrid.correction)(x)  # the acceleration correction, -f(omega)
    default = ds.sparse_regression(library, x, y)
    sparse, n_candidates = _select(hybrid, library, x, y, held_windows, dt)
    out = dict(default_terms=len(default.active), default_found=default.found)
    out |= dict(n_candidates=n_candidates, found=sparse is not None)
    if sparse is None:
        return None, out
    discovered = eqx.tree_at(lambda m: m.correction, hybrid, sparse)
    res = ds.fit(
        lambda m: _window_rollouts(m, fit_windows, dt),
        discovered,
        fit_windows,
        where=lambda m: m.correction.coefficients,
        sigma=ds.PhaseState(q=NOISE_Q, v=NOISE_V),
        throw=False,  # a short (smoke) training may leave no law to converge to
    )
    out["converged"] = bool(res.converged)
    names = [library.names[j] for j, _ in sparse.active]
    coef, stderr = res.params.correction.coefficients, res.stderr.correction.coefficients
    # The network's output is the acceleration correction, -f: flip to the friction law.
    out["regression"] = {n: -c for n, (c, _) in sparse.terms()["f"].items()}
    out["law"] = {n: (-float(c), float(s)) for n, c, s in zip(names, coef, stderr, strict=True)}
    return res.params, out


def _check(config):
    n_train, n_hold = round(config.t_train / config.dt), round(config.t_holdout / config.dt)
    if not config.segment <= n_hold <= n_train - config.segment:
        raise ValueError(
            f"t_holdout = {config.t_holdout:g} s must hold at least one window of "
            f"segment = {config.segment} steps and leave one for training in t_train = "
            f"{config.t_train:g} s (dt = {config.dt:g} s)"
        )
    return n_train, n_hold


def _coefficients(discovery):
    """The refitted Coulomb level and drag coefficient with their stderr (NaN for a term
    the discovered law lacks), as flat numbers for a benchmark's table."""
    law = discovery.get("law", {})
    out = {}
    for key, term in (("mu", "tanh(v/0.05)"), ("k", "v|v|")):
        value, stderr = law.get(term, (float("nan"), float("nan")))
        out |= {key: value, f"{key}_stderr": stderr}
    return out


def run(config) -> dict:
    """Train the three models, discover the law, forecast. `config`: the namespace
    `scenario_args` gives, or a mapping of overrides of CONFIG. Returns `train_seconds`
    (per model, and the discovery), `forecast_rms` (rad, per model), `discovery` (the
    law's terms: refitted friction coefficient and stderr, regression coefficients,
    selection figures), `coefficients` (mu, k and their stderr, flat), `length`,
    `damping`, `best_step`, `held_out_loss`, and under `arrays` what the figures draw."""
    if isinstance(config, Mapping):
        config = types.SimpleNamespace(**(CONFIG | dict(config)))
    n_train, n_hold = _check(config)
    dt, seg = config.dt, config.segment
    truth, observed = _data(config)
    train_w = _windows(observed, 0, n_train - n_hold, seg, config.stride)
    held_w = _windows(observed, n_train - n_hold, n_train, seg, 1)
    trained, seconds, best_step, held = {}, {}, {}, {}
    for name, model in _models(config).items():
        start = time.perf_counter()
        trained[name], held[name], best_step[name] = _train(model, train_w, held_w, config)
        seconds[name] = time.perf_counter() - start
    start = time.perf_counter()
    fit_w = _windows(observed, 0, n_train, seg, seg)  # independent windows: honest stderr
    discovered, discovery = _discover(trained["hybrid"], observed, held_w, fit_w, dt)
    seconds["discovery"] = time.perf_counter() - start
    if discovered is not None:
        trained = trained | {"discovered": discovered}
    last = jax.tree.map(lambda x: x[:, n_train], observed)
    n_forecast = round(config.t_forecast / dt)
    forecasts = {
        name: np.asarray(jax.vmap(lambda y0, m=m: _rollout(m, y0, n_forecast, dt))(last).q)
        for name, m in trained.items()
    }
    truth_q = np.asarray(truth.q)
    rms = {
        n: float(np.sqrt(np.mean((f - truth_q[:, n_train:]) ** 2))) for n, f in forecasts.items()
    }
    length = {
        n: float(m.length if n == "physics" else m.physics.length)
        for n, m in trained.items()
        if n != "neural ODE"
    }
    return dict(
        train_seconds=seconds,
        forecast_rms=rms,
        discovery=discovery,
        coefficients=_coefficients(discovery),
        length=length,
        damping=float(trained["physics"].damping),
        best_step=best_step,
        held_out_loss=held,
        arrays=dict(truth=truth_q, observed=observed, forecasts=forecasts, trained=trained),
    )


def _report(result, config):
    d, rms, sec = result["discovery"], result["forecast_rms"], result["train_seconds"]
    print(
        f"Pendulum with Coulomb + quadratic friction (mu={MU}, k={DRAG}), {len(STARTS)} "
        f"swings observed for {config.t_train:g} s every {config.dt:g} s (the last "
        f"{config.t_holdout:g} s held out); up to {config.n_steps} Adam steps per model"
    )
    print("Training (best held-out step):")
    for name in ("physics", "hybrid", "neural ODE"):
        print(f"  {name:11s} {sec[name]:6.1f} s   step {result['best_step'][name]}")
    print(
        f"  physics: L = {result['length']['physics']:.4f} m, c = {result['damping']:.4f} 1/s;"
        f" hybrid: L = {result['length']['hybrid']:.4f} m (true {LENGTH})"
    )
    print(
        f"Discovery ({sec['discovery']:.1f} s): ds.sparse_regression's own cross-validation "
        f"keeps {d['default_terms']} terms (found: {d['default_found']}): the network's "
        f"outputs carry no noise; of the {d['n_candidates']} law(s) on the threshold path, "
        "the sparsest as good on the held-out windows:"
    )
    if d["found"]:
        regression = " + ".join(f"{c:.4f} {n}" for n, c in d["regression"].items())
        print(f"  regression on the network: f(v) = {regression}")
        law = " + ".join(f"({c:.4f} ± {s:.4f}) {n}" for n, (c, s) in d["law"].items())
        print(f"  refitted on the record:    f(v) = {law}")
        truth = {"tanh(v/0.05)": MU, "v|v|": DRAG}
        for term, value in truth.items():
            if term in d["law"]:
                c = d["law"][term][0]
                print(f"    {term:13s} {c:.4f} (true {value}, {100 * (c / value - 1):+.1f}%)")
    else:
        print("  no sparse law found")
    print(f"Forecast RMS angle error over the {config.t_forecast:g} s after the record:")
    for name, err in rms.items():
        print(f"  {name:11s} {err:.4f} rad   (physics / this: {rms['physics'] / err:.1f}x)")


def _plot_curve(result, path):
    trained, observed = result["arrays"]["trained"], result["arrays"]["observed"]
    omega_max = float(np.max(np.abs(observed.v)))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.3), layout="constrained")
    for ax, top in zip(axes, (omega_max, 0.4), strict=True):
        omega = jnp.linspace(-top, top, 401)
        ax.plot(omega, true_friction(omega), color="k", lw=3, label="true $f(\\omega)$")
        c, style = result["damping"], dict(color=COLORS["physics"], ls="--")
        ax.plot(omega, c * omega, **style, label=f"physics: $c\\omega$, c = {c:.3f} 1/s")
        labels = {"hybrid": "hybrid: learned network", "discovered": "discovered law, refitted"}
        for (name, label), ls in zip(labels.items(), ("-", ":"), strict=True):
            if name in trained:
                f = -jax.vmap(lambda w, m=trained[name]: m.correction(w[None]))(omega)
                ax.plot(omega, f, color=COLORS[name], ls=ls, lw=2, label=label)
        ax.axhline(0, color="0.8", lw=0.8, zorder=0)
        ax.set(
            xlabel="angular velocity $\\omega$ (rad/s)", ylabel="friction $f(\\omega)$ (1/s$^2$)"
        )
    axes[0].set_title("Friction law: whole visited range")
    axes[1].set_title("Near $\\omega$ = 0: the Coulomb step")
    axes[0].legend(fontsize=9)
    return save_figure(fig, path, dpi=100)


def _plot_forecast(result, config, path):
    a, rms = result["arrays"], result["forecast_rms"]
    dt, n_train = config.dt, round(config.t_train / config.dt)
    ts = dt * np.arange(a["truth"].shape[1])
    fig, axes = plt.subplot_mosaic(
        [["a", "b"], ["err", "err"]],
        figsize=(11, 7.5),
        height_ratios=(1.2, 1),
        layout="constrained",
    )
    for key, member in (("a", 0), ("b", 2)):
        ax = axes[key]
        ax.axvspan(0, config.t_train, color="0.93", label="observed record")
        ax.plot(ts, a["truth"][member], color="k", lw=2.5, label="truth")
        ax.plot(
            ts[: n_train + 1], a["observed"].q[member], ".", color="0.4", ms=2, label="readings"
        )
        for name, fc in a["forecasts"].items():
            label = f"{name}: {rms[name]:.4f} rad"
            ax.plot(ts[n_train:], fc[member], color=COLORS[name], lw=1.2, label=label)
        ax.set(xlabel="t (s)", ylabel="angle (rad)", title=f"start {STARTS[member]} (rad, rad/s)")
    title = f"forecast RMS error, all {len(STARTS)} records"
    axes["a"].legend(fontsize=8, ncols=2, title=title, title_fontsize=8)
    ax = axes["err"]
    for name, fc in a["forecasts"].items():
        error = np.sqrt(np.mean((fc - a["truth"][:, n_train:]) ** 2, axis=0))
        ax.semilogy(ts[n_train:], error, color=COLORS[name], lw=1.5, label=name)
    ax.axhline(NOISE_Q, color="0.5", ls=":", label="reading noise")
    ax.set(
        xlabel="t (s)", ylabel=f"RMS angle error, {len(STARTS)} records (rad)", ylim=(1e-5, None)
    )
    ax.set_title("Forecast error against time, from the last reading")
    ax.legend(fontsize=9, ncols=5)
    return save_figure(fig, path, dpi=90)


def main(argv=None):
    config, out = scenario_args(__doc__, CONFIG, SMOKE, argv, name="hybrid_friction", limits=LIMITS)
    start_time = time.perf_counter()
    try:
        result = run(config)
    except ValueError as e:
        print(f"hybrid_friction: error: {e}", file=sys.stderr)
        return 2
    _report(result, config)
    curve = _plot_curve(result, out / "hybrid_friction_curve.png")
    forecast = _plot_forecast(result, config, out / "hybrid_friction_forecast.png")
    print(f"Figures: {curve}, {forecast}")
    print(f"Done in {time.perf_counter() - start_time:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
