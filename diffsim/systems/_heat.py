"""The heat (diffusion) equation in one and two dimensions, by the method of lines."""

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from . import _grid
from ._base import AbstractSystem
from ._util import as_float


class Heat1D(AbstractSystem, _grid.AbstractGrid1D):
    """Diffusion with a spatially varying diffusivity on $[0, L]$:

    $$\\partial_t u = \\partial_x \\big(D(x)\\, \\partial_x u\\big),$$

    discretised in space by second-order finite volumes (face diffusivities
    $D_{i+1/2} = (D_i + D_{i+1})/2$) into an ODE for the `n` node values:
    $\\dot u_i = [D_{i+1/2}(u_{i+1} - u_i) - D_{i-1/2}(u_i - u_{i-1})] / h^2$.

    Boundaries: fixed values `left` and `right` at $x = 0$ and $x = L$ (Dirichlet; nodes
    at $x_i = i h$, $h = L/(n+1)$, `grid()`), or `periodic=True` ($h = L/n$), under
    which the total heat $h \\sum_i u_i$ (`total_heat`) is conserved. With constant $D$
    and zero boundary values the modes $\\sin(k\\pi x/L)$ decay as $e^{-D (k\\pi/L)^2 t}$
    (semi-discretely as $e^{-\\lambda_k t}$, $\\lambda_k = (4D/h^2)\\sin^2(k\\pi h/2L)$).

    Stiff: the fastest mode decays at $4 D / h^2$, so explicit methods need
    $\\Delta t < h^2 / 2D$; use `ds.Kvaerno5` on fine grids.

    State: an array of shape `(..., n)` (any grid size `n`; leading axes are independent
    fields). Units: $u$ any (e.g. K), $x$ in m, $t$ in s, $D$ in m^2/s.

    **Fields:**

    - `diffusivity`: $D$, a scalar or an `(n,)` field (m^2/s), default 1.
    - `length`: $L$ (m), default 1.
    - `left`, `right`: the Dirichlet boundary values, default 0 (ignored if periodic).
    - `periodic`: periodic boundaries instead (static), default `False`.

    **Example:**

    ```python
    heat = ds.systems.Heat1D(diffusivity=0.1)
    x = heat.grid(100)
    # In float32 keep tolerances >= 1e-4: tighter ones stall the implicit solver.
    traj = ds.simulate(heat, jnp.sin(jnp.pi * x), t1=1.0,
                       integrator=ds.Kvaerno5(rtol=1e-4, atol=1e-4))
    ```
    """

    diffusivity: Float[ArrayLike, "... n"] = 1.0
    length: Float[ArrayLike, ""] = 1.0
    left: Float[ArrayLike, ""] = 0.0
    right: Float[ArrayLike, ""] = 0.0
    periodic: bool = eqx.field(static=True, default=False)

    def vector_field(self, t, u: Float[Array, "... n"]) -> Float[Array, "... n"]:
        h = self.spacing(u.shape[-1])
        return _grid.diffuse(
            u, as_float(self.diffusivity), h, -1, self.periodic, self.left, self.right
        )

    def total_heat(self, u: Float[Array, "... n"]) -> Float[Array, "..."]:
        """$h \\sum_i u_i$: conserved with periodic boundaries."""
        return self.spacing(u.shape[-1]) * jnp.sum(u, axis=-1)


class Heat2D(AbstractSystem):
    """Diffusion with a spatially varying diffusivity on the rectangle
    $[0, L_x] \\times [0, L_y]$:

    $$\\partial_t u = \\partial_x (D\\, \\partial_x u) + \\partial_y (D\\, \\partial_y u),$$

    the same second-order finite volumes as `Heat1D` along each axis. Boundaries: the
    fixed value `boundary` on all four sides (Dirichlet; nodes at $(i h_x, j h_y)$ with
    $h_x = L_x / (n_x + 1)$), or `periodic=True` in both directions. With constant $D$
    and zero boundary values, $\\sin(k\\pi x/L_x)\\sin(l\\pi y/L_y)$ decays as
    $e^{-D \\pi^2 (k^2/L_x^2 + l^2/L_y^2) t}$. Stiff on fine grids: use `ds.Kvaerno5`.

    State: an array of shape `(..., nx, ny)` (`u[..., i, j]` at $(x_i, y_j)$).

    **Fields:**

    - `diffusivity`: $D$, a scalar or an `(nx, ny)` field (m^2/s), default 1.
    - `length_x`, `length_y`: $L_x, L_y$ (m), default 1.
    - `boundary`: the Dirichlet boundary value, default 0 (ignored if periodic).
    - `periodic`: periodic in both directions (static), default `False`.

    **Example:**

    ```python
    heat = ds.systems.Heat2D(diffusivity=0.05)
    x, y = heat.grid(32, 32)
    u0 = jnp.exp(-50 * ((x - 0.5) ** 2 + (y - 0.5) ** 2))
    traj = ds.simulate(heat, u0, t1=0.5, integrator=ds.Kvaerno5(rtol=1e-4, atol=1e-4))
    ```
    """

    diffusivity: Float[ArrayLike, "... nx ny"] = 1.0
    length_x: Float[ArrayLike, ""] = 1.0
    length_y: Float[ArrayLike, ""] = 1.0
    boundary: Float[ArrayLike, ""] = 0.0
    periodic: bool = eqx.field(static=True, default=False)

    def spacing(self, nx: int, ny: int) -> tuple[Float[Array, ""], Float[Array, ""]]:
        """The node spacings $(h_x, h_y)$."""
        return (
            _grid.spacing(nx, as_float(self.length_x), self.periodic),
            _grid.spacing(ny, as_float(self.length_y), self.periodic),
        )

    def grid(self, nx: int, ny: int) -> tuple[Float[Array, "nx ny"], Float[Array, "nx ny"]]:
        """Node coordinates `(x, y)`, each of shape `(nx, ny)` (`indexing="ij"`)."""
        x = _grid.nodes(nx, as_float(self.length_x), self.periodic)
        y = _grid.nodes(ny, as_float(self.length_y), self.periodic)
        return tuple(jnp.meshgrid(x, y, indexing="ij"))

    def vector_field(self, t, u: Float[Array, "... nx ny"]) -> Float[Array, "... nx ny"]:
        hx, hy = self.spacing(u.shape[-2], u.shape[-1])
        D, b = as_float(self.diffusivity), self.boundary
        return _grid.diffuse(u, D, hx, -2, self.periodic, b, b) + _grid.diffuse(
            u, D, hy, -1, self.periodic, b, b
        )

    def total_heat(self, u: Float[Array, "... nx ny"]) -> Float[Array, "..."]:
        """$h_x h_y \\sum_{ij} u_{ij}$: conserved with periodic boundaries."""
        hx, hy = self.spacing(u.shape[-2], u.shape[-1])
        return hx * hy * jnp.sum(u, axis=(-2, -1))
