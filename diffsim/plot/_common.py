"""Helpers shared by the figure functions (private): the checks of their arguments and
the drawing they have in common.

Every check runs before anything is drawn, raises `TypeError` (the wrong kind of object)
or `ValueError` (the right kind, a wrong shape or value), and starts its message with the
public function's name and names the argument: `"animate_bodies: frames must be ..."`.
"""

import math
import numbers
from typing import Any

import jax
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes


def new_or(ax: Axes | None) -> Axes:
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    return ax


def check_ax(ax: Any, fname: str, name: str = "ax") -> None:
    if ax is not None and not isinstance(ax, Axes):
        raise TypeError(
            f"{fname}: {name} must be a matplotlib Axes or None (a new figure); got "
            f"{type(ax).__name__}."
        )


def check_label(label: Any, fname: str, name: str = "label", optional: bool = True) -> None:
    if not (isinstance(label, str) or (optional and label is None)):
        allowed = "a str or None" if optional else "a str"
        raise TypeError(f"{fname}: {name} must be {allowed}; got {type(label).__name__}.")


def float_array(x: Any, name: str, fname: str) -> np.ndarray:
    """`x` as a float NumPy array, or a `TypeError` naming `name`."""
    try:
        return np.asarray(x, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(
            f"{fname}: {name} must be an array of numbers; got {type(x).__name__}."
        ) from None


def count(value: Any, name: str, fname: str, *, low: int = 1, none: bool = False) -> Any:
    """An int `>= low` (or `None` where `none`), as a Python int."""
    if none and value is None:
        return None
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= low:
        return int(value)
    kind = "a positive int" if low == 1 else f"an int >= {low}"
    raise ValueError(f"{fname}: {name} must be {kind}{' or None' if none else ''}; got {value!r}.")


def positive(value: Any, name: str, fname: str) -> float:
    """A finite number `> 0`, as a float."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        if math.isfinite(value) and value > 0:
            return float(value)
    raise ValueError(f"{fname}: {name} must be positive (a finite number > 0); got {value!r}.")


def times(traj: Any, fname: str) -> np.ndarray:
    """`traj.ts` of an unbatched, non-empty trajectory, checked."""
    if not (hasattr(traj, "ts") and hasattr(traj, "ys")):
        raise TypeError(
            f"{fname}: traj must be a ds.Trajectory (from ds.simulate); got {type(traj).__name__}."
        )
    ts = float_array(traj.ts, "traj.ts", fname)
    if ts.ndim != 1:
        raise ValueError(
            f"{fname} plots one trajectory, but traj.ts has shape {ts.shape} (a batch?). "
            "Select one member first, e.g. jax.tree.map(lambda x: x[0], traj)."
        )
    if len(ts) == 0:
        raise ValueError(f"{fname}: traj is empty (no saved times); save at least one state.")
    return ts


def single_array(tree: Any, what: str, fname: str) -> np.ndarray:
    leaves = jax.tree.leaves(tree)
    if len(leaves) != 1:
        raise TypeError(
            f"{fname} plots a single array, but {what} is a pytree with {len(leaves)} "
            "leaves. Save one array with ds.SaveAt(..., fn=lambda t, y: ...)."
        )
    return float_array(leaves[0], what, fname)


def components(values: np.ndarray, n: int, name: str = "the saved values") -> np.ndarray:
    """Flatten everything after the leading time axis: `(n, ...) -> (n, m)`."""
    if values.ndim == 0 or values.shape[0] != n:
        raise ValueError(
            f"{name} have shape {values.shape}; expected a leading time axis of length {n}."
        )
    return values.reshape(n, -1)


def check_plane(plane: Any, d: int, fname: str) -> list[int]:
    """Two distinct coordinates among `d`."""
    ok = isinstance(plane, (tuple, list)) and len(plane) == 2
    ok = ok and all(isinstance(i, numbers.Integral) and 0 <= i < d for i in plane)
    if not ok or plane[0] == plane[1]:
        raise ValueError(
            f"{fname}: plane must be two different coordinates in 0..{d - 1} (the positions "
            f"have d = {d}); got {plane!r}."
        )
    return [int(i) for i in plane]


def needs(obj: Any, attribute: str, name: str, fname: str, what: str) -> Any:
    """`obj.attribute`, or a `TypeError` saying what `name` should have been."""
    if not hasattr(obj, attribute):
        raise TypeError(
            f"{fname}: {name} must be {what} (with .{attribute}); got {type(obj).__name__}."
        )
    return getattr(obj, attribute)


def label_axes(ax: Axes, xlabel: str, ylabel: str) -> None:
    # Never overwrite labels already on an axes the caller passed in.
    if not ax.get_xlabel():
        ax.set_xlabel(xlabel)
    if not ax.get_ylabel():
        ax.set_ylabel(ylabel)


def component_labels(name: str, m: int) -> list[str]:
    return [name] if m == 1 else [f"{name}[{i}]" for i in range(m)]
