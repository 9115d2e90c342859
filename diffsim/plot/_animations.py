"""Animations of trajectories: bodies, spring networks, pendulums (GIFs via Pillow)."""

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.animation import FuncAnimation
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from ..systems import PhaseState
from ._common import (
    check_ax,
    check_plane,
    components,
    count,
    float_array,
    label_axes,
    needs,
    positive,
    single_array,
    times,
)


def _common_args(traj: Any, frames: Any, fps: Any, ax: Any, fname: str):
    """`(ts, q, frame indices, fps)` of an animation's shared arguments, checked."""
    ts = times(traj, fname)
    q = traj.ys.q if isinstance(traj.ys, PhaseState) else traj.ys
    q = single_array(q, "the positions", fname)
    frames = count(frames, "frames", fname, none=True)
    fps = positive(fps, "fps", fname)
    check_ax(ax, fname)
    if frames is None or frames >= len(ts):
        return ts, q, np.arange(len(ts)), fps
    return ts, q, np.unique(np.linspace(0, len(ts) - 1, frames).round().astype(int)), fps


def _limits(points: np.ndarray) -> tuple[tuple[float, float], tuple[float, float]]:
    """Square limits around the 1st-99th percentile of (..., 2) points, so that a body
    escaping to infinity does not shrink everything else to a dot."""
    lo = np.percentile(points.reshape(-1, 2), 1, axis=0)
    hi = np.percentile(points.reshape(-1, 2), 99, axis=0)
    centre, half = (lo + hi) / 2, 0.55 * max(float(np.max(hi - lo)), 1e-12)
    return (centre[0] - half, centre[0] + half), (centre[1] - half, centre[1] + half)


def _coordinate(i: int) -> str:
    return "xyz"[i] if 0 <= i < 3 else f"q[{i}]"


def _animation(fig: Figure, draw, n_frames: int, fps: float) -> FuncAnimation:
    return FuncAnimation(fig, draw, frames=n_frames, interval=1000.0 / fps, blit=False)


def _new_square(ax: Axes | None) -> Axes:
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 5), layout="constrained")
    ax.set_aspect("equal")
    return ax


def animate_bodies(
    traj: Any,
    *,
    plane: tuple[int, int] = (0, 1),
    trail: int | None = None,
    sizes: Any = None,
    frames: int | None = 100,
    fps: float = 20.0,
    ax: Axes | None = None,
) -> FuncAnimation:
    """Animate point bodies (an `NBody`, a gas) moving in a plane, with fading trails.


    **Arguments:**


    - `traj`: a `ds.Trajectory` of positions `(n_saved, n, d)` (`ys.q` of a `PhaseState`,
      or `ys` itself, e.g. from `SaveAt(fn=lambda t, y: y.q)`), unbatched.
    - `plane`: the two coordinates drawn, `(0, 1)` for x-y.
    - `trail`: how many past frames each body's trail spans (0: none); `None` draws 30
      for up to 20 bodies and none for more.
    - `sizes`: marker sizes, a scalar or one per body (e.g. scaled masses).
    - `frames`: the number of frames, spread evenly over the saved times (`None`: all).
    - `fps`: frames per second of the animation.
    - `ax`: the axes to draw on; `None` makes a new square figure.


    **Returns:** a `matplotlib.animation.FuncAnimation`; `anim.save("x.gif",
    writer="pillow")` writes it.


    **Example:**


    ```python
    system, y0 = ds.systems.plummer(64, jax.random.key(0), softening=0.05)
    traj = ds.simulate(system, y0, t1=10.0, dt=0.01, integrator=ds.Leapfrog(),
                       saveat=ds.SaveAt(every=10))
    ds.plot.animate_bodies(traj, frames=50).save("cluster.gif", writer="pillow")
    ```
    """
    ts, q, index, fps = _common_args(traj, frames, fps, ax, "animate_bodies")
    if q.ndim != 3:
        raise ValueError(f"animate_bodies needs positions of shape (n_saved, n, d); got {q.shape}.")
    xy = q[..., check_plane(plane, q.shape[-1], "animate_bodies")]
    n = xy.shape[1]
    trail = count(trail, "trail", "animate_bodies", low=0, none=True)
    trail = (30 if n <= 20 else 0) if trail is None else trail
    if sizes is not None:
        sizes = float_array(sizes, "sizes", "animate_bodies")
        if sizes.size not in (1, n) or not np.all(sizes >= 0):
            raise ValueError(
                f"animate_bodies: sizes must be one size >= 0, or one per body ({n}); got "
                f"shape {sizes.shape}."
            )
    ax = _new_square(ax)
    xlim, ylim = _limits(xy)
    ax.set(xlim=xlim, ylim=ylim)
    label_axes(ax, *(_coordinate(i) for i in plane))
    trails = [ax.plot([], [], lw=0.8, alpha=0.5)[0] for _ in range(n)] if trail else []
    colors = [line.get_color() for line in trails] if trails else "C0"
    bodies = ax.scatter(
        xy[0, :, 0], xy[0, :, 1], s=20 if sizes is None else sizes, c=colors, zorder=3
    )
    clock = ax.text(0.02, 0.96, "", transform=ax.transAxes, va="top")

    def draw(f):
        k = index[f]
        bodies.set_offsets(xy[k])
        first = index[max(f - trail, 0)]
        for b, line in enumerate(trails):
            line.set_data(xy[first : k + 1, b, 0], xy[first : k + 1, b, 1])
        clock.set_text(f"t = {ts[k]:.3g}")
        return [bodies, clock, *trails]

    draw(0)
    return _animation(ax.figure, draw, len(index), fps)


