"""The argument checks of `ds.sparse_regression`: every bad input is refused before any
fitting, with a message naming the argument and the fix."""

import numbers
from collections.abc import Sequence

import jax
import numpy as np

from ._library import Library


def _array(name: str, value) -> np.ndarray:
    try:
        out = np.asarray(value)
    except Exception as error:  # a ragged list, a jax tracer under a user's jit
        raise TypeError(
            f"sparse_regression: `{name}` must be an array of numbers (host-side: call it "
            f"outside jit); could not read it: {error}"
        ) from None
    if not (np.issubdtype(out.dtype, np.floating) or np.issubdtype(out.dtype, np.integer)):
        raise TypeError(
            f"sparse_regression: `{name}` must hold real numbers; got dtype {out.dtype}."
        )
    if not np.all(np.isfinite(out)):
        bad = int(np.sum(~np.isfinite(out)))
        raise ValueError(
            f"sparse_regression: `{name}` has {bad} NaN or inf value(s); drop those samples "
            "(e.g. a diverged trajectory) before the regression."
        )
    return out


def _positive_int(name: str, value, lo: int, hi: int | None = None) -> int:
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if not ok or value < lo or (hi is not None and value > hi):
        upper = f" and <= {hi}" if hi is not None else ""
        raise ValueError(
            f"sparse_regression: `{name}` must be an int >= {lo}{upper}; got {value!r}."
        )
    return int(value)


def _check_terms(library: Library, d: int, dtype) -> None:
    """Every term maps one (d,) vector to a scalar (checked abstractly, nothing runs)."""
    if library.features is not None and d < len(library.features):
        raise ValueError(
            f"sparse_regression: `x` has {d} columns but `library` uses the features "
            f"{library.features}; give x one column per feature, in that order."
        )
    spec = jax.ShapeDtypeStruct((d,), dtype)
    for name, fn in zip(library.names, library.fns, strict=True):
        shape = jax.eval_shape(fn, spec).shape
        if shape != ():
            raise ValueError(
                f"sparse_regression: `library` term {name!r} returned shape {shape} for one "
                f"feature vector of shape ({d},); each term must return a scalar."
            )


def _names(output_names, m: int, scalar: bool) -> tuple[str, ...]:
    if output_names is None:
        return ("f",) if scalar else tuple(f"f[{k}]" for k in range(m))
    if isinstance(output_names, str) or not isinstance(output_names, Sequence):
        raise TypeError(
            f"sparse_regression: `output_names` must be a list of {m} names; got {output_names!r}."
        )
    names = tuple(output_names)
    if len(names) != m or not all(isinstance(n, str) and n for n in names):
        raise ValueError(
            f"sparse_regression: `output_names` must be {m} non-empty names (one per column "
            f"of y); got {names!r}."
        )
    return names


def check_inputs(library, x, y, threshold, folds, output_names, min_r2, max_terms):
    """The checked inputs: `(x, y, dtype, output_names, max_terms)`."""
    if not isinstance(library, Library):
        raise TypeError(
            "sparse_regression: `library` must be a ds.Library, e.g. "
            f"ds.Library.polynomial(['x'], degree=3); got {type(library).__name__}."
        )
    x, y = _array("x", x), _array("y", y)
    if x.ndim != 2:
        raise ValueError(
            f"sparse_regression: `x` must be 2-d, (samples, features); got shape {x.shape}. "
            "For one feature use x[:, None]."
        )
    if y.ndim not in (1, 2) or y.shape[0] != x.shape[0]:
        raise ValueError(
            f"sparse_regression: `y` must have shape (N,) or (N, m) with N = {x.shape[0]} "
            f"rows, like `x`; got shape {y.shape}."
        )
    n, p = x.shape[0], len(library.names)
    if n <= p:
        raise ValueError(
            f"sparse_regression: `x` has {n} samples but `library` has {p} terms; give at "
            f"least {p + 1} samples (many more for a reliable fit) or a smaller library."
        )
    floats = [a.dtype for a in (x, y) if np.issubdtype(a.dtype, np.floating)]
    dtype = jax.dtypes.canonicalize_dtype(np.result_type(*floats) if floats else float)
    _check_terms(library, x.shape[1], dtype)
    folds = _positive_int("folds", folds, 2, n)
    if threshold is not None:
        ok = isinstance(threshold, numbers.Real) and not isinstance(threshold, bool)
        if not ok or not np.isfinite(threshold) or threshold < 0:
            raise ValueError(
                "sparse_regression: `threshold` must be None (cross-validated) or a number "
                f">= 0 (the smallest contribution kept, e.g. 0.05); got {threshold!r}."
            )
    ok = isinstance(min_r2, numbers.Real) and not isinstance(min_r2, bool)
    if not ok or not 0 < min_r2 <= 1:
        raise ValueError(
            f"sparse_regression: `min_r2` must be in (0, 1], e.g. 0.95; got {min_r2!r}."
        )
    if max_terms is None:
        max_terms = max(1, p // 2)
    max_terms = _positive_int("max_terms", max_terms, 1)
    m = 1 if y.ndim == 1 else y.shape[1]
    names = _names(output_names, m, y.ndim == 1)
    return x, y.astype(np.float64), dtype, names, max_terms


def check_theta(library: Library, theta: np.ndarray) -> None:
    """Every term is finite at every sample (a log or a division can fail on data)."""
    bad = ~np.isfinite(theta)
    if bad.any():
        j = int(np.flatnonzero(bad.any(axis=0))[0])
        i = int(np.flatnonzero(bad[:, j])[0])
        raise ValueError(
            f"sparse_regression: `library` term {library.names[j]!r} is NaN or inf at "
            f"sample {i}; change the term or drop the samples where it is undefined."
        )
