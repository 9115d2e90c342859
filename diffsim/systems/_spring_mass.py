"""Networks of point masses joined by damped springs: chains, cloth, any graph."""

from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, Int

from ._base import AbstractMechanicalSystem, PhaseState
from ._checks import check_finite, check_nonnegative, check_positive, check_shape, concrete
from ._util import as_float, safe_norm


def _mask(n: int, pinned: Sequence[int] | None) -> Array | None:
    if pinned is None or len(pinned) == 0:
        return None
    mask = np.zeros(n, bool)
    mask[np.asarray(pinned, int)] = True
    return jnp.asarray(mask)


def _check_edges(edges, n: int | None) -> int | None:
    """`edges` is an `(m, 2)` integer array of node indices in `[0, n)`; returns `m`."""
    owner = "SpringMassNetwork"
    shape = check_shape(owner, "edges", edges, lambda s: s[1:] == (2,), "an (m, 2) array")
    values = concrete(owner, "edges", edges)
    dtype = getattr(edges, "dtype", None) if values is None else values.dtype
    if dtype is not None and not jnp.issubdtype(dtype, jnp.integer):
        raise TypeError(f"{owner}: `edges` must hold integer node indices; got {dtype}.")
    if values is not None and values.size and n is not None:
        low, high = values.min(), values.max()
        if low < 0 or high >= n:
            raise ValueError(
                f"{owner}: `edges` must index the {n} nodes, 0 to {n - 1}; got indices from "
                f"{low} to {high}."
            )
    return None if shape is None else shape[0]


