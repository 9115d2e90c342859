"""A ball bouncing on a ground plane: an exact event model and a smooth penalty model."""

import math

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from ._base import AbstractMechanicalSystem, PhaseState
from ._checks import GRAVITY_HINT, check_interval, check_nonnegative, check_positive
from ._util import as_float, safe_norm


def _down(q):
    return jnp.zeros(q.shape[-1], q.dtype).at[-1].set(1.0)


class BouncingBall(AbstractMechanicalSystem):
    """A point ball in free flight under gravity (and optional quadratic drag) that bounces
    off the ground $z = 0$ with a coefficient of restitution $e$: an event model.

    Between impacts $\\ddot{\\mathbf q} = -g\\hat{\\mathbf z} - k|\\dot{\\mathbf q}|\\dot{\\mathbf q}$;
    at an impact (`event`: the height $z$ reaches 0 from above) the normal velocity
    reverses and shrinks, $v_z^+ = -e\\, v_z^-$ (`reset`), the tangential one is kept.
    Simulate it with `ds.EventStep()`, which splits each step at the impact and gives
    gradients the time-of-impact correction.

    Without drag the motion is known in closed form (`solution`, no loops): the first
    impact at $t_1 = (v_0 + u_1)/g$ with speed $u_1 = \\sqrt{v_0^2 + 2 g z_0}$, then flights
    of $2 e^k u_1 / g$, so impacts accumulate at $t_\\infty = t_1 + 2 e u_1 / (g(1-e))$,
    after which the ball rests (Zeno). Apex heights fall by $e^2$ per bounce. Energy
    $E = m(\\tfrac12|\\mathbf v|^2 + g z)$, lost at impacts by the factor $e^2$ on the
    normal part.

    State: `PhaseState(q, v)` of shape `(d,)` (one ball; `jax.vmap` for many), height on
    the last axis; SI units.

    **Fields:**

    - `gravity`: $g$ (m/s^2), >= 0, default 9.81.
    - `restitution`: $e \\in [0, 1]$, default 0.8.
    - `drag`: $k$ (1/m), >= 0, default 0.
    - `mass`: $m$ (kg), > 0, default 1; enters only the energy.

    **Example:**

    ```python
    ball = ds.systems.BouncingBall(restitution=0.7)
    y0 = ds.PhaseState(q=jnp.array([0.0, 1.0]), v=jnp.array([0.5, 0.0]))
    traj = ds.simulate(ball, y0, t1=2.0, dt=1e-2, integrator=ds.EventStep())
    ```
    """

    gravity: Float[ArrayLike, ""] = 9.81
    restitution: Float[ArrayLike, ""] = 0.8
    drag: Float[ArrayLike, ""] = 0.0
    mass: Float[ArrayLike, ""] = 1.0

    def __check_init__(self):
        check_nonnegative("BouncingBall", "gravity", self.gravity, "m/s^2", GRAVITY_HINT)
        check_interval("BouncingBall", "restitution", self.restitution, 0.0, 1.0)
        check_nonnegative("BouncingBall", "drag", self.drag, "1/m")
        check_positive("BouncingBall", "mass", self.mass, "kg")

    def acceleration(self, t, q: Float[Array, " d"], v) -> Float[Array, " d"]:
        return -self.gravity * _down(q) - self.drag * safe_norm(v, keepdims=True) * v

    def event(self, t, y: PhaseState) -> Float[Array, ""]:
        """The guard: the height above the ground (an impact when it reaches 0)."""
        return y.q[-1]

    def reset(self, t, y: PhaseState) -> PhaseState:
        """The impact map: $v_z \\to -e v_z$, tangential velocity kept."""
        return PhaseState(q=y.q, v=y.v.at[-1].multiply(-self.restitution))

    def energy(self, y: PhaseState) -> Float[Array, ""]:
        return self.mass * (0.5 * jnp.sum(y.v**2) + self.gravity * y.q[-1])

    def solution(self, t, y0: PhaseState) -> PhaseState:
        """The exact state at time `t` (from 0) without drag, through any number of
        bounces, from `y0` above the ground."""
        g, e = as_float(self.gravity), as_float(self.restitution)
        t = as_float(t)
        z0, w0 = y0.q[-1], y0.v[-1]
        u1 = jnp.sqrt(w0**2 + 2 * g * z0)
        t1 = (w0 + u1) / g
        zeno = t1 + 2 * e * u1 / (g * (1 - e))
        # k >= 1 bounces happened at t_k = t1 + (2 u1 / g) e (1 - e^(k-1)) / (1 - e) <= t.
        arg = 1 - (t - t1) * g * (1 - e) / (2 * u1 * e)
        before_rest = (t >= t1) & (t < zeno)
        safe_arg = jnp.where(before_rest, arg, 1.0)
        k = jnp.where(before_rest, jnp.floor(jnp.log(safe_arg) / jnp.log(e)) + 1, 1.0)
        t_k = t1 + 2 * u1 / g * e * (1 - e ** (k - 1)) / (1 - e)
        w = e**k * u1  # take-off speed after the k-th bounce
        tau = t - t_k
        z_air, vz_air = z0 + w0 * t - 0.5 * g * t**2, w0 - g * t
        z_bounce, vz_bounce = w * tau - 0.5 * g * tau**2, w - g * tau
        z = jnp.where(t < t1, z_air, jnp.where(before_rest, z_bounce, 0.0))
        vz = jnp.where(t < t1, vz_air, jnp.where(before_rest, vz_bounce, 0.0))
        q = (y0.q + y0.v * t).at[-1].set(z)
        return PhaseState(q=q, v=y0.v.at[-1].set(vz))


