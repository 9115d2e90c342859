"""Viscous Burgers' equation in one dimension, by the method of lines."""

import equinox as eqx
import jax.lax as lax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from . import _grid
from ._base import AbstractSystem
from ._checks import check_finite, check_nonnegative


class Burgers1D(AbstractSystem, _grid.AbstractGrid1D):
    """Viscous Burgers' equation on $[0, L]$:

    $$\\partial_t u + \\partial_x \\big(\\tfrac12 u^2\\big) = \\nu\\, \\partial_x^2 u.$$

    Discretised in flux form with the skew-symmetric central flux
    $f_{i+1/2} = (u_i^2 + u_i u_{i+1} + u_{i+1}^2)/6$ and second-order viscous fluxes, so
    $\\dot u_i = -(f_{i+1/2} - f_{i-1/2})/h + \\nu (u_{i+1} - 2u_i + u_{i-1})/h^2$. With
    periodic boundaries this conserves the momentum $h\\sum_i u_i$ (`momentum`) and makes
    the energy $\\tfrac h2 \\sum_i u_i^2$ (`energy`) decay exactly at the viscous rate
    $-\\nu h \\sum_{\\text{faces}} ((u_{i+1} - u_i)/h)^2$, as the PDE does: the nonlinear
    term neither creates nor destroys energy (Jameson 2008, J. Sci. Comput. 34). The
    central scheme needs the viscous scale resolved, cell Reynolds number
    $|u| h / \\nu \\lesssim 2$, or it oscillates near fronts.

    The Cole-Hopf transform $u = -2\\nu\\, \\partial_x \\log\\varphi$ maps it to the heat
    equation $\\varphi_t = \\nu \\varphi_{xx}$ (Hopf 1950, Cole 1951): e.g. on a $2\\pi$-periodic
    domain $u = 2\\nu e^{-\\nu t}\\sin x / (a + e^{-\\nu t}\\cos x)$, $a > 1$, is exact.
    Stiff for small $h$ (viscous rate $4\\nu/h^2$): use `ds.Kvaerno5` on fine grids.

    Boundaries: fixed values `left` and `right` (Dirichlet; nodes at $x_i = i h$,
    $h = L/(n+1)$), or `periodic=True` ($h = L/n$).

    State: an array of shape `(..., n)`, any grid size; $u$ in m/s, $x$ in m, $\\nu$ in
    m^2/s.

    **Fields:**

    - `viscosity`: $\\nu$ (m^2/s), >= 0 (0: inviscid), default 0.01.
    - `length`: $L$ (m), > 0, default 1.
    - `left`, `right`: Dirichlet boundary values, default 0 (ignored if periodic).
    - `periodic`: periodic boundaries (static), default `False`.

    **Example:**

    ```python
    burgers = ds.systems.Burgers1D(viscosity=0.01, length=2 * jnp.pi, periodic=True)
    x = burgers.grid(256)
    traj = ds.simulate(burgers, jnp.sin(x), t1=1.0, integrator=ds.Tsit5())
    ```
    """

    viscosity: Float[ArrayLike, ""] = 0.01
    length: Float[ArrayLike, ""] = 1.0
    left: Float[ArrayLike, ""] = 0.0
    right: Float[ArrayLike, ""] = 0.0
    periodic: bool = eqx.field(static=True, default=False)

    def __check_init__(self):
        check_nonnegative("Burgers1D", "viscosity", self.viscosity, "m^2/s")
        check_finite("Burgers1D", "left", self.left, "m/s")
        check_finite("Burgers1D", "right", self.right, "m/s")

    def vector_field(self, t, u: Float[Array, "... n"]) -> Float[Array, "... n"]:
        n = u.shape[-1]
        h = self.spacing(n)
        ue = _grid.pad(u, -1, self.periodic, self.left, self.right)
        lo = lax.slice_in_dim(ue, 0, n + 1, axis=-1)
        hi = lax.slice_in_dim(ue, 1, n + 2, axis=-1)
        flux = (lo**2 + lo * hi + hi**2) / 6 - self.viscosity * (hi - lo) / h
        return -(flux[..., 1:] - flux[..., :-1]) / h

    def momentum(self, u: Float[Array, "... n"]) -> Float[Array, "..."]:
        """$h \\sum_i u_i$ (conserved with periodic boundaries)."""
        return self.spacing(u.shape[-1]) * jnp.sum(u, axis=-1)

    def energy(self, u: Float[Array, "... n"]) -> Float[Array, ""]:
        """$\\tfrac h2 \\sum_i u_i^2$, summed over leading axes: conserved only when
        $\\nu = 0$; otherwise it decays at the viscous rate (see above)."""
        return 0.5 * self.spacing(u.shape[-1]) * jnp.sum(u**2)
