"""Parameter inference network: an MLP trained with the simulator in the loop reads a pendulum's length and damping off one noisy record, against ds.fit run per system.

Each system is a pendulum (g = 9.81 m/s^2) with an unknown length L in [0.5, 2] m and
damping c in [0.05, 0.5] 1/s, released at rest from 1 rad; its angle is read every 0.1 s
for 5 s (50 readings) with Gaussian noise of 0.02 rad, simulated with RK4 at dt = 0.02 s.

The inference network maps the 50 readings to (L, c) (an MLP with two hidden layers whose
outputs are squashed into the prior's ranges). It is trained on simulated data only, with
the simulator in the loop twice at every step: a fresh batch of systems is drawn from the
prior and simulated (`jax.vmap` over `ds.simulate`) to make noisy records, and the loss
adds to the parameter error the misfit of the records re-simulated from the network's
estimates, differentiated through the rollout:

    loss = mean(((L_hat - L) / 1.5)^2 + ((c_hat - c) / 0.45)^2)
         + mean((simulate(L_hat, c_hat) - clean record)^2) / 0.02^2 / 50

It is then applied to `n_test` new systems (a different seed) and compared with `ds.fit`
(Levenberg-Marquardt with bounds) on each record, started from the prior's centre and
from the network's estimate. What it shows: median and 90th-percentile relative errors of
L and c for the three, the time per system (the network's is one batched forward pass, a
fit's is a sequence of rollouts and solves), and a scatter of estimates against truth
(`infer_parameters.png`).

Run: `python scenarios/infer_parameters.py --out out` (`--smoke`: a few training steps,
five test systems).
"""

import time

import jax
import matplotlib

# Before anything creates an array: training and the fits are in float64.
jax.config.update("jax_enable_x64", True)
# This script only writes PNG files, so it never needs a window, whatever MPLBACKEND says.
matplotlib.use("Agg")

import equinox as eqx  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import diffsim as ds  # noqa: E402
from diffsim._scenario import save_figure, scenario_args  # noqa: E402

CONFIG = dict(
    n_steps=2000,  # Adam steps
    batch=128,  # simulated systems per step
    learning_rate=3e-3,  # Adam step size
    width=64,  # hidden units of the MLP (two hidden layers)
    n_test=100,  # held-out systems
    seed=0,  # random seed: training systems and weights (the test uses another)
)
SMOKE = dict(n_steps=5, batch=16, width=16, n_test=5)

LOW = jnp.array([0.5, 0.05])  # L (m), c (1/s)
HIGH = jnp.array([2.0, 0.5])
ANGLE0 = 1.0  # rad, released at rest
NOISE = 0.02  # rad
DT = 0.02  # s
READ_EVERY = 5  # steps: every 0.1 s
N_READINGS = 50  # 5 s


def record(params):
    """Noise-free angles at the reading times for `params = (L, c)`."""
    pendulum = ds.systems.Pendulum(length=params[0], damping=params[1])
    traj = ds.simulate(
        pendulum,
        pendulum.initial_state(jnp.asarray(ANGLE0, params.dtype)),
        n_steps=READ_EVERY * N_READINGS,
        dt=DT,
        saveat=ds.SaveAt(every=READ_EVERY),
    )
    return traj.ys.q[1:]


class InferenceNet(eqx.Module):
    """Readings -> (L, c) within the prior's box: lo + (hi - lo) sigmoid(MLP(readings))."""

    mlp: eqx.nn.MLP

    def __call__(self, readings):
        return LOW + (HIGH - LOW) * jax.nn.sigmoid(self.mlp(readings))


def sample_systems(key, n):
    """`n` (params, noisy records) with params uniform in the prior's box."""
    k1, k2 = jax.random.split(key)
    params = LOW + (HIGH - LOW) * jax.random.uniform(k1, (n, 2), dtype=LOW.dtype)
    clean = jax.vmap(record)(params)
    return params, clean, clean + NOISE * jax.random.normal(k2, clean.shape, clean.dtype)


def loss_fn(net, key, batch):
    params, clean, noisy = sample_systems(key, batch)
    estimate = jax.vmap(net)(noisy)
    param_error = jnp.mean(((estimate - params) / (HIGH - LOW)) ** 2)
    refit = jax.vmap(record)(estimate)
    misfit = jnp.mean((refit - clean) ** 2) / NOISE**2 / N_READINGS
    return param_error + misfit


