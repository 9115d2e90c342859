"""Hybrid friction: a pendulum + neural-network friction law learns an unknown friction curve and forecasts better than pure physics or a pure neural ODE.

The data come from a pendulum (L = 1 m, g = 9.81 m/s^2) with a friction law that the
models are not told: smoothed Coulomb friction plus quadratic air drag,

    theta'' = -(g/L) sin(theta) - f(omega),   f(omega) = mu tanh(omega/eps) + k omega |omega|

with mu = 0.3 1/s^2, eps = 0.05 rad/s, k = 0.08 1/rad. Four swings from different starts
are observed (angle and angular velocity, every 0.05 s, noise 0.01 rad and 0.03 rad/s)
for the first `t_train` seconds. Three models are trained on these records with the same
optimiser (Adam, fixed seed, multiple shooting on 1 s segments starting at every reading):

- physics: `ds.systems.Pendulum(length, damping)`, the textbook model with linear
  damping, length and damping trained;
- hybrid: `ds.systems.HybridSystem(physics=Pendulum(length), correction=MLP, features=
  omega)`: gravity from physics with a trained length, friction a network of omega alone
  (a universal differential equation, Rackauckas et al. 2020); length and weights train
  together through the simulator;
- neural ODE: theta'' = MLP(theta, omega), no physics at all.

What it shows: the learned friction curve against the true one and the linear damping
fit (`hybrid_friction_curve.png`), and each model's forecast from the last observed state
over the following `t_forecast` seconds, beyond the training window, with its absolute
angle error over time (`hybrid_friction_forecast.png`); it prints the three forecast
errors (RMS angle error against the noise-free truth). The hybrid model's error is the
smallest.

Run: `python scenarios/hybrid_friction.py --out out` (`--smoke`: a few training steps).
"""

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
from diffsim._scenario import POSITIVE, save_figure, scenario_args  # noqa: E402

CONFIG = dict(
    t_train=6.0,  # s of observed record per swing
    t_forecast=14.0,  # s, forecast beyond the training window
    dt=0.05,  # s, RK4 step and reading interval
    segment=20,  # steps per multiple-shooting segment (1 s)
    n_steps=1500,  # Adam steps per model
    learning_rate=1e-2,  # Adam step size
    width=32,  # hidden units of each MLP (two hidden layers)
    seed=0,  # random seed: readings and network weights
)
SMOKE = dict(t_train=2.0, t_forecast=2.0, n_steps=5, width=8)
LIMITS = dict(t_train=POSITIVE, t_forecast=POSITIVE)  # beyond diffsim._scenario's rules

LENGTH, GRAVITY = 1.0, 9.81
MU, EPS, DRAG = 0.3, 0.05, 0.08
NOISE_Q, NOISE_V = 0.01, 0.03
STARTS = [(1.0, 0.0), (2.0, 0.0), (-1.5, 1.0), (2.6, -1.0)]  # (rad, rad/s)


def true_friction(omega):
    """The friction deceleration f(omega) (1/s^2) that the models must discover."""
    return MU * jnp.tanh(omega / EPS) + DRAG * omega * jnp.abs(omega)


def _truth_acceleration(t, q, v, params):
    return -(GRAVITY / LENGTH) * jnp.sin(q) - true_friction(v)


def _neural_acceleration(t, q, v, net):
    return net(jnp.stack([q, v]))


def _rollout(model, y0, n, dt):
    """States at every step 0..n from y0. Segments are short (20 steps), so plain
    backpropagation (`ds.Direct`) stores little and compiles fastest."""
    return ds.simulate(
        model, y0, n_steps=n, dt=dt, saveat=ds.SaveAt(every=1), adjoint=ds.Direct()
    ).ys


def _segment_loss(model, starts, targets, dt):
    """Multiple shooting: roll each segment from its observed first state, compare with the
    readings along it (angle in rad, angular velocity scaled to a comparable size)."""
    n = targets.q.shape[1] - 1
    ys = jax.vmap(lambda y0: _rollout(model, y0, n, dt))(starts)
    return jnp.mean((ys.q - targets.q) ** 2) + 0.1 * jnp.mean((ys.v - targets.v) ** 2)


