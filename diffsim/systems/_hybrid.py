"""Hybrid (universal) differential equations: known physics plus a learned correction.

Contract: `HybridSystem(physics, correction)` is a mechanical system whose acceleration is
the physics' acceleration plus `correction(features)`; `HybridODE(physics, correction)` is
a first-order system whose vector field is the physics' plus the correction. Both are
`eqx.Module`s, so the physical parameters of `physics` and the weights of `correction` (an
`eqx.nn.MLP` or any callable module) are leaves of one pytree: `eqx.filter_grad`,
`eqx.filter_jit`, `jax.vmap` and `ds.simulate` see no difference from any other system
(Rackauckas et al. 2020, "Universal differential equations for scientific machine
learning", arXiv:2001.04385).

The correction acts on one system: it maps one feature vector to one state's worth of
values. For a batch of systems or initial states, `jax.vmap` the rollout rather than
batching the state inside one system. Output shapes are checked at trace time.
"""

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, PyTree, Scalar

from ._base import AbstractMechanicalSystem, AbstractSystem


def _flatten(tree: PyTree[Array]) -> Array:
    leaves = [jnp.ravel(x) for x in jax.tree.leaves(tree)]
    return leaves[0] if len(leaves) == 1 else jnp.concatenate(leaves)


def _as_state(out: Any, like: PyTree[Array], name: str, owner: str) -> PyTree[Array]:
    """`out` (an array of as many values as `like` holds) reshaped into the structure of
    `like`; a `ValueError` naming `name` otherwise (shapes are static: trace time)."""
    flat, unravel = ravel_pytree(like)
    out = jnp.asarray(out)
    if out.size != flat.size:
        shapes = jax.tree.map(jnp.shape, like)
        raise ValueError(
            f"{owner}: `{name}` returned an array of shape {out.shape} ({out.size} values), "
            f"but it must give one value per state component: {flat.size} values for a "
            f"state of shape {shapes}. Set the network's output size to {flat.size} "
            f"(or 'scalar' for a one-component state)."
        )
    return unravel(jnp.ravel(out).astype(flat.dtype))


class HybridSystem(AbstractMechanicalSystem):
    """A mechanical system with known physics plus a learned force.

    $$\\ddot q = a_{\\text{phys}}(t, q, \\dot q) + g_\\phi\\big(x(t, q, \\dot q)\\big)$$

    where $a_{\\text{phys}}$ is `physics.acceleration`, $g_\\phi$ is `correction` (a neural
    network with weights $\\phi$) and $x$ is `features` (by default $x = (q, \\dot q)$
    flattened into one vector). The state is `physics`' `PhaseState(q, v)`, so every
    integrator works, the symplectic ones included; with `features` that do not depend on
    $\\dot q$, `ds.Reversible()` gradients work too (with `ds.Leapfrog`/`ds.Yoshida4`).

    The same form describes a mechanical system under a learned *control* acceleration
    $u = \\pi_\\phi(q, \\dot q)$ (a torque on a pendulum): `correction` is then the policy.

    **Fields:**

    - `physics`: a `ds.AbstractMechanicalSystem` (e.g. `ds.systems.Pendulum`); its array
      fields are trainable. Python floats are constants to `eqx.filter_grad`: pass
      `jnp.asarray(1.0)` for a parameter that should train.
    - `correction`: a callable `correction(x) -> array`, usually an `eqx.Module` such as
      `eqx.nn.MLP`; its output must hold one value per component of `q` (shape `()` or
      `(1,)` for a pendulum's scalar angle).
    - `features`: a static callable `features(t, q, v) -> x` giving the correction's input,
      e.g. `lambda t, q, v: v` for a friction law $g(\\dot q)$; `None` (default) feeds the
      flattened `(q, v)`.

    **Example:**

    ```python
    import equinox as eqx

    model = ds.systems.HybridSystem(
        physics=ds.systems.Pendulum(length=jnp.asarray(1.0)),
        correction=eqx.nn.MLP("scalar", "scalar", 16, 1, activation=jax.nn.tanh,
                              key=jax.random.key(0)),
        features=lambda t, q, v: v,  # a learned friction law f(omega)
    )
    y0 = model.physics.initial_state(1.0)
    traj = ds.simulate(model, y0, t1=5.0, dt=0.02)
    grads = eqx.filter_grad(lambda m: ds.simulate(m, y0, t1=5.0, dt=0.02).ys.q[-1])(model)
    # grads.physics.length and grads.correction.layers[...] are both filled in
    ```
    """

    physics: AbstractMechanicalSystem
    correction: Callable[..., Array]
    features: Callable[[Scalar, PyTree[Array], PyTree[Array]], Array] | None = eqx.field(
        default=None, static=True
    )

    def __check_init__(self):
        if not callable(getattr(self.physics, "acceleration", None)):
            raise TypeError(
                "HybridSystem: `physics` must be a mechanical system with "
                f"acceleration(t, q, v) (a ds.AbstractMechanicalSystem); got "
                f"{type(self.physics).__name__}. For a first-order system use "
                "ds.systems.HybridODE(physics, correction)."
            )
        if not callable(self.correction):
            raise TypeError(
                "HybridSystem: `correction` must be callable (e.g. an eqx.nn.MLP); got "
                f"{type(self.correction).__name__}."
            )

    def correction_acceleration(self, t: Scalar, q: PyTree[Array], v: PyTree[Array]):
        """$g_\\phi(x(t, q, \\dot q))$, shaped like `q`: the learned part alone."""
        x = self.features(t, q, v) if self.features is not None else _flatten((q, v))
        return _as_state(self.correction(x), q, "correction", "HybridSystem")

    def acceleration(self, t, q, v):
        known = self.physics.acceleration(t, q, v)
        learned = self.correction_acceleration(t, q, v)
        return jax.tree.map(jnp.add, known, learned)


