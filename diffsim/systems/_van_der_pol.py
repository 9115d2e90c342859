"""The Van der Pol oscillator: a limit cycle, stiff for large mu."""

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from ._base import AbstractSystem
from ._checks import check_finite
from ._util import as_float


class VanDerPol(AbstractSystem):
    """Van der Pol (1926), "On relaxation-oscillations", Phil. Mag. 2:

    $$\\ddot x - \\mu (1 - x^2) \\dot x + x = 0, \\quad\\text{as}\\quad
      \\dot x = v, \\ \\ \\dot v = \\mu (1 - x^2) v - x.$$

    Dimensionless. For every $\\mu > 0$ all orbits but the origin approach one limit cycle
    of amplitude close to 2. Its period is $2\\pi(1 + \\mu^2/16 + O(\\mu^4))$ for small
    $\\mu$ and $T \\approx (3 - 2\\ln 2)\\mu + 3\\alpha\\,\\mu^{-1/3}
    - \\tfrac23 \\mu^{-1}\\ln\\mu$ for large $\\mu$ ($\\alpha \\approx 2.3381$ the first zero of
    the Airy function; Dorodnitsyn 1947), where slow drifts alternate with jumps taking
    time $O(1/\\mu)$: the problem is stiff, so use `ds.Kvaerno5`. There is no conserved
    energy (the damping term pumps energy in for $|x| < 1$ and removes it outside).

    State: an array whose last axis is `(x, v)`, shape `(..., 2)`; leading axes are
    independent oscillators and broadcast against `mu`.

    **Fields:** `mu`, the nonlinear damping strength (dimensionless), default 1.

    **Example:**

    ```python
    vdp = ds.systems.VanDerPol(mu=100.0)
    # Stiff: an implicit integrator. In float32 keep tolerances >= 1e-4.
    traj = ds.simulate(vdp, vdp.initial_state(2.0), t1=200.0,
                       integrator=ds.Kvaerno5(rtol=1e-4, atol=1e-4))
    print(traj.ys)  # [[ 1.71... -0.0088...]]: on the slow branch of the limit cycle
    ```

    Larger $\\mu$ needs float64: with `jax_enable_x64`, $\\mu = 1000$ over
    `t1=3000.0` takes about 3500 steps at tolerances 1e-6 (pass `max_steps=10_000`),
    while in float32 the jumps, $O(1/\\mu)$ long, cannot be resolved at such times.
    """

    mu: Float[ArrayLike, "..."] = 1.0

    def __check_init__(self):
        check_finite("VanDerPol", "mu", self.mu)

    def vector_field(self, t, y: Float[Array, "... 2"]) -> Float[Array, "... 2"]:
        x, v = y[..., 0], y[..., 1]
        return jnp.stack([v, self.mu * (1 - x**2) * v - x], axis=-1)

    def initial_state(self, position, velocity=0.0) -> Float[Array, "... 2"]:
        """The state `(x, v)` from a position and a velocity (broadcast together)."""
        return jnp.stack(jnp.broadcast_arrays(as_float(position), as_float(velocity)), -1)
