"""Dense output: the interpolants behind `traj.evaluate(t)` (private).

Contract: an interpolation is an `eqx.Module` (a pytree: it is batched by `vmap` like the
states, and differentiated like them) with `evaluate(t)`, which takes an array `t` of any
shape and returns a pytree like the state with leading axes `t.shape`. Times outside the
range of integration are clamped to it (the value there is the end state, and the
derivative with respect to `t` is zero outside). Backward rollouts (`t1 < t0`) work the
same way; their knots decrease.

- `HermiteInterpolation`: for fixed-step rollouts, the piecewise cubic Hermite
  interpolant through the state and its time derivative at every knot: $O(h^4)$ error,
  $C^1$ in time, exact for cubic solutions. Knots may repeat (a zero-length segment):
  at a repeated time the *last* knot of the group is taken, i.e. the right-hand limit. An
  event's rollout emits the state before and after a jump at the same time, and repeats
  its final knot after a terminal event; this rule handles both.
- `DiffraxInterpolation`: for adaptive rollouts, diffrax's own dense output (the solver's
  interpolant of each accepted step).
"""

from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, PyTree


def _clamp(t, lo, hi):
    # `where` rather than `jnp.clip`: at an end point itself the derivative with respect
    # to t is the interpolant's one-sided one, not half of it.
    return jnp.where(t < lo, lo, jnp.where(t > hi, hi, t))


def _over_times(fn, t, dtype) -> PyTree:
    """`fn` (a scalar time -> pytree) mapped over an array of times of any shape."""
    t = jnp.asarray(t, dtype)
    out = jax.vmap(fn)(t.reshape(-1))
    return jax.tree.map(lambda x: x.reshape(t.shape + x.shape[1:]), out)


class HermiteInterpolation(eqx.Module):
    """The piecewise cubic Hermite interpolant through knots `(ts[i], ys[i], fs[i])`.

    On the segment $[t_i, t_{i+1}]$, with $h = t_{i+1} - t_i$ (negative for a backward
    rollout) and $s = (t - t_i) / h$,

    $$y(t) = (2s^3 - 3s^2 + 1)\\, y_i + (s^3 - 2s^2 + s)\\, h f_i
            + (-2s^3 + 3s^2)\\, y_{i+1} + (s^3 - s^2)\\, h f_{i+1}.$$

    The segment of `t` is `i = searchsorted(ts, t, side="right") - 1` clipped to
    `[0, m - 1]` (on `-ts` when the knots decrease), so a time equal to a repeated knot
    takes the segment after the last copy. A zero-length segment is never chosen, except
    at the end of repeated final knots, where it gives the (common) final state.

    **Fields:**

    - `ts`: `(m + 1,)` knot times, monotone (non-decreasing or non-increasing), `m >= 1`.
    - `ys`: the states at the knots, a pytree with a leading `m + 1` axis.
    - `fs`: their time derivatives, like `ys`.
    """

    ts: Float[Array, " knots"]
    ys: PyTree[Array]
    fs: PyTree[Array]

    @eqx.filter_jit
    def evaluate(self, t: ArrayLike) -> PyTree:
        """The interpolant at times `t` (any shape; clamped to the knots' range)."""
        return _over_times(self._evaluate_scalar, t, self.ts.dtype)

    def _evaluate_scalar(self, t):
        ts = self.ts
        m = ts.shape[0] - 1
        if m == 0:  # a single knot: a constant
            return jax.tree.map(lambda y: y[0], self.ys)
        sign = jnp.where(ts[-1] < ts[0], -1, 1).astype(ts.dtype)
        forward_ts = sign * ts  # non-decreasing either way
        tau = _clamp(sign * t, forward_ts[0], forward_ts[-1])
        i = jnp.clip(jnp.searchsorted(forward_ts, tau, side="right") - 1, 0, m - 1)
        h = ts[i + 1] - ts[i]
        empty = h == 0
        # Double where: a zero-length segment (the end of repeated final knots) gives its
        # right end, with finite gradients.
        s = jnp.where(empty, 1.0, (sign * tau - ts[i]) / jnp.where(empty, 1.0, h))
        s2, s3 = s * s, s * s * s
        c_y0 = 2 * s3 - 3 * s2 + 1
        c_f0 = (s3 - 2 * s2 + s) * h
        c_y1 = -2 * s3 + 3 * s2
        c_f1 = (s3 - s2) * h

        def leaf(y, f):
            return c_y0 * y[i] + c_f0 * f[i] + c_y1 * y[i + 1] + c_f1 * f[i + 1]

        return jax.tree.map(leaf, self.ys, self.fs)


def hermite_from_states(system: Any, ts: Array, ys: PyTree) -> HermiteInterpolation:
    """The Hermite interpolant of a fixed-step rollout's states `ys` at times `ts`, with
    derivatives `system.vector_field(t, y)` at each (one evaluation per knot)."""
    fs = jax.vmap(system.vector_field)(ts, ys)
    return HermiteInterpolation(ts=ts, ys=ys, fs=fs)


class DiffraxInterpolation(eqx.Module):
    """diffrax's dense output of an adaptive solve (`diffrax.SaveAt(dense=True)`).

    **Fields:** `interpolation`, the solution's `diffrax.DenseInterpolation`.
    """

    interpolation: diffrax.DenseInterpolation

    @eqx.filter_jit
    def evaluate(self, t: ArrayLike) -> PyTree:
        """The solver's interpolant at times `t` (any shape; clamped to `[t0, t1]`)."""
        return _over_times(self._evaluate_scalar, t, jnp.result_type(self.interpolation.t0))

    def _evaluate_scalar(self, t):
        a, b = self.interpolation.t0, self.interpolation.t1
        return self.interpolation.evaluate(_clamp(t, jnp.minimum(a, b), jnp.maximum(a, b)))
