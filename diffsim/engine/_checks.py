"""The checks `simulate` makes before anything is traced (private).

Contract: each function raises `TypeError` or `ValueError` naming the argument and how
to fix it, or returns the value the rollout should use (a step count, a cast `y0`).
Values that are traced cannot be checked here; the rollout checks them at run time.
"""

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._trees import is_concrete
from ._adjoints import AbstractAdjoint, Backsolve, Reversible
from ._saveat import SaveAt
from .integrators import AbstractAdaptiveIntegrator, AbstractFixedStepIntegrator
from .integrators._base import check_integrator_fits


def check_strategies(integrator, saveat, adjoint, max_steps) -> None:
    """The strategy objects are of the right kinds and fit one another."""
    if not isinstance(integrator, (AbstractFixedStepIntegrator, AbstractAdaptiveIntegrator)):
        raise TypeError(
            f"integrator must be a diffsim integrator such as ds.RK4() or ds.Tsit5(); "
            f"got {integrator!r}."
        )
    if not isinstance(saveat, SaveAt):
        raise TypeError(f"saveat must be a ds.SaveAt; got {saveat!r}.")
    if not isinstance(adjoint, AbstractAdjoint):
        raise TypeError(
            "adjoint must be ds.Checkpointed(), ds.Direct(), ds.Reversible() or "
            f"ds.Backsolve(); got {adjoint!r}."
        )
    adaptive = isinstance(integrator, AbstractAdaptiveIntegrator)
    if isinstance(adjoint, Reversible) and (adaptive or not integrator.reversible):
        raise ValueError(
            "adjoint=ds.Reversible() rebuilds states by stepping backwards, which needs a "
            "time-reversible fixed-step integrator (ds.Leapfrog() or ds.Yoshida4()); got "
            f"{type(integrator).__name__}(). Use adjoint=ds.Checkpointed() with it."
        )
    if isinstance(adjoint, Backsolve) and not adaptive:
        raise ValueError(
            "adjoint=ds.Backsolve() is the continuous adjoint of adaptive integrators "
            f"(ds.Tsit5(), ...); got {type(integrator).__name__}(). For fixed-step "
            "integrators use ds.Reversible() (O(1) memory, exact) or ds.Checkpointed()."
        )
    if max_steps is not None and (not isinstance(max_steps, int) or max_steps < 1):
        raise ValueError(f"max_steps must be a positive int or None; got {max_steps!r}.")


def float_dtype(y0) -> Any:
    """The floating dtype of a state: its leaves' promoted dtype, or the default float."""
    leaves = jax.tree.leaves(y0)
    dtype = jnp.result_type(*[jnp.asarray(leaf).dtype for leaf in leaves])
    if not jnp.issubdtype(dtype, jnp.floating):
        dtype = jnp.result_type(float)
    return dtype


def check_positive_finite(name: str, value) -> None:
    if value is None:
        raise ValueError(f"{name} is required: pass a positive step size, e.g. {name}=0.01.")
    if is_concrete(value):
        arr = np.asarray(value)
        if arr.ndim != 0:
            raise ValueError(f"{name} must be a scalar; got shape {arr.shape}.")
        if not (np.isfinite(arr) and arr > 0):
            raise ValueError(f"{name} must be a positive finite number; got {float(arr)}.")


