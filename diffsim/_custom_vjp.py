"""A helper shared by the custom VJP rules in `engine` and `systems` (private)."""

import jax


def perturbed_only(grads, perturbed):
    """Cotangents as `eqx.filter_custom_vjp` wants them back: `grads` where `perturbed`
    is true, `None` for every leaf that is not a perturbed float array."""
    return jax.tree.map(
        lambda g, p: g if (g is not None and p) else None,
        grads,
        perturbed,
        is_leaf=lambda x: x is None,
    )
