"""The checks `simulate` makes before anything is traced (private).

Contract: each function raises `TypeError` or `ValueError` naming the argument and how
to fix it, or returns the value the rollout should use (a step count, a cast `y0`).
Values that are traced cannot be checked here; the rollout checks them at run time.
"""

import dataclasses
import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._trees import is_concrete, is_concrete_tree
from ._adjoints import AbstractAdjoint, Backsolve, Reversible
from ._saveat import SaveAt
from .integrators import (
    AbstractAdaptiveIntegrator,
    AbstractFixedStepIntegrator,
    AbstractSDEIntegrator,
    EventStep,
)
from .integrators._base import check_integrator_fits, is_mechanical


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
    if saveat.dense and isinstance(adjoint, (Reversible, Backsolve)):
        raise ValueError(
            f"SaveAt(dense=True) keeps every step's state for its interpolant, which "
            f"adjoint=ds.{type(adjoint).__name__}() cannot differentiate (it rebuilds the "
            "states instead of storing them). Use adjoint=ds.Checkpointed() or ds.Direct() "
            "with dense output."
        )
    if max_steps is not None and (not isinstance(max_steps, int) or max_steps < 1):
        raise ValueError(f"max_steps must be a positive int or None; got {max_steps!r}.")


def check_noise(system, integrator) -> None:
    """A system with noise (a `diffusion(t, y)` method) needs a stochastic integrator:
    any other would drop the noise silently."""
    if callable(getattr(system, "diffusion", None)) and not isinstance(
        integrator, AbstractSDEIntegrator
    ):
        raise ValueError(
            f"{type(system).__name__} is stochastic (it has a diffusion term) but "
            f"integrator={type(integrator).__name__}() is deterministic and would drop the "
            "noise. Use integrator=ds.EulerMaruyama(key=jax.random.key(0)) (or ds.BAOAB(key=...) "
            "for Langevin)."
        )


def check_time(name: str, value) -> None:
    """A start or end time is a finite real scalar (when concrete)."""
    if value is None or not is_concrete(value):
        return
    arr = np.asarray(value)
    if arr.ndim != 0 or not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"{name} must be a real scalar; got {value!r}.")
    if not np.isfinite(arr):
        raise ValueError(f"{name} must be finite; got {float(arr)}.")


def float_dtype(y0) -> Any:
    """The floating dtype of a state: its leaves' promoted dtype, or the default float."""
    leaves = jax.tree.leaves(y0)
    dtype = jnp.result_type(
        *[leaf.dtype if hasattr(leaf, "dtype") else jnp.asarray(leaf).dtype for leaf in leaves]
    )
    if not jnp.issubdtype(dtype, jnp.floating):
        dtype = jnp.result_type(float)
    return dtype


DT_MESSAGE = "dt must be a finite non-zero number: positive, or negative to integrate backwards."


def signed_step(dt, t0, t1, *, required: bool = True):
    """The step `dt` with the sign of the direction of integration. With `t1`, a backward
    rollout (`t1 < t0`) takes `dt` as a magnitude or negative; a negative `dt` with
    `t1 > t0` is refused. Without `t1` (`n_steps=`), the sign of `dt` is the direction.
    Traced values are checked at run time (`_rollout.py`)."""
    if dt is None:
        if required:
            raise ValueError(
                "dt is required: pass a step size, e.g. dt=0.01 (to integrate backwards, "
                "t1 < t0, or with n_steps=, a negative dt=-0.01)."
            )
        return None
    if is_concrete(dt):
        arr = np.asarray(dt)
        if arr.ndim != 0:
            raise ValueError(f"dt must be a scalar; got shape {arr.shape}.")
        if not (np.isfinite(arr) and arr != 0):
            raise ValueError(f"{DT_MESSAGE} Got dt={float(arr)}.")
    if t1 is None or not (is_concrete(t0) and is_concrete(t1) and is_concrete(dt)):
        return dt
    if float(t1) < float(t0):
        return -abs(dt)
    if float(t1) > float(t0) and float(dt) < 0:
        raise ValueError(
            f"dt={float(dt):g} is negative but t1 > t0 (t0={float(t0):g}, t1={float(t1):g}): "
            "dt must have the sign of t1 - t0. To integrate forwards pass a positive "
            f"dt={-float(dt):g}; to integrate backwards pass t1 < t0."
        )
    return dt


