"""Gravitational N-body problem, all pairs, in any dimension."""

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from ._base import AbstractMechanicalSystem, PhaseState
from ._checks import check_nonnegative, check_positive, check_shape
from ._pairwise import pair_sum, pair_sum_autodiff, softened_gravity


def _pair_geometry(q: Float[Array, "n d"], softening):
    """Separations $r_{ij} = q_j - q_i$, softened squared distances, and the off-diagonal
    mask. The diagonal's distance is replaced by 1 *before* any power is taken (the double
    where trick), so neither values nor gradients see 0^{-3/2} when softening is 0."""
    n = q.shape[0]
    diff = q[None, :, :] - q[:, None, :]
    off = ~jnp.eye(n, dtype=bool)
    r2 = jnp.sum(diff**2, axis=-1) + softening**2
    r2 = jnp.where(off, r2, 1.0)
    return diff, r2, off


class NBody(AbstractMechanicalSystem):
    """Newtonian gravity between `n` point masses in `d` dimensions, all pairs.

    $$\\ddot q_i = G \\sum_{j \\ne i} m_j \\frac{q_j - q_i}{(|q_j - q_i|^2 + \\epsilon^2)^{3/2}}$$
    $$E = \\sum_i \\tfrac12 m_i |v_i|^2 - G \\sum_{i<j} \\frac{m_i m_j}{\\sqrt{|q_j - q_i|^2 + \\epsilon^2}}$$

    State: `PhaseState(q, v)` with `q`, `v` of shape `(n, d)`. Cost $O(n^2 d)$ per force
    evaluation. Forces come from `pair_sum`'s compiled kernel (C++ on a CPU, Pallas on a
    GPU, pure JAX elsewhere), whose backward pass is a kernel of its own, so a gradient
    through a rollout stores $O(n d)$ per step instead of $O(n^2 d)$. With softening 0, bodies that coincide give infinite forces (a
    real singularity); apart, values and gradients are finite.

    **Fields:**

    - `masses`: `(n,)` masses, >= 0 (a zero mass is a test body: it feels the others
      and pulls none). For a batch of systems, build `NBody` inside `jax.vmap` or
      `ds.ensemble`.
    - `G`: the gravitational constant, > 0 (default 1, i.e. N-body units).
    - `softening`: Plummer softening length $\\epsilon$, >= 0 (default 0).
    - `lean_gradients`: recompute the pair forces in reverse mode instead of storing them
      (default; $O(N)$ memory per step of a rollout). `False` stores them ($O(N^2)$ per
      step, faster for a few bodies). Forward and reverse mode work either way.

    **Example:**

    ```python
    binary = ds.systems.NBody(masses=jnp.array([1.0, 1.0]))
    y0 = ds.PhaseState(q=jnp.array([[-0.5, 0.0], [0.5, 0.0]]),
                       v=jnp.array([[0.0, -0.7071], [0.0, 0.7071]]))
    traj = ds.simulate(binary, y0, t1=10.0, dt=1e-3, integrator=ds.Yoshida4())
    ```
    """

    masses: Float[ArrayLike, " n"]
    G: Float[ArrayLike, ""] = 1.0
    softening: Float[ArrayLike, ""] = 0.0
    lean_gradients: bool = eqx.field(static=True, default=True)

    def __check_init__(self):
        one_d = "a 1-d array (n,), one mass per body"
        batch = "For a batch of systems, build NBody inside jax.vmap or ds.ensemble."
        check_shape("NBody", "masses", self.masses, lambda s: len(s) == 1, one_d, batch)
        check_nonnegative("NBody", "masses", self.masses)
        check_positive("NBody", "G", self.G)
        check_nonnegative("NBody", "softening", self.softening)

    def acceleration(self, t, q: Float[Array, "n d"], v) -> Float[Array, "n d"]:
        kernel = pair_sum if self.lean_gradients else pair_sum_autodiff
        return kernel(q, self.masses, softened_gravity, (self.G, self.softening))

    def potential_energy(self, q: Float[Array, "n d"]) -> Float[Array, ""]:
        """$-G \\sum_{i<j} m_i m_j / \\sqrt{|q_j - q_i|^2 + \\epsilon^2}$, all pairs."""
        _, r2, off = _pair_geometry(q, self.softening)
        m = jnp.asarray(self.masses)
        pair = jnp.where(off, m[:, None] * m[None, :] / jnp.sqrt(r2), 0.0)
        return -0.5 * self.G * jnp.sum(pair)  # each pair counted twice

    def energy(self, y: PhaseState) -> Float[Array, ""]:
        kinetic = 0.5 * jnp.sum(jnp.asarray(self.masses)[:, None] * y.v**2)
        return kinetic + self.potential_energy(y.q)

    def momentum(self, y: PhaseState) -> Float[Array, " d"]:
        """Total linear momentum $\\sum_i m_i v_i$ (conserved)."""
        return jnp.sum(jnp.asarray(self.masses)[:, None] * y.v, axis=0)
