"""Small numerical helpers shared by the systems (private)."""

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike


def as_float(x: ArrayLike) -> Array:
    """`x` as an array of its own floating dtype; integers and bools become the default
    float. Unlike `jnp.asarray(x, float)` this keeps a float32 input float32 under x64."""
    x = jnp.asarray(x)
    return x if jnp.issubdtype(x.dtype, jnp.inexact) else x.astype(float)


def safe_norm(x: Array, axis: int = -1, keepdims: bool = False) -> Array:
    """Euclidean norm whose gradient at 0 is 0 rather than NaN (the double-where trick:
    the square root never sees 0, so neither the value nor its derivative is 0/0)."""
    s = jnp.sum(x**2, axis=axis, keepdims=keepdims)
    nonzero = s > 0
    return jnp.where(nonzero, jnp.sqrt(jnp.where(nonzero, s, 1.0)), 0.0)


def cross3(a: Array, b: Array) -> Array:
    """Cross product over the last axis of two 3-vectors (stacked, no `jnp.cross` copies)."""
    return jnp.stack(
        [
            a[..., 1] * b[..., 2] - a[..., 2] * b[..., 1],
            a[..., 2] * b[..., 0] - a[..., 0] * b[..., 2],
            a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0],
        ],
        axis=-1,
    )