class SoftBouncingBall(AbstractMechanicalSystem):
    """Particles against the ground $z = 0$ through a smooth penalty contact: a stiff
    spring-dashpot acting on the (softly clipped) penetration, so the dynamics are one
    smooth ODE with no events, differentiable everywhere, for any integrator:

    $$\\ddot z = -g + k\\, \\delta - c\\, \\dot z\\, \\sigma(-z/w), \\qquad
      \\delta = w \\log(1 + e^{-z/w}),$$

    per unit mass ($\\sigma$ the logistic function, $w$ the smoothing width; as $w \\to 0$
    this is the linear Kelvin-Voigt contact $k\\max(-z, 0) - c \\dot z [z < 0]$). For the
    linear contact a bounce lasts $\\pi / \\omega_d$ and has restitution
    $e = \\exp(-\\zeta\\pi/\\sqrt{1 - \\zeta^2})$, $\\zeta = c / (2\\sqrt k)$ (`restitution`);
    `from_restitution` inverts it. Stiff for large $k$: the step must resolve
    $\\sqrt k$. Tangential motion is free (no friction).

    State: `PhaseState(q, v)` of shape `(..., d)`, height on the last axis; leading axes
    are independent particles.

    **Fields:**

    - `gravity`: $g$ (m/s^2), >= 0, default 9.81.
    - `stiffness`: $k$ (1/s^2, per unit mass), > 0, default 1e4.
    - `damping`: $c$ (1/s, per unit mass), >= 0, default 20.
    - `smoothing`: $w$ (m), > 0, default 1e-4.
    - `mass`: $m$ (kg), > 0, default 1; enters only the energy.

    **Example:**

    ```python
    ball = ds.systems.SoftBouncingBall.from_restitution(0.8, stiffness=1e5)
    y0 = ds.PhaseState(q=jnp.array([1.0]), v=jnp.array([0.0]))
    traj = ds.simulate(ball, y0, t1=2.0, dt=1e-4, saveat=ds.SaveAt(every=10))
    ```
    """

    gravity: Float[ArrayLike, ""] = 9.81
    stiffness: Float[ArrayLike, ""] = 1e4
    damping: Float[ArrayLike, ""] = 20.0
    smoothing: Float[ArrayLike, ""] = 1e-4
    mass: Float[ArrayLike, ""] = 1.0

    def __check_init__(self):
        owner = "SoftBouncingBall"
        check_nonnegative(owner, "gravity", self.gravity, "m/s^2", GRAVITY_HINT)
        check_positive(owner, "stiffness", self.stiffness, "1/s^2")
        check_nonnegative(owner, "damping", self.damping, "1/s")
        check_positive(owner, "smoothing", self.smoothing, "m")
        check_positive(owner, "mass", self.mass, "kg")

    def acceleration(self, t, q: Float[Array, "... d"], v) -> Float[Array, "... d"]:
        w = self.smoothing
        z, vz = q[..., -1], v[..., -1]
        depth = w * jnp.logaddexp(0.0, -z / w)
        # sigma(-z / w): jax.nn.sigmoid stays finite with a finite derivative far from the
        # floor, where 1 / (1 + exp(z / w)) overflowed and its derivative became inf / inf.
        contact = jax.nn.sigmoid(-z / w)
        az = -self.gravity + self.stiffness * depth - self.damping * vz * contact
        return jnp.zeros_like(q).at[..., -1].set(az)

    def energy(self, y: PhaseState) -> Float[Array, ""]:
        """Kinetic + gravitational + the (smoothed) elastic contact energy (J)."""
        w, z = self.smoothing, y.q[..., -1]
        # Elastic energy: k * integral of delta over the penetration, in closed form
        # k w^2 (-Li2(-e^{-z/w})); for z >> w it vanishes, for -z >> w it is k z^2 / 2.
        # The log-sum form below is accurate to O(w^2 k), enough for diagnostics.
        depth = w * jnp.logaddexp(0.0, -z / w)
        elastic = 0.5 * self.stiffness * depth**2
        e = 0.5 * jnp.sum(y.v**2, -1) + self.gravity * z + elastic
        return jnp.sum(self.mass * e)

    def restitution(self) -> Float[Array, ""]:
        """$e = \\exp(-\\zeta\\pi/\\sqrt{1-\\zeta^2})$ of the linear contact ($\\zeta < 1$)."""
        zeta = self.damping / (2 * jnp.sqrt(self.stiffness))
        return jnp.exp(-zeta * math.pi / jnp.sqrt(1 - zeta**2))

    @classmethod
    def from_restitution(cls, restitution, *, stiffness=1e4, **fields) -> "SoftBouncingBall":
        """The damping that gives the linear contact the restitution $e$:
        $\\zeta = -\\ln e / \\sqrt{\\pi^2 + \\ln^2 e}$, $c = 2\\zeta\\sqrt k$."""
        owner = "SoftBouncingBall.from_restitution"
        check_positive(owner, "restitution", restitution)
        check_interval(owner, "restitution", restitution, 0.0, 1.0)
        log_e = jnp.log(as_float(restitution))
        zeta = -log_e / jnp.sqrt(math.pi**2 + log_e**2)
        return cls(stiffness=stiffness, damping=2 * zeta * jnp.sqrt(as_float(stiffness)), **fields)