def main(argv=None):
    config, out = scenario_args(__doc__, CONFIG, SMOKE, argv, name="infer_parameters")
    start_time = time.perf_counter()
    key_net, key_train, key_test = jax.random.split(jax.random.key(config.seed), 3)
    net = InferenceNet(
        eqx.nn.MLP(N_READINGS, 2, config.width, 2, activation=jax.nn.tanh, key=key_net)
    )
    schedule = optax.cosine_decay_schedule(config.learning_rate, config.n_steps, alpha=0.05)
    train = ds.make_train_step(
        lambda net, key: loss_fn(net, key, config.batch), optax.adam(schedule), clip_norm=10.0
    )
    opt_state = train.init(net)
    t = time.perf_counter()
    losses = []
    for key in jax.random.split(key_train, config.n_steps):
        net, opt_state, loss = train.step(net, opt_state, key)
        losses.append(float(loss))
    train_time = time.perf_counter() - t

    # Held-out systems: the network in one batched call, then ds.fit on each record.
    truth, _, noisy = sample_systems(key_test, config.n_test)
    infer = eqx.filter_jit(lambda net, records: jax.vmap(net)(records))
    jax.block_until_ready(infer(net, noisy))  # compile
    t = time.perf_counter()
    net_estimates = np.asarray(jax.block_until_ready(infer(net, noisy)))
    net_time = (time.perf_counter() - t) / config.n_test

    def model(pendulum):
        return record(jnp.stack([pendulum.length, pendulum.damping]))

    def run_fit(observed, start):
        res = ds.fit(
            model,
            ds.systems.Pendulum(length=jnp.asarray(start[0]), damping=jnp.asarray(start[1])),
            observed,
            where=lambda p: (p.length, p.damping),
            bounds=((0.05, None), (0.0, None)),
        )
        return np.array([float(res.params.length), float(res.params.damping)])

    centre = np.asarray((LOW + HIGH) / 2)
    run_fit(noisy[0], centre)  # compile once, not timed
    fits = {"ds.fit from prior centre": [], "ds.fit from network estimate": []}
    fit_times = {name: [] for name in fits}
    for i in range(config.n_test):
        for name, start in [
            ("ds.fit from prior centre", centre),
            ("ds.fit from network estimate", net_estimates[i]),
        ]:
            t = time.perf_counter()
            fits[name].append(run_fit(noisy[i], start))
            fit_times[name].append(time.perf_counter() - t)

    truth = np.asarray(truth)
    estimates = {"inference network": net_estimates} | {k: np.array(v) for k, v in fits.items()}
    times = {"inference network": net_time} | {k: float(np.mean(v)) for k, v in fit_times.items()}
    print(
        f"Pendulum length and damping from {N_READINGS} noisy angle readings "
        f"(noise {NOISE} rad); network trained {config.n_steps} steps x {config.batch} "
        f"simulated systems in {train_time:.1f} s (final loss {losses[-1]:.3g})"
    )
    print(f"On {config.n_test} held-out systems (relative error: median / 90th percentile):")
    print(f"  {'method':30s} {'length':>17s} {'damping':>17s} {'time/system':>12s}")
    for name, est in estimates.items():
        rel = np.abs(est - truth) / truth
        med, p90 = np.median(rel, 0), np.percentile(rel, 90, 0)
        print(
            f"  {name:30s} {med[0]:7.2%} / {p90[0]:7.2%} {med[1]:7.2%} / {p90[1]:7.2%} "
            f"{times[name] * 1e3:9.3f} ms"
        )
    print(
        f"The network is {times['ds.fit from prior centre'] / times['inference network']:.0f}x "
        "faster per system than a fit from the prior centre."
    )

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5), layout="constrained")
    markers = {"inference network": "o", "ds.fit from prior centre": "x"}
    for ax, j, label in zip(axes, [0, 1], ["length L (m)", "damping c (1/s)"], strict=True):
        lo, hi = float(LOW[j]), float(HIGH[j])
        ax.plot([lo, hi], [lo, hi], color="0.6", lw=1, zorder=0, label="estimate = truth")
        for name, marker in markers.items():
            ax.plot(truth[:, j], estimates[name][:, j], marker, ms=4, mfc="none", label=name)
        ax.set(xlabel=f"true {label}", ylabel=f"estimated {label}")
    axes[0].legend()
    fig.suptitle("Held-out systems: inference network vs ds.fit per system")
    path = out / "infer_parameters.png"
    save_figure(fig, path, dpi=120)
    print(f"Figure: {path}")
    print(f"Done in {time.perf_counter() - start_time:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
