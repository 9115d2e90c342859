"""The planar double pendulum: two point masses on two rigid massless rods."""

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from ._base import AbstractMechanicalSystem, PhaseState
from ._checks import GRAVITY_HINT, check_nonnegative, check_positive
from ._util import as_float


class DoublePendulum(AbstractMechanicalSystem):
    """Two point masses $m_1, m_2$ on massless rods $l_1, l_2$, hanging from a fixed pivot;
    both angles $\\theta_1, \\theta_2$ measured from the downward vertical.

    The Euler-Lagrange equations of
    $L = \\tfrac12 (m_1+m_2) l_1^2 \\dot\\theta_1^2 + \\tfrac12 m_2 l_2^2 \\dot\\theta_2^2
      + m_2 l_1 l_2 \\dot\\theta_1 \\dot\\theta_2 \\cos\\Delta
      + (m_1+m_2) g l_1 \\cos\\theta_1 + m_2 g l_2 \\cos\\theta_2$, with
    $\\Delta = \\theta_1 - \\theta_2$, are linear in the accelerations:

    $$\\begin{pmatrix} (m_1+m_2) l_1 & m_2 l_2 \\cos\\Delta \\\\ l_1 \\cos\\Delta & l_2
      \\end{pmatrix} \\begin{pmatrix} \\ddot\\theta_1 \\\\ \\ddot\\theta_2 \\end{pmatrix} =
      \\begin{pmatrix} -m_2 l_2 \\dot\\theta_2^2 \\sin\\Delta - (m_1+m_2) g \\sin\\theta_1 \\\\
      l_1 \\dot\\theta_1^2 \\sin\\Delta - g \\sin\\theta_2 \\end{pmatrix}$$

    solved here in closed form (the determinant $l_1 l_2 (m_1 + m_2 \\sin^2\\Delta)$ never
    vanishes). Energy (J), conserved:
    $E = T + (m_1+m_2) g l_1 (1 - \\cos\\theta_1) + m_2 g l_2 (1 - \\cos\\theta_2)$, zero at
    rest hanging down. Small oscillations have the two normal-mode frequencies of
    $M \\ddot\\theta = -K \\theta$; for equal masses and lengths
    $\\omega^2 = (2 \\mp \\sqrt 2)\\, g / l$. At energies near and above $m g l$ most motions are
    chaotic.

    State: `PhaseState(q, v)` with `q = (theta1, theta2)` (rad) and `v` their rates (rad/s)
    on the last axis, shape `(..., 2)`; leading axes are independent pendulums and
    broadcast against the fields.

    The accelerations depend on the velocities, so `ds.Leapfrog`/`ds.Yoshida4` are not
    symplectic here; use `ds.RK4` or an adaptive integrator.

    **Fields:**

    - `mass1`, `mass2`: $m_1, m_2$ (kg), > 0, default 1.
    - `length1`, `length2`: $l_1, l_2$ (m), > 0, default 1.
    - `gravity`: $g$ (m/s^2), >= 0, default 9.81.

    **Example:**

    ```python
    dp = ds.systems.DoublePendulum(length1=1.0, length2=0.5)
    y0 = dp.initial_state(angle1=2.0, angle2=2.5)
    traj = ds.simulate(dp, y0, t1=20.0, dt=1e-3, saveat=ds.SaveAt(every=10))
    ```
    """

    mass1: Float[ArrayLike, "..."] = 1.0
    mass2: Float[ArrayLike, "..."] = 1.0
    length1: Float[ArrayLike, "..."] = 1.0
    length2: Float[ArrayLike, "..."] = 1.0
    gravity: Float[ArrayLike, "..."] = 9.81

    def __check_init__(self):
        for name in ("mass1", "mass2"):
            check_positive("DoublePendulum", name, getattr(self, name), "kg")
        for name in ("length1", "length2"):
            check_positive("DoublePendulum", name, getattr(self, name), "m")
        check_nonnegative("DoublePendulum", "gravity", self.gravity, "m/s^2", GRAVITY_HINT)

    def acceleration(self, t, q: Float[Array, "... 2"], v) -> Float[Array, "... 2"]:
        m1, m2, l1, l2, g = self.mass1, self.mass2, self.length1, self.length2, self.gravity
        th1, th2, w1, w2 = q[..., 0], q[..., 1], v[..., 0], v[..., 1]
        delta = th1 - th2
        c, s = jnp.cos(delta), jnp.sin(delta)
        r1 = -m2 * l2 * w2**2 * s - (m1 + m2) * g * jnp.sin(th1)
        r2 = l1 * w1**2 * s - g * jnp.sin(th2)
        det = l1 * l2 * (m1 + m2 * s**2)
        a1 = l2 * (r1 - m2 * c * r2) / det
        a2 = l1 * ((m1 + m2) * r2 - c * r1) / det
        return jnp.stack([a1, a2], axis=-1)

    def kinetic_energy(self, y: PhaseState) -> Float[Array, ""]:
        """Kinetic energy $T$ (J), summed over any leading axes of the state."""
        m1, m2, l1, l2 = self.mass1, self.mass2, self.length1, self.length2
        w1, w2 = y.v[..., 0], y.v[..., 1]
        c = jnp.cos(y.q[..., 0] - y.q[..., 1])
        t = 0.5 * (m1 + m2) * l1**2 * w1**2 + 0.5 * m2 * l2**2 * w2**2 + m2 * l1 * l2 * w1 * w2 * c
        return jnp.sum(t)

    def potential_energy(self, q: Float[Array, "... 2"]) -> Float[Array, ""]:
        """Gravitational potential energy (J), zero hanging straight down, summed over
        any leading axes of `q`."""
        m1, m2, l1, l2, g = self.mass1, self.mass2, self.length1, self.length2, self.gravity
        u = (m1 + m2) * g * l1 * (1 - jnp.cos(q[..., 0])) + m2 * g * l2 * (1 - jnp.cos(q[..., 1]))
        return jnp.sum(u)

    def energy(self, y: PhaseState) -> Float[Array, ""]:
        """Total energy (J), summed over any leading axes of the state."""
        return self.kinetic_energy(y) + self.potential_energy(y.q)

    def positions(self, q: Float[Array, "... 2"]) -> Float[Array, "... 2 2"]:
        """Cartesian positions (m) of the two masses, `(..., body, (x, y))`, pivot at the
        origin and $y$ up."""
        x1 = self.length1 * jnp.sin(q[..., 0])
        y1 = -self.length1 * jnp.cos(q[..., 0])
        x2 = x1 + self.length2 * jnp.sin(q[..., 1])
        y2 = y1 - self.length2 * jnp.cos(q[..., 1])
        return jnp.stack([jnp.stack([x1, y1], -1), jnp.stack([x2, y2], -1)], -2)

    def initial_state(
        self, angle1, angle2, angular_velocity1=0.0, angular_velocity2=0.0
    ) -> PhaseState:
        """`PhaseState` from the two angles (rad, from the downward vertical) and their
        angular velocities (rad/s); all four broadcast together."""
        a1, a2, w1, w2 = jnp.broadcast_arrays(
            *map(as_float, (angle1, angle2, angular_velocity1, angular_velocity2))
        )
        return PhaseState(q=jnp.stack([a1, a2], -1), v=jnp.stack([w1, w2], -1))
