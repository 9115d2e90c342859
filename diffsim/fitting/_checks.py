"""The checks `ds.fit` makes on its arguments before anything is traced (private).

Contract: each function raises `TypeError` (a wrong kind of object) or `ValueError` (a
wrong value) whose message names the argument, the bad value and how to fix it, in at
most a few lines; or returns nothing. The data (`observed`, `sigma`) are checked in
`_data.py`; `where` and `bounds` in `_selection.py`. Traced values are not checked here.
"""

import math

import jax
import numpy as np

from ._selection import Selection

# The option keys optimistix's least-squares solvers and minimisers read, with the
# values they accept (None: any value). Anything else would be silently ignored.
_OPTIONS = {
    "jac": ("fwd", "bwd"),
    "autodiff_mode": ("fwd", "bwd"),
    "y0_simplex": None,
    "lower": None,
    "upper": None,
}


def check_call(model, observed, loss, prior, max_steps, rtol, atol) -> None:
    """The callables and the scalar settings of `fit`."""
    if (observed is None) == (loss is None):
        raise ValueError(
            "Pass exactly one of observed= (least squares) and loss= (a scalar objective)."
        )
    if not callable(model):
        raise TypeError(f"model must be a callable model(params) -> prediction; got {model!r}.")
    for name, fn in (("loss", loss), ("prior", prior)):
        if fn is not None and not callable(fn):
            raise TypeError(f"{name} must be a callable or None; got {_short(fn)}.")
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
        raise ValueError(
            f"max_steps must be a positive int (the fit's iteration limit); got {max_steps!r}."
        )
    for name, tol in (("rtol", rtol), ("atol", atol)):
        if not _is_real(tol) or not (math.isfinite(tol) and tol >= 0):
            raise ValueError(f"{name} must be a finite number >= 0; got {tol!r}.")


def check_options(options) -> dict:
    """`options` as a dict of known keys with accepted values."""
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise TypeError(f'options must be a dict such as {{"jac": "bwd"}}; got {_short(options)}.')
    for key, value in options.items():
        if key not in _OPTIONS:
            raise ValueError(
                f"options has an unknown key {key!r}; optimistix solvers read "
                f"{', '.join(map(repr, _OPTIONS))}."
            )
        allowed = _OPTIONS[key]
        if allowed is not None and value not in allowed:
            raise ValueError(
                f"options[{key!r}] must be one of {', '.join(map(repr, allowed))}; got {value!r}."
            )
    return dict(options)


def check_shooting(shooting_weight) -> None:
    if not _is_real(shooting_weight) or not (
        math.isfinite(shooting_weight) and shooting_weight > 0
    ):
        raise ValueError(
            f"shooting_weight must be a positive finite number; got {shooting_weight!r}."
        )


def check_start(params0, selection: Selection) -> None:
    """The fitted values of `params0` are finite and strictly inside their bounds."""
    flat = jax.tree_util.tree_flatten_with_path(params0)[0]
    trainable = jax.device_get([flat[i][1] for i in selection.trainable])  # one transfer
    for i, value in zip(selection.trainable, trainable, strict=True):
        name = jax.tree_util.keystr(flat[i][0]).lstrip(".") or "params0"
        bound = selection.bounds[selection.node_of_leaf[i]]
        if not np.isfinite(value).all():
            raise ValueError(
                f"params0 has non-finite values in the fitted parameter {name}; start "
                "from finite values."
            )
        if not bound.contains(value):
            raise ValueError(
                f"params0's fitted value {name} = {_short(np.asarray(value).tolist())} is not strictly "
                f"inside its bounds ({bound.lo}, {bound.hi}); start inside them."
            )


def _is_real(x) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


def _short(x, limit: int = 80) -> str:
    text = repr(x)
    return text if len(text) <= limit else text[: limit - 3] + "..."
