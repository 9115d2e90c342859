"""Cart-pole swing-up: an MLP policy trained by gradients through the simulator swings the pole up from random starts near the bottom and balances it.

The cart-pole is `ds.systems.CartPole` (cart 1 kg, pole 0.1 kg at 0.5 m), pushed by a
force $F = F_{max} \\tanh(\\mathrm{MLP}(x, \\sin\\theta, \\cos\\theta, \\dot x, \\dot\\theta))$,
$F_{max}$ = `max_force`: `ds.systems.Policy` puts the network in the cart-pole's `force`
field, so the rollout `ds.simulate(CartPole(force=policy), ...)` is differentiable in the
weights. Training is analytic policy gradients: Adam on the cost of whole rollouts (RK4
at dt = `dt`, `jax.vmap` over a batch of random starts), with gradient clipping
(`ds.make_train_step(..., clip_norm=...)`) and the default `ds.Checkpointed` adjoint.
The cost at every step is

    (1 - cos theta) + 0.1 x^2 + 0.01 xdot^2 + (e / 2g)^2,  e = l thetadot^2 / 2 + g (cos theta - 1)

(upright, centred, slow, and an energy-shaping term whose minimum is the upright energy:
it rewards pumping energy into the pole, the classic swing-up trick of Astrom and Furuta
2000), plus 5 times the mean of (1 - cos theta) + 0.1 x^2 + 0.01 (xdot^2 + thetadot^2)
over the last 2 s.

Two things make it work. Around the upright state the pole falls away at 4.6 /s, so the
gradient of a rollout longer than about a second grows like exp(4.6 t) and Adam follows
noise: trained on whole 5-8 s rollouts the policy swings up but never learns to hold
(`--set window=8`: 0/100 held-out successes). Hence (1) truncated gradients: a training
rollout of `horizon` seconds is simulated as consecutive windows of `window` seconds, each
starting where the previous one ended but with `jax.lax.stop_gradient` on that state, so
every gradient goes through at most one window, while the cost covers the whole swing-up
and the holding after it (and the windows start from states the policy itself visits);
(2) a curriculum: the first `balance_steps` batches all start near upright anywhere on
the track (angle +- 0.8 rad, position +- 2 m, velocities +- 1), which teaches the policy
to hold the pole; after that two thirds of each batch start near the bottom (angle
pi +- 0.5 rad, position and velocities +- 0.5) and one third near upright as before.

Evaluation: 100 held-out starts near the bottom (another seed), each simulated for
`t_eval` seconds (longer than the training horizon). A start succeeds when the pole stays
within 0.25 rad of upright and the cart within 2.5 m of the centre for the whole last
`hold` seconds. The script prints the success rate (the target is at least 90%) and draws
the angle, cart position and force of every held-out rollout (`cartpole_swingup.png`).
Measured with the defaults (float32, 2-core CPU): 100/100 held-out starts succeed (also
with seeds 1 and 2, and 999/1000 with `--set n_test=1000`); the whole run takes about
1.5 min. During the swing-up the cart may travel up to about 6 m from the centre; it is
back near it by the end.

Run: `python scenarios/cartpole_swingup.py --out out` (`--smoke`: a few training steps).
"""

import sys
import time

import jax
import matplotlib

# float32 is accurate enough for a policy and twice as fast to train on a CPU.
jax.config.update("jax_enable_x64", False)
# This script only writes PNG files, so it never needs a window, whatever MPLBACKEND says.
matplotlib.use("Agg")

import equinox as eqx  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import diffsim as ds  # noqa: E402
from diffsim._scenario import (  # noqa: E402
    FRACTION,
    NON_NEGATIVE,
    POSITIVE,
    save_figure,
    scenario_args,
)

CONFIG = dict(
    horizon=8.0,  # s, swing-up training rollouts
    window=1.0,  # s, gradients are truncated to windows this long
    t_eval=10.0,  # s, held-out rollouts
    hold=2.0,  # s, the pole must stay up for the end of each held-out rollout
    dt=0.05,  # s, RK4 step
    max_force=20.0,  # N, the largest push on the cart
    n_steps=1000,  # Adam steps
    balance_steps=200,  # the first steps start near upright only (curriculum)
    batch=32,  # starts per step
    learning_rate=3e-3,  # Adam step size
    clip_norm=1.0,  # gradients clipped to this global norm
    width=32,  # hidden units (two hidden layers)
    n_test=100,  # held-out starts (another seed)
    target=0.9,  # success rate to reach on the held-out starts
    seed=0,  # random seed: network, training and test starts
)
SMOKE = dict(  # compile-bound: one window, a few steps, a few starts
    horizon=0.2,
    window=0.2,
    t_eval=0.2,
    hold=0.1,
    n_steps=2,
    balance_steps=1,
    batch=4,
    width=4,
    n_test=4,
)

# Beyond the rules of diffsim._scenario (positive ints, finite floats, dt, seed, ...).
LIMITS = dict(
    horizon=POSITIVE,
    window=POSITIVE,
    t_eval=POSITIVE,
    hold=POSITIVE,
    max_force=POSITIVE,
    clip_norm=POSITIVE,
    target=FRACTION,
    balance_steps=NON_NEGATIVE,  # 0: no curriculum
)

