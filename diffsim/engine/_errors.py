"""Runtime errors that name the step and the batch member.

`eqx.error_if` takes a static message, so it cannot say *which* step or member failed.
`error_if_bad_step` is built the same way (a `pure_callback` that raises, reached only
through a `lax.cond` on a predicate reduced over every `vmap` axis, wrapped in a
`custom_jvp` so gradients pass through untouched) but formats the message from the
runtime values. The callback runs only when something failed, so it costs nothing on
the hot path; under `vmap` it runs once for the whole batch.

Under a user's `jax.jit` the error surfaces as a `JaxRuntimeError` carrying the message;
the eager entry points re-raise it as a plain `SimulationError` (`reraise_clean`).
"""

import functools

import equinox.internal as eqxi
import jax
import jax.lax as lax
import jax.numpy as jnp
import numpy as np

_MARKER = "diffsim.SimulationError: "


class SimulationError(RuntimeError):
    """A rollout failed at run time (non-finite state, too many steps, ...)."""


def _format(bad_step: np.ndarray, t_bad: np.ndarray, what: str, hint: str) -> str:
    bad_step = np.asarray(bad_step)
    t_bad = np.asarray(t_bad)
    failed = np.argwhere(bad_step >= 0)
    first = tuple(failed[0]) if failed.size else ()
    where = f"at step {int(bad_step[first])} (t = {float(t_bad[first]):.6g})"
    if bad_step.ndim == 0:
        member = ""
    else:
        index = first[0] if len(first) == 1 else first
        member = f" in batch member {index} ({len(failed)} of {bad_step.size} members failed)"
    return f"{_MARKER}{what} {where}{member}. {hint}"


@functools.partial(jax.custom_jvp, nondiff_argnums=(3, 4))
def _error_if_bad_step(x, bad_step, t_bad, what, hint):
    def raise_error(bad_step, t_bad):
        raise SimulationError(_format(bad_step, t_bad, what, hint))

    def error_branch(x, bad_step, t_bad):
        struct = jax.ShapeDtypeStruct(bad_step.shape, bad_step.dtype)
        # The callback never returns; its output feeds x so it is not dead code.
        token = jax.pure_callback(raise_error, struct, bad_step, t_bad, vmap_method="broadcast_all")
        return jax.tree.map(lambda a: a + jnp.zeros_like(a) * token.astype(a.dtype).sum(), x)

    pred = eqxi.unvmap_any(bad_step >= 0)
    return lax.cond(pred, error_branch, lambda x, *_: x, x, bad_step, t_bad)


@_error_if_bad_step.defjvp
def _error_if_bad_step_jvp(what, hint, primals, tangents):
    x, bad_step, t_bad = primals
    return _error_if_bad_step(x, bad_step, t_bad, what, hint), tangents[0]


def error_if_bad_step(x, bad_step, t_bad, *, what: str, hint: str):
    """Return `x`, raising `SimulationError` if any `bad_step >= 0`.

    **Arguments:**

    - `x`: a pytree returned unchanged (use the return value, so the check is kept).
    - `bad_step`: int array, `-1` where nothing failed, else the failing step index;
      batched under `vmap` to name the member.
    - `t_bad`: the time of the failure, shaped like `bad_step`.
    - `what`, `hint`: what went wrong and how to fix it (static strings).
    """
    return _error_if_bad_step(x, bad_step, t_bad, what, hint)


def reraise_clean(error: Exception) -> None:
    """If `error` carries a diffsim runtime message, raise it as a `SimulationError`."""
    text = str(error)
    start = text.find(_MARKER)
    if start < 0:
        return
    message = text[start + len(_MARKER) :].splitlines()[0]
    raise SimulationError(message) from None
