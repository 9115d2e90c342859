"""Landing point: a launch angle found by gradient descent through a terminal ground event.

A ball is launched at 25 m/s from the ground and must land 40 m away. Its flight is
`ds.systems.Projectile` with quadratic air drag k = 0.013 1/m (about a football:
k = rho C_d A / 2m), and a second copy without drag; `ds.Event` on the height, falling
crossings, `terminal=True`, ends each rollout where the ball lands, so the landing
point is the final state and its derivative with respect to the angle includes how the
landing time moves (the implicit-function derivative of the event time). RK4 at
dt = 0.01 s, float64.

Each ball's launch angle, from 10 degrees, minimises L = (x_land - x_target)^2 / 2 by
gradient descent with the Polyak step size (`optax.polyak_sgd`): the step is
L / |dL/d angle|^2 times the gradient, which needs the loss's minimum, known here to be 0
(the target is in reach). For this one-parameter least-squares loss that is half a
Newton step, so the miss halves at every iteration; Adam (`--set optimiser=adam`) needs
hundreds of iterations and a decaying step to land within a millimetre. The derivative
is taken in forward mode (`jax.jacfwd`, one parameter) through the whole rollout; the
two balls' optimisations run side by side as one `jax.vmap`, and each rollout stops at
its own landing time.

The check, without drag: the range on level ground is v^2 sin(2 angle) / g, so the
angle that reaches x_target is asin(g x_target / v^2) / 2 (the lower of the two; from a
launch height h > 0 the general formula is used). Drag shortens the flight, so the ball
with drag needs a steeper angle.

Writes under --out: `landing_point.png` (trajectories from the start to the final
angle, the landing error and the angle over the iterations) and
`landing_point_summary.json`. Exits with status 1 unless both land within `tolerance`.

Run: `diffsim run landing_point` (`--smoke`: fewer iterations; `--set target=30` and the
like).
"""

import json
import math
import sys
import time

import jax

# Before anything creates an array: the check against the closed form is to 1e-8.
jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import diffsim as ds  # noqa: E402
from diffsim._scenario import NON_NEGATIVE, POSITIVE, Limit, save_figure, scenario_args  # noqa: E402

CONFIG = dict(
    speed=25.0,  # m/s, the launch speed
    height=0.0,  # m, the launch height above the ground
    target=40.0,  # m, where the ball must land, measured along the ground
    drag=0.013,  # 1/m, quadratic drag coefficient k = rho C_d A / 2m of the second ball
    angle0=10.0,  # deg, the starting launch angle of both balls
    optimiser="polyak",  # polyak (optax.polyak_sgd, f_min = 0) or adam (optax.adam)
    learning_rate=0.02,  # rad, Adam's step size, decaying 100-fold over the iterations
    n_iter=40,  # optimiser iterations
    tolerance=1e-3,  # m, how close to the target both must land
    dt=0.01,  # s, the RK4 step
)
SMOKE = dict(n_iter=25)
LIMITS = dict(
    speed=POSITIVE,
    height=NON_NEGATIVE,
    target=POSITIVE,
    drag=NON_NEGATIVE,
    angle0=Limit(0, 90, strict=True),
    n_iter=Limit(1),
    tolerance=POSITIVE,
)
G = 9.81  # m/s^2
OPTIMISERS = dict(polyak="Polyak step gradient descent", adam="Adam")
N_SAVED = 301  # saved states per trajectory, evenly spaced in time
SHOWN = (0, 1, 2, 4)  # iterations whose trajectories are drawn


def closed_form_angle(speed, height, target):
    """The lower launch angle (rad) that lands a drag-free ball at `target`, or None if
    it is out of reach: tan a = (v^2 - sqrt(v^4 - g (g x^2 - 2 h v^2))) / (g x)."""
    root = speed**4 - G * (G * target**2 - 2 * height * speed**2)
    if root < 0:
        return None
    return math.atan((speed**2 - math.sqrt(root)) / (G * target))


def closed_form_range(speed, height, angle):
    """Where a drag-free ball launched at `angle` (rad) from `height` lands (m)."""
    vx, vz = speed * math.cos(angle), speed * math.sin(angle)
    return vx * (vz + math.sqrt(vz**2 + 2 * G * height)) / G