def number_of_steps(t0, t1, dt, n_steps) -> int:
    """The fixed-step count: `n_steps`, or `(t1 - t0) / dt` when it is a whole number."""
    if (t1 is None) == (n_steps is None):
        raise ValueError(
            "Pass exactly one of t1= (the end time) and n_steps= (the number of steps); "
            f"got t1={t1!r} and n_steps={n_steps!r}."
        )
    if n_steps is not None:
        if not isinstance(n_steps, (int, np.integer)) or isinstance(n_steps, bool) or n_steps < 0:
            raise ValueError(f"n_steps must be a non-negative Python int; got {n_steps!r}.")
        return int(n_steps)
    if not (is_concrete(t0) and is_concrete(t1) and is_concrete(dt)):
        raise ValueError(
            "With t1=, the number of steps (t1 - t0) / dt must be known when tracing, so t0, "
            "t1 and dt must be concrete numbers, not traced values. Under jit, pass "
            "n_steps= instead (t0 and dt may then be traced and differentiated)."
        )
    t0, t1, dt = float(t0), float(t1), float(dt)
    if not math.isfinite(t1):
        raise ValueError(f"t1 must be finite; got {t1}.")
    if t1 < t0:
        raise ValueError(
            f"t1 must be >= t0; got t0={t0}, t1={t1}. (Use a negative-time system or swap them.)"
        )
    ratio = (t1 - t0) / dt
    n = round(ratio)
    if abs(ratio - n) > 1e-6 * max(1.0, ratio):
        raise ValueError(
            f"t1 - t0 = {t1 - t0:g} is not a whole number of steps of dt = {dt:g} "
            f"({ratio:.6g} steps). Choose dt = (t1 - t0) / n for a whole n, or pass n_steps=."
        )
    return n


def check_state(system, y0, t0, dt, integrator) -> Any:
    """Evaluate one step abstractly; return y0 cast to the dtype the step produces."""
    if isinstance(integrator, AbstractFixedStepIntegrator):
        check_integrator_fits(integrator, system, y0)
    name = type(system).__name__
    if not callable(getattr(system, "vector_field", None)):
        raise TypeError(
            f"system must have a vector_field(t, y) method (a ds.AbstractSystem); got {name}."
        )
    for leaf in jax.tree.leaves(y0):
        if not isinstance(leaf, (jax.Array, np.ndarray, np.generic, float, int)):
            raise TypeError(f"y0 must be a pytree of arrays; found a leaf of type {type(leaf)}.")
    y0 = jax.tree.map(lambda x: jnp.asarray(x, float_dtype(y0)), y0)
    try:
        out = jax.eval_shape(system.vector_field, t0, y0)
    except Exception as e:
        raise ValueError(
            f"y0 does not fit the state of {name}: evaluating {name}.vector_field(t0, y0) "
            f"failed with {type(e).__name__}: {e}"
        ) from e
    if jax.tree.structure(out) != jax.tree.structure(y0):
        raise ValueError(
            f"y0 does not match the state structure of {name}: its vector field returns "
            f"{jax.tree.structure(out)} for y0 = {jax.tree.structure(y0)}."
        )
    for path, (o, y) in zip(
        jax.tree_util.tree_flatten_with_path(y0)[0],
        zip(jax.tree.leaves(out), jax.tree.leaves(y0), strict=True),
        strict=True,
    ):
        if o.shape != y.shape:
            raise ValueError(
                f"y0 does not match the state of {name}: y0{jax.tree_util.keystr(path[0])} "
                f"has shape {y.shape} but its time derivative has shape {o.shape}."
            )
    dtype = jnp.result_type(*[o.dtype for o in jax.tree.leaves(out)], float_dtype(y0))
    return jax.tree.map(lambda x: x.astype(dtype), y0)


def check_saveat_ts(ts, t0, t1) -> None:
    """Save times lie in [t0, t1] and do not decrease (when all three are concrete)."""
    if not (is_concrete(ts) and is_concrete(t0) and is_concrete(t1)):
        return  # checked at run time instead
    ts, t0, t1 = np.asarray(ts), float(t0), float(t1)
    if ts.size == 0:
        raise ValueError("SaveAt(ts=...) is empty; give at least one time.")
    slack = 1e-9 * max(1.0, abs(t0), abs(t1))
    if ts.min() < t0 - slack or ts.max() > t1 + slack:
        raise ValueError(
            f"SaveAt(ts=...) must lie within [t0, t1] = [{t0:g}, {t1:g}]; got times from "
            f"{ts.min():g} to {ts.max():g}."
        )
    if np.any(np.diff(ts) < 0):
        raise ValueError("SaveAt(ts=...) must be non-decreasing; sort the times.")
