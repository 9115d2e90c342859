"""Checks of system parameters at construction, in one style (private).

Contract: each `check_*` raises a `ValueError` (a bad value or shape) or a `TypeError`
(not a number, not callable) whose one-line message names the class, the field, its
unit and what it must be: "Pendulum: `length` must be positive (m); got 0.0."
Systems call them from `__check_init__`, which equinox runs after `__init__`.

Values are checked only when concrete. A traced value (a system built inside `jax.jit`,
`jax.vmap`, `jax.grad`, `ds.ensemble` or `ds.fit`) passes unchecked, so checks never
fail or cost anything inside a transformation; shapes, which are static, are checked
either way. Arrays are checked elementwise, so a field with a leading batch axis passes
when every member does.

Which values a parameter may take follows one rule. Every float must be finite.
Quantities that cannot be negative (masses, lengths, rates of dissipation, temperatures,
magnitudes of gravity) are refused below zero; zero is refused too where it makes the
equations singular or the model empty (a pendulum of length 0, a charge of mass 0, a
medium that neither conducts nor carries waves), and kept where it is a meaningful
limit (no damping, no drag, inviscid Burgers, a massless test body in `NBody`).
Signed quantities (charges, fields, boundary values, Lorenz's parameters) need only be
finite.
"""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._trees import is_concrete

#: For systems whose gravity is a magnitude along a fixed direction.
GRAVITY_HINT = "It is the magnitude g; the model fixes its direction (down)."


def concrete(owner: str, name: str, value: Any) -> np.ndarray | None:
    """`value` as a NumPy array of real numbers, or None when any part of it is traced.
    A `TypeError` when it is not a number or an array of numbers."""
    if not all(is_concrete(leaf) for leaf in jax.tree.leaves(value)):
        return None
    try:
        array = np.asarray(value)
    except (TypeError, ValueError):
        array = None
    if array is None or not _is_real(array.dtype):
        raise TypeError(
            f"{owner}: `{name}` must be a real number or an array of real numbers; got "
            f"{_kind(value)}."
        )
    return array


def _is_real(dtype) -> bool:
    """Integers or floats, bfloat16 included (NumPy files it under void)."""
    return dtype != np.bool_ and (
        jnp.issubdtype(dtype, jnp.integer) or jnp.issubdtype(dtype, jnp.floating)
    )


def _kind(value: Any) -> str:
    if isinstance(value, (str, bytes)):
        return f"{type(value).__name__} {value!r}"[:60]
    dtype = getattr(value, "dtype", None)
    return f"an array of dtype {dtype}" if dtype is not None else type(value).__name__


def _show(array: np.ndarray, bad: np.ndarray) -> str:
    """The (first) offending value, with its index when the field is an array."""
    index = np.argwhere(bad)[0] if array.ndim else ()
    value = array[tuple(index)].item()
    if array.ndim == 0:
        return repr(value)
    return f"{value!r} at index {tuple(int(i) for i in index)} of shape {array.shape}"


def _unit(unit: str) -> str:
    return f" ({unit})" if unit else ""


def check_finite(owner: str, name: str, value: Any, unit: str = "") -> np.ndarray | None:
    """Every element of `value` is a finite real number (no NaN or inf)."""
    array = concrete(owner, name, value)
    if array is not None and jnp.issubdtype(array.dtype, jnp.floating):
        bad = ~np.isfinite(array)
        if np.any(bad):
            raise ValueError(
                f"{owner}: `{name}` must be finite{_unit(unit)}; got {_show(array, bad)}."
            )
    return array


def _check_sign(owner, name, value, unit, bad_of, requirement, hint) -> None:
    array = check_finite(owner, name, value, unit)
    if array is None:
        return
    bad = bad_of(array)
    if np.any(bad):
        raise ValueError(
            f"{owner}: `{name}` must be {requirement}{_unit(unit)}; got "
            f"{_show(array, bad)}.{' ' + hint if hint else ''}"
        )


def check_positive(owner: str, name: str, value: Any, unit: str = "", hint: str = "") -> None:
    """Every element of `value` is finite and > 0."""
    _check_sign(owner, name, value, unit, lambda a: ~(a > 0), "positive", hint)


def check_nonnegative(owner: str, name: str, value: Any, unit: str = "", hint: str = "") -> None:
    """Every element of `value` is finite and >= 0."""
    _check_sign(owner, name, value, unit, lambda a: ~(a >= 0), "non-negative", hint)


def check_interval(
    owner: str,
    name: str,
    value: Any,
    low: float,
    high: float,
    *,
    closed: bool = True,
    hint: str = "",
) -> None:
    """Every element of `value` lies in `[low, high]` (`closed`) or `[low, high)`."""
    above = (lambda a: a > high) if closed else (lambda a: a >= high)
    bracket = "]" if closed else ")"
    requirement = f"in [{low:g}, {high:g}{bracket}"
    _check_sign(owner, name, value, "", lambda a: (a < low) | above(a), requirement, hint)


def shape_of(value: Any) -> tuple[int, ...] | None:
    """The shape of `value`, static even when traced; None when it cannot be read (a
    list holding tracers, whose elements are checked where they are used)."""
    shape = getattr(value, "shape", None)
    if shape is None:
        try:
            shape = np.shape(value)
        except Exception:
            return None
    return tuple(shape)


def check_shape(
    owner: str,
    name: str,
    value: Any,
    ok: Callable[[tuple[int, ...]], bool],
    expected: str,
    hint: str = "",
) -> tuple[int, ...] | None:
    """`ok(shape)` holds for the shape of `value` (static: checked even when traced);
    `expected` describes it, e.g. "a 1-d array (n,)". Returns the shape."""
    shape = shape_of(value)
    if shape is not None and not ok(shape):
        raise ValueError(
            f"{owner}: `{name}` must be {expected}; got shape {shape}.{' ' + hint if hint else ''}"
        )
    return shape


def check_callable(owner: str, name: str, value: Any, expected: str) -> None:
    """`value` is callable; `expected` says what it should be, e.g. "a callable
    force(t, q, v)"."""
    if not callable(value):
        raise TypeError(f"{owner}: `{name}` must be {expected}; got {_kind(value)}.")
