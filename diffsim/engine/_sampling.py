"""Batches of systems for ensembles: chosen fields drawn from distributions or set on grids.

Contract: `sample(key, template, n, where=..., dist=...)` and `grid(template, where=...,
values=...)` return a copy of `template` (any pytree: a system, a state, a tuple of them)
whose fields selected by `where` (as in `eqx.tree_at`) hold `n` values along a new leading
axis, and whose other array fields are broadcast to that leading axis too, so the result
is a valid batched argument of `ds.ensemble`. Python-number fields that are not chosen stay
numbers (`ds.ensemble` broadcasts them). The draws are a pure function of the key.

A design (`MonteCarlo`, `LatinHypercube`) places `n` points in the unit cube, one
coordinate per scalar element of the chosen fields; each distribution maps its
coordinates through its inverse CDF. So a Latin hypercube stratifies every marginal,
whatever the distributions.
"""

import abc
import math
from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtri
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray


class AbstractDistribution(eqx.Module):
    """A distribution of one scalar, given by its inverse CDF on `[0, 1)`."""

    @abc.abstractmethod
    def from_unit(self, u: Float[Array, "..."]) -> Float[Array, "..."]:
        """Map uniform draws on `[0, 1)` to draws of this distribution."""


def _check_range(name: str, low, high, positive: bool = False) -> None:
    if isinstance(low, jax.core.Tracer) or isinstance(high, jax.core.Tracer):
        return
    lo, hi = np.asarray(low, float), np.asarray(high, float)
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)) and np.all(lo < hi)):
        raise ValueError(f"{name} needs finite low < high; got low={low!r}, high={high!r}.")
    if positive and not np.all(lo > 0):
        raise ValueError(f"{name} needs low > 0 (it is uniform in log); got low={low!r}.")


class Uniform(AbstractDistribution):
    """Uniform on `[low, high)`.

    **Example:** `ds.sample(key, ds.systems.Lorenz(), 1000, where=lambda s: s.rho, dist=ds.Uniform(0.0, 21.0))`
    """

    low: Float[ArrayLike, "..."]
    high: Float[ArrayLike, "..."]

    def __check_init__(self):
        _check_range("Uniform", self.low, self.high)

    def from_unit(self, u):
        return self.low + (self.high - self.low) * u


class LogUniform(AbstractDistribution):
    """Uniform in $\\log x$ on `[low, high)` (`0 < low < high`): for scale parameters that
    span decades (rates, stiffnesses, damping)."""

    low: Float[ArrayLike, "..."]
    high: Float[ArrayLike, "..."]

    def __check_init__(self):
        _check_range("LogUniform", self.low, self.high, positive=True)

    def from_unit(self, u):
        lo, hi = jnp.log(jnp.asarray(self.low, u.dtype)), jnp.log(jnp.asarray(self.high, u.dtype))
        return jnp.exp(lo + (hi - lo) * u)


class Normal(AbstractDistribution):
    """Normal with mean `mean` and standard deviation `std` (> 0), by the inverse CDF."""

    mean: Float[ArrayLike, "..."]
    std: Float[ArrayLike, "..."]

    def __check_init__(self):
        if not isinstance(self.std, jax.core.Tracer) and not np.all(np.asarray(self.std) > 0):
            raise ValueError(f"Normal(std=...) must be positive; got {self.std!r}.")

    def from_unit(self, u):
        # u = 0 is possible from a uniform draw; its inverse CDF is -inf.
        finfo = jnp.finfo(u.dtype)
        u = jnp.clip(u, finfo.tiny, 1 - finfo.epsneg)
        return self.mean + self.std * ndtri(u)


class AbstractDesign(eqx.Module):
    """How `n` points are placed in the unit cube `[0, 1)^d`."""

    @abc.abstractmethod
    def unit(self, key: PRNGKeyArray, n: int, d: int, dtype: Any) -> Float[Array, "n d"]:
        """`n` points in `d` dimensions."""


class MonteCarlo(AbstractDesign):
    """Independent uniform draws: plain Monte Carlo, error $O(n^{-1/2})$."""

    def unit(self, key, n, d, dtype):
        return jax.random.uniform(key, (n, d), dtype)


class LatinHypercube(AbstractDesign):
    """Latin hypercube sampling (McKay, Beckman and Conover 1979): each coordinate's range
    is cut into `n` equal strata and every stratum holds exactly one point, the strata of
    different coordinates paired by independent random permutations. Every marginal is
    evenly covered, which lowers the variance of means of additive responses.
    $$u_{ij} = \\frac{\\pi_j(i) + v_{ij}}{n}, \\qquad v_{ij} \\sim U[0, 1)$$
    """

    def unit(self, key, n, d, dtype):
        k_perm, k_jitter = jax.random.split(key)
        perms = jax.vmap(lambda k: jax.random.permutation(k, n))(jax.random.split(k_perm, d))
        jitter = jax.random.uniform(k_jitter, (n, d), dtype)
        return (perms.T.astype(dtype) + jitter) / n


def _selected(where: Callable, template: Any, name: str) -> tuple[list, bool]:
    try:
        chosen = where(template)
    except Exception as e:
        raise ValueError(
            f"{name}: where(template) failed with {type(e).__name__}: {e}. Pass a function "
            "that picks fields, e.g. where=lambda s: (s.rho, s.beta)."
        ) from e
    single = not isinstance(chosen, (tuple, list))
    leaves = [chosen] if single else list(chosen)
    for i, leaf in enumerate(leaves):
        if not isinstance(leaf, (float, int, np.ndarray, np.generic, jax.Array)) or isinstance(
            leaf, bool
        ):
            raise TypeError(
                f"{name}: where(template) must pick number or array fields; item {i} is "
                f"{type(leaf).__name__}."
            )
    return leaves, single


