"""What a physical system is.

A system is an `eqx.Module` whose fields are its physical parameters, every one of which
can be differentiated, batched with `jax.vmap` or swept by `ds.ensemble`. A system only
describes the physics: the right-hand side of its equations of motion and, where it has
one, its energy. Time stepping, saving and gradients belong to `diffsim.engine`.

There are two kinds:

- `AbstractSystem`: a first-order ODE $\\dot y = f(t, y)$ on any pytree state $y$.
- `AbstractMechanicalSystem`: a second-order system $\\ddot q = a(t, q, \\dot q)$ whose state
  is a `PhaseState(q, v)`. Symplectic integrators (`ds.Leapfrog`, `ds.Yoshida4`,
  `ds.SemiImplicitEuler`) need this split and accept only these systems.

`ODESystem` and `MechanicalSystem` wrap plain functions, for users who prefer them to
classes.

Concrete parameter values are checked when a system is built (its `__check_init__`):
every float must be finite, quantities that cannot be negative (masses, lengths,
dissipation rates, temperatures) are refused below zero, and zero where it makes the
model singular; each field's docstring entry states its range. Traced values (a system
built inside `jax.jit`, `jax.vmap`, `jax.grad`, `ds.ensemble` or `ds.fit`) are not
checked, so building systems inside transformations costs nothing.
"""

import abc
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PyTree, Scalar

from ._checks import check_callable, shape_of


class PhaseState(eqx.Module):
    """The state of a mechanical system: positions `q` and velocities `v`.

    `q` and `v` are pytrees of arrays with the same structure and shapes (an angle and an
    angular velocity, an `(n, 3)` array of positions and one of velocities, ...).

    **Example:**

    ```python
    y0 = ds.PhaseState(q=jnp.array(0.5), v=jnp.array(0.0))
    ```
    """

    q: PyTree[Array]
    v: PyTree[Array]

    def __check_init__(self):
        # Prefixes such as `in_axes=PhaseState(q=0, v=None)` have other structures: only
        # a state whose q and v have one structure is checked (its shapes are static).
        q_leaves, q_tree = jax.tree.flatten(self.q)
        v_leaves, v_tree = jax.tree.flatten(self.v)
        if q_tree != v_tree:
            return
        for q, v in zip(q_leaves, v_leaves, strict=True):
            q_shape, v_shape = shape_of(q), shape_of(v)
            if None not in (q_shape, v_shape) and q_shape != v_shape:
                raise ValueError(
                    f"PhaseState: `q` and `v` must have the same shapes (a velocity per "
                    f"position); got {q_shape} and {v_shape}. Broadcast them first, e.g. "
                    "jnp.broadcast_arrays(q, v)."
                )


class AbstractSystem(eqx.Module):
    """A first-order system $\\dot y = f(t, y)$; its fields are its parameters.

    Subclasses implement `vector_field(t, y)` and may implement `energy(y)`.

    **Example:**

    ```python
    class Decay(ds.AbstractSystem):
        rate: float

        def vector_field(self, t, y):
            return -self.rate * y

    traj = ds.simulate(Decay(rate=0.5), jnp.array(1.0), t1=2.0, dt=0.01)
    ```
    """

    @abc.abstractmethod
    def vector_field(self, t: Scalar, y: PyTree[Array]) -> PyTree[Array]:
        """Return $dy/dt$ at time `t` and state `y`, with the structure of `y`."""

    def energy(self, y: PyTree[Array]) -> Scalar:
        """The system's energy (a conserved quantity) at state `y`, where it has one."""
        raise NotImplementedError(f"{type(self).__name__} does not define an energy.")

    def spectral_bounds(self, y: PyTree[Array]) -> tuple[float, float] | None:
        """Upper bounds `(decay_rate, oscillation_rate)` on $|\\mathrm{Re}\\,\\lambda|$ and
        $|\\mathrm{Im}\\,\\lambda|$ over the eigenvalues $\\lambda$ of the Jacobian of
        `vector_field` at states shaped like `y`, for stability checks of explicit
        integrators. Systems override it where a bound is cheap and certain (`Heat1D`,
        `Heat2D`, `Wave1D`); None here, and whenever a parameter is traced."""
        return None


