"""The cart-pole: an inverted pendulum on a cart pushed by a control force."""

from collections.abc import Callable

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from ._base import AbstractMechanicalSystem, PhaseState
from ._checks import GRAVITY_HINT, check_callable, check_nonnegative, check_positive
from ._util import as_float


class CartPole(AbstractMechanicalSystem):
    """A cart of mass $M$ on a frictionless horizontal track, carrying a pole: a point
    mass $m$ on a massless rod of length $l$, hinged on the cart. The angle $\\theta$ is
    measured from the upright position (clockwise positive, towards $+x$), and a
    horizontal force $F(t, q, v)$ pushes the cart. From
    $L = \\tfrac12 (M+m)\\dot x^2 + m l \\dot x \\dot\\theta \\cos\\theta
    + \\tfrac12 m l^2 \\dot\\theta^2 - m g l \\cos\\theta$:

    $$\\ddot x = \\frac{F + m l \\dot\\theta^2 \\sin\\theta - m g \\sin\\theta\\cos\\theta}
      {M + m \\sin^2\\theta}, \\qquad
      \\ddot\\theta = \\frac{(M+m) g \\sin\\theta - \\cos\\theta\\,(F + m l \\dot\\theta^2
      \\sin\\theta)}{l\\,(M + m\\sin^2\\theta)}.$$

    (Barto, Sutton & Anderson 1983 use a uniform rod instead; the point-mass form is
    Florian 2007's with zero friction.) Linearised about the upright state,
    $\\ddot x = (F - m g \\theta)/M$ and $\\ddot\\theta = ((M+m) g \\theta - F)/(M l)$: the
    upright pole is unstable with rate $\\sqrt{(M+m) g / (M l)}$ and needs feedback.

    Energy (J), conserved when $F = 0$:
    $E = \\tfrac12 (M+m)\\dot x^2 + m l \\dot x \\dot\\theta\\cos\\theta
    + \\tfrac12 m l^2 \\dot\\theta^2 + m g l \\cos\\theta$; in general $\\dot E = F \\dot x$.
    The horizontal momentum $p = (M+m)\\dot x + m l \\dot\\theta\\cos\\theta$ obeys
    $\\dot p = F$.

    State: `PhaseState(q, v)` with `q = (x, theta)` (m, rad) and `v` their rates on the
    last axis, shape `(..., 2)`; leading axes are independent cart-poles.

    **Fields:**

    - `cart_mass`: $M$ (kg), > 0, default 1.
    - `pole_mass`: $m$ (kg), > 0, default 0.1.
    - `pole_length`: $l$ (m), > 0, default 0.5.
    - `gravity`: $g$ (m/s^2), >= 0, default 9.81.
    - `force`: the control, a callable `force(t, q, v) -> F` (N, shaped like `q[..., 0]`),
      or `None` for no force. An `eqx.Module` (a linear feedback, a neural network) is
      part of the system's pytree, so its parameters are differentiated, batched and
      trained through `ds.simulate` like the physical ones. A plain function is static.

    The accelerations depend on the velocities, so prefer `ds.RK4` or an adaptive
    integrator.

    **Example:**

    ```python
    import equinox as eqx

    class Feedback(eqx.Module):
        gain: jax.Array
        def __call__(self, t, q, v):
            return -jnp.sum(self.gain * jnp.concatenate([q, v], -1), -1)

    # Gains from pole placement on the linearisation (closed-loop poles near -2 and -5).
    cartpole = ds.systems.CartPole(force=Feedback(jnp.array([-6.1, -49.3, -7.8, -10.9])))
    traj = ds.simulate(cartpole, cartpole.initial_state(angle=0.1), t1=5.0, dt=1e-2)
    ```
    """

    cart_mass: Float[ArrayLike, "..."] = 1.0
    pole_mass: Float[ArrayLike, "..."] = 0.1
    pole_length: Float[ArrayLike, "..."] = 0.5
    gravity: Float[ArrayLike, "..."] = 9.81
    force: Callable[..., Float[Array, "..."]] | None = None

    def __check_init__(self):
        check_positive("CartPole", "cart_mass", self.cart_mass, "kg")
        check_positive("CartPole", "pole_mass", self.pole_mass, "kg")
        check_positive("CartPole", "pole_length", self.pole_length, "m")
        check_nonnegative("CartPole", "gravity", self.gravity, "m/s^2", GRAVITY_HINT)
        if self.force is not None:
            check_callable(
                "CartPole", "force", self.force, "None or a callable force(t, q, v) -> F (N)"
            )

    def applied_force(self, t, q, v) -> Float[Array, "..."]:
        """The control force $F$ (N) at this time and state."""
        if self.force is None:
            return jnp.zeros_like(q[..., 0])
        F = jnp.asarray(self.force(t, q, v))
        if jnp.broadcast_shapes(F.shape, q.shape[:-1]) != q.shape[:-1]:
            raise ValueError(
                f"CartPole: `force` returned shape {F.shape}, but the force on "
                f"{'one cart' if q.ndim == 1 else 'these carts'} must have shape "
                f"{q.shape[:-1]} (that of q[..., 0]). A network's output of shape (1,) "
                "needs reshaping to a scalar (eqx.nn.MLP(..., out_size='scalar') or "
                "ds.systems.Policy)."
            )
        return F

    def acceleration(self, t, q: Float[Array, "... 2"], v) -> Float[Array, "... 2"]:
        M, m, L, g = self.cart_mass, self.pole_mass, self.pole_length, self.gravity
        s, c = jnp.sin(q[..., 1]), jnp.cos(q[..., 1])
        push = self.applied_force(t, q, v) + m * L * v[..., 1] ** 2 * s
        denom = M + m * s**2
        ddx = (push - m * g * s * c) / denom
        ddtheta = ((M + m) * g * s - c * push) / (L * denom)
        return jnp.stack([ddx, ddtheta], -1)

    def energy(self, y: PhaseState) -> Float[Array, ""]:
        M, m, L, g = self.cart_mass, self.pole_mass, self.pole_length, self.gravity
        dx, dth, c = y.v[..., 0], y.v[..., 1], jnp.cos(y.q[..., 1])
        e = 0.5 * (M + m) * dx**2 + m * L * dx * dth * c + 0.5 * m * L**2 * dth**2 + m * g * L * c
        return jnp.sum(e)

    def momentum(self, y: PhaseState) -> Float[Array, "..."]:
        """Horizontal momentum $(M+m)\\dot x + m l \\dot\\theta \\cos\\theta$ (kg m/s)."""
        M, m, L = self.cart_mass, self.pole_mass, self.pole_length
        return (M + m) * y.v[..., 0] + m * L * y.v[..., 1] * jnp.cos(y.q[..., 1])

    def initial_state(
        self, position=0.0, angle=0.0, velocity=0.0, angular_velocity=0.0
    ) -> PhaseState:
        """`PhaseState` from the cart position (m), pole angle from upright (rad) and
        their rates (m/s, rad/s); all four broadcast together."""
        x, th, dx, dth = jnp.broadcast_arrays(
            *map(as_float, (position, angle, velocity, angular_velocity))
        )
        return PhaseState(q=jnp.stack([x, th], -1), v=jnp.stack([dx, dth], -1))