def animate_springs(
    network: Any,
    traj: Any,
    *,
    plane: tuple[int, int] | None = None,
    frames: int | None = 100,
    fps: float = 20.0,
    ax: Axes | None = None,
) -> FuncAnimation:
    """Animate a spring network (`ds.systems.SpringMassNetwork`): springs as lines,
    nodes as dots, pinned nodes as squares.


    **Arguments:**


    - `network`: the system; its `edges` and `pinned` are drawn.
    - `traj`: a `ds.Trajectory` of the network, positions `(n_saved, n, d)`, unbatched.
    - `plane`: the two coordinates drawn; `None` takes the first and the last, `(0, 2)`
      for a 3-d cloth (a side view: x and height), `(0, 1)` in 2-d.
    - `frames`, `fps`, `ax`: as in `animate_bodies`.


    **Returns:** a `matplotlib.animation.FuncAnimation`.


    **Example:**


    ```python
    cloth, y0 = ds.systems.SpringMassNetwork.cloth(6, 6, stiffness=200.0, damping=0.05)
    traj = ds.simulate(cloth, y0, t1=2.0, dt=2e-3, saveat=ds.SaveAt(every=10))
    ds.plot.animate_springs(cloth, traj).save("cloth.gif", writer="pillow")
    ```
    """
    ts, q, index, fps = _common_args(traj, frames, fps, ax, "animate_springs")
    if q.ndim != 3:
        raise ValueError(
            f"animate_springs needs positions of shape (n_saved, n, d); got {q.shape}."
        )
    plane = (0, q.shape[-1] - 1) if plane is None else plane
    xy = q[..., check_plane(plane, q.shape[-1], "animate_springs")]
    edges, pinned = _network(network, xy.shape[1])
    ax = _new_square(ax)
    xlim, ylim = _limits(xy)
    ax.set(xlim=xlim, ylim=ylim)
    label_axes(ax, f"q[{plane[0]}]", f"q[{plane[1]}]")
    springs = LineCollection(xy[0][edges], color="0.4", lw=1)
    ax.add_collection(springs)
    nodes = ax.scatter(*xy[0, ~pinned].T, s=12, color="C0", zorder=3)
    ax.scatter(*xy[0, pinned].T, s=40, marker="s", color="k", zorder=3)
    clock = ax.text(0.02, 0.96, "", transform=ax.transAxes, va="top")

    def draw(f):
        k = index[f]
        springs.set_segments(xy[k][edges])
        nodes.set_offsets(xy[k, ~pinned])
        clock.set_text(f"t = {ts[k]:.3g}")
        return [springs, nodes, clock]

    draw(0)
    return _animation(ax.figure, draw, len(index), fps)


