"""Lennard-Jones particles in a periodic box: all pairs or a cell list."""

import dataclasses
import math

import equinox as eqx
import jax
import jax.lax as lax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from ..kernels import lennard_jones_pair_sum
from ._base import AbstractMechanicalSystem, PhaseState
from ._checks import check_nonnegative, check_positive, check_shape
from ._periodic_pairs import (
    build_neighbour_list,
    cell_pair_energy,
    cell_pair_sum,
    minimum_image,
    neighbour_pair_energy,
    periodic_pair_energy,
    periodic_pair_sum,
)
from ._util import as_float


class AllPairs(eqx.Module):
    """Every pair, minimum image: $O(N^2)$ work, $O(N)$ memory for values and gradients.
    On a CPU, without a `block_size`, the compiled kernel runs (`diffsim.kernels`; about
    15 ms a force evaluation at N = 4096 on two cores, faster than the XLA `CellList`
    there); otherwise XLA code in blocks of target rows.

    - `block_size`: target rows per block of the XLA code (default None: the kernel on a
      CPU, else about 2^22 / (N d) rows).
    - `lean_gradients`: recompute the XLA code's blocks in reverse mode (default, $O(N)$
      memory); `False` stores them ($O(N^2)$). Both modes of autodiff work either way.

    **Example:**

    ```python
    system, y0 = ds.systems.LennardJones.lattice(
        6, density=0.8, dim=2, key=jax.random.key(0),
        neighbours=ds.systems.AllPairs(block_size=12),  # 36 particles, 3 blocks of rows
    )
    traj = ds.simulate(system, y0, t1=0.25, dt=0.005, integrator=ds.Leapfrog())
    ```
    """

    block_size: int | None = eqx.field(static=True, default=None)
    lean_gradients: bool = eqx.field(static=True, default=True)

    def __check_init__(self):
        if self.block_size is not None and not _is_count(self.block_size, 1):
            raise ValueError(
                f"AllPairs: `block_size` must be a positive int or None; got {self.block_size!r}."
            )


class CellList(eqx.Module):
    """A cell list rebuilt at every force evaluation: $O(N)$ work and memory, for $10^4$
    particles and more.

    - `grid`: cells per dimension, static; each cell must be at least the cutoff wide
      and there must be at least 3 per dimension.
    - `capacity`: particle slots per cell, static; overflowing raises at run time.

    `CellList.for_box(box, cutoff, n)` picks both for a given box and particle number.

    **Example:**

    ```python
    system, y0 = ds.systems.LennardJones.lattice(8, density=0.8, dim=2,
                                                 key=jax.random.key(0))
    cells = ds.systems.CellList.for_box(system.box, system.cutoff, n=64)
    print(cells)  # CellList(grid=(3, 3), capacity=23): a box 8.94 wide, cells >= 2.5
    system = ds.systems.LennardJones(box=system.box, neighbours=cells)
    traj = ds.simulate(system, y0, t1=0.25, dt=0.005, integrator=ds.Leapfrog())
    ```
    """

    grid: tuple[int, ...] = eqx.field(static=True)
    capacity: int = eqx.field(static=True)

    def __check_init__(self):
        if not (isinstance(self.grid, tuple) and all(_is_count(g, 0) for g in self.grid)):
            raise TypeError(f"CellList: `grid` must be a tuple of ints; got {self.grid!r}.")
        if not _is_count(self.capacity, 1):
            raise ValueError(
                f"CellList: `capacity` must be a positive int (particle slots per cell); got "
                f"{self.capacity!r}."
            )
        if any(g < 3 for g in self.grid):
            raise ValueError(
                f"CellList(grid={self.grid}) needs at least 3 cells per dimension (a box "
                "at least 3 cutoffs wide); use ds.systems.AllPairs() for smaller boxes."
            )

    @classmethod
    def for_box(cls, box, cutoff: float, n: int, *, safety: float = 2.0) -> "CellList":
        """The finest grid whose cells are at least `cutoff` wide, and a capacity of
        `safety` times the mean occupancy (plus 8) for `n` particles in the box."""
        box = np.broadcast_to(np.asarray(box, float), (np.size(box),))
        dim = box.shape[0] if box.shape[0] > 1 else None
        if dim is None:
            raise ValueError("CellList.for_box needs the box as one side per dimension.")
        grid = tuple(int(g) for g in np.floor(box / cutoff))
        mean = n / math.prod(grid)
        return cls(grid=grid, capacity=int(math.ceil(safety * mean)) + 8)


