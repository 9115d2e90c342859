"""Batches of systems for ensembles: chosen fields drawn from distributions or set on grids.

Contract: `sample(key, template, n, where=..., dist=...)` and `grid(template, where=...,
values=...)` return a copy of `template` (any pytree: a system, a state, a tuple of them)
whose fields selected by `where` (as in `eqx.tree_at`) hold `n` values along a new leading
axis, and whose other array fields are broadcast to that leading axis too, so the result
is a valid batched argument of `ds.ensemble`. Python-number fields that are not chosen stay
numbers (`ds.ensemble` broadcasts them). The draws are a pure function of the key.

A design (`MonteCarlo`, `LatinHypercube`, `Sobol`) places `n` points in the unit cube, one
coordinate per scalar element of the chosen fields; each distribution maps its
coordinates through its inverse CDF. So a Latin hypercube stratifies every marginal,
whatever the distributions.

Arguments are checked before any drawing: the wrong kind of object (a key that is not a
PRNG key, an `n` that is not an int, a `where` that is not a function, a `dist` that is not
a distribution) is a `TypeError`, a wrong count, shape or value a `ValueError`; each
message starts with the function's name and names the argument.
"""

import abc
import functools
import importlib.resources
import math
from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from ..engine.integrators._sde import check_key
from ._distributions import AbstractDistribution


class AbstractDesign(eqx.Module):
    """How `n` points are placed in the unit cube `[0, 1)^d`: subclasses implement
    `unit(key, n, d, dtype)`, and `ds.sample` maps the points through the distributions.

    **Example:** antithetic variates, each draw $u$ paired with $1 - u$.

    ```python
    class Antithetic(ds.AbstractDesign):
        def unit(self, key, n, d, dtype):  # n even
            u = jax.random.uniform(key, (n // 2, d), dtype)
            return jnp.concatenate([u, jnp.mod(1 - u, 1)])

    batch = ds.sample(jax.random.key(0), ds.systems.Pendulum(length=1.0), 8,
                      where=lambda p: p.length, dist=ds.Uniform(0.5, 1.5),
                      design=Antithetic())
    print(batch.length[:4] + batch.length[4:])  # [2. 2. 2. 2.]: pairs mirrored about 1
    ```
    """

    @abc.abstractmethod
    def unit(self, key: PRNGKeyArray, n: int, d: int, dtype: Any) -> Float[Array, "n d"]:
        """`n` points in `d` dimensions."""


class MonteCarlo(AbstractDesign):
    """Independent uniform draws: plain Monte Carlo, error $O(n^{-1/2})$. The default
    design of `ds.sample`.

    **Example:**

    ```python
    batch = ds.sample(jax.random.key(0), ds.systems.Lorenz(), 8, where=lambda s: s.rho,
                      dist=ds.Uniform(0.0, 8.0), design=ds.MonteCarlo())
    print(jnp.sort(jnp.floor(batch.rho)))  # e.g. [1. 2. 2. 3. 4. 5. 7. 7.]: gaps and clumps
    ```
    """

    def unit(self, key, n, d, dtype):
        return jax.random.uniform(key, (n, d), dtype)


class LatinHypercube(AbstractDesign):
    """Latin hypercube sampling (McKay, Beckman and Conover 1979): each coordinate's range
    is cut into `n` equal strata and every stratum holds exactly one point, the strata of
    different coordinates paired by independent random permutations. Every marginal is
    evenly covered, which lowers the variance of means of additive responses.
    $$u_{ij} = \\frac{\\pi_j(i) + v_{ij}}{n}, \\qquad v_{ij} \\sim U[0, 1)$$

    **Example:**

    ```python
    batch = ds.sample(jax.random.key(0), ds.systems.Lorenz(), 8, where=lambda s: s.rho,
                      dist=ds.Uniform(0.0, 8.0), design=ds.LatinHypercube())
    print(jnp.sort(jnp.floor(batch.rho)))  # [0. 1. 2. 3. 4. 5. 6. 7.]: one per stratum
    ```
    """

    def unit(self, key, n, d, dtype):
        k_perm, k_jitter = jax.random.split(key)
        perms = jax.vmap(lambda k: jax.random.permutation(k, n))(jax.random.split(k_perm, d))
        jitter = jax.random.uniform(k_jitter, (n, d), dtype)
        return (perms.T.astype(dtype) + jitter) / n