def _network(network: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    """`(edges, pinned)` of a spring network of `n` nodes, checked."""
    edges = np.asarray(
        needs(network, "edges", "network", "animate_springs", "a ds.systems.SpringMassNetwork")
    )
    if edges.ndim != 2 or edges.shape[1] != 2 or not np.issubdtype(edges.dtype, np.integer):
        raise ValueError(f"animate_springs: network.edges must be (e, 2) ints; got {edges.shape}.")
    if edges.size and not (0 <= edges.min() and edges.max() < n):
        raise ValueError(
            f"animate_springs: network.edges name nodes up to {edges.max()}, but the "
            f"trajectory has {n} nodes: is traj a trajectory of this network?"
        )
    pinned = getattr(network, "pinned", None)
    pinned = np.zeros(n, bool) if pinned is None else np.asarray(pinned)
    if pinned.shape != (n,):
        raise ValueError(
            f"animate_springs: network.pinned has shape {pinned.shape}; the trajectory has {n} nodes."
        )
    return edges, pinned.astype(bool)


def animate_pendulum(
    pendulum: Any,
    traj: Any,
    *,
    trail: int = 15,
    frames: int | None = 100,
    fps: float = 20.0,
    ax: Axes | None = None,
) -> FuncAnimation:
    """Animate a pendulum (`ds.systems.Pendulum`) swinging from a pivot at the origin.


    The bob of length $L$ at angle $q$ is at $(L \\sin q, -L \\cos q)$. Several pendulums
    at once (`q` of shape `(n_saved, m)`, `length` scalar or `(m,)`) share the pivot.


    **Arguments:**


    - `pendulum`: the system; its `length` is drawn.
    - `traj`: a `ds.Trajectory` of the pendulum, unbatched.
    - `trail`: how many past frames the bob's trail spans (0: none).
    - `frames`, `fps`, `ax`: as in `animate_bodies`.


    **Returns:** a `matplotlib.animation.FuncAnimation`.


    **Example:**


    ```python
    pendulum = ds.systems.Pendulum(length=1.0, damping=0.2)
    traj = ds.simulate(pendulum, pendulum.initial_state(2.5), t1=10.0, dt=0.01,
                       saveat=ds.SaveAt(every=5))
    ds.plot.animate_pendulum(pendulum, traj).save("pendulum.gif", writer="pillow")
    ```
    """
    ts, q, index, fps = _common_args(traj, frames, fps, ax, "animate_pendulum")
    q = components(q, len(ts))
    length = float_array(
        needs(pendulum, "length", "pendulum", "animate_pendulum", "a ds.systems.Pendulum"),
        "pendulum.length",
        "animate_pendulum",
    )
    if length.size not in (1, q.shape[1]) or not np.all(np.isfinite(length) & (length > 0)):
        raise ValueError(
            f"animate_pendulum: pendulum.length must be positive, one value or one per "
            f"pendulum ({q.shape[1]}); got {length!r}."
        )
    length = np.broadcast_to(length.reshape(-1), q.shape[1:])
    trail = count(trail, "trail", "animate_pendulum", low=0)
    x, y = length * np.sin(q), -length * np.cos(q)
    ax = _new_square(ax)
    reach = 1.15 * float(np.max(length))
    ax.set(xlim=(-reach, reach), ylim=(-reach, reach))
    label_axes(ax, "x", "y")
    ax.scatter([0.0], [0.0], color="k", marker="s", s=30, zorder=4)
    rods = [ax.plot([], [], color="0.3", lw=2)[0] for _ in range(q.shape[1])]
    trails = [ax.plot([], [], lw=1, alpha=0.5)[0] for _ in range(q.shape[1])] if trail else []
    bobs = ax.scatter(x[0], y[0], s=80, zorder=3, c=[f"C{i % 10}" for i in range(q.shape[1])])
    clock = ax.text(0.02, 0.96, "", transform=ax.transAxes, va="top")

    def draw(f):
        k = index[f]
        for i, rod in enumerate(rods):
            rod.set_data([0.0, x[k, i]], [0.0, y[k, i]])
        first = index[max(f - trail, 0)]
        for i, line in enumerate(trails):
            line.set_data(x[first : k + 1, i], y[first : k + 1, i])
        bobs.set_offsets(np.stack([x[k], y[k]], axis=-1))
        clock.set_text(f"t = {ts[k]:.3g}")
        return [*rods, *trails, bobs, clock]

    draw(0)
    return _animation(ax.figure, draw, len(index), fps)
