"""The checks `ds.ensemble` makes before anything is traced (private).

Contract: each raises a `ValueError`/`TypeError` that names the argument and how to fix
it, or returns what the run needs (the number of members, the device mesh).
"""

import os

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from .._trees import is_concrete_tree
from ..engine._collect import under_transformation


def leading_size(batched_args: tuple) -> int:
    n, first = None, None
    for path, leaf in jax.tree_util.tree_flatten_with_path(batched_args)[0]:
        if not eqx.is_array(leaf):
            continue
        name = f"batched_args{jax.tree_util.keystr(path)}"
        if jnp.ndim(leaf) == 0:
            raise ValueError(
                f"{name} is a 0-d array: every array in the batched arguments needs a "
                "leading member axis. To share a value between members, close over it "
                "in fn or pass it as a Python float."
            )
        size = jnp.shape(leaf)[0]
        if n is None:
            n, first = size, name
        elif size != n:
            raise ValueError(
                f"{name} has leading axis {size} but {first} has {n}: every array in the "
                "batched arguments must have the same leading (member) axis."
            )
    if n is None:
        raise ValueError(
            "ds.ensemble needs at least one array with a leading member axis among "
            "batched_args (parameters, states, systems with batched fields or PRNG keys)."
        )
    if n == 0:
        raise ValueError("The batched arguments have 0 members; nothing to run.")
    return int(n)


def make_mesh(devices) -> Mesh | None:
    if devices is None:
        return None
    if isinstance(devices, Mesh):
        if len(devices.axis_names) != 1:
            raise ValueError(
                "devices must be a 1-d jax.sharding.Mesh (one axis for the members); got "
                f"axes {devices.axis_names}."
            )
        return devices
    try:
        devs = list(devices)
    except TypeError:
        raise TypeError(
            "devices must be None, a sequence of jax devices (e.g. jax.devices()) or a 1-d "
            f"jax.sharding.Mesh; got {devices!r}."
        ) from None
    if not devs or not all(isinstance(d, jax.Device) for d in devs):
        raise TypeError(
            "devices must be a non-empty sequence of jax devices (e.g. jax.devices()); got "
            f"{devices!r}."
        )
    if len(set(devs)) != len(devs):
        repeated = next(d for d in devs if devs.count(d) > 1)
        raise ValueError(
            f"devices lists {repeated} more than once: give each device once (e.g. jax.devices())."
        )
    return Mesh(np.array(devs), ("members",))


def check_hashable(fn, batched_args, reduce) -> None:
    """Non-array leaves are compiled in, so they must be hashable: name the first that
    is not."""
    named = {"fn": fn, "batched_args": batched_args, "reduce": reduce}
    for path, leaf in jax.tree_util.tree_flatten_with_path(named)[0]:
        if eqx.is_array(leaf):
            continue
        try:
            hash(leaf)
        except TypeError:
            name = jax.tree_util.keystr(path[:1])[2:-2] + jax.tree_util.keystr(path[1:])
            raise TypeError(
                f"{name} is a {type(leaf).__name__}, which is not an array and cannot be "
                "hashed: ds.ensemble compiles non-array values in, as settings shared by "
                "all members. Make it hashable (an eqx.Module or a frozen dataclass), pass "
                "its numbers as arrays, or close over it in fn."
            ) from None


def member_output(out):
    """One member's output as `ds.ensemble` keeps it: Python numbers become arrays (so
    that reducers and the per-member values see them); other leaves must be arrays or
    `None`, else a `TypeError` names the first."""

    def leaf(path, x):
        if eqx.is_array(x) or x is None:
            return x
        if isinstance(x, (bool, int, float, complex, np.number)):
            return jnp.asarray(x)
        raise TypeError(
            f"fn returned a {type(x).__name__} at output{jax.tree_util.keystr(path)}: "
            "ds.ensemble keeps arrays (and numbers) per member. Return arrays, e.g. "
            "the Trajectory or jnp values."
        )

    return jax.tree_util.tree_map_with_path(leaf, out, is_leaf=lambda x: x is None)


def check_resumable(checkpoint, out, mesh, reduce, batched_args) -> bool:
    """Whether the call is resumable (`checkpoint=` or `out=` given), after checking that
    it can be: a path each, one device, eager, and `out=` without `reduce=`."""
    for name, value in (("checkpoint", checkpoint), ("out", out)):
        if value is not None and not isinstance(value, (str, os.PathLike)):
            raise TypeError(f"{name} must be a path (a str or os.PathLike) or None; got {value!r}.")
    if checkpoint is None and out is None:
        return False
    which = "checkpoint=" if out is None else "out="
    if out is not None and reduce is not None:
        raise ValueError(
            "out= writes every member's outputs to disk, and reduce= keeps statistics "
            "instead of outputs: pass one of them (checkpoint= makes a reduce= run resumable)."
        )
    if mesh is not None:
        raise ValueError(
            f"{which} runs on one device for now: leave devices=None (several devices "
            "write one checkpoint per host in a later version)."
        )
    if under_transformation() or not is_concrete_tree(batched_args):
        raise ValueError(
            f"{which} commits results to disk as they finish, so it cannot run under "
            "jax.jit, vmap or grad: call ds.ensemble eagerly."
        )
    return True