def _float_dtype(x) -> Any:
    dtype = jnp.asarray(x).dtype
    return dtype if jnp.issubdtype(dtype, jnp.floating) else jnp.result_type(float)


def _batched(template: Any, where: Callable, single: bool, values: list, n: int) -> Any:
    """Broadcast every array field of `template` to a leading `n`, then put `values` in."""
    broadcast = jax.tree.map(
        lambda x: jnp.broadcast_to(x, (n,) + jnp.shape(x)) if eqx.is_array(x) else x, template
    )
    return eqx.tree_at(where, broadcast, replace=values[0] if single else tuple(values))


def sample(
    key: PRNGKeyArray,
    template: Any,
    n: int,
    *,
    where: Callable[[Any], Any],
    dist: AbstractDistribution | Sequence[AbstractDistribution],
    design: AbstractDesign = MonteCarlo(),
) -> Any:
    """`n` copies of `template` with the fields chosen by `where` drawn at random.

    Every scalar element of a chosen field is one coordinate of the design; an array
    field of shape `s` gets `n` independent draws of shape `s` from its distribution.

    **Arguments:**

    - `key`: a JAX PRNG key; the same key gives the same batch.
    - `template`: the system (or any pytree) to copy.
    - `n`: the number of members (a positive int).
    - `where`: picks the fields, as in `eqx.tree_at`: `lambda s: s.rho` or
      `lambda s: (s.rho, s.beta)`.
    - `dist`: one distribution (`ds.Uniform`, `ds.LogUniform`, `ds.Normal`) per chosen field.
    - `design`: `ds.MonteCarlo()` (default, independent draws) or `ds.LatinHypercube()`.

    **Returns:** the batch: `template` with a leading axis of `n` on every array field.

    **Example:**

    ```python
    systems = ds.sample(
        jax.random.key(0), ds.systems.Lorenz(), 10_000,
        where=lambda s: (s.rho, s.sigma),
        dist=(ds.Uniform(0.0, 21.0), ds.LogUniform(1.0, 100.0)),
        design=ds.LatinHypercube(),
    )
    systems.rho.shape  # (10000,)
    ```
    """
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise ValueError(f"sample: n must be a positive int; got {n!r}.")
    if not isinstance(design, AbstractDesign):
        raise TypeError(
            f"sample: design must be ds.MonteCarlo() or ds.LatinHypercube(); got {design!r}."
        )
    leaves, single = _selected(where, template, "sample")
    dists = [dist] if isinstance(dist, AbstractDistribution) else list(dist)
    if len(dists) != len(leaves) or not all(isinstance(d, AbstractDistribution) for d in dists):
        raise ValueError(
            f"sample: dist must give one distribution (ds.Uniform, ds.LogUniform, ds.Normal) "
            f"per field chosen by where; where chose {len(leaves)} field(s), dist is {dist!r}."
        )
    shapes = [jnp.shape(leaf) for leaf in leaves]
    sizes = [math.prod(s) for s in shapes]
    dtype = jnp.result_type(*[_float_dtype(leaf) for leaf in leaves])
    u = design.unit(key, int(n), sum(sizes), dtype)
    values, start = [], 0
    for d, shape, size, leaf in zip(dists, shapes, sizes, leaves, strict=True):
        cols = u[:, start : start + size].reshape((n,) + shape)
        values.append(d.from_unit(cols).astype(_float_dtype(leaf)))
        start += size
    return _batched(template, where, single, values, int(n))


def grid(template: Any, *, where: Callable[[Any], Any], values: Sequence[ArrayLike]) -> Any:
    """Copies of `template` on the Cartesian grid of the given values of scalar fields.

    With `k` fields of `m_1, ..., m_k` values the batch has `m_1 * ... * m_k` members, the
    last field varying fastest (NumPy `indexing="ij"` order).

    **Arguments:**

    - `template`: the system (or any pytree) to copy.
    - `where`: picks the scalar fields, as in `eqx.tree_at`.
    - `values`: a 1-d array of values per chosen field (a single array for a single field).

    **Example:**

    ```python
    batch = ds.grid(ds.systems.Lorenz(), where=lambda s: (s.rho, s.beta),
                    values=(jnp.linspace(0, 21, 64), jnp.array([1.0, 8 / 3])))
    batch.rho.shape  # (128,)
    ```
    """
    leaves, single = _selected(where, template, "grid")
    axes = [values] if single else list(values)
    if len(axes) != len(leaves):
        raise ValueError(
            f"grid: values must give one 1-d array per field chosen by where; where chose "
            f"{len(leaves)} field(s), values has {len(axes)}."
        )
    arrays = []
    for i, (axis, leaf) in enumerate(zip(axes, leaves, strict=True)):
        if jnp.shape(leaf) != ():
            raise ValueError(
                f"grid: field {i} chosen by where must be a scalar; it has shape {jnp.shape(leaf)}."
            )
        axis = jnp.asarray(axis, _float_dtype(leaf))
        if axis.ndim != 1 or axis.shape[0] == 0:
            raise ValueError(
                f"grid: values[{i}] must be a non-empty 1-d array; got shape {axis.shape}."
            )
        arrays.append(axis)
    mesh = jnp.meshgrid(*arrays, indexing="ij")
    flat = [m.reshape(-1) for m in mesh]
    return _batched(template, where, single, flat, int(flat[0].shape[0]))