# Sobol' direction numbers: the primitive polynomials and initial numbers m_1 ... m_s of
# Joe and Kuo (2008), file new-joe-kuo-6.21201, for the first 1024 dimensions (as shipped
# with SciPy's scipy.stats.qmc.Sobol). `poly` encodes x^s + a_1 x^(s-1) + ... + 1 as bits.
_SOBOL_TABLE = "_sobol_joe_kuo.npz"
_SOBOL_BITS = 32
SOBOL_MAX_DIM = 1024


@functools.lru_cache(maxsize=16)
def _sobol_directions(d: int) -> np.ndarray:
    """`(d, 32)` uint32 direction numbers $v_{j,k} = m_{j,k} 2^{32-k}$ (Bratley and Fox
    1988, Joe and Kuo 2008): the first `s_j` from the table, the rest by the recurrence
    $v_k = a_1 v_{k-1} \\oplus \\dots \\oplus a_{s-1} v_{k-s+1} \\oplus v_{k-s}
    \\oplus (v_{k-s} \\gg s)$."""
    with importlib.resources.files(__package__).joinpath(_SOBOL_TABLE).open("rb") as f:
        table = np.load(f)
        polys, inits = table["poly"][:d].astype(np.int64), table["m"][:d].astype(np.int64)
    L = _SOBOL_BITS
    v = np.zeros((d, L), np.int64)
    v[0] = 1 << np.arange(L - 1, -1, -1)  # the first coordinate: van der Corput
    for j in range(1, d):
        poly = int(polys[j])
        s = poly.bit_length() - 1
        a = (poly >> 1) & ((1 << (s - 1)) - 1)
        for k in range(min(s, L)):
            v[j, k] = int(inits[j, k]) << (L - 1 - k)
        for k in range(s, L):
            x = v[j, k - s] ^ (v[j, k - s] >> s)
            for i in range(1, s):
                if (a >> (s - 1 - i)) & 1:
                    x ^= v[j, k - i]
            v[j, k] = x
    return v.astype(np.uint32)


