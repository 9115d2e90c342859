"""Helpers shared by the figure functions (private)."""

from typing import Any

import jax
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes


def new_or(ax: Axes | None) -> Axes:
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    return ax


def times(traj: Any, fname: str) -> np.ndarray:
    if not (hasattr(traj, "ts") and hasattr(traj, "ys")):
        raise TypeError(f"{fname} needs a ds.Trajectory (from ds.simulate); got {type(traj)}.")
    ts = np.asarray(traj.ts)
    if ts.ndim != 1:
        raise ValueError(
            f"{fname} plots one trajectory, but traj.ts has shape {ts.shape} (a batch?). "
            "Select one member first, e.g. jax.tree.map(lambda x: x[0], traj)."
        )
    return ts


def single_array(tree: Any, what: str, fname: str) -> np.ndarray:
    leaves = jax.tree.leaves(tree)
    if len(leaves) != 1:
        raise TypeError(
            f"{fname} plots a single array, but {what} is a pytree with {len(leaves)} "
            "leaves. Save one array with ds.SaveAt(..., fn=lambda t, y: ...)."
        )
    return np.asarray(leaves[0])


def components(values: np.ndarray, n: int) -> np.ndarray:
    """Flatten everything after the leading time axis: `(n, ...) -> (n, m)`."""
    if values.ndim == 0 or values.shape[0] != n:
        raise ValueError(
            f"The saved values have shape {values.shape}; expected a leading time axis of "
            f"length {n} (len(traj.ts))."
        )
    return values.reshape(n, -1)


def label_axes(ax: Axes, xlabel: str, ylabel: str) -> None:
    # Never overwrite labels already on an axes the caller passed in.
    if not ax.get_xlabel():
        ax.set_xlabel(xlabel)
    if not ax.get_ylabel():
        ax.set_ylabel(ylabel)


def component_labels(name: str, m: int) -> list[str]:
    return [name] if m == 1 else [f"{name}[{i}]" for i in range(m)]