def check_backward(integrator, dt) -> None:
    """Stochastic and event-stepping integrators run forwards only."""
    if not (is_concrete(dt) and float(dt) < 0):
        return
    if isinstance(integrator, (AbstractSDEIntegrator, EventStep)):
        raise ValueError(
            f"{type(integrator).__name__}() integrates forwards only, but this rollout runs "
            "backwards (t1 < t0 or a negative dt). Integrate forwards, or use a "
            "deterministic integrator such as ds.RK4()."
        )


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
    ratio = (t1 - t0) / dt  # dt has the sign of t1 - t0 (`signed_step`)
    n = round(ratio)
    if abs(ratio - n) > 1e-6 * max(1.0, ratio):
        raise ValueError(
            f"t1 - t0 = {t1 - t0:g} is not a whole number of steps of dt = {abs(dt):g} "
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
    if is_mechanical(system) and not (hasattr(y0, "q") and hasattr(y0, "v")):
        raise ValueError(
            f"y0 must be a ds.PhaseState(q=..., v=...) for the mechanical system {name}; "
            f"got {type(y0).__name__}."
        )
    start_dtype = float_dtype(y0)
    y0 = jax.tree.map(lambda x: as_dtype(x, start_dtype), y0)
    key = _signature(system, y0, t0)
    dtype = _CHECKED_STATES.get(key) if key is not None else None
    if dtype is None:
        dtype = _check_vector_field(system, y0, t0)
        if key is not None:
            if len(_CHECKED_STATES) >= 256:
                _CHECKED_STATES.pop(next(iter(_CHECKED_STATES)))
            _CHECKED_STATES[key] = dtype
    return jax.tree.map(lambda x: as_dtype(x, dtype), y0)


def as_dtype(x, dtype):
    """`x` as an array of `dtype`; an array that has it already is returned as it is (an
    eager conversion is a dispatch, ~50 us each, several per call). Concrete numbers
    become NumPy arrays, which the compiled rollout takes as arguments all the same."""
    if isinstance(x, jax.Array) and x.dtype == dtype:
        return x
    if isinstance(x, (float, int, np.ndarray, np.generic)):
        return np.asarray(x, dtype)
    return jnp.asarray(x, dtype)


# Signatures (types, shapes and dtypes) of (system, y0, t0) whose vector field has been
# evaluated abstractly, with the state dtype it gave: tracing the vector field on every
# call was half of an eager simulate's Python time (~2.5 ms of ~5 ms, a pendulum).
_CHECKED_STATES: dict = {}


def _signature(system, y0, t0):
    """A hashable key of everything the abstract evaluation depends on, or None."""

    def leaf_key(x):
        if eqx.is_array(x) or isinstance(x, np.generic):
            return (jnp.shape(x), jnp.result_type(x), getattr(x, "weak_type", False))
        # Ints and strings may set shapes or switch code paths: their values count.
        return (type(x), x if isinstance(x, (bool, int, str)) else None)

    leaves, treedef = jax.tree_util.tree_flatten((system, y0, t0))
    key = (treedef, tuple(map(leaf_key, leaves)), jax.config.jax_enable_x64)
    try:
        hash(key)
    except TypeError:
        return None
    return key


def _check_vector_field(system, y0, t0):
    """Evaluate the vector field abstractly; check its output fits `y0`; return the
    state dtype it gives."""
    name = type(system).__name__
    out = _evaluate_vector_field(system, t0, y0)
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
    return jnp.result_type(*[o.dtype for o in jax.tree.leaves(out)], float_dtype(y0))


def _is_catalogue(system) -> bool:
    """A system of `ds.systems` that runs no user code (no callable field: a function, a
    network, a policy): its parameters were checked when it was built, so a failure
    evaluating it is a `y0` that does not fit."""
    if not type(system).__module__.startswith("diffsim.systems."):
        return False
    fields = dataclasses.fields(system) if dataclasses.is_dataclass(system) else ()
    return not any(callable(getattr(system, f.name, None)) for f in fields)


def _short(error: Exception) -> str:
    text = (str(error).strip().splitlines() or [""])[0]
    return text if len(text) <= 160 else text[:157] + "..."


def _evaluate_vector_field(system, t0, y0):
    """`system.vector_field(t0, y0)`'s shapes. An error in user code (a user's system or
    the function an `ODESystem` wraps) propagates as itself, with a note naming where it
    was evaluated; one in a catalogue system is a `y0` that does not fit its state."""
    name = type(system).__name__
    try:
        return jax.eval_shape(system.vector_field, t0, y0)
    except Exception as e:
        shapes = jax.tree.map(lambda x: f"{x.dtype}{list(x.shape)}", y0)
        if _is_catalogue(system):
            raise ValueError(
                f"y0 does not fit the state of {name}: {name}.vector_field(t0, y0) failed "
                f"with {type(e).__name__}: {_short(e)} (y0 = {shapes})."
            ) from e
        e.add_note(
            f"(raised by {name}.vector_field(t0, y0), which ds.simulate evaluated to check "
            f"y0 = {shapes})"
        )
        raise


def check_saveat_ts(ts, t0, t1) -> None:
    """Save times lie in [t0, t1] and are ordered in the direction of integration:
    non-decreasing, or non-increasing when t1 < t0 (when all three are concrete)."""
    if not (is_concrete(ts) and is_concrete(t0) and is_concrete(t1)):
        return  # checked at run time instead
    ts, t0, t1 = np.asarray(ts), float(t0), float(t1)
    if ts.size == 0:
        raise ValueError("SaveAt(ts=...) is empty; give at least one time.")
    if not np.all(np.isfinite(ts)):
        raise ValueError(
            f"SaveAt(ts=...) must be finite; entry {int(np.argmin(np.isfinite(ts)))} is "
            f"{ts[np.argmin(np.isfinite(ts))]}."
        )
    slack = 1e-9 * max(1.0, abs(t0), abs(t1))
    backward = t1 < t0
    lo, hi = (t1, t0) if backward else (t0, t1)
    if ts.min() < lo - slack or ts.max() > hi + slack:
        where = (
            f"[t1, t0] = [{t1:g}, {t0:g}] (t1 < t0: backwards)"
            if backward
            else f"[t0, t1] = [{t0:g}, {t1:g}]"
        )
        raise ValueError(
            f"SaveAt(ts=...) must lie within {where}; got times from {ts.min():g} to {ts.max():g}."
        )
    if backward and np.any(np.diff(ts) > 0):
        raise ValueError(
            "SaveAt(ts=...) must be non-increasing when integrating backwards (t1 < t0): "
            "states are saved in the order they are reached. Sort the times in decreasing "
            "order (e.g. ts[::-1])."
        )
    if not backward and np.any(np.diff(ts) < 0):
        raise ValueError("SaveAt(ts=...) must be non-decreasing; sort the times.")


VELOCITY_MESSAGE = (
    "adjoint=ds.Reversible() needs an acceleration that does not depend on the velocity "
    "(no damping, drag, contact or magnetic force): only then does a backward step undo "
    "a forward one. Use adjoint=ds.Checkpointed() for this system."
)


def velocity_dependence(system, t0, y0) -> jax.Array:
    """Whether d a / d v is non-zero at a shifted velocity: zero for conservative forces.
    A heuristic (a force could depend on the velocity only elsewhere), but it catches
    damping and drag."""
    v_probe = jax.tree.map(lambda v: v + 0.5, y0.v)
    ones = jax.tree.map(jnp.ones_like, y0.v)
    _, dadv = jax.jvp(lambda v: system.acceleration(t0, y0.q, v), (v_probe,), (ones,))
    return jnp.stack([jnp.any(d != 0) for d in jax.tree.leaves(dadv)]).any()


def check_reversible_forces(system, t0, y0) -> None:
    """Refuse `ds.Reversible()` up front for a concrete system whose acceleration
    depends on the velocity (traced systems are checked at run time)."""
    if is_concrete_tree((system, y0, t0)) and bool(velocity_dependence(system, t0, y0)):
        raise ValueError(f"{type(system).__name__}: {VELOCITY_MESSAGE}")


_STABILITY_SLACK = 1.25


def check_stability(system, integrator, dt, y0) -> None:
    """Refuse an explicit step past the stability limit, when it is certain: the system
    gives bounds on its linearisation's spectrum (`spectral_bounds(y0)`: the largest decay
    rate |Re lambda| and oscillation rate |Im lambda|, for concrete parameters) and the
    integrator its stability limits (`stability_decay`, `stability_oscillation`). Past
    them, errors grow like |R|^n: a rollout returns 1e12 where it should decay."""
    bounds = getattr(system, "spectral_bounds", None)
    if not (callable(bounds) and is_concrete(dt) and is_concrete_tree(system)):
        return
    bounds = bounds(y0)
    if bounds is None:
        return
    rates = {"decay": bounds[0], "oscillation": bounds[1]}
    limits = {"decay": integrator.stability_decay, "oscillation": integrator.stability_oscillation}
    if integrator.mechanical:
        limits["decay"] = None  # a mechanical method's limit is on the oscillation
    for kind, rate in rates.items():
        limit = limits[kind]
        # The bounds (Gershgorin) reach 85-100% of the extreme eigenvalue, down to grids
        # of 3 nodes: refused only past 1.25x the limit, the step is certainly unstable.
        if (
            limit is None
            or not rate > 0
            or abs(float(dt)) * float(rate) <= _STABILITY_SLACK * limit
        ):
            continue
        name, integ = type(system).__name__, type(integrator).__name__
        raise ValueError(
            f"dt={abs(float(dt)):g} is past {integ}'s stability limit for {name}: its fastest "
            f"{kind} rate is {float(rate):.4g}, so dt must be <= {limit / float(rate):.4g} "
            f"(dt * rate <= {limit}). Use a smaller dt or an implicit integrator "
            "(ds.Kvaerno5())."
        )