class Sobol(AbstractDesign):
    """Sobol' points (Sobol' 1967; direction numbers of Joe and Kuo 2008), up to 1024
    dimensions: a low-discrepancy sequence, integration error close to $O(n^{-1})$ for
    smooth responses instead of Monte Carlo's $O(n^{-1/2})$. Use `n` a power of two: the
    first $2^m$ points form a $(t, m, d)$-net, so for example every coordinate has exactly
    one point in each interval $[i/2^m, (i+1)/2^m)$.

    Point $i$ is $x_i = \\bigoplus_k g_k(i)\\, v_k$ (bitwise XOR), $g(i) = i \\oplus (i \\gg
    1)$ the Gray code of $i$, divided by $2^{32}$; float32 keeps the top 24 bits so that no
    point rounds up to 1.

    `scramble=True` (the default) randomises the net with the key, keeping its structure: a
    random lower-triangular binary matrix per coordinate multiplies the direction numbers
    (Matousek's linear matrix scramble) and a random digital shift XORs the points. Every
    point is then uniform on the cube and means are unbiased, so independent keys give error
    bars. `scramble=False` gives the plain sequence, starting at the origin, equal to
    `scipy.stats.qmc.Sobol(d, scramble=False)`.

    **Example:**

    ```python
    systems = ds.sample(jax.random.key(0), ds.systems.Lorenz(), 256,
                        where=lambda s: (s.rho, s.sigma),
                        dist=(ds.Uniform(0.0, 21.0), ds.Uniform(5.0, 15.0)),
                        design=ds.Sobol())
    print(systems.rho.shape, systems.sigma.shape)  # (256,) (256,)
    ```
    """

    scramble: bool = eqx.field(default=True, static=True)

    def __check_init__(self):
        if not isinstance(self.scramble, bool):
            raise TypeError(f"Sobol(scramble=...) must be True or False; got {self.scramble!r}.")

    def unit(self, key, n, d, dtype):
        if d > SOBOL_MAX_DIM:
            raise ValueError(
                f"ds.Sobol() has direction numbers for up to {SOBOL_MAX_DIM} dimensions; "
                f"the chosen fields have {d} scalar elements. Use ds.LatinHypercube() or "
                "ds.MonteCarlo() for more."
            )
        if n > 2**_SOBOL_BITS:
            raise ValueError(f"ds.Sobol() gives at most 2^{_SOBOL_BITS} points; n = {n}.")
        v = jnp.asarray(_sobol_directions(d))  # (d, 32)
        shift = jnp.zeros((d,), jnp.uint32)
        if self.scramble:
            k_matrix, k_shift = jax.random.split(key)
            v = _linear_scramble(k_matrix, v)
            shift = jax.random.bits(k_shift, (d,), jnp.uint32)
        i = jnp.arange(n, dtype=jnp.uint32)
        gray = i ^ (i >> 1)
        x = jnp.broadcast_to(shift, (n, d))
        # 32 XORs of an (n, d) array: no (n, d, 32) intermediate.
        for k in range(_SOBOL_BITS):
            bit = ((gray >> k) & 1).astype(bool)[:, None]
            x = x ^ jnp.where(bit, v[:, k], jnp.uint32(0))
        if jnp.dtype(dtype) == jnp.float64:
            return x.astype(jnp.float64) * 2.0**-32
        mant = jnp.finfo(dtype).nmant + 1  # 24 bits for float32, 11 for float16
        return (x >> (32 - mant)).astype(dtype) * jnp.asarray(2.0**-mant, dtype)


def _linear_scramble(key: PRNGKeyArray, v: Array) -> Array:
    """Multiply each coordinate's direction numbers, as 32-bit columns (most significant
    bit first), by a random lower-triangular binary matrix with a unit diagonal over
    GF(2). Lower triangular: a bit depends on bits at least as significant, so the net
    structure is kept."""
    d, L = v.shape
    lower = jnp.tril(jax.random.bernoulli(key, 0.5, (d, L, L)), k=-1) | jnp.eye(L, dtype=bool)
    weights = jnp.uint32(1) << jnp.arange(L - 1, -1, -1, dtype=jnp.uint32)  # MSB first
    bits = ((v[:, :, None] & weights) != 0).astype(jnp.int32)  # (d, k, c)
    new = jnp.einsum("dkc,drc->dkr", bits, lower.astype(jnp.int32)) & 1
    return jnp.sum(new.astype(jnp.uint32) * weights, axis=-1, dtype=jnp.uint32)


def _check_count(n: Any, name: str) -> int:
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool):
        raise TypeError(f"{name}: n must be a positive int; got {type(n).__name__} {n!r}.")
    if n < 1:
        raise ValueError(f"{name}: n must be a positive int; got {n!r}.")
    return int(n)


