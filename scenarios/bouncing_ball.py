"""Bouncing ball: impacts as ds.Event resets, bounce times and their gradients checked.

A ball is thrown horizontally (0.5 m/s) from a height h = 1 m onto a floor with
restitution e = 0.8 (g = 9.81 m/s^2, no drag). Free flight is `ds.systems.Projectile`;
the floor is a `ds.Event` on the height, falling crossings only, whose `reset` reverses
the vertical velocity and scales it by e. The floor ends at x = 1.5 m: a second,
terminal event stops the rollout there (saved states after it repeat the state at the
event). RK4 at dt = 0.01 s, float64; every event is located on the step's cubic Hermite
interpolant, which is exact for a parabola.

What it checks (exit status 1 unless all hold), against the closed form for a drop from rest, with
T = sqrt(2 h / g):

- the bounce times t_k = T (1 + 2 sum_{j<k} e^j), from `traj.events`; also with the
  adaptive `ds.Tsit5` (diffrax's root find), floor event only;
- the gradient of the k-th bounce time with respect to e and h, through the event
  times (implicit-function derivative) by `jax.jacrev` (`jax.grad` of every bounce time
  at once): dt_k/de = 2 T sum_{j<k} j e^(j-1) and dt_k/dh = (1 + 2 sum_{j<k} e^j) T / (2h),
  and against central finite differences.

The bounces accumulate at t = T (1 + e) / (1 - e) (Zeno): a rollout that reached it
would stop with `ds.EventError`; the settings are refused if the floor's end comes later.

Writes under --out: `bouncing_ball.png` (the trajectory with the event log, the bounce
time errors, the gradients) and `bouncing_ball_summary.json`.

Run: `diffsim run bouncing_ball` (`--smoke` skips the adaptive comparison; `--set
restitution=0.9`, `--set k=3` and the like).
"""

import json
import math
import sys
import time

import jax

# Before anything creates an array: the checks are at float64 round-off.
jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import diffsim as ds  # noqa: E402
from diffsim._scenario import POSITIVE, Limit, save_figure, scenario_args  # noqa: E402

CONFIG = dict(
    height=1.0,  # m, the height the ball is thrown from, horizontally
    speed=0.5,  # m/s, the horizontal launch speed
    restitution=0.8,  # e, dimensionless: rebound speed / impact speed, in (0, 1]
    x_end=1.5,  # m, where the floor ends: a terminal event stops the rollout there
    k=5,  # the bounce whose time is differentiated (1 = the first impact)
    dt=0.01,  # s, the RK4 step
    fd_step=1e-6,  # finite-difference step, in e and in h (m)
    all_k=True,  # differentiate every bounce time (jax.jacrev), not only the k-th
    adaptive=True,  # also locate the bounces with adaptive Tsit5 and compare
)
SMOKE = dict(all_k=False, adaptive=False)  # each saves ~3 s of compilation
LIMITS = dict(
    height=POSITIVE,
    speed=POSITIVE,
    restitution=Limit(0, 1, strict=True),
    x_end=POSITIVE,
    k=Limit(1),
    fd_step=POSITIVE,
)
G = 9.81  # m/s^2
MAX_EVENTS = 48  # capacity of traj.events
N_SAVED = 801  # saved states, evenly spaced in time


def closed_form(e, h, n):
    """The first n bounce times of a ball dropped from rest at h, and their derivatives
    with respect to e and h."""
    first = math.sqrt(2 * h / G)
    j = np.arange(n)  # bounce k = j + 1 has k - 1 = j flights before it
    powers = np.array([np.sum(e ** np.arange(1, i + 1)) for i in j])
    times = first * (1 + 2 * powers)
    d_e = np.array([2 * first * np.sum(np.arange(1, i + 1) * e ** np.arange(i)) for i in j])
    d_h = times / (2 * h)
    return times, d_e, d_h


def events(e, x_end):
    floor = ds.Event(
        lambda t, y: y.q[1],
        direction=-1,
        reset=lambda t, y: ds.PhaseState(y.q, y.v * jnp.stack([jnp.ones_like(e), -e])),
    )
    edge = ds.Event(lambda t, y: y.q[0] - x_end, direction=1, terminal=True)
    return floor, edge