GRAVITY = 9.81
POLE_LENGTH = 0.5
LAST = 2.0  # s, the end of a training rollout weighted more


def features(t, q, v):
    """Periodic in the angle, velocities scaled to order one."""
    return jnp.stack([q[0], jnp.sin(q[1]), jnp.cos(q[1]), v[0] / 2, v[1] / 5])


def bottom_starts(key, n):
    """Near the bottom (theta = pi from upright): the task's starting states."""
    k1, k2, k3 = jax.random.split(key, 3)
    x = jax.random.uniform(k1, (n,), minval=-0.5, maxval=0.5)
    theta = jnp.pi + jax.random.uniform(k2, (n,), minval=-0.5, maxval=0.5)
    vel = jax.random.uniform(k3, (n, 2), minval=-0.5, maxval=0.5)
    return ds.PhaseState(q=jnp.stack([x, theta], -1), v=vel)


def top_starts(key, n):
    """Near upright, moving: states the policy must hold after a swing-up."""
    k1, k2, k3 = jax.random.split(key, 3)
    x = jax.random.uniform(k1, (n,), minval=-2.0, maxval=2.0)
    theta = jax.random.uniform(k2, (n,), minval=-0.8, maxval=0.8)
    vel = jax.random.uniform(k3, (n, 2), minval=-1.0, maxval=1.0)
    return ds.PhaseState(q=jnp.stack([x, theta], -1), v=vel)


def training_starts(key, n):
    k1, k2 = jax.random.split(key)
    n_top = n // 3
    bottom, top = bottom_starts(k1, n - n_top), top_starts(k2, n_top)
    return jax.tree.map(lambda a, b: jnp.concatenate([a, b]), bottom, top)


def rollout(cartpole, y0, n_steps, dt):
    traj = ds.simulate(cartpole, y0, n_steps=n_steps, dt=dt, saveat=ds.SaveAt(every=1))
    return traj.ys