class NeighbourList(eqx.Module):
    """A Verlet neighbour list (Verlet 1967): each particle's neighbours within
    `cutoff + skin`, built from a cell list at `reference` positions. It stays exact while
    no particle has moved more than `skin / 2` from there; forces then cost $O(N k)$ for
    `k = max_neighbours`, about ten times fewer pairs than the cell list's (on a CPU, on
    the compiled kernel: about 2 ms at N = 4096 on two cores).

    The list is data carried by the system, so `ds.simulate` cannot refresh it: roll out
    in chunks and rebuild between them with `system.with_neighbour_list(q)` (one cell-list
    pass in XLA: about 110 ms at N = 4096 on two cores, some fifty force evaluations, so
    rebuild every ten steps or more, not every step). Within a chunk every force evaluation checks the displacement and,
    once it exceeds `skin / 2`, falls back to the cell list `cells` (or to all pairs
    when the box is under three `cutoff + skin` wide and `cells` is None): always correct,
    only slower. (Under `jax.vmap` both branches run.) Overflowing `max_neighbours` or a
    cell's capacity raises at run time.

    Build it with `LennardJones.with_neighbour_list`, not by hand.

    **Example:**

    ```python
    system, y = ds.systems.LennardJones.lattice(8, density=0.8, dim=2,
                                                key=jax.random.key(0))
    for chunk in range(3):  # rebuild the list between chunks of 50 steps
        system = system.with_neighbour_list(y.q)
        traj = ds.simulate(system, y, n_steps=50, dt=0.005, integrator=ds.Leapfrog())
        y = jax.tree.map(lambda x: x[-1], traj.ys)
    print(system.neighbours.idx.shape)  # (64, 49): up to 49 neighbours per particle
    ```
    """

    idx: Array
    reference: Array
    skin: float = eqx.field(static=True)
    max_neighbours: int = eqx.field(static=True)
    cells: CellList | None = eqx.field(static=True)

    def __check_init__(self):
        check_nonnegative("NeighbourList", "skin", self.skin)
        if not _is_count(self.max_neighbours, 1):
            raise ValueError(
                "NeighbourList: `max_neighbours` must be a positive int; got "
                f"{self.max_neighbours!r}."
            )
        if not (self.cells is None or isinstance(self.cells, CellList)):
            raise TypeError(
                f"NeighbourList: `cells` must be None or a CellList; got {self.cells!r}."
            )


def _is_count(x, least: int) -> bool:
    """`x` is an int (not a bool) of at least `least`."""
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool) and x >= least


def _switch(s, onset2, cutoff2):
    """CHARMM's switching function (Brooks et al. 1983, J. Comput. Chem. 4) in s = r^2 and
    its derivative dS/ds: 1 below the onset, 0 beyond the cutoff, C^1 in between."""
    denom = (cutoff2 - onset2) ** 3
    inside = (s > onset2) & (s < cutoff2)
    S = jnp.where(s <= onset2, 1.0, (cutoff2 - s) ** 2 * (cutoff2 + 2 * s - 3 * onset2) / denom)
    S = jnp.where(s >= cutoff2, 0.0, S)
    dS = jnp.where(inside, 6 * (cutoff2 - s) * (onset2 - s) / denom, 0.0)
    return S, dS


def _lj_energy(s, theta):
    """Switched LJ pair energy as a function of s = r^2."""
    epsilon, sigma, onset, cutoff = theta
    x3 = (sigma**2 / s) ** 3
    S, _ = _switch(s, onset**2, cutoff**2)
    return 4 * epsilon * (x3**2 - x3) * S


def _lj_phi(s, theta):
    """The radial force kernel: the force on i from j is phi(s) r_ij with r_ij = q_j - q_i
    and phi = (dU/dr) / r = 2 dU/ds (an attraction pulls i towards j when dU/dr > 0)."""
    epsilon, sigma, onset, cutoff = theta
    x3 = (sigma**2 / s) ** 3
    u = 4 * epsilon * (x3**2 - x3)
    du = -4 * epsilon * (6 * x3**2 - 3 * x3) / s
    S, dS = _switch(s, onset**2, cutoff**2)
    return 2 * (du * S + u * dS)


def _virial_term(s, theta):
    """r_ij . F_ij = -r dU/dr = -2 s dU/ds for one pair."""
    return -s * _lj_phi(s, theta)


