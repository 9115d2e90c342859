"""Feedback policies: a network turned into the control input of a system.

Contract: `Policy(network, ...)` is a callable `eqx.Module` `policy(t, q, v) -> u`, the
signature of a system's control input (`ds.systems.CartPole(force=policy)`). Placed in a
system's field, the network's weights are leaves of the system's pytree, so a rollout
`ds.simulate(CartPole(force=policy), y0, ...)` is differentiable in them and a cost over
the whole rollout trains the policy by gradient descent (analytic policy gradients).
The output shape is checked at trace time.
"""

import math
from collections.abc import Callable
from numbers import Real

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PyTree, Scalar


def _is_size(n) -> bool:
    return isinstance(n, int) and not isinstance(n, bool) and n >= 0


class Policy(eqx.Module):
    """A state-feedback control law from a network, optionally bounded.

    $$u(t, q, \\dot q) = u_{\\max} \\tanh\\big(\\pi_\\phi(x(t, q, \\dot q))\\big)
      \\quad\\text{or, with no bound,}\\quad u = \\pi_\\phi(x(t, q, \\dot q)),$$

    where $\\pi_\\phi$ is `network` and $x$ is `features` (by default $(q, \\dot q)$
    flattened). The smooth `tanh` saturation keeps the control within the actuator's
    limits while keeping its gradient non-zero.

    **Fields:**

    - `network`: a callable `network(x) -> array`, usually an `eqx.nn.MLP`; trainable.
    - `features`: a static callable `features(t, q, v) -> x`; for angles, features such
      as $(\\sin\\theta, \\cos\\theta)$ make the policy periodic. `None` feeds `(q, v)`.
    - `bound`: $u_{\\max}$ (a Python float, static), or `None` for no saturation.
    - `shape`: the shape of $u$ (static), default `()` (one scalar input, as the
      cart-pole's force). The network's output must hold that many values.

    The policy controls one system; for a batch of initial states, `jax.vmap` the
    rollout.

    **Example:**

    ```python
    import equinox as eqx

    def features(t, q, v):  # cart position, pole angle as (sin, cos), velocities
        return jnp.stack([q[0], jnp.sin(q[1]), jnp.cos(q[1]), v[0], v[1]])

    net = eqx.nn.MLP(5, "scalar", 32, 2, activation=jax.nn.tanh, key=jax.random.key(0))
    cartpole = ds.systems.CartPole(force=ds.systems.Policy(net, features, bound=10.0))

    def cost(cartpole, y0):
        traj = ds.simulate(cartpole, y0, t1=3.0, dt=0.05, saveat=ds.SaveAt(every=1))
        return jnp.mean(1 - jnp.cos(traj.ys.q[:, 1]))

    grads = eqx.filter_grad(cost)(cartpole, cartpole.initial_state(angle=jnp.pi))
    ```
    """

    network: Callable[..., Array]
    features: Callable[[Scalar, PyTree[Array], PyTree[Array]], Array] | None = eqx.field(
        default=None, static=True
    )
    bound: float | None = eqx.field(default=None, static=True)
    shape: tuple[int, ...] = eqx.field(default=(), static=True)

    def __check_init__(self):
        if not callable(self.network):
            raise TypeError(
                f"Policy: `network` must be callable (e.g. an eqx.nn.MLP); got "
                f"{type(self.network).__name__}."
            )
        if self.features is not None and not callable(self.features):
            raise TypeError(
                "Policy: `features` must be None or a callable features(t, q, v) -> x; got "
                f"{type(self.features).__name__}."
            )
        if self.bound is not None and not (
            isinstance(self.bound, Real) and 0 < self.bound < math.inf
        ):
            raise ValueError(
                f"Policy: `bound` must be positive and finite, or None; got {self.bound!r}."
            )
        if not (isinstance(self.shape, tuple) and all(_is_size(n) for n in self.shape)):
            raise TypeError(
                f"Policy: `shape` must be a tuple of non-negative ints, e.g. () or (2,); got "
                f"{self.shape!r}."
            )

    def __call__(self, t: Scalar, q: PyTree[Array], v: PyTree[Array]) -> Array:
        if self.features is not None:
            x = self.features(t, q, v)
        else:
            x = jnp.concatenate([jnp.ravel(leaf) for leaf in jax.tree.leaves((q, v))])
        u = jnp.asarray(self.network(x))
        size = 1
        for n in self.shape:
            size *= n
        if u.size != size:
            raise ValueError(
                f"Policy: `network` returned an array of shape {u.shape} for features of "
                f"shape {jnp.shape(x)}, but the control has shape {self.shape} ({size} "
                f'values). Set the network\'s output size to match ("scalar" for a scalar '
                "control), or set Policy(shape=...); for a batch of states, jax.vmap the "
                "rollout instead of batching the state."
            )
        u = u.reshape(self.shape)
        return u if self.bound is None else self.bound * jnp.tanh(u)
