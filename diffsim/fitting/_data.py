"""The data side of `ds.fit`: predictions checked against `observed`, `sigma` broadcast.

Contract: `check_prediction` raises a `ValueError` when `model(params0)` cannot be
compared with `observed`; `broadcast_sigma` returns a pytree like `observed` (or a
`UnitSigma` when no `sigma` is given) and raises when `sigma` does not fit.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import PyTree


def check_prediction(model, params0, observed):
    try:
        pred_struct = jax.eval_shape(model, params0)
    except Exception as e:
        raise ValueError(f"model(params0) failed: {type(e).__name__}: {e}") from e
    if jax.tree.structure(pred_struct) != jax.tree.structure(observed):
        raise ValueError(
            "model(params0) and observed have different structures: "
            f"{jax.tree.structure(pred_struct)} vs {jax.tree.structure(observed)}."
        )
    for pr, ob in zip(jax.tree.leaves(pred_struct), jax.tree.leaves(observed), strict=True):
        if pr.shape != ob.shape:
            raise ValueError(
                f"model(params0) returns shape {pr.shape} where observed has shape "
                f"{ob.shape}; the model must predict every observed value (NaN marks "
                "missing data)."
            )


def sum_squares(tree):
    return sum(jnp.sum(x**2) for x in jax.tree.leaves(tree))


class UnitSigma(eqx.Module):
    """sigma not given: unit weights, and the noise is estimated from the residuals."""

    ones: PyTree


def sigma_given(sigma) -> bool:
    return not isinstance(sigma, UnitSigma)


def _array(x, dtype=None):
    """An array for the compiled call: NumPy for host values (no eager device op), else
    as it is (a device array or a tracer)."""
    if eqx.is_array(x) and (dtype is None or x.dtype == dtype):
        return x
    if isinstance(x, jax.core.Tracer) or isinstance(x, jax.Array):
        return jnp.asarray(x, dtype)
    return np.asarray(x, dtype)


def broadcast_sigma(sigma, observed):
    if sigma is None:
        return UnitSigma(jax.tree.map(lambda o: np.ones((), o.dtype), observed))
    if jax.tree.structure(sigma) == jax.tree.structure(observed):
        sigmas = jax.tree.map(_array, sigma)
    elif (
        not jax.tree.leaves(sigma)
        or len(jax.tree.leaves(sigma)) == 1
        and np.ndim(jax.tree.leaves(sigma)[0]) == 0
    ):
        sigmas = jax.tree.map(lambda o: _array(sigma, o.dtype), observed)
    else:
        raise ValueError("sigma must be a positive scalar or a pytree like observed.")
    for s in jax.tree.leaves(sigmas):
        if not isinstance(s, jax.core.Tracer) and not (np.asarray(s) > 0).all():
            raise ValueError("sigma must be positive everywhere.")
    return sigmas