def main(argv: list[str] | None = None) -> int:
    config, out = scenario_args(__doc__, CONFIG, SMOKE, argv, name="bouncing_ball", limits=LIMITS)
    start = time.perf_counter()
    e0, h0, dt = config.restitution, config.height, config.dt
    t_edge = config.x_end / config.speed
    t_rest = math.sqrt(2 * h0 / G) * (1 + e0) / (1 - e0) if e0 < 1 else math.inf
    if t_edge >= 0.98 * t_rest:
        print(
            f"bouncing_ball: error: the bounces accumulate at t = {t_rest:.3f} s (Zeno), "
            f"before the ball reaches x_end at {t_edge:.3f} s: lower x_end or raise speed",
            file=sys.stderr,
        )
        return 2
    n_bounces = int(np.sum(closed_form(e0, h0, MAX_EVENTS)[0] < t_edge))
    if not 1 <= config.k <= n_bounces or n_bounces >= MAX_EVENTS:
        print(
            f"bouncing_ball: error: k = {config.k}, but the ball bounces {n_bounces} times "
            f"before the floor ends (at most {MAX_EVENTS - 1} allowed)",
            file=sys.stderr,
        )
        return 2
    n_steps = math.ceil(1.25 * t_edge / dt)  # on past the terminal event
    t1 = n_steps * dt
    ts = jnp.asarray(np.linspace(0.0, t1, N_SAVED))  # NumPy: no eager JAX op to compile
    ball = ds.systems.Projectile(gravity=G)

    def rollout(p, integrator=None):
        """The rollout for p = (e, h): fixed-step with both events; adaptive
        (`integrator=`) with the floor only."""
        floor, edge = events(p[0], config.x_end)
        y0 = ds.PhaseState(q=jnp.stack([0.0, p[1]]), v=jnp.stack([config.speed, 0.0]))
        if integrator is None:
            how = dict(dt=dt, n_steps=n_steps, events=[floor, edge], saveat=ds.SaveAt(ts=ts))
        else:  # to the floor's end, the floor event only
            how = dict(t1=t_edge, integrator=integrator, events=floor)
        return ds.simulate(ball, y0, **how, max_events=MAX_EVENTS)

    k = config.k

    def bounce_times(p):
        traj = rollout(p)
        return traj.events.times[:n_bounces], traj

    def kth_time(p):
        times, traj = bounce_times(p)
        return times[k - 1], traj

    # One compiled program: the rollout (aux) and, by reverse mode, the gradient of the
    # k-th bounce time, or of every bounce time (jax.jacrev: jax.grad of each at once).
    if config.all_k:
        compiled = jax.jit(jax.jacrev(bounce_times, has_aux=True))
    else:
        compiled = jax.jit(jax.grad(kth_time, has_aux=True))
    p0 = np.array([e0, h0])
    grads, traj = compiled(p0)
    if not config.all_k:  # a row per bounce; NaN: not computed
        row, grads = np.asarray(grads), np.full((n_bounces, 2), np.nan)
        grads[k - 1] = row
    grads = np.asarray(grads)
    log = traj.events
    count, which = int(log.count), np.asarray(log.which)
    times = np.asarray(log.times)
    sim_t = times[which == 0]
    closed_t, closed_de, closed_dh = closed_form(e0, h0, n_bounces)
    grad_de, grad_dh = grads.T

    # Central differences of the bounce times, through the same compiled program.
    step = config.fd_step
    fd = []
    for d in (np.array([step, 0.0]), np.array([0.0, step])):
        up, down = compiled(p0 + d)[1].events.times, compiled(p0 - d)[1].events.times
        fd.append((np.asarray(up)[:n_bounces] - np.asarray(down)[:n_bounces]) / (2 * step))
    seconds_fixed = time.perf_counter() - start

    print(
        f"Ball thrown at {config.speed:g} m/s from {h0:g} m, e = {e0:g}, floor ends at "
        f"x = {config.x_end:g} m; RK4, dt = {dt:g} s, float64"
    )
    print(
        f"traj.events: {count} events, {len(sim_t)} bounces (which = 0) and the terminal "
        f"floor end (which = 1) at t = {times[which == 1][0]:.6f} s "
        f"(x_end / speed = {t_edge:.6f} s); traj.ts ends at {float(traj.ts[-1]):.6f} s"
    )
    err_fixed = np.abs(sim_t - closed_t)
    print(" k   t_k (s)             closed form         |difference| (s)")
    for i in range(n_bounces):
        print(f"{i + 1:2d}   {sim_t[i]:.15f}   {closed_t[i]:.15f}   {err_fixed[i]:.1e}")

    err_adaptive = None
    if config.adaptive:
        t = time.perf_counter()
        tsit = rollout(jnp.array([e0, h0]), ds.Tsit5(rtol=1e-10, atol=1e-10))
        sim_a = np.asarray(tsit.events.times)[: int(tsit.events.count)][:n_bounces]
        err_adaptive = np.abs(sim_a - closed_t[: len(sim_a)])
        print(
            f"Tsit5 (rtol = atol = 1e-10, diffrax root find): max |difference| "
            f"{err_adaptive.max():.1e} s over {len(sim_a)} bounces ({time.perf_counter() - t:.1f} s)"
        )

    def off(x, exact):  # relative difference (absolute where the exact value is 0)
        return float(abs(x - exact) / (abs(exact) if exact else 1.0))

    rel = dict(
        grad_e=off(grad_de[k - 1], closed_de[k - 1]),
        grad_h=off(grad_dh[k - 1], closed_dh[k - 1]),
        fd_e=off(fd[0][k - 1], closed_de[k - 1]),
        fd_h=off(fd[1][k - 1], closed_dh[k - 1]),
    )
    print(f"Gradient of the bounce time t_{k} = {sim_t[k - 1]:.6f} s:")
    print("            jax.grad            closed form         finite difference")
    print(f"  dt/de   {grad_de[k - 1]:.12f}   {closed_de[k - 1]:.12f}   {fd[0][k - 1]:.12f}  s")
    print(f"  dt/dh   {grad_dh[k - 1]:.12f}   {closed_dh[k - 1]:.12f}   {fd[1][k - 1]:.12f}  s/m")
    print(
        f"  relative difference from the closed form: jax.grad {rel['grad_e']:.1e} (e), "
        f"{rel['grad_h']:.1e} (h); finite difference {rel['fd_e']:.1e} (e), "
        f"{rel['fd_h']:.1e} (h)"
    )

    # Float64 round-off for the times and gradients; the finite differences carry the
    # truncation and cancellation error of a 1e-6 step.
    ok = err_fixed.max() < 1e-9 and max(rel["grad_e"], rel["grad_h"]) < 1e-8
    ok &= max(rel["fd_e"], rel["fd_h"]) < 1e-5
    ok &= err_adaptive is None or err_adaptive.max() < 1e-8
    print(f"Checks against the closed form: {'ok' if ok else 'FAIL'}")

    checks = (closed_t, err_fixed, err_adaptive, grads, fd, closed_de, closed_dh)
    fig = _figure(config, np.asarray(ts), traj, *checks)
    save_figure(fig, out / "bouncing_ball.png", dpi=100)
    summary = dict(
        settings=vars(config),
        gravity=G,
        n_bounces=len(sim_t),
        bounce_times=sim_t.tolist(),
        bounce_times_closed_form=closed_t.tolist(),
        max_bounce_time_error=dict(
            rk4=float(err_fixed.max()),
            tsit5=None if err_adaptive is None else float(err_adaptive.max()),
        ),
        terminal_event_time=float(times[which == 1][0]),
        rest_time_closed_form=t_rest,
        gradient=dict(
            k=k,
            t_k=float(sim_t[k - 1]),
            d_restitution=dict(
                jax_grad=float(grad_de[k - 1]), closed_form=closed_de[k - 1], fd=float(fd[0][k - 1])
            ),
            d_height=dict(
                jax_grad=float(grad_dh[k - 1]), closed_form=closed_dh[k - 1], fd=float(fd[1][k - 1])
            ),
            relative_difference=rel,
        ),
        ok=bool(ok),
        seconds=dict(fixed_step_and_gradients=seconds_fixed, total=time.perf_counter() - start),
    )
    (out / "bouncing_ball_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"Wrote {out}/bouncing_ball.png, bouncing_ball_summary.json")
    print(f"Done in {time.perf_counter() - start:.1f} s")
    return 0 if ok else 1


def _figure(config, ts, traj, closed_t, err_fixed, err_adaptive, grads, fd, closed_de, closed_dh):
    """`ts`: the requested save times (`traj.ts` holds the event time after a terminal
    event)."""
    fig = plt.figure(figsize=(11, 7.5), layout="constrained")
    top, left, right = fig.subplot_mosaic("AA;BC").values()
    log, z = traj.events, np.asarray(traj.ys.q[:, 1])
    which, times = np.asarray(log.which), np.asarray(log.times)
    states = np.asarray(log.states.q)
    n = len(closed_t)

    top.plot(ts, z, color="C0", lw=1.5, label="height (RK4, saved states)")
    top.axhline(0.0, color="0.3", lw=1)
    bounce = which == 0
    top.plot(times[bounce], states[bounce, 1], "o", color="C3", ms=6,
             label="traj.events: bounces (which = 0)")  # fmt: skip
    top.plot(closed_t, np.zeros(n), "+", color="k", ms=12, mew=1.5,
             label="closed-form bounce times")  # fmt: skip
    end = which == 1
    t_end = times[end][0]
    top.axvline(t_end, color="C2", ls="--", lw=1.2)
    top.plot(t_end, states[end, 1], "*", color="C2", ms=14,
             label=f"terminal event: floor ends at x = {config.x_end:g} m")  # fmt: skip
    top.axvspan(t_end, ts[-1], color="0.9", zorder=0,
                label="after it: saved states repeat the event's")  # fmt: skip
    for i in range(min(n, 6)):
        top.annotate(f"$t_{i + 1}$", (times[bounce][i], 0), xytext=(0, -16),
                     textcoords="offset points", ha="center", fontsize=10)  # fmt: skip
    top.set(xlabel="t (s)", ylabel="height z (m)", xlim=(0, ts[-1]), ylim=(-0.15, None))
    top.set_title(
        f"Ball thrown at {config.speed:g} m/s from {config.height:g} m, restitution "
        f"e = {config.restitution:g}: {int(bounce.sum())} bounces, then the floor ends "
        f"(x = {config.x_end:g} m, a terminal event)"
    )
    top.legend(loc="upper right", fontsize=9)

    k = np.arange(1, n + 1)
    floor = 1e-17  # where an exact zero is drawn on the log scale
    left.semilogy(k, np.maximum(err_fixed, floor), "o-",
                  label="RK4, Hermite interpolant")  # fmt: skip
    if err_adaptive is not None:
        ka = np.arange(1, len(err_adaptive) + 1)
        left.semilogy(ka, np.maximum(err_adaptive, floor), "s--", label="Tsit5, diffrax root find")
    left.axhline(np.finfo(float).eps, color="0.5", ls=":", lw=1, label="float64 epsilon")
    left.set(xlabel="bounce k", ylabel="$|t_k - t_k^{closed}|$ (s)", xticks=k)
    left.set_title(f"Bounce times against the closed form (0 drawn at {floor:g})")
    left.legend(fontsize=9)

    for col, closed, name, unit, color in (
        (0, closed_de, "e", "s", "C0"),
        (1, closed_dh, "h", "s/m", "C1"),
    ):
        right.plot(k, closed, "-", color=color, lw=1.5,
                   label=f"$\\partial t_k/\\partial {name}$ ({unit}), closed form")  # fmt: skip
        right.plot(k, grads[:, col], "o", color=color, mfc="none", ms=10, mew=1.5)
        right.plot(k, fd[col], "x", color="k", ms=6)
    right.plot([], [], "o", color="0.3", mfc="none", ms=10, mew=1.5, label="jax.grad")
    right.plot([], [], "x", color="k", ms=6, label="central finite difference")
    right.axvline(config.k, color="0.6", ls=":", lw=1)
    right.set(xlabel="bounce k", ylabel="derivative of $t_k$ (s per unit)", xticks=k)
    right.set_title("Gradients of the bounce times")
    right.legend(fontsize=9)
    return fig


if __name__ == "__main__":
    raise SystemExit(main())
