"""The data side of `ds.fit`: `observed` and `sigma` checked, predictions checked against
`observed`, `sigma` broadcast.

Contract: `prepare_data(observed, sigma)` returns `observed` as arrays and `sigma` as a
pytree like it (or a `UnitSigma` when no `sigma` is given). It raises a `ValueError`
naming the argument, the first bad leaf and index, and the fix when a concrete `observed`
holds an inf (NaN marks missing data and is allowed) or is all NaN, or when `sigma` is not
positive and finite or does not broadcast to `observed`. Traced values are checked at run
time by `check_traced_data` (equinox's runtime error). `check_prediction` raises a
`ValueError` when `model(params0)` cannot be compared with `observed`; an error raised by
the model itself propagates as itself.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import PyTree

_OBSERVED_INF = "observed holds inf values; use NaN for missing data and finite values otherwise."
_SIGMA_BAD = "sigma must be positive and finite everywhere; give the noise standard deviation."


def check_prediction(model, params0, observed):
    try:
        pred_struct = jax.eval_shape(model, params0)
    except Exception as e:
        # The user's own error, as itself: its type and message are the diagnosis.
        e.add_note("(raised by model(params0), traced by ds.fit to check its output)")
        raise
    if jax.tree.structure(pred_struct) != jax.tree.structure(observed):
        raise ValueError(
            "model(params0) and observed have different structures: "
            f"{_short(jax.tree.structure(pred_struct))} vs {_short(jax.tree.structure(observed))}."
            " observed must be a pytree like the model's output."
        )
    for pr, (path, ob) in zip(jax.tree.leaves(pred_struct), _with_paths(observed), strict=True):
        if pr.shape != ob.shape:
            raise ValueError(
                f"model(params0) returns shape {pr.shape} where {_name('observed', path)} has "
                f"shape {ob.shape}; the model must predict every observed value (NaN marks "
                "missing data)."
            )


def sum_squares(tree):
    return sum(jnp.sum(x**2) for x in jax.tree.leaves(tree))


class UnitSigma(eqx.Module):
    """sigma not given: unit weights, and the noise is estimated from the residuals."""

    ones: PyTree


def sigma_given(sigma) -> bool:
    return not isinstance(sigma, UnitSigma)


def prepare_data(observed, sigma):
    """`observed` as arrays (host data stays NumPy until the compiled call takes it: an
    eager jnp.asarray per leaf costs more than the transfer), checked where concrete, and
    `sigma` broadcast to it."""
    observed = jax.tree.map(_observed_array, observed)
    leaves = _with_paths(observed)
    for path, o in leaves:
        if not _traced(o) and np.isinf(np.asarray(o)).any():
            index = _first(np.isinf(np.asarray(o)))
            raise ValueError(
                f"{_name('observed', path)} holds {np.asarray(o)[index]}{_at(index)}. "
                "Use NaN for missing data; every other value must be finite."
            )
    concrete = [np.asarray(o) for _, o in leaves if not _traced(o)]
    if len(concrete) == len(leaves) and all(np.isnan(o).all() for o in concrete):
        raise ValueError("observed is all NaN: there is no data to fit.")
    return observed, broadcast_sigma(sigma, observed)


def check_traced_data(observed, sigma):
    """Under a user's transformation: the checks of `prepare_data` on traced values, at
    run time (equinox's runtime error), and the values to use from then on."""
    observed = jax.tree.map(
        lambda o: eqx.error_if(o, jnp.isinf(o), _OBSERVED_INF) if _traced(o) else o, observed
    )
    if sigma_given(sigma):
        sigma = jax.tree.map(
            lambda s: (
                eqx.error_if(s, ~(jnp.isfinite(s) & (s > 0)), _SIGMA_BAD) if _traced(s) else s
            ),
            sigma,
        )
    return observed, sigma


def _observed_array(o):
    if eqx.is_array(o):
        array = o
    else:
        array = np.asarray(o)
    if not (jnp.issubdtype(array.dtype, jnp.floating) or jnp.issubdtype(array.dtype, jnp.integer)):
        raise TypeError(
            f"observed must hold real numbers (arrays or floats); got a leaf of dtype {array.dtype}."
        )
    return array


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
    leaves = jax.tree.leaves(sigma)
    if jax.tree.structure(sigma) == jax.tree.structure(observed):
        sigmas = jax.tree.map(_array, sigma)
    elif len(leaves) == 1 and np.ndim(leaves[0]) == 0:
        sigmas = jax.tree.map(lambda o: _array(leaves[0], o.dtype), observed)
    else:
        raise ValueError(
            f"sigma must be a scalar or a pytree like observed ({_short(jax.tree.structure(observed))});"
            f" got {_short(jax.tree.structure(sigma))}."
        )
    for (path, s), (_, o) in zip(_with_paths(sigmas), _with_paths(observed), strict=True):
        _check_sigma_leaf(_name("sigma", path), s, o)
    return sigmas


def _check_sigma_leaf(name, s, o) -> None:
    shape = np.shape(s)
    try:
        fits = np.broadcast_shapes(shape, o.shape) == o.shape
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(
            f"{name} has shape {shape}, which does not broadcast to observed's shape "
            f"{o.shape}; pass a scalar or an array of shape {o.shape}."
        )
    if _traced(s):
        return
    value = np.asarray(s)
    bad = ~(np.isfinite(value) & (value > 0))
    if bad.any():
        index = _first(bad)
        raise ValueError(
            f"{name} is {value[index]}{_at(index)}; sigma must be positive and finite "
            "everywhere (the noise standard deviation)."
        )


def _traced(x) -> bool:
    return isinstance(x, jax.core.Tracer)


def _with_paths(tree):
    return jax.tree_util.tree_flatten_with_path(tree)[0]


def _name(argument: str, path) -> str:
    return argument + jax.tree_util.keystr(path)


def _first(mask: np.ndarray) -> tuple:
    return tuple(int(i) for i in np.argwhere(mask)[0])


def _short(x, limit: int = 100) -> str:
    text = str(x)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _at(index: tuple) -> str:
    return f" at index {index[0] if len(index) == 1 else index}" if index else ""