def _distributions(dist: Any, leaves: list, name: str) -> list[AbstractDistribution]:
    """One distribution per chosen field, whose parameters broadcast to the field's shape."""
    dists = [dist] if isinstance(dist, AbstractDistribution) else dist
    if not isinstance(dists, (tuple, list)) or not all(
        isinstance(d, AbstractDistribution) for d in dists
    ):
        raise TypeError(
            f"{name}: dist must be a distribution (ds.Uniform, ds.LogUniform, ds.Normal, "
            f"ds.LogNormal, ds.HalfNormal) or a tuple of them, one per field chosen by where; "
            f"got {dist!r}."
        )
    if len(dists) != len(leaves):
        raise ValueError(
            f"{name}: dist must give one distribution (ds.Uniform, ds.LogUniform, ds.Normal, "
            f"ds.LogNormal, ds.HalfNormal) per field chosen by where; where chose "
            f"{len(leaves)} field(s), dist has "
            f"{len(dists)}."
        )
    for i, (d, leaf) in enumerate(zip(dists, leaves, strict=True)):
        shape = jnp.shape(leaf)
        for param in jax.tree.leaves(d):
            try:
                fits = np.broadcast_shapes(jnp.shape(param), shape) == shape
            except ValueError:
                fits = False
            if not fits:
                raise ValueError(
                    f"{name}: dist[{i}] has a parameter of shape {jnp.shape(param)}, which does "
                    f"not fit field {i} chosen by where, of shape {shape}."
                )
    return list(dists)


def _selected(where: Callable, template: Any, name: str) -> tuple[list, bool]:
    if not callable(where):
        raise TypeError(
            f"{name}: where must be a function that picks fields, e.g. where=lambda s: s.rho; "
            f"got {type(where).__name__}."
        )
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
    - `design`: `ds.MonteCarlo()` (default, independent draws), `ds.LatinHypercube()` or
      `ds.Sobol()` (low-discrepancy; use `n` a power of two).

    **Returns:** the batch: `template` with a leading axis of `n` on every array field.

    **Example:**

    ```python
    systems = ds.sample(
        jax.random.key(0), ds.systems.Lorenz(), 1000,
        where=lambda s: (s.rho, s.sigma),
        dist=(ds.Uniform(0.0, 21.0), ds.LogUniform(1.0, 100.0)),
        design=ds.LatinHypercube(),
    )
    print(systems.rho.shape)  # (1000,)
    print(systems.beta)  # 2.666...: fields not chosen are kept
    ```
    """
    check_key(key, "sample: key")
    n = _check_count(n, "sample")
    if not isinstance(design, AbstractDesign):
        raise TypeError(
            "sample: design must be ds.MonteCarlo(), ds.LatinHypercube() or ds.Sobol(); got "
            f"{design!r}."
        )
    leaves, single = _selected(where, template, "sample")
    dists = _distributions(dist, leaves, "sample")
    shapes = [jnp.shape(leaf) for leaf in leaves]
    sizes = [math.prod(s) for s in shapes]
    dtype = jnp.result_type(*[_float_dtype(leaf) for leaf in leaves])
    u = design.unit(key, n, sum(sizes), dtype)
    values, start = [], 0
    for d, shape, size, leaf in zip(dists, shapes, sizes, leaves, strict=True):
        cols = u[:, start : start + size].reshape((n,) + shape)
        values.append(d.from_unit(cols).astype(_float_dtype(leaf)))
        start += size
    return _batched(template, where, single, values, n)


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
    if not single and not isinstance(values, (tuple, list)):
        raise TypeError(
            f"grid: values must be a tuple of 1-d arrays, one per field chosen by where; got "
            f"{type(values).__name__}."
        )
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
        try:
            axis = jnp.asarray(axis, _float_dtype(leaf))
        except (TypeError, ValueError):
            raise TypeError(
                f"grid: values[{i}] must be a 1-d array of numbers; got {type(axis).__name__}."
            ) from None
        if axis.ndim != 1 or axis.shape[0] == 0:
            raise ValueError(
                f"grid: values[{i}] must be a non-empty 1-d array; got shape {axis.shape}."
            )
        if not isinstance(axis, jax.core.Tracer) and not bool(jnp.all(jnp.isfinite(axis))):
            bad = int(jnp.sum(~jnp.isfinite(axis)))
            raise ValueError(f"grid: values[{i}] must be finite; {bad} of its values are not.")
        arrays.append(axis)
    mesh = jnp.meshgrid(*arrays, indexing="ij")
    flat = [m.reshape(-1) for m in mesh]
    return _batched(template, where, single, flat, int(flat[0].shape[0]))