class HybridODE(AbstractSystem):
    """A first-order system with known physics plus a learned correction.

    $$\\dot y = f_{\\text{phys}}(t, y) + g_\\phi\\big(x(t, y)\\big)$$

    where $f_{\\text{phys}}$ is `physics.vector_field`, $g_\\phi$ is `correction` and $x$ is
    `features` (by default $y$ flattened into one vector). The correction's output is
    reshaped into the structure of $y$ (a `PhaseState`'s `q` then `v` for a mechanical
    `physics`; use `HybridSystem` to correct only the acceleration). A *pure neural ODE*
    is the special case of physics that is zero: `ds.ODESystem(lambda t, y, net: net(y),
    net)` writes it without this class.

    **Fields:**

    - `physics`: any `ds.AbstractSystem` (e.g. `ds.systems.Lorenz`).
    - `correction`: a callable `correction(x) -> array` with one value per component of $y$.
    - `features`: a static callable `features(t, y) -> x`; `None` feeds the flattened `y`.

    **Example:**

    ```python
    import equinox as eqx

    model = ds.systems.HybridODE(
        physics=ds.systems.Lorenz(),
        correction=eqx.nn.MLP(3, 3, 16, 1, key=jax.random.key(0)),
    )
    traj = ds.simulate(model, jnp.array([1.0, 1.0, 1.0]), t1=1.0, dt=0.01)
    ```
    """

    physics: AbstractSystem
    correction: Callable[..., Array]
    features: Callable[[Scalar, PyTree[Array]], Array] | None = eqx.field(default=None, static=True)

    def __check_init__(self):
        if not callable(getattr(self.physics, "vector_field", None)):
            raise TypeError(
                "HybridODE: `physics` must be a system with vector_field(t, y) (a "
                f"ds.AbstractSystem); got {type(self.physics).__name__}."
            )
        if not callable(self.correction):
            raise TypeError(
                "HybridODE: `correction` must be callable (e.g. an eqx.nn.MLP); got "
                f"{type(self.correction).__name__}."
            )

    def vector_field(self, t, y):
        known = self.physics.vector_field(t, y)
        x = self.features(t, y) if self.features is not None else _flatten(y)
        learned = _as_state(self.correction(x), y, "correction", "HybridODE")
        return jax.tree.map(jnp.add, known, learned)
