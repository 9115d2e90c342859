"""The Lorenz system: the classic chaotic flow."""

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from ._base import AbstractSystem


class Lorenz(AbstractSystem):
    """Lorenz (1963), "Deterministic nonperiodic flow", J. Atmos. Sci. 20.

    $$\\dot x = \\sigma (y - x), \\quad \\dot y = x (\\rho - z) - y, \\quad
      \\dot z = x y - \\beta z$$

    State: an array whose last axis is `(x, y, z)`. Chaotic for the classic
    $\\sigma = 10, \\rho = 28, \\beta = 8/3$; for $\\rho < 1$ every orbit decays to the origin.

    **Example:**

    ```python
    traj = ds.simulate(ds.systems.Lorenz(), jnp.array([1.0, 0.0, 0.0]), t1=1.0, dt=1e-3)
    ```
    """

    sigma: Float[ArrayLike, "..."] = 10.0
    rho: Float[ArrayLike, "..."] = 28.0
    beta: Float[ArrayLike, "..."] = 8.0 / 3.0

    def vector_field(self, t, y: Float[Array, "... 3"]) -> Float[Array, "... 3"]:
        x, yy, z = y[..., 0], y[..., 1], y[..., 2]
        return jnp.stack(
            [self.sigma * (yy - x), x * (self.rho - z) - yy, x * yy - self.beta * z], axis=-1
        )