def main(argv: list[str] | None = None) -> int:
    config, out = scenario_args(__doc__, CONFIG, SMOKE, argv, name="landing_point", limits=LIMITS)
    if config.optimiser not in ("polyak", "adam"):
        print(
            f"landing_point: error: --set optimiser={config.optimiser}: expected polyak or adam",
            file=sys.stderr,
        )
        return 2
    start = time.perf_counter()
    v, h, target, dt = config.speed, config.height, config.target, config.dt
    exact = closed_form_angle(v, h, target)
    if exact is None:
        reach = closed_form_range(v, h, math.atan(v / math.sqrt(v**2 + 2 * G * h)))
        print(
            f"landing_point: error: target = {target:g} m is out of reach at {v:g} m/s "
            f"even without drag (at most {reach:.1f} m): raise speed or lower target",
            file=sys.stderr,
        )
        return 2
    # Longest possible flight (straight up, no drag): the rollout always ends in a landing.
    n_steps = math.ceil((v + math.sqrt(v**2 + 2 * G * h)) / G / dt) + 1
    ts = jnp.asarray(np.linspace(0.0, n_steps * dt, N_SAVED))  # NumPy: no eager JAX op
    drags = np.array([0.0, config.drag])
    ground = ds.Event(lambda t, y: y.q[1], direction=-1, terminal=True)

    def flight(angle, drag):
        ball = ds.systems.Projectile(gravity=G, drag=drag)
        y0 = ball.initial_state(speed=v, angle=angle, height=h)
        saveat = ds.SaveAt(ts=ts)  # after the landing: the landing state, its time
        traj = ds.simulate(
            ball, y0, dt=dt, n_steps=n_steps, events=ground, max_events=1, saveat=saveat
        )
        return traj.ys.q[-1, 0], traj

    def loss(angle, drag):
        x, traj = flight(angle, drag)
        value = 0.5 * (x - target) ** 2
        return value, (value, x, traj)

    if config.optimiser == "polyak":
        optimiser = optax.polyak_sgd(max_learning_rate=0.1, f_min=0.0)
    else:
        decay = optax.exponential_decay(config.learning_rate, config.n_iter, 0.01)
        optimiser = optax.adam(decay)

    @jax.jit
    @jax.vmap  # the two balls side by side, each with its own optimiser state
    def step(angle, state, drag):
        grad, (value, x, traj) = jax.jacfwd(loss, has_aux=True)(angle, drag)
        updates, state = optimiser.update(grad, state, angle, value=value)
        return optax.apply_updates(angle, updates), state, x, traj

    angles = jnp.asarray(np.full(2, math.radians(config.angle0)))
    state = jax.vmap(optimiser.init)(angles)
    history, angle_history, shown = [], [np.asarray(angles)], {}
    for i in range(config.n_iter + 1):
        new, state, x, traj = step(angles, state, drags)
        history.append(np.asarray(x))
        if i in SHOWN or i == config.n_iter:
            shown[i] = np.asarray(traj.ys.q)
        if i == config.n_iter:  # the last evaluation: not updated again
            landed = np.asarray(traj.events.count)
            t_land = np.asarray(traj.ts[:, -1])
            break
        angles = new
        angle_history.append(np.asarray(angles))
    history, angle_history = np.array(history), np.array(angle_history)
    seconds = time.perf_counter() - start

    final = np.asarray(angles)
    miss = np.abs(history[-1] - target)
    ok = bool((landed == 1).all() and (miss < config.tolerance).all())
    print(
        f"Ball launched at {v:g} m/s from {h:g} m to land at x = {target:g} m; "
        f"{OPTIMISERS[config.optimiser]}, {config.n_iter} iterations from "
        f"{config.angle0:g} deg, {seconds:.1f} s including compilation"
    )
    print(" drag (1/m)   angle (deg)     landing x (m)     |miss| (m)   flight time (s)")
    for j, drag in enumerate(drags):
        print(
            f" {drag:<10g}   {math.degrees(final[j]):11.6f}   {history[-1, j]:14.9f}"
            f"   {miss[j]:10.2e}   {t_land[j]:.6f}"
        )
    range_at_final = closed_form_range(v, h, float(final[0]))
    angle_error = abs(float(final[0]) - exact)
    print(
        f"Without drag, closed form: angle {math.degrees(exact):.6f} deg (found "
        f"{math.degrees(final[0]):.6f}, difference {math.degrees(angle_error):.1e} deg); "
        f"range at the found angle {range_at_final:.9f} m (simulated {history[-1, 0]:.9f})"
    )
    print(f"Drag needs {math.degrees(final[1] - final[0]):+.3f} deg more to reach the target")
    print(f"Landing within {config.tolerance:g} m: {'ok' if ok else 'FAIL'}")

    fig = _figure(config, shown, history, angle_history, exact, drags)
    save_figure(fig, out / "landing_point.png", dpi=100)
    summary = dict(
        settings=vars(config),
        gravity=G,
        drags=drags.tolist(),
        angle_deg=np.degrees(final).tolist(),
        landing_x=history[-1].tolist(),
        miss=miss.tolist(),
        flight_time=t_land.tolist(),
        closed_form=dict(
            angle_deg=math.degrees(exact),
            angle_difference_deg=math.degrees(angle_error),
            range_at_found_angle=range_at_final,
            simulated_landing_x=float(history[-1, 0]),
        ),
        landing_x_history=history.tolist(),
        seconds=seconds,
        ok=ok,
    )
    (out / "landing_point_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"Wrote {out}/landing_point.png, landing_point_summary.json")
    print(f"Done in {time.perf_counter() - start:.1f} s")
    return 0 if ok else 1


def _figure(config, shown, history, angle_history, exact, drags):
    fig = plt.figure(figsize=(11, 7.5), layout="constrained")
    top, left, right = fig.subplot_mosaic("AA;BC").values()
    names = ["no drag", f"drag k = {config.drag:g} 1/m"]
    last = max(shown)
    for j, (name, color) in enumerate(zip(names, ("C0", "C1"), strict=True)):
        for i, q in shown.items():
            if i == last:
                top.plot(q[j, :, 0], q[j, :, 1], color=color, lw=2.2,
                         label=f"{name}: iteration {i}")  # fmt: skip
            else:
                alpha = 0.25 + 0.5 * i / last
                top.plot(q[j, :, 0], q[j, :, 1], color=color, lw=1, ls="--", alpha=alpha)
    top.plot([], [], color="0.4", lw=1, ls="--", label=f"iterations {', '.join(map(str, [i for i in shown if i != last]))}")  # fmt: skip
    top.axhline(0.0, color="0.3", lw=1)
    top.plot(config.target, 0.0, "X", color="C3", ms=14, label="target", zorder=5)
    top.set(xlabel="x (m)", ylabel="height z (m)", ylim=(-0.5, None))
    top.set_title(
        f"Launched at {config.speed:g} m/s to land at x = {config.target:g} m: "
        f"trajectories as {OPTIMISERS[config.optimiser]} adjusts the angle"
    )
    top.legend(loc="upper left", fontsize=9)

    it = np.arange(len(history))
    for j, (name, color) in enumerate(zip(names, ("C0", "C1"), strict=True)):
        left.semilogy(it, np.abs(history[:, j] - config.target), color=color, label=name)
        right.plot(np.arange(len(angle_history)), np.degrees(angle_history[:, j]),
                   color=color, label=name)  # fmt: skip
    left.axhline(config.tolerance, color="0.5", ls=":", label=f"tolerance {config.tolerance:g} m")
    left.set(xlabel="iteration", ylabel="$|x_{land} - x_{target}|$ (m)")
    left.set_title("Landing point converging to the target")
    left.legend(fontsize=9)
    right.axhline(math.degrees(exact), color="k", ls="--", lw=1,
                  label="no drag, closed form")  # fmt: skip
    right.set(xlabel="iteration", ylabel="launch angle (deg)")
    right.set_title("Launch angle")
    right.legend(fontsize=9)
    return fig


if __name__ == "__main__":
    raise SystemExit(main())