class SpringMassNetwork(AbstractMechanicalSystem):
    """Point masses joined by linear springs with dashpots, under uniform gravity, with
    optional pinned (fixed) nodes. Spring $s$ joins nodes $i_s, j_s$:

    $$\\mathbf f_s = \\left[k_s (L_s - L^0_s) + c_s\\, (\\mathbf v_{j} - \\mathbf v_{i}) \\cdot
      \\hat{\\mathbf u}_s\\right] \\hat{\\mathbf u}_s, \\qquad
      L_s = |\\mathbf q_j - \\mathbf q_i|, \\quad \\hat{\\mathbf u}_s = (\\mathbf q_j -
      \\mathbf q_i) / L_s,$$

    pulls node $i$ by $+\\mathbf f_s$ and node $j$ by $-\\mathbf f_s$ (Newton's third law),
    and every free node moves by
    $m_i \\ddot{\\mathbf q}_i = \\sum_s \\pm\\mathbf f_s + m_i \\mathbf g - m_i \\gamma
    \\mathbf v_i$. Pinned nodes have zero acceleration (keep their velocity zero too).
    Energy (J): $E = \\sum_i \\tfrac12 m_i |\\mathbf v_i|^2 + \\sum_s \\tfrac12 k_s
    (L_s - L^0_s)^2 - \\sum_i m_i\\, \\mathbf g \\cdot \\mathbf q_i$, conserved when $c = 0$
    and $\\gamma = 0$, and then `ds.Leapfrog`/`ds.Yoshida4` are symplectic here.

    Cost $O(n + m)$ per evaluation (a gather and a scatter-add over springs). A spring of
    zero length has no direction: its force is taken as zero there (values and gradients
    stay finite).

    State: `PhaseState(q, v)` of shape `(n, d)`, any dimension `d`; SI units.

    **Fields:**

    - `masses`: `(n,)` node masses (kg), > 0.
    - `edges`: `(m, 2)` integer node indices of each spring, in `[0, n)` (not
      differentiable; when differentiating with respect to the whole module use
      `eqx.filter_grad`).
    - `rest_lengths`: `(m,)` rest lengths $L^0$ (m), >= 0.
    - `stiffness`: $k$ (N/m), scalar or `(m,)`, >= 0.
    - `damping`: dashpot coefficients $c$ (N s/m) along each spring, scalar or `(m,)`,
      >= 0, default 0. It damps stretching only, not rigid motion.
    - `gravity`: the acceleration $\\mathbf g$ (m/s^2), a `(d,)` vector (default 0).
    - `drag`: linear drag rate $\\gamma$ (1/s) on every node, e.g. air, >= 0 (default 0).
    - `pinned`: `(n,)` boolean mask of fixed nodes, or `None`.

    **Example:**

    ```python
    chain, y0 = ds.systems.SpringMassNetwork.chain(10, spacing=0.1, stiffness=500.0,
                                                   direction=(1.0, 0.0))
    traj = ds.simulate(chain, y0, t1=2.0, dt=1e-3, integrator=ds.Leapfrog())
    ```
    """

    masses: Float[ArrayLike, " n"]
    edges: Int[Array, "m 2"]
    rest_lengths: Float[ArrayLike, " m"]
    stiffness: Float[ArrayLike, " m"]
    damping: Float[ArrayLike, " m"] = 0.0
    gravity: Float[ArrayLike, " d"] = 0.0
    drag: Float[ArrayLike, ""] = 0.0
    pinned: Bool[Array, " n"] | None = None

    def __check_init__(self):
        owner = "SpringMassNetwork"
        one_d = "a 1-d array (n,), one mass per node"
        n = check_shape(owner, "masses", self.masses, lambda s: len(s) == 1, one_d)
        check_positive(owner, "masses", self.masses, "kg")
        m = _check_edges(self.edges, None if n is None else n[0])
        for name, unit in (("rest_lengths", "m"), ("stiffness", "N/m"), ("damping", "N s/m")):
            value = getattr(self, name)
            if m is not None:
                expected = f"a scalar or one value per spring ({m},)"
                check_shape(owner, name, value, lambda s: s in ((), (m,)), expected)
            check_nonnegative(owner, name, value, unit)
        check_finite(owner, "gravity", self.gravity, "m/s^2")
        check_nonnegative(owner, "drag", self.drag, "1/s")
        if self.pinned is not None and n is not None:
            mask = f"None or a boolean mask of shape {n}"
            check_shape(owner, "pinned", self.pinned, lambda s: s == n, mask)

    def _springs(self, q):
        i, j = self.edges[:, 0], self.edges[:, 1]
        r = q[j] - q[i]
        length = safe_norm(r)
        # Double where: a zero-length spring has no direction; its force is zero.
        nonzero = length > 0
        u = jnp.where(nonzero[:, None], r / jnp.where(nonzero, length, 1.0)[:, None], 0.0)
        return i, j, u, length - self.rest_lengths

    def spring_forces(self, q: Float[Array, "n d"], v: Float[Array, "n d"]) -> Float[Array, "n d"]:
        """The net spring and dashpot force (N) on every node."""
        i, j, u, stretch = self._springs(q)
        rate = jnp.sum((v[j] - v[i]) * u, axis=-1)
        f = (self.stiffness * stretch + self.damping * rate)[:, None] * u
        return jnp.zeros_like(q).at[i].add(f).at[j].add(-f)

    def acceleration(self, t, q: Float[Array, "n d"], v) -> Float[Array, "n d"]:
        m = jnp.asarray(self.masses)[:, None]
        a = self.spring_forces(q, v) / m + self.gravity - self.drag * v
        if self.pinned is not None:
            a = jnp.where(self.pinned[:, None], 0.0, a)
        return a

    def potential_energy(self, q: Float[Array, "n d"]) -> Float[Array, ""]:
        """Elastic plus gravitational potential energy (J), zero at $q = 0$ unstretched."""
        _, _, _, stretch = self._springs(q)
        elastic = 0.5 * jnp.sum(self.stiffness * stretch**2)
        return elastic - jnp.sum(jnp.asarray(self.masses)[:, None] * self.gravity * q)

    def energy(self, y: PhaseState) -> Float[Array, ""]:
        kinetic = 0.5 * jnp.sum(jnp.asarray(self.masses)[:, None] * y.v**2)
        return kinetic + self.potential_energy(y.q)

    def momentum(self, y: PhaseState) -> Float[Array, " d"]:
        """Total linear momentum (conserved with no gravity, drag or pinned nodes)."""
        return jnp.sum(jnp.asarray(self.masses)[:, None] * y.v, axis=0)

    def stretches(self, q: Float[Array, "n d"]) -> Float[Array, " m"]:
        """$L_s - L^0_s$ for every spring (m)."""
        return self._springs(q)[3]

    @classmethod
    def chain(
        cls,
        n: int,
        *,
        spacing: float = 0.1,
        node_mass: float = 0.1,
        stiffness: float = 100.0,
        damping: float = 0.0,
        gravity: ArrayLike | None = None,
        drag: float = 0.0,
        direction: Sequence[float] = (0.0, -1.0),
        pinned: Sequence[int] | None = (0,),
    ) -> tuple["SpringMassNetwork", PhaseState]:
        """A chain of `n` nodes, each joined to the next by a spring of rest length
        `spacing`, laid out unstretched from the origin along the unit vector
        `direction` (its length sets the dimension `d`), at rest.

        `gravity` defaults to 9.81 m/s^2 along the last axis downwards; `pinned` lists
        fixed nodes (default: the first). Returns `(network, y0)`.
        """
        direction = np.asarray(direction, float)
        direction = direction / np.linalg.norm(direction)
        d = direction.shape[0]
        if gravity is None:
            gravity = np.zeros(d)
            gravity[-1] = -9.81
        q = np.arange(n)[:, None] * spacing * direction[None, :]
        edges = np.stack([np.arange(n - 1), np.arange(1, n)], -1)
        network = cls(
            masses=jnp.full(n, node_mass, float),
            edges=jnp.asarray(edges, jnp.int32),
            rest_lengths=jnp.full(n - 1, spacing, float),
            stiffness=jnp.full(n - 1, stiffness, float),
            damping=jnp.full(n - 1, damping, float),
            gravity=jnp.asarray(gravity, float),
            drag=jnp.asarray(drag, float),
            pinned=_mask(n, pinned),
        )
        y0 = PhaseState(q=jnp.asarray(q, float), v=jnp.zeros((n, d)))
        return network, y0

    @classmethod
    def cloth(
        cls,
        nx: int,
        ny: int,
        *,
        spacing: float = 0.1,
        node_mass: float = 0.01,
        stiffness: float = 500.0,
        shear_stiffness: float | None = None,
        bend_stiffness: float = 0.0,
        damping: float = 0.0,
        gravity: ArrayLike = (0.0, 0.0, -9.81),
        drag: float = 0.0,
        pinned: Sequence[int] | None = None,
    ) -> tuple["SpringMassNetwork", PhaseState]:
        """A rectangular `nx` by `ny` cloth in 3-d, flat in the plane $z = 0$, node
        `(ix, iy)` at `(ix, iy, 0) * spacing` with index `iy * nx + ix`, at rest.

        Springs (Provot 1995, "Deformation constraints in a mass-spring model to describe
        rigid cloth behavior"): structural between grid neighbours (`stiffness`), shear
        along both diagonals of each cell (`shear_stiffness`, default `stiffness`), and
        bending between nodes two apart (`bend_stiffness`; none when 0). `pinned`
        defaults to the two corners of the row `iy = 0`. Returns `(network, y0)`, with
        springs in the order structural, shear, bending.
        """
        index = np.arange(nx * ny).reshape(ny, nx)
        groups = [
            (np.stack([index[:, :-1].ravel(), index[:, 1:].ravel()], -1), 1.0, stiffness),
            (np.stack([index[:-1, :].ravel(), index[1:, :].ravel()], -1), 1.0, stiffness),
        ]
        shear = stiffness if shear_stiffness is None else shear_stiffness
        groups += [
            (np.stack([index[:-1, :-1].ravel(), index[1:, 1:].ravel()], -1), np.sqrt(2), shear),
            (np.stack([index[:-1, 1:].ravel(), index[1:, :-1].ravel()], -1), np.sqrt(2), shear),
        ]
        if bend_stiffness > 0:
            groups += [
                (np.stack([index[:, :-2].ravel(), index[:, 2:].ravel()], -1), 2.0, bend_stiffness),
                (np.stack([index[:-2, :].ravel(), index[2:, :].ravel()], -1), 2.0, bend_stiffness),
            ]
        edges = np.concatenate([g[0] for g in groups])
        rest = np.concatenate([np.full(len(g[0]), g[1] * spacing) for g in groups])
        k = np.concatenate([np.full(len(g[0]), g[2]) for g in groups])
        iy, ix = np.divmod(np.arange(nx * ny), nx)
        q = np.stack([ix * spacing, iy * spacing, np.zeros(nx * ny)], -1)
        network = cls(
            masses=jnp.full(nx * ny, node_mass, float),
            edges=jnp.asarray(edges, jnp.int32),
            rest_lengths=jnp.asarray(rest, float),
            stiffness=jnp.asarray(k, float),
            damping=jnp.full(len(edges), damping, float),
            gravity=jnp.asarray(gravity, float),
            drag=jnp.asarray(drag, float),
            pinned=_mask(nx * ny, (0, nx - 1) if pinned is None else pinned),
        )
        return network, PhaseState(q=jnp.asarray(q, float), v=jnp.zeros((nx * ny, 3)))

    def initial_state(self, positions, velocities=None) -> PhaseState:
        """`PhaseState` from `(n, d)` positions (m) and velocities (m/s, default 0)."""
        q = as_float(positions)
        v = (
            jnp.zeros_like(q)
            if velocities is None
            else jnp.broadcast_to(as_float(velocities), q.shape)
        )
        return PhaseState(q=q, v=v)