class AbstractMechanicalSystem(AbstractSystem):
    """A second-order system $\\ddot q = a(t, q, v)$ with state `PhaseState(q, v)`.

    Subclasses implement `acceleration(t, q, v)`. The first-order form
    $\\dot q = v,\\ \\dot v = a(t, q, v)$ used by non-symplectic integrators is derived.

    Symplectic integrators are symplectic (and `Leapfrog`/`Yoshida4` time-reversible)
    when the acceleration does not depend on `v`; with velocity-dependent forces
    (damping, drag, magnetic forces) they keep their order but not those properties.

    **Example:**

    ```python
    class Spring(ds.AbstractMechanicalSystem):
        k: float

        def acceleration(self, t, q, v):
            return -self.k * q

        def energy(self, y):
            return 0.5 * y.v**2 + 0.5 * self.k * y.q**2

    spring = Spring(k=4.0)
    y0 = ds.PhaseState(q=jnp.array(1.0), v=jnp.array(0.0))
    traj = ds.simulate(spring, y0, t1=1.0, dt=0.01, integrator=ds.Leapfrog())
    print(traj.ys.q)  # [-0.416...]: cos(2 t) at t = 1
    ```
    """

    @abc.abstractmethod
    def acceleration(self, t: Scalar, q: PyTree[Array], v: PyTree[Array]) -> PyTree[Array]:
        """Return $\\ddot q$ at time `t`, positions `q` and velocities `v` (shaped like `q`)."""

    def vector_field(self, t: Scalar, y: PhaseState) -> PhaseState:
        """The first-order form: `PhaseState(q=v, v=acceleration(t, q, v))`."""
        return PhaseState(q=y.v, v=self.acceleration(t, y.q, y.v))


class ODESystem(AbstractSystem):
    """A first-order system from a plain function `fn(t, y, params) -> dy/dt`.

    **Arguments:**

    - `fn`: the right-hand side; static (hashed by identity), so define it once.
    - `params`: any pytree of parameters, differentiable like any system's fields.

    **Example:**

    ```python
    def logistic(t, y, p):
        return p["r"] * y * (1 - y / p["K"])

    system = ds.ODESystem(logistic, {"r": 1.0, "K": 10.0})
    ```
    """

    fn: Callable[[Scalar, PyTree[Array], Any], PyTree[Array]] = eqx.field(static=True)
    params: Any

    def __check_init__(self):
        check_callable("ODESystem", "fn", self.fn, "a callable fn(t, y, params) -> dy/dt")

    def vector_field(self, t, y):
        return self.fn(t, y, self.params)


class MechanicalSystem(AbstractMechanicalSystem):
    """A mechanical system from a plain function `fn(t, q, v, params) -> acceleration`.

    **Example:**

    ```python
    def spring(t, q, v, p):
        return -p["k"] * q

    system = ds.MechanicalSystem(spring, {"k": 4.0})
    y0 = ds.PhaseState(q=jnp.array(1.0), v=jnp.array(0.0))
    ```
    """

    fn: Callable[[Scalar, PyTree[Array], PyTree[Array], Any], PyTree[Array]] = eqx.field(
        static=True
    )
    params: Any

    def __check_init__(self):
        check_callable(
            "MechanicalSystem", "fn", self.fn, "a callable fn(t, q, v, params) -> acceleration"
        )

    def acceleration(self, t, q, v):
        return self.fn(t, q, v, self.params)


def kinetic_energy(v: PyTree[Array], mass: Any = 1.0) -> Scalar:
    """$\\tfrac12 \\sum m v^2$ over every leaf of `v` (`mass` broadcasts against each leaf)."""
    leaves = jax.tree.leaves(v)
    return sum(0.5 * jnp.sum(mass * leaf**2) for leaf in leaves)
