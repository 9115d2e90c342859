"""The heat (diffusion) equation in one and two dimensions, by the method of lines."""

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from . import _grid
from ._base import AbstractSystem
from ._checks import check_finite, check_positive, shape_of
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
    $\\Delta t < h^2 / 2D$ (`spectral_bounds`); use `ds.Kvaerno5` on fine grids.

    State: an array of shape `(..., n)` (any grid size `n`; leading axes are independent
    fields). Units: $u$ any (e.g. K), $x$ in m, $t$ in s, $D$ in m^2/s.

    **Fields:**

    - `diffusivity`: $D$, a scalar or an `(n,)` field (m^2/s), > 0, default 1.
    - `length`: $L$ (m), > 0, default 1.
    - `left`, `right`: the Dirichlet boundary values, default 0 (ignored if periodic).
    - `periodic`: periodic boundaries instead (static), default `False`.

    **Example:**

    ```python
    heat = ds.systems.Heat1D(diffusivity=0.1)
    x = heat.grid(50)
    u0 = jnp.sin(jnp.pi * x)
    decay_rate, _ = heat.spectral_bounds(u0)  # 4 D / h^2 = 1040.4
    # A coarse grid: RK4 (the default) is stable while dt * decay_rate < 2.79.
    traj = ds.simulate(heat, u0, t1=1.0, dt=1 / 400)
    print(traj.ys.max())  # 0.3726...: e^{-D pi^2 t} = 0.3727
    ```

    On fine grids the stable explicit step shrinks as $h^2$: use
    `integrator=ds.Kvaerno5(rtol=1e-4, atol=1e-4)` instead (in float32 keep tolerances
    >= 1e-4: tighter ones stall the implicit solver).
    """

    diffusivity: Float[ArrayLike, "... n"] = 1.0
    length: Float[ArrayLike, ""] = 1.0
    left: Float[ArrayLike, ""] = 0.0
    right: Float[ArrayLike, ""] = 0.0
    periodic: bool = eqx.field(static=True, default=False)

    def __check_init__(self):
        check_positive("Heat1D", "diffusivity", self.diffusivity, "m^2/s")
        check_finite("Heat1D", "left", self.left)
        check_finite("Heat1D", "right", self.right)

    def vector_field(self, t, u: Float[Array, "... n"]) -> Float[Array, "... n"]:
        h = self.spacing(u.shape[-1])
        return _grid.diffuse(
            u, as_float(self.diffusivity), h, -1, self.periodic, self.left, self.right
        )

    def total_heat(self, u: Float[Array, "... n"]) -> Float[Array, "..."]:
        """$h \\sum_i u_i$: conserved with periodic boundaries."""
        return self.spacing(u.shape[-1]) * jnp.sum(u, axis=-1)

    def spectral_bounds(self, y: Float[Array, "... n"]) -> tuple[float, float] | None:
        """Bounds `(decay_rate, oscillation_rate)` on the eigenvalues $\\lambda$ of the
        Jacobian of `vector_field` at states shaped like `y` (an array or anything with a
        `.shape`; only its shape is read): $|\\mathrm{Re}\\,\\lambda| \\le$ `decay_rate`
        and $|\\mathrm{Im}\\,\\lambda| \\le$ `oscillation_rate`. None when `diffusivity`
        or `length` is traced. For stability checks of explicit integrators: a step `dt`
        is stable when `dt * decay_rate` lies in the integrator's stability interval on
        the negative real axis (2 for Euler, about 2.79 for RK4).

        The vector field is linear in $u$; its Jacobian $A$ has
        $A_{i,i\\pm1} = D_{i\\pm1/2}/h^2$ and $A_{ii} = -(D_{i-1/2} + D_{i+1/2})/h^2$ (the
        boundary values do not enter it). $A$ is symmetric and negative semi-definite, so
        its eigenvalues are real (`oscillation_rate` is 0) and, by Gershgorin's theorem,

        $$0 \\le -\\lambda \\le \\max_i\\, 2 (D_{i-1/2} + D_{i+1/2}) / h^2,$$

        which is $4D/h^2$ for a constant $D$. That is tight: the highest grid mode decays
        at $(4D/h^2) \\cos^2(\\pi h / 2L)$ with Dirichlet boundaries and at exactly
        $4D/h^2$ with periodic ones (even $n$).

        **Example:** `heat.spectral_bounds(u0)` is `(4 D / h**2, 0.0)` for a constant $D$.
        """
        shape = shape_of(y)
        if not shape:
            return None
        rates = _grid.node_rates(self.diffusivity, self.length, shape, -1, self.periodic)
        return None if rates is None else (2.0 * float(np.max(rates)), 0.0)


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

    - `diffusivity`: $D$, a scalar or an `(nx, ny)` field (m^2/s), > 0, default 1.
    - `length_x`, `length_y`: $L_x, L_y$ (m), > 0, default 1.
    - `boundary`: the Dirichlet boundary value, default 0 (ignored if periodic).
    - `periodic`: periodic in both directions (static), default `False`.

    **Example:**

    ```python
    heat = ds.systems.Heat2D(diffusivity=0.05)
    x, y = heat.grid(16, 16)
    u0 = jnp.sin(jnp.pi * x) * jnp.sin(jnp.pi * y)
    print(heat.spectral_bounds(u0))  # (115.6..., 0.0): 8 D / h^2; RK4 needs dt < 0.024
    traj = ds.simulate(heat, u0, t1=0.5, dt=0.02)
    print(traj.ys.max() / u0.max())  # 0.611...: e^{-2 D pi^2 t} = 0.6105
    ```

    On fine grids use `integrator=ds.Kvaerno5(rtol=1e-4, atol=1e-4)`.
    """

    diffusivity: Float[ArrayLike, "... nx ny"] = 1.0
    length_x: Float[ArrayLike, ""] = 1.0
    length_y: Float[ArrayLike, ""] = 1.0
    boundary: Float[ArrayLike, ""] = 0.0
    periodic: bool = eqx.field(static=True, default=False)

    def __check_init__(self):
        check_positive("Heat2D", "diffusivity", self.diffusivity, "m^2/s")
        check_positive("Heat2D", "length_x", self.length_x, "m")
        check_positive("Heat2D", "length_y", self.length_y, "m")
        check_finite("Heat2D", "boundary", self.boundary)

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

    def spectral_bounds(self, y: Float[Array, "... nx ny"]) -> tuple[float, float] | None:
        """Bounds `(decay_rate, oscillation_rate)` on the eigenvalues of the Jacobian of
        `vector_field` at states shaped like `y`, as `Heat1D.spectral_bounds` (which see):
        the operator is the sum of the two axes' symmetric operators, so its eigenvalues
        are real and, by Gershgorin's theorem on each row,

        $$0 \\le -\\lambda \\le \\max_{ij}\\, \\Big(2 (D_{i-1/2,j} + D_{i+1/2,j}) / h_x^2
          + 2 (D_{i,j-1/2} + D_{i,j+1/2}) / h_y^2\\Big),$$

        $4D/h_x^2 + 4D/h_y^2$ for a constant $D$ ($8D/h^2$ for equal spacings), attained
        by the highest grid mode as the grid is refined. None when a parameter is traced.
        """
        shape = shape_of(y)
        if shape is None or len(shape) < 2:
            return None
        D, periodic = self.diffusivity, self.periodic
        rx = _grid.node_rates(D, self.length_x, shape, -2, periodic)
        ry = _grid.node_rates(D, self.length_y, shape, -1, periodic)
        if rx is None or ry is None:
            return None
        return 2.0 * float(np.max(rx + ry)), 0.0
