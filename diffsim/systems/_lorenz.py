"""The Lorenz system: the classic chaotic flow."""

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from ._base import AbstractSystem
from ._checks import check_finite


class Lorenz(AbstractSystem):
    """Lorenz (1963), "Deterministic nonperiodic flow", J. Atmos. Sci. 20.

    $$\\dot x = \\sigma (y - x), \\quad \\dot y = x (\\rho - z) - y, \\quad
      \\dot z = x y - \\beta z$$

    State: an array whose last axis is `(x, y, z)`, or a tuple `(x, y, z)` of arrays of
    one shape; the vector field returns the same form. Chaotic for the classic
    $\\sigma = 10, \\rho = 28, \\beta = 8/3$; for $\\rho < 1$ every orbit decays to the origin.

    **Which form.** The two give the same numbers. For ensembles (`vmap` over members)
    prefer the tuple: each component is then one contiguous `(N,)` array (structure of
    arrays), and each step compiles to a couple of fused kernels; the `(N, 3)` array
    form needs strided slices and a stack per stage. Measured on the Tsit5 ensemble of
    `benchmarks/ensemble.py` (1000 steps, float32): 66.7 ms against 1181 ms at N = 2^23
    on an H200 (18x), 146 ms against 193 ms at N = 2^12 on a 2-core CPU.

    **Example:**

    ```python
    traj = ds.simulate(ds.systems.Lorenz(), jnp.array([1.0, 0.0, 0.0]), t1=1.0, dt=1e-3)
    traj.ys.shape  # (1, 3)

    # An ensemble over rho, in the tuple form:
    def final(rho):
        lorenz = ds.systems.Lorenz(rho=rho)
        return ds.simulate(lorenz, (1.0, 0.0, 0.0), t1=1.0, dt=1e-3).ys
    xs, ys, zs = ds.ensemble(final, jnp.linspace(0.0, 21.0, 256)).values
    ```
    """

    sigma: Float[ArrayLike, "..."] = 10.0
    rho: Float[ArrayLike, "..."] = 28.0
    beta: Float[ArrayLike, "..."] = 8.0 / 3.0

    def __check_init__(self):
        for name in ("sigma", "rho", "beta"):
            check_finite("Lorenz", name, getattr(self, name))

    def vector_field(self, t, y):
        """`dy/dt` for `y` an array `(..., 3)` or a tuple `(x, y, z)`; the same form back."""
        if isinstance(y, (tuple, list)):
            if len(y) != 3:
                raise ValueError(
                    f"Lorenz: a tuple state must be (x, y, z); got {len(y)} components."
                )
            return type(y)(self._derivatives(*y))
        if jnp.shape(y)[-1:] != (3,):
            raise ValueError(
                f"Lorenz: an array state must have a last axis of size 3 (x, y, z); got "
                f"shape {jnp.shape(y)}."
            )
        return jnp.stack(self._derivatives(y[..., 0], y[..., 1], y[..., 2]), axis=-1)

    def _derivatives(
        self, x: Float[Array, "..."], y: Float[Array, "..."], z: Float[Array, "..."]
    ) -> tuple[Float[Array, "..."], Float[Array, "..."], Float[Array, "..."]]:
        return (self.sigma * (y - x), x * (self.rho - z) - y, x * y - self.beta * z)
