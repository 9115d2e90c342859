"""The harmonic oscillator: the reference problem with a closed-form solution."""

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from ._base import AbstractMechanicalSystem, PhaseState
from ._checks import check_nonnegative


class HarmonicOscillator(AbstractMechanicalSystem):
    """Unit-mass harmonic oscillator $\\ddot q = -\\omega^2 q$, any shape of `q`.

    Energy $E = \\tfrac12 v^2 + \\tfrac12 \\omega^2 q^2$ (per unit mass, summed over
    components). Exact solution: $q(t) = q_0 \\cos \\omega t + (v_0/\\omega) \\sin \\omega t$.

    **Fields:** `omega`, the angular frequency (rad/s), >= 0; broadcasts against `q`.

    **Example:**

    ```python
    osc = ds.systems.HarmonicOscillator(omega=2.0)
    traj = ds.simulate(osc, osc.initial_state(1.0), t1=1.0, dt=1e-3)
    ```
    """

    omega: Float[ArrayLike, "..."]

    def __check_init__(self):
        check_nonnegative("HarmonicOscillator", "omega", self.omega, "rad/s")

    def acceleration(self, t, q, v):
        return -(self.omega**2) * q

    def energy(self, y: PhaseState) -> Float[Array, ""]:
        return jnp.sum(0.5 * y.v**2 + 0.5 * self.omega**2 * y.q**2)

    def initial_state(self, position, velocity=0.0) -> PhaseState:
        """`PhaseState` from a displacement and a velocity (broadcast together)."""
        q, v = jnp.broadcast_arrays(jnp.asarray(position, float), jnp.asarray(velocity, float))
        return PhaseState(q=q, v=v)

    def solution(self, t, y0: PhaseState) -> PhaseState:
        """The exact state at time `t` (from 0) starting at `y0`."""
        c, s = jnp.cos(self.omega * t), jnp.sin(self.omega * t)
        return PhaseState(q=y0.q * c + y0.v / self.omega * s, v=-y0.q * self.omega * s + y0.v * c)
