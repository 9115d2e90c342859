"""The simple pendulum, optionally damped."""

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from ._base import AbstractMechanicalSystem, PhaseState
from ._checks import GRAVITY_HINT, check_nonnegative, check_positive


class Pendulum(AbstractMechanicalSystem):
    """A point mass on a rigid massless rod, with linear damping.

    $$\\ddot\\theta = -\\frac{g}{L} \\sin\\theta - c\\,\\dot\\theta$$

    State: `PhaseState(q=theta, v=omega)`: the angle from the downward vertical (rad) and
    the angular velocity (rad/s), any shape (many pendulums broadcast elementwise).
    Energy (J): $E = m\\left(\\tfrac12 L^2\\dot\\theta^2 + g L (1 - \\cos\\theta)\\right)$,
    conserved when $c = 0$.

    **Fields:**

    - `length`: $L$ (m), > 0.
    - `gravity`: $g$ (m/s^2), >= 0, default 9.81.
    - `damping`: $c$ (1/s), >= 0, default 0.
    - `mass`: $m$ (kg), > 0, default 1; enters only the energy.

    **Example:**

    ```python
    pendulum = ds.systems.Pendulum(length=1.0, damping=0.1)
    traj = ds.simulate(pendulum, pendulum.initial_state(0.5), t1=10.0, dt=0.01)
    ```
    """

    length: Float[ArrayLike, "..."]
    gravity: Float[ArrayLike, "..."] = 9.81
    damping: Float[ArrayLike, "..."] = 0.0
    mass: Float[ArrayLike, "..."] = 1.0

    def __check_init__(self):
        check_positive("Pendulum", "length", self.length, "m")
        check_nonnegative("Pendulum", "gravity", self.gravity, "m/s^2", GRAVITY_HINT)
        check_nonnegative("Pendulum", "damping", self.damping, "1/s")
        check_positive("Pendulum", "mass", self.mass, "kg")

    def acceleration(self, t, q, v):
        return -(self.gravity / self.length) * jnp.sin(q) - self.damping * v

    def energy(self, y: PhaseState) -> Float[Array, ""]:
        kinetic = 0.5 * self.length**2 * y.v**2
        potential = self.gravity * self.length * (1 - jnp.cos(y.q))
        return jnp.sum(self.mass * (kinetic + potential))

    def initial_state(self, angle, angular_velocity=0.0) -> PhaseState:
        """`PhaseState` from an angle (rad) and an angular velocity (rad/s)."""
        q, v = jnp.broadcast_arrays(jnp.asarray(angle, float), jnp.asarray(angular_velocity, float))
        return PhaseState(q=q, v=v)