def _train(model, starts, targets, config):
    schedule = optax.cosine_decay_schedule(config.learning_rate, config.n_steps, alpha=0.05)
    train = ds.make_train_step(_segment_loss, optax.adam(schedule), clip_norm=10.0)
    opt_state = train.init(model)
    loss = jnp.nan
    for _ in range(config.n_steps):
        model, opt_state, loss = train.step(model, opt_state, starts, targets, config.dt)
    return model, float(loss)


def main(argv=None):
    config, out = scenario_args(__doc__, CONFIG, SMOKE, argv, name="hybrid_friction", limits=LIMITS)
    start_time = time.perf_counter()
    dt = config.dt
    n_train = round(config.t_train / dt)
    n_forecast = round(config.t_forecast / dt)
    seg = min(config.segment, n_train)

    # Data: noise-free truth over train + forecast, noisy readings over the training window.
    truth_system = ds.MechanicalSystem(_truth_acceleration, {})
    y0s = ds.PhaseState(q=jnp.array([s[0] for s in STARTS]), v=jnp.array([s[1] for s in STARTS]))
    truth = jax.vmap(lambda y0: _rollout(truth_system, y0, n_train + n_forecast, dt))(y0s)
    rng = np.random.default_rng(config.seed)
    observed = ds.PhaseState(
        q=truth.q[:, : n_train + 1] + NOISE_Q * rng.standard_normal((len(STARTS), n_train + 1)),
        v=truth.v[:, : n_train + 1] + NOISE_V * rng.standard_normal((len(STARTS), n_train + 1)),
    )
    # Every window of seg + 1 readings within the training record: (n_segments, seg + 1).
    index = np.arange(n_train - seg + 1)[:, None] + np.arange(seg + 1)[None, :]
    windows = jax.tree.map(lambda x: x[:, index].reshape(-1, seg + 1), observed)
    seg_starts = jax.tree.map(lambda x: x[:, 0], windows)

    key_hybrid, key_neural = jax.random.split(jax.random.key(config.seed))
    mlp = dict(activation=jax.nn.tanh, width_size=config.width, depth=2)
    models = {
        "physics": ds.systems.Pendulum(
            length=jnp.asarray(0.8, float), damping=jnp.asarray(0.1, float)
        ),
        "hybrid": ds.systems.HybridSystem(
            physics=ds.systems.Pendulum(length=jnp.asarray(0.8, float)),
            correction=eqx.nn.MLP("scalar", "scalar", key=key_hybrid, **mlp),
            features=lambda t, q, v: v,
        ),
        "neural ODE": ds.MechanicalSystem(
            _neural_acceleration, eqx.nn.MLP(2, "scalar", key=key_neural, **mlp)
        ),
    }
    trained, losses, errors, forecasts, times = {}, {}, {}, {}, {}
    last = jax.tree.map(lambda x: x[:, n_train], observed)
    truth_forecast = truth.q[:, n_train:]
    for name, model in models.items():
        t = time.perf_counter()
        trained[name], losses[name] = _train(model, seg_starts, windows, config)
        times[name] = time.perf_counter() - t
        ys = jax.vmap(lambda y0, m=trained[name]: _rollout(m, y0, n_forecast, dt))(last)
        forecasts[name] = np.asarray(ys.q)
        errors[name] = float(np.sqrt(np.mean((forecasts[name] - truth_forecast) ** 2)))

    hybrid, physics = trained["hybrid"], trained["physics"]
    print(
        f"Pendulum with Coulomb + quadratic friction (mu={MU}, k={DRAG}), {len(STARTS)} "
        f"swings observed for {config.t_train:g} s every {dt:g} s; {config.n_steps} Adam "
        f"steps per model"
    )
    print(
        f"  physics:    L = {float(physics.length):.4f} m (true {LENGTH}), "
        f"c = {float(physics.damping):.4f} 1/s"
    )
    print(f"  hybrid:     L = {float(hybrid.physics.length):.4f} m (true {LENGTH})")
    print(f"Forecast RMS angle error over the {config.t_forecast:g} s after the training window:")
    for name in models:
        print(
            f"  {name:11s} {errors[name]:.4f} rad   (training loss {losses[name]:.2e}, "
            f"{times[name]:.1f} s to train)"
        )
    best = min(errors, key=errors.get)
    print(f"Best forecast: {best}")

    # Figure 1: the friction curve.
    omega_max = float(np.max(np.abs(observed.v)))
    omega = jnp.linspace(-omega_max, omega_max, 401)
    learned = -jax.vmap(lambda w: hybrid.correction_acceleration(0.0, jnp.zeros(()), w))(omega)
    fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    ax.plot(omega, true_friction(omega), color="k", lw=2.5, label="true $f(\\omega)$")
    ax.plot(omega, learned, color="C3", lw=1.5, label="hybrid (learned network)")
    ax.plot(
        omega,
        float(physics.damping) * omega,
        color="C0",
        ls="--",
        label=f"physics: linear damping $c\\omega$, c = {float(physics.damping):.3f}",
    )
    ax.set(
        xlabel="angular velocity $\\omega$ (rad/s)",
        ylabel="friction deceleration $f(\\omega)$ (1/s$^2$)",
        title="Friction law recovered by the hybrid model",
    )
    ax.axhline(0, color="0.8", lw=0.8, zorder=0)
    ax.legend()
    path_curve = out / "hybrid_friction_curve.png"
    save_figure(fig, path_curve, dpi=120)

    # Figure 2: two swings' forecasts (top) and each model's absolute error (bottom).
    ts_all = dt * np.arange(n_train + n_forecast + 1)
    ts_forecast = ts_all[n_train:]
    colors = dict(zip(forecasts, ["C0", "C3", "C2"], strict=True))
    # The error swings through zero twice a period; its RMS over one small-angle period
    # (2 pi sqrt(L / g), 2.0 s) shows how each model's error grows.
    width = max(1, round(2 * np.pi * np.sqrt(LENGTH / GRAVITY) / dt))
    fig, axes = plt.subplots(
        2, 2, figsize=(10, 6.4), sharex=True, height_ratios=(1.4, 1), layout="constrained"
    )
    for (top, bottom), member in zip(axes.T, [1, 3], strict=True):
        for ax in (top, bottom):
            ax.axvspan(0, config.t_train, color="0.93", label="training window")
        top.plot(ts_all, truth.q[member], color="k", lw=2.5, label="truth")
        top.plot(
            ts_all[: n_train + 1], observed.q[member], ".", color="0.4", ms=2, label="readings"
        )
        for name, fc in forecasts.items():
            label = f"{name}: RMS error {errors[name]:.3f} rad ({len(STARTS)} swings)"
            top.plot(ts_forecast, fc[member], color=colors[name], lw=1.2, label=label)
            error = np.abs(fc[member] - np.asarray(truth_forecast[member]))
            window = np.ones(min(width, len(error)))  # shorter at the ends, not zero-padded
            rms = np.sqrt(
                np.convolve(error**2, window, mode="same")
                / np.convolve(np.ones_like(error), window, mode="same")
            )
            bottom.plot(ts_forecast, error, color=colors[name], lw=0.5, alpha=0.4)
            bottom.plot(ts_forecast, rms, color=colors[name], lw=2)
        top.set(ylabel="angle (rad)", title=f"start {STARTS[member]} (rad, rad/s)")
        bottom.set(xlabel="t (s)", ylabel="|forecast - truth| (rad)", ylim=(0, None))
        bottom.set_title("absolute error (thin) and its RMS over 2 s (thick)", fontsize=10)
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside lower center", ncols=3)
    path_forecast = out / "hybrid_friction_forecast.png"
    save_figure(fig, path_forecast, dpi=90)
    print(f"Figures: {path_curve}, {path_forecast}")
    print(f"Done in {time.perf_counter() - start_time:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
