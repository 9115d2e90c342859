"""Shared test helpers: pytree comparison, finite differences, convergence slopes."""

import jax
import jax.numpy as jnp
import numpy as np


def tree_allclose(x, y, *, rtol=1e-7, atol=1e-10) -> bool:
    same = jax.tree.structure(x) == jax.tree.structure(y)
    return same and all(
        np.allclose(a, b, rtol=rtol, atol=atol)
        for a, b in zip(jax.tree.leaves(x), jax.tree.leaves(y), strict=True)
    )


def central_difference(f, x, eps=1e-6):
    """Gradient of scalar `f` at array `x` by central differences (float64)."""
    x = np.asarray(x, dtype=np.float64)
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = eps
        grad[i] = (float(f(jnp.asarray(x + e))) - float(f(jnp.asarray(x - e)))) / (2 * eps)
    return grad


def convergence_slope(dts, errors) -> float:
    """Least-squares slope of log(error) against log(dt): the empirical order."""
    return float(np.polyfit(np.log(dts), np.log(errors), 1)[0])
