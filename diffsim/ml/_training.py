"""`make_train_step`: one jitted gradient step of an Equinox model with an optax optimiser.

Contract: a simulator is a layer, so training a model that contains one (a hybrid system,
a policy inside a rollout, a network whose output feeds `simulate`) is ordinary Equinox +
Optax training. This module only removes the repetition of writing the step: filter the
trainable leaves, `eqx.filter_value_and_grad`, optional gradient clipping, `optax` update,
`eqx.apply_updates`, all under one `eqx.filter_jit`. The loop over steps stays in user
code (a Python loop is fine: the step is compiled once).
"""

from collections.abc import Callable
from typing import Any

import equinox as eqx
import optax
from jaxtyping import PyTree


class TrainStep(eqx.Module):
    """A compiled training step; build it with `ds.make_train_step`.

    - `init(model) -> opt_state`: the optimiser state for the trainable leaves of `model`.
    - `step(model, opt_state, *args, **kwargs) -> (model, opt_state, loss)` (also callable
      as `train_step(model, opt_state, ...)`): one update of `model` on the loss
      `loss_fn(model, *args, **kwargs)`. With `has_aux=True`, `loss` is `(loss, aux)`.

    **Example:** learn the rate $k$ of $\\dot y = -k y$ from $y(1) = e^{-2}$, watching $y(1)$
    as the auxiliary output:

    ```python
    import optax

    def loss_fn(decay, target):
        y1 = ds.simulate(decay, jnp.array(1.0), t1=1.0, dt=0.1).ys[-1]
        return (y1 - target) ** 2, y1

    decay = ds.ODESystem(lambda t, y, k: -k * y, jnp.float32(1.0))
    train = ds.make_train_step(loss_fn, optax.adam(0.05), has_aux=True)
    opt_state = train.init(decay)
    for _ in range(100):
        decay, opt_state, (loss, y1) = train(decay, opt_state, jnp.exp(-2.0))
    print(decay.params)  # 2.00...
    ```
    """

    loss_fn: Callable[..., Any] = eqx.field(static=True)
    optimiser: optax.GradientTransformation = eqx.field(static=True)
    # A function or a pytree of bools: non-array leaves, so static to filter_jit either way.
    trainable: Any
    has_aux: bool = eqx.field(static=True)

    def init(self, model: PyTree) -> optax.OptState:
        """The optimiser state for the trainable leaves of `model`."""
        return self.optimiser.init(eqx.filter(model, self.trainable))

    def step(self, model: PyTree, opt_state: optax.OptState, *args, **kwargs):
        """One optimiser update of `model` on `loss_fn(model, *args, **kwargs)`."""
        return _train_step(self, model, opt_state, args, kwargs)

    def __call__(self, model: PyTree, opt_state: optax.OptState, *args, **kwargs):
        return _train_step(self, model, opt_state, args, kwargs)


@eqx.filter_jit
def _train_step(train: TrainStep, model, opt_state, args, kwargs):
    params, static = eqx.partition(model, train.trainable)

    def loss(params):
        return train.loss_fn(eqx.combine(params, static), *args, **kwargs)

    value, grads = eqx.filter_value_and_grad(loss, has_aux=train.has_aux)(params)
    updates, opt_state = train.optimiser.update(grads, opt_state, params)
    model = eqx.apply_updates(model, updates)
    return model, opt_state, value


def make_train_step(
    loss_fn: Callable[..., Any],
    optimiser: optax.GradientTransformation,
    *,
    clip_norm: float | None = None,
    trainable: Any = eqx.is_inexact_array,
    has_aux: bool = False,
) -> TrainStep:
    """Build a jitted training step for `loss_fn(model, *args) -> scalar`.

    With trainable leaves $\\theta$ of the model, gradient $g = \\nabla_\\theta L$ and
    `clip_norm` $c$, the step is

    $$\\tilde g = g \\min\\!\\left(1, \\frac{c}{\\lVert g\\rVert_2}\\right), \\qquad
      (\\Delta, s) = \\text{optimiser.update}(\\tilde g, s, \\theta), \\qquad
      \\theta \\leftarrow \\theta + \\Delta,$$

    the clipping being `optax.clip_by_global_norm` chained before the optimiser. Clipping
    matters for gradients through long rollouts, whose norm can grow exponentially with
    the horizon (chaotic or unstable dynamics); pair it with `adjoint=ds.Checkpointed()`
    (default) or `ds.Reversible()` in the rollout to bound the memory.

    **Arguments:**

    - `loss_fn`: `loss_fn(model, *args, **kwargs) -> scalar` (or `(scalar, aux)` with
      `has_aux=True`); `model` is any pytree (an `eqx.Module` holding systems and
      networks).
    - `optimiser`: an `optax.GradientTransformation`, e.g. `optax.adam(1e-3)`.
    - `clip_norm`: clip the global gradient norm to this value first; `None`: no clipping.
    - `trainable`: which leaves train, as an `eqx.filter` spec: a function of a leaf
      (default `eqx.is_inexact_array`: every floating-point array, so Python-float
      fields stay constant) or a pytree of bools shaped like the model.
    - `has_aux`: whether `loss_fn` returns `(loss, aux)`.

    **Returns:** a `ds.TrainStep` with `init(model) -> opt_state` and
    `step(model, opt_state, *args) -> (model, opt_state, loss)`, compiled on first use.
    Give the trainable arrays a dtype (`jnp.float32(0.7)`, not `jnp.array(0.7)`): a
    weakly typed leaf comes back strongly typed from the first updates, and each change
    of type compiles the step again.

    **Example:**

    Learn a pendulum's length from where three swings end:

    ```python
    import optax

    def final_angles(pendulum, angles):
        def final(angle):
            y0 = pendulum.initial_state(angle)
            return ds.simulate(pendulum, y0, t1=1.0, dt=0.01).ys.q[-1]

        return jax.vmap(final)(angles)

    def loss_fn(pendulum, angles, targets):
        return jnp.mean((final_angles(pendulum, angles) - targets) ** 2)

    angles = jnp.array([0.2, 0.5, 1.0])
    targets = final_angles(ds.systems.Pendulum(length=1.0), angles)

    model = ds.systems.Pendulum(length=jnp.float32(0.7))  # typed: see Returns
    train = ds.make_train_step(loss_fn, optax.adam(0.05), clip_norm=1.0)
    opt_state = train.init(model)
    for i in range(50):
        model, opt_state, loss = train.step(model, opt_state, angles, targets)
    print(model.length)  # 0.99...
    print(model.gravity)  # 9.81: a Python float, so not trained
    ```
    """
    if not callable(loss_fn):
        raise TypeError(
            f"make_train_step: `loss_fn` must be callable; got {type(loss_fn).__name__}."
        )
    if not (hasattr(optimiser, "init") and hasattr(optimiser, "update")):
        raise TypeError(
            "make_train_step: `optimiser` must be an optax.GradientTransformation (e.g. "
            f"optax.adam(1e-3)); got {type(optimiser).__name__}."
        )
    if clip_norm is not None:
        if not (isinstance(clip_norm, (int, float)) and clip_norm > 0):
            raise ValueError(
                f"make_train_step: `clip_norm` must be a positive number or None; got "
                f"{clip_norm!r}."
            )
        optimiser = optax.chain(optax.clip_by_global_norm(float(clip_norm)), optimiser)
    return TrainStep(loss_fn, optimiser, trainable, has_aux)
