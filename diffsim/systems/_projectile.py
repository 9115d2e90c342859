"""A point projectile under uniform gravity with quadratic air drag."""

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from ._base import AbstractMechanicalSystem, PhaseState
from ._checks import GRAVITY_HINT, check_nonnegative, check_positive
from ._util import as_float, safe_norm


class Projectile(AbstractMechanicalSystem):
    """A point mass under uniform gravity along $-\\hat z$ (the last axis) with quadratic
    drag opposing the velocity:

    $$\\ddot{\\mathbf q} = -g\\,\\hat{\\mathbf z} - k\\,|\\dot{\\mathbf q}|\\,\\dot{\\mathbf q},
      \\qquad k = \\frac{\\rho\\, C_d A}{2 m}\\ (\\text{1/m}).$$

    Without drag ($k = 0$) the motion is the parabola
    $\\mathbf q(t) = \\mathbf q_0 + \\mathbf v_0 t - \\tfrac12 g t^2 \\hat{\\mathbf z}$
    (`solution`), the energy $E = m (\\tfrac12 |\\mathbf v|^2 + g z)$ is conserved, and the
    range on level ground is $v_0^2 \\sin 2\\alpha / g$. With drag the energy decreases at
    the rate $-m k |\\mathbf v|^3$, and a falling body approaches the terminal speed
    $\\sqrt{g / k}$ (`terminal_speed`).

    State: `PhaseState(q, v)` of shape `(..., d)` for any dimension `d >= 1` (the last
    component is height); leading axes are independent projectiles. Positions in m,
    velocities in m/s. The drag is written with a norm whose gradient at $v = 0$ is 0, so
    gradients stay finite at the apex of a vertical throw.

    **Fields:**

    - `gravity`: $g$ (m/s^2), >= 0, default 9.81.
    - `drag`: $k$ (1/m), >= 0, default 0.
    - `mass`: $m$ (kg), > 0, default 1; enters only the energy.

    **Example:**

    ```python
    ball = ds.systems.Projectile(drag=0.01)
    y0 = ball.initial_state(speed=30.0, angle=0.8)        # 2-d: (x, z)
    traj = ds.simulate(ball, y0, t1=4.0, dt=1e-3, saveat=ds.SaveAt(every=10))
    ```
    """

    gravity: Float[ArrayLike, "..."] = 9.81
    drag: Float[ArrayLike, "..."] = 0.0
    mass: Float[ArrayLike, "..."] = 1.0

    def __check_init__(self):
        check_nonnegative("Projectile", "gravity", self.gravity, "m/s^2", GRAVITY_HINT)
        check_nonnegative("Projectile", "drag", self.drag, "1/m")
        check_positive("Projectile", "mass", self.mass, "kg")

    def _down(self, q):
        return jnp.zeros(q.shape[-1], q.dtype).at[-1].set(1.0)

    def acceleration(self, t, q: Float[Array, "... d"], v) -> Float[Array, "... d"]:
        g = jnp.asarray(self.gravity)[..., None]
        k = jnp.asarray(self.drag)[..., None]
        return -g * self._down(q) - k * safe_norm(v, keepdims=True) * v

    def energy(self, y: PhaseState) -> Float[Array, ""]:
        """Kinetic plus gravitational potential energy (J), zero height at $z = 0$."""
        e = 0.5 * jnp.sum(y.v**2, axis=-1) + self.gravity * y.q[..., -1]
        return jnp.sum(self.mass * e)

    def terminal_speed(self) -> Float[Array, "..."]:
        """$\\sqrt{g / k}$ (m/s): the speed at which drag balances gravity."""
        return jnp.sqrt(self.gravity / self.drag)

    def solution(self, t, y0: PhaseState) -> PhaseState:
        """The exact drag-free state at time `t` (from 0) starting at `y0`; valid only for
        `drag = 0` (a closed form with drag exists only in one dimension)."""
        t = jnp.asarray(t)[..., None]
        g = jnp.asarray(self.gravity)[..., None] * self._down(y0.q)
        return PhaseState(q=y0.q + y0.v * t - 0.5 * g * t**2, v=y0.v - g * t)

    def initial_state(self, speed, angle, height=0.0) -> PhaseState:
        """A 2-d launch: `PhaseState` with `q = (0, height)` and `v = speed (cos angle,
        sin angle)`; speed in m/s, angle in rad above the horizontal, height in m. All three
        broadcast. For 3-d, build `ds.PhaseState(q, v)` directly."""
        speed, angle, height = jnp.broadcast_arrays(*map(as_float, (speed, angle, height)))
        q = jnp.stack([jnp.zeros_like(height), height], -1)
        v = jnp.stack([speed * jnp.cos(angle), speed * jnp.sin(angle)], -1)
        return PhaseState(q=q, v=v)
