"""The one-dimensional wave equation, by the method of lines."""

import math

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from . import _grid
from ._base import AbstractMechanicalSystem, PhaseState
from ._checks import check_finite, check_positive, shape_of
from ._util import as_float


class Wave1D(AbstractMechanicalSystem, _grid.AbstractGrid1D):
    """Waves on $[0, L]$ with a spatially varying speed (a string of unit density and
    tension $c^2$):

    $$\\partial_t^2 u = \\partial_x \\big(c(x)^2\\, \\partial_x u\\big),$$

    discretised by second-order finite volumes with face values
    $c^2_{i+1/2} = (c_i^2 + c_{i+1}^2)/2$ into a mechanical system for the `n` node
    displacements. The semi-discrete energy

    $$E = \\frac h2 \\sum_i \\dot u_i^2 + \\frac h2 \\sum_{\\text{faces}} c^2_{i+1/2}
      \\Big(\\frac{u_{i+1} - u_i}{h}\\Big)^2$$

    is exactly conserved (summation by parts), and the force does not depend on the
    velocity, so `ds.Leapfrog` and `ds.Yoshida4` are symplectic: stable for
    $c\\,\\Delta t < h$ (Leapfrog) with bounded energy error. For constant $c$:
    d'Alembert's $u = \\tfrac12[f(x - ct) + f(x + ct)]$ from rest, and standing waves
    $\\sin(k\\pi x/L)\\cos(\\omega t)$ with $\\omega = c k \\pi / L$ (semi-discretely
    $\\omega_h = (2c/h)\\sin(k\\pi h/2L)$).

    Boundaries: fixed ends at the values `left` and `right` (Dirichlet; nodes at
    $x_i = i h$, $h = L/(n+1)$), or `periodic=True` ($h = L/n$).

    State: `PhaseState(q=u, v=du/dt)` of shape `(..., n)`, any grid size; $x$ in m,
    $t$ in s, $c$ in m/s.

    **Fields:**

    - `wave_speed`: $c$, a scalar or an `(n,)` field (m/s), > 0, default 1.
    - `length`: $L$ (m), > 0, default 1.
    - `left`, `right`: the fixed end displacements, default 0 (ignored if periodic).
    - `periodic`: periodic boundaries (static), default `False`.

    **Example:**

    ```python
    string = ds.systems.Wave1D(wave_speed=2.0)
    x = string.grid(200)
    y0 = string.initial_state(jnp.exp(-200 * (x - 0.3) ** 2))
    traj = ds.simulate(string, y0, t1=1.0, dt=1e-3, integrator=ds.Leapfrog())
    ```
    """

    wave_speed: Float[ArrayLike, "... n"] = 1.0
    length: Float[ArrayLike, ""] = 1.0
    left: Float[ArrayLike, ""] = 0.0
    right: Float[ArrayLike, ""] = 0.0
    periodic: bool = eqx.field(static=True, default=False)

    def __check_init__(self):
        check_positive("Wave1D", "wave_speed", self.wave_speed, "m/s")
        check_finite("Wave1D", "left", self.left, "m")
        check_finite("Wave1D", "right", self.right, "m")

    def acceleration(self, t, q: Float[Array, "... n"], v) -> Float[Array, "... n"]:
        h = self.spacing(q.shape[-1])
        c2 = as_float(self.wave_speed) ** 2
        return _grid.diffuse(q, c2, h, -1, self.periodic, self.left, self.right)

    def energy(self, y: PhaseState) -> Float[Array, ""]:
        """The semi-discrete energy above (per unit density), summed over leading axes."""
        n = y.q.shape[-1]
        h = self.spacing(n)
        c2 = jnp.broadcast_to(as_float(self.wave_speed) ** 2, y.q.shape)
        c2_face = _grid.face_values(c2, -1, self.periodic)
        grad = _grid.face_gradients(y.q, h, -1, self.periodic, self.left, self.right)
        if self.periodic:  # the first and last faces are the same face
            c2_face, grad = c2_face[..., 1:], grad[..., 1:]
        return 0.5 * h * (jnp.sum(y.v**2) + jnp.sum(c2_face * grad**2))

    def spectral_bounds(self, y: PhaseState) -> tuple[float, float] | None:
        """Bounds `(decay_rate, oscillation_rate)` on the eigenvalues $\\lambda$ of the
        Jacobian of the first-order `vector_field` at states shaped like `y` (a
        `PhaseState`; only the shape of `y.q` is read): $|\\mathrm{Re}\\,\\lambda| \\le$
        `decay_rate` and $|\\mathrm{Im}\\,\\lambda| \\le$ `oscillation_rate`. None when
        `wave_speed` or `length` is traced. For stability checks of explicit integrators:
        `dt * oscillation_rate` must lie in the integrator's stability interval on the
        imaginary axis (2 for Leapfrog, about 2.83 for RK4).

        The Jacobian is $\\begin{pmatrix} 0 & I \\\\ K & 0 \\end{pmatrix}$ with $K$ the
        operator of `Heat1D` for $D = c^2$: symmetric and negative semi-definite, with
        eigenvalues $-\\omega^2$. So $\\lambda = \\pm i\\omega$: `decay_rate` is 0 (no
        damping) and, by Gershgorin's theorem on $K$,

        $$|\\lambda| = \\omega \\le \\max_i \\sqrt{2 (c^2_{i-1/2} + c^2_{i+1/2})} / h,$$

        which is $2c/h$ for a constant $c$: tight, the highest grid mode has
        $\\omega_h = (2c/h)\\cos(\\pi h/2L)$ with fixed ends and exactly $2c/h$ when periodic
        (even $n$).

        **Example:** `string.spectral_bounds(y0)` is `(0.0, 2 * c / h)` for a constant $c$.
        """
        shape = shape_of(getattr(y, "q", y))
        if not shape:
            return None
        c, L = self.wave_speed, self.length
        rates = _grid.node_rates(c, L, shape, -1, self.periodic, squared=True)
        return None if rates is None else (0.0, math.sqrt(2.0 * float(np.max(rates))))

    def initial_state(self, displacement, velocity=0.0) -> PhaseState:
        """`PhaseState` from node displacements and velocities (broadcast together)."""
        q, v = jnp.broadcast_arrays(as_float(displacement), as_float(velocity))
        return PhaseState(q=q, v=v)