class LennardJones(AbstractMechanicalSystem):
    """Particles interacting by the Lennard-Jones (1924) potential in a periodic box,
    smoothly switched off between `onset` and `cutoff`:

    $$U = \\sum_{i<j} 4\\epsilon\\left[\\Big(\\frac{\\sigma}{r_{ij}}\\Big)^{12} -
      \\Big(\\frac{\\sigma}{r_{ij}}\\Big)^{6}\\right] S(r_{ij}), \\qquad
      m_i \\ddot{\\mathbf q}_i = -\\nabla_i U,$$

    with $r_{ij}$ the minimum-image distance and $S$ CHARMM's switch (Brooks et al.
    1983): $S = 1$ for $r < r_o$, $S = 0$ for $r > r_c$ and
    $S = (r_c^2 - r^2)^2 (r_c^2 + 2r^2 - 3r_o^2) / (r_c^2 - r_o^2)^3$ between, so forces are
    continuous and the energy is conserved by `ds.Leapfrog` (velocity Verlet) to
    $O(\\Delta t^2)$ with no drift. The same potential as jax-md's
    `energy.lennard_jones(..., r_onset, r_cutoff)`.

    Instantaneous (kinetic) temperature, with $k_B = 1$ and $d(N-1)$ degrees of freedom
    (the total momentum is conserved): $T = \\sum_i m_i |v_i|^2 / (d (N - 1))$. Pressure
    by the virial theorem: $P = \\big(\\sum_i m_i |v_i|^2 + \\sum_{i<j} \\mathbf r_{ij}
    \\cdot \\mathbf F_{ij}\\big) / (d V)$ (Allen & Tildesley, *Computer Simulation of
    Liquids*, 2nd ed. 2017, sec. 2.4). The configurational part equals
    $-\\partial U / \\partial V$ under uniform scaling.

    Reduced (LJ) units are natural: lengths in $\\sigma$, energies in $\\epsilon$, masses in
    $m$, times in $\\sigma\\sqrt{m/\\epsilon}$. Positions need not be wrapped into the box:
    everything uses minimum images, valid while `cutoff` < half the box.

    State: `PhaseState(q, v)` of shape `(n, d)`.

    **Fields:**

    - `box`: the periodic box side, a scalar or one per dimension, > 0.
    - `epsilon`, `sigma`: well depth (>= 0) and diameter (> 0), default 1.
    - `masses`: scalar or `(n,)`, > 0, default 1.
    - `onset`, `cutoff`: the switching range $r_o < r_c$ (static numbers; default 2.0,
      2.5 as in jax-md).
    - `neighbours`: how pairs are found: `AllPairs()` (default), `CellList(grid,
      capacity)`, or a `NeighbourList` from `with_neighbour_list(q)`.

    **Example:**

    ```python
    system, y0 = ds.systems.LennardJones.lattice(n_per_side=5, density=0.8,
                                                 temperature=1.0, key=jax.random.key(0))
    traj = ds.simulate(system, y0, t1=0.5, dt=0.005, integrator=ds.Leapfrog(),
                       saveat=ds.SaveAt(every=20, fn=lambda t, y: system.temperature(y)))
    print(traj.ys[0])  # 0.99999...: the lattice starts at the requested temperature
    ```
    """

    box: Float[ArrayLike, "..."]
    epsilon: Float[ArrayLike, ""] = 1.0
    sigma: Float[ArrayLike, ""] = 1.0
    masses: Float[ArrayLike, "..."] = 1.0
    onset: float = eqx.field(static=True, default=2.0)
    cutoff: float = eqx.field(static=True, default=2.5)
    neighbours: AllPairs | CellList | NeighbourList = AllPairs()

    def __check_init__(self):
        if not 0 < self.onset < self.cutoff:
            raise ValueError(
                "LennardJones: `onset` and `cutoff` need 0 < onset < cutoff; got "
                f"onset={self.onset}, cutoff={self.cutoff}."
            )
        at_most_1d = "a scalar or a 1-d array"
        check_shape("LennardJones", "box", self.box, lambda s: len(s) <= 1, at_most_1d)
        check_positive("LennardJones", "box", self.box)
        check_nonnegative("LennardJones", "epsilon", self.epsilon)
        check_positive("LennardJones", "sigma", self.sigma)
        check_shape("LennardJones", "masses", self.masses, lambda s: len(s) <= 1, at_most_1d)
        check_positive("LennardJones", "masses", self.masses)
        if not isinstance(self.neighbours, (AllPairs, CellList, NeighbourList)):
            raise TypeError(
                "neighbours must be ds.systems.AllPairs(), ds.systems.CellList(...) or a "
                "NeighbourList from with_neighbour_list(q); got "
                f"{self.neighbours!r}."
            )
        try:
            smallest = float(np.min(np.asarray(self.box)))
        except jax.errors.TracerArrayConversionError:  # a traced box: documented instead
            return
        if self.cutoff > smallest / 2:
            raise ValueError(
                f"LennardJones: cutoff={self.cutoff} exceeds half the box ({smallest / 2:g}): the minimum "
                "image would miss interactions. Use a bigger box or a smaller cutoff."
            )

    def _theta(self):
        return (self.epsilon, self.sigma, float(self.onset), float(self.cutoff))

    def _kernel(self, q, idx=None):
        """The forces on the compiled kernel (`diffsim.kernels`: C++ on a CPU), with the
        coefficients in units of the cutoff as it takes them."""
        q = jnp.asarray(q)
        epsilon, sigma = (jnp.asarray(x, q.dtype) for x in (self.epsilon, self.sigma))
        x3 = (sigma / self.cutoff) ** 6
        c = 4 * epsilon * jnp.stack([x3**2, x3])
        return lennard_jones_pair_sum(q, self.box, c, self.onset, self.cutoff, idx)

    def _forces(self, q):
        """sum_j phi r_ij: on the kernel for all pairs (unless blocks were asked for) and
        for a valid neighbour list; in XLA for cell lists."""
        nb, theta, phi = self.neighbours, self._theta(), _lj_phi
        if isinstance(nb, NeighbourList):

            def listed(q):
                return self._kernel(q, nb.idx)

            def celled(q):
                if nb.cells is None:
                    return periodic_pair_sum(q, 1.0, phi, theta, self.box, self.cutoff)
                grid, cap = nb.cells.grid, nb.cells.capacity
                return cell_pair_sum(q, 1.0, phi, theta, self.box, self.cutoff, grid, cap)

            return lax.cond(self._list_valid(q), listed, celled, q)
        if isinstance(nb, CellList):
            return cell_pair_sum(q, 1.0, phi, theta, self.box, self.cutoff, nb.grid, nb.capacity)
        if nb.block_size is None:
            return self._kernel(q)
        return periodic_pair_sum(
            q, 1.0, phi, theta, self.box, self.cutoff,
            block_size=nb.block_size, lean_gradients=nb.lean_gradients,
        )  # fmt: skip

    def _pair_energy(self, q, u):
        nb, theta = self.neighbours, self._theta()
        if isinstance(nb, NeighbourList):

            def listed(q):
                return neighbour_pair_energy(q, u, theta, self.box, self.cutoff, nb.idx)

            def celled(q):
                if nb.cells is None:
                    return periodic_pair_energy(q, u, theta, self.box, self.cutoff)
                grid, cap = nb.cells.grid, nb.cells.capacity
                return cell_pair_energy(q, u, theta, self.box, self.cutoff, grid, cap)

            return lax.cond(self._list_valid(q), listed, celled, q)
        if isinstance(nb, CellList):
            return cell_pair_energy(q, u, theta, self.box, self.cutoff, nb.grid, nb.capacity)
        return periodic_pair_energy(q, u, theta, self.box, self.cutoff)

    def _list_valid(self, q):
        """No particle has moved more than skin / 2 since the list was built."""
        nb = self.neighbours
        drift = minimum_image(q - nb.reference, self.box)
        return jnp.max(jnp.sum(drift**2, axis=-1)) < (0.5 * nb.skin) ** 2

    def with_neighbour_list(
        self,
        q: Float[Array, "n d"],
        *,
        skin: float = 0.5,
        max_neighbours: int | None = None,
        cells: CellList | None = None,
    ) -> "LennardJones":
        """This system with a `NeighbourList` built at positions `q`: neighbours within
        `cutoff + skin`. Call it again between chunks of a rollout (see
        `NeighbourList`). Static sizes (`max_neighbours`, default 1.5 times the mean
        count at this density plus 16; `cells`, default `CellList.for_box` with cells
        `cutoff + skin` wide, or none in a box under three such cells wide, where the
        list is built from all pairs) need a concrete `box`; to call this under
        `jax.jit`, pass both, taken from a first call outside (`system.neighbours`)."""
        n, d = q.shape
        radius = self.cutoff + skin
        if cells is None or max_neighbours is None:
            box = np.broadcast_to(np.asarray(self.box, float), (d,))
            if cells is None and np.all(np.floor(box / radius) >= 3):
                cells = CellList.for_box(box, radius, n)
            if max_neighbours is None:
                ball = math.pi ** (d / 2) / math.gamma(d / 2 + 1) * radius**d
                max_neighbours = int(1.5 * n / np.prod(box) * ball) + 16
        idx, overflow = build_neighbour_list(
            q,
            self.box,
            radius,
            None if cells is None else cells.grid,
            None if cells is None else cells.capacity,
            max_neighbours,
        )
        idx = eqx.error_if(
            idx,
            overflow,
            "The neighbour list overflowed: raise max_neighbours (or the cell capacity).",
        )
        neighbours = NeighbourList(
            idx=idx,
            reference=lax.stop_gradient(q),
            skin=skin,
            max_neighbours=max_neighbours,
            cells=cells,
        )
        return dataclasses.replace(self, neighbours=neighbours)

    def acceleration(self, t, q: Float[Array, "n d"], v) -> Float[Array, "n d"]:
        m = jnp.asarray(self.masses)
        m = m[:, None] if m.ndim == 1 else m
        return self._forces(q) / m

    def potential_energy(self, q: Float[Array, "n d"]) -> Float[Array, ""]:
        """The switched pair energy $U$ at positions `q` (minimum images)."""
        return self._pair_energy(q, _lj_energy)

    def kinetic_energy(self, y: PhaseState) -> Float[Array, ""]:
        """$\\tfrac12 \\sum_i m_i |v_i|^2$."""
        m = jnp.asarray(self.masses)
        m = m[:, None] if m.ndim == 1 else m
        return 0.5 * jnp.sum(m * y.v**2)

    def energy(self, y: PhaseState) -> Float[Array, ""]:
        return self.kinetic_energy(y) + self.potential_energy(y.q)

    def volume(self, d: int) -> Float[Array, ""]:
        """The box volume (an area for `d = 2`) in `d` dimensions."""
        return jnp.prod(jnp.broadcast_to(as_float(self.box), (d,)))

    def temperature(self, y: PhaseState) -> Float[Array, ""]:
        """Kinetic temperature $\\sum m v^2 / (d (N-1))$ ($k_B = 1$)."""
        n, d = y.q.shape
        return 2 * self.kinetic_energy(y) / (d * (n - 1))

    def pressure(self, y: PhaseState) -> Float[Array, ""]:
        """Virial pressure $(2K + \\sum_{i<j} r_{ij} \\cdot F_{ij}) / (d V)$."""
        n, d = y.q.shape
        virial = self._pair_energy(y.q, _virial_term)
        return (2 * self.kinetic_energy(y) + virial) / (d * self.volume(d))

    def momentum(self, y: PhaseState) -> Float[Array, " d"]:
        """Total linear momentum $\\sum_i m_i v_i$ (conserved)."""
        m = jnp.asarray(self.masses)
        m = m[:, None] if m.ndim == 1 else m
        return jnp.sum(m * y.v, axis=0)

    @classmethod
    def lattice(
        cls,
        n_per_side: int,
        *,
        density: float = 0.8,
        temperature: float = 1.0,
        key=None,
        dim: int = 3,
        neighbours: AllPairs | CellList | None = None,
        dtype=None,
        **fields,
    ) -> tuple["LennardJones", PhaseState]:
        """`n_per_side^dim` unit-mass particles on a simple cubic lattice filling a cubic
        box at number `density`, with Maxwell-Boltzmann velocities at `temperature` (zero
        total momentum, rescaled to exactly that kinetic temperature; zero velocities if
        `key` is None). `neighbours=None` picks `AllPairs()` below 2000 particles and
        `CellList.for_box` above. Extra keyword arguments become fields.
        Returns `(system, y0)`."""
        dtype = jnp.result_type(float) if dtype is None else dtype
        n = n_per_side**dim
        side = (n / density) ** (1 / dim)
        axes = [np.arange(n_per_side)] * dim
        q = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(n, dim)
        q = (q + 0.5) * side / n_per_side
        if key is None:
            v = jnp.zeros((n, dim), dtype)
        else:
            v = jax.random.normal(key, (n, dim), dtype)
            v = v - v.mean(axis=0)
            v = v * jnp.sqrt(temperature * dim * (n - 1) / jnp.sum(v**2))
        box = np.full(dim, side)
        if neighbours is None:
            cutoff = fields.get("cutoff", 2.5)
            neighbours = AllPairs() if n < 2000 else CellList.for_box(box, cutoff, n)
        system = cls(box=jnp.asarray(box, dtype), neighbours=neighbours, **fields)
        return system, PhaseState(q=jnp.asarray(q, dtype), v=v)