def truncated_rollout(cartpole, y0, n_steps, n_window, dt):
    """The rollout as `n_steps // n_window` windows, with the gradient stopped at the
    state where each window starts: the same states as `rollout`, minus the first."""

    def window(y, _):
        ys = rollout(cartpole, jax.lax.stop_gradient(y), n_window, dt)
        return jax.tree.map(lambda a: a[-1], ys), jax.tree.map(lambda a: a[1:], ys)

    _, ys = jax.lax.scan(window, y0, None, length=n_steps // n_window)
    return jax.tree.map(lambda a: a.reshape((-1, *a.shape[2:])), ys)


def cost(cartpole, y0s, n_steps, n_window, n_last, dt):
    ys = jax.vmap(lambda y0: truncated_rollout(cartpole, y0, n_steps, n_window, dt))(y0s)
    x, theta = ys.q[..., 0], ys.q[..., 1]
    dx, dtheta = ys.v[..., 0], ys.v[..., 1]
    energy = 0.5 * POLE_LENGTH * dtheta**2 + GRAVITY * (jnp.cos(theta) - 1)
    running = (1 - jnp.cos(theta)) + 0.1 * x**2 + 0.01 * dx**2 + (energy / (2 * GRAVITY)) ** 2
    end = slice(-n_last, None)
    last = (
        (1 - jnp.cos(theta[:, end]))
        + 0.1 * x[:, end] ** 2
        + 0.01 * (dx[:, end] ** 2 + dtheta[:, end] ** 2)
    )
    return jnp.mean(running) + 5 * jnp.mean(last)


def train(cartpole, key, config):
    """Adam on `cost`; the first `balance_steps` batches start near upright."""
    dt = config.dt
    n = round(config.horizon / dt)
    n_window = min(n, max(1, round(config.window / dt)))
    if n % n_window:
        raise ValueError(
            f"horizon {config.horizon:g} s is not a whole number of {config.window:g} s windows"
        )
    n_last = min(n, max(1, round(LAST / dt)))
    schedule = optax.cosine_decay_schedule(config.learning_rate, config.n_steps, alpha=0.1)
    step = ds.make_train_step(
        lambda cp, y0s: cost(cp, y0s, n, n_window, n_last, dt),
        optax.adam(schedule),
        clip_norm=config.clip_norm,
    )
    opt_state = step.init(cartpole)
    losses = []
    for i, k in enumerate(jax.random.split(key, config.n_steps)):
        starts = top_starts if i < config.balance_steps else training_starts
        cartpole, opt_state, loss = step(cartpole, opt_state, starts(k, config.batch))
        losses.append(float(loss))
    return cartpole, losses


def main(argv=None):
    config, out = scenario_args(
        __doc__, CONFIG, SMOKE, argv, name="cartpole_swingup", limits=LIMITS
    )
    n = round(config.horizon / config.dt)
    if n < 1 or n % min(n, max(1, round(config.window / config.dt))) or config.hold > config.t_eval:
        print(
            "cartpole_swingup: error: --set: need a horizon of at least dt, a whole number "
            "of windows, and hold <= t_eval",
            file=sys.stderr,
        )
        return 2
    start_time, start_cpu = time.perf_counter(), time.process_time()
    dt = config.dt
    n_eval = round(config.t_eval / dt)
    n_hold = round(config.hold / dt)
    key_net, key_train, key_test = jax.random.split(jax.random.key(config.seed), 3)

    net = eqx.nn.MLP(5, "scalar", config.width, 2, activation=jax.nn.tanh, key=key_net)
    policy = ds.systems.Policy(net, features, bound=config.max_force)
    cartpole = ds.systems.CartPole(pole_length=POLE_LENGTH, force=policy)

    t = time.perf_counter()
    cartpole, losses = train(cartpole, key_train, config)
    train_time = time.perf_counter() - t

    test = bottom_starts(key_test, config.n_test)
    evaluate = eqx.filter_jit(lambda cp, y0s: jax.vmap(lambda y0: rollout(cp, y0, n_eval, dt))(y0s))
    ys = evaluate(cartpole, test)
    theta = np.angle(np.exp(1j * np.asarray(ys.q[..., 1])))  # wrapped to (-pi, pi]
    x = np.asarray(ys.q[..., 0])
    upright = np.all(np.abs(theta[:, -n_hold - 1 :]) < 0.25, axis=1)
    on_track = np.all(np.abs(x[:, -n_hold - 1 :]) < 2.5, axis=1)
    success = upright & on_track
    force = np.asarray(jax.vmap(jax.vmap(lambda q, v: cartpole.force(0.0, q, v)))(ys.q, ys.v))

    print(
        f"Cart-pole swing-up: MLP policy (2 x {config.width} tanh, |F| <= "
        f"{config.max_force:g} N) trained {config.n_steps} Adam steps (the first "
        f"{config.balance_steps} from near upright) on batches of {config.batch} "
        f"{config.horizon:g} s rollouts with gradients truncated to {config.window:g} s "
        f"windows, in {train_time:.1f} s (cost {losses[0]:.3g} -> {losses[-1]:.3g})"
    )
    print(
        f"Held-out starts near the bottom: {int(success.sum())}/{config.n_test} succeed "
        f"({success.mean():.0%}; pole within 0.25 rad of upright and cart within 2.5 m "
        f"for the last {config.hold:g} s of {config.t_eval:g} s)"
    )
    if config.n_test >= 100:
        verdict = "PASS" if success.mean() >= config.target else "FAIL"
        print(f"Target: at least {config.target:.0%} succeed: {verdict}")
    else:
        print(f"Target ({config.target:.0%}) not judged on {config.n_test} test starts")
    print(
        f"Largest |F| used: {np.max(np.abs(force)):.1f} N; largest |x|: {np.max(np.abs(x)):.2f} m"
    )

    ts = dt * np.arange(n_eval + 1)
    # The simulated angle is continuous (no jumps at +-pi); each rollout is shifted by whole
    # turns so that it ends near 0, and starts near +-pi (hanging) or further out when the
    # pole went over the top more than once.
    angle = np.asarray(ys.q[..., 1])
    angle = angle - 2 * np.pi * np.round(angle[:, -1:] / (2 * np.pi))
    fig, axes = plt.subplots(3, 1, figsize=(9, 8), sharex=True, layout="constrained")
    # Hundreds of translucent antialiased lines make a PNG three times larger; unsmoothed
    # lines look the same at this size.
    style = dict(lw=0.7, alpha=0.5, antialiased=False)
    for i in range(config.n_test):
        color = "C0" if success[i] else "C3"
        axes[0].plot(ts, angle[i], color=color, **style)
        axes[1].plot(ts, x[i], color=color, **style)
        axes[2].plot(ts, force[i], color=color, **style)
    for ax in axes:
        ax.axvline(config.horizon, color="0.5", ls=":", lw=1)
    axes[0].axvspan(config.t_eval - config.hold, config.t_eval, color="0.9", zorder=0)
    turns = np.arange(np.ceil(angle.min() / np.pi), np.floor(angle.max() / np.pi) + 1)
    axes[0].set_yticks(np.pi * turns, [_times_pi(k) for k in turns])
    axes[0].set(
        ylabel="pole angle from upright,\nunwrapped (rad)",
        title=f"{config.n_test} held-out starts: {success.mean():.0%} swing up and balance "
        f"(blue; failures red)\ndotted: end of the {config.horizon:g} s training rollouts; "
        f"grey: the last {config.hold:g} s, judged",
    )
    axes[1].set(ylabel="cart position (m)")
    axes[2].set(ylabel="force (N)", xlabel="t (s)")
    path = out / "cartpole_swingup.png"
    save_figure(fig, path, dpi=100)
    print(f"Figure: {path}")
    print(
        f"Done in {time.perf_counter() - start_time:.1f} s "
        f"({time.process_time() - start_cpu:.1f} s CPU)"
    )
    return 0


def _times_pi(k):
    """A multiple of pi as a tick label: "0", "π", "-2π"."""
    k = int(k)
    return "0" if k == 0 else {1: "π", -1: "-π"}.get(k, f"{k}π")


if __name__ == "__main__":
    raise SystemExit(main())
