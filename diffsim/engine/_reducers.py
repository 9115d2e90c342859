"""Streaming statistics over an ensemble: reducers for `ds.ensemble(..., reduce=...)`.

Contract: a reducer is a stateless `eqx.Module` with

- `init(example) -> state`: `example` is one member's output (a pytree of
  `jax.ShapeDtypeStruct`, with `None` where a leaf is not floating);
- `update(state, values, mask) -> state`: fold in a chunk, `values` being the members'
  outputs with a leading chunk axis and `mask` a boolean `(chunk,)` array of the members
  that count (failed members and padding do not);
- `merge(a, b) -> state`: the state of the union of two disjoint sets of members (chunks
  on different devices); associative, so the order of chunks changes results only by
  rounding;
- `finalize(state) -> statistics`.

Every floating leaf of the output is reduced elementwise over members: a trajectory of
shape `(n_saved, 3)` gets a mean of shape `(n_saved, 3)`. Integer and boolean leaves (step
counts, result codes) are left out (`None`). The state never holds more than a fixed
number of values per output element, so memory does not grow with the number of members.
"""

import abc
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int, PyTree


def _is_none(x) -> bool:
    return x is None


def _mask_like(mask, x):
    """`mask` of shape `(chunk,)` broadcast against `x` of shape `(chunk, ...)`."""
    return mask.reshape(mask.shape + (1,) * (x.ndim - 1))


def _count(mask) -> Int[Array, ""]:
    return jnp.sum(mask, dtype=jnp.int32)


def _map(f, *trees):
    """`jax.tree.map` in which `None` (a non-floating leaf) stays `None`."""
    return jax.tree.map(lambda *xs: None if xs[0] is None else f(*xs), *trees, is_leaf=_is_none)


class AbstractReducer(eqx.Module):
    """Anything accepted as `ds.ensemble(..., reduce=...)`; see the module docstring."""

    @abc.abstractmethod
    def init(self, example: PyTree[jax.ShapeDtypeStruct | None]) -> Any:
        """The state before any member."""

    @abc.abstractmethod
    def update(self, state: Any, values: PyTree, mask: Array) -> Any:
        """Fold in a chunk of members (leading axis) where `mask` is true."""

    @abc.abstractmethod
    def merge(self, a: Any, b: Any) -> Any:
        """Combine the states of two disjoint sets of members."""

    @abc.abstractmethod
    def finalize(self, state: Any) -> Any:
        """The statistics."""


# --------------------------------------------------------------------------------------
# Moments


def _fraction_b(n_a, n_b, dtype):
    n = n_a + n_b
    return jnp.where(n > 0, n_b.astype(dtype) / jnp.maximum(n, 1).astype(dtype), 0)


def _chan_mean(n_a, mean_a, n_b, mean_b):
    """Chan, Golub and LeVeque (1979): the mean of the union of two disjoint sets."""
    return mean_a + (mean_b - mean_a) * _fraction_b(n_a, n_b, mean_a.dtype)


def _chan_m2(n_a, mean_a, m2_a, n_b, mean_b, m2_b):
    """... and its sum of squared deviations, stable where a sum of squares is not."""
    delta = mean_b - mean_a
    frac = _fraction_b(n_a, n_b, mean_a.dtype)
    return m2_a + m2_b + delta * delta * n_a.astype(mean_a.dtype) * frac


class MomentStats(eqx.Module):
    """What `Moments` returns: `count` members, and trees like the output for `mean`,
    `variance` (with `ddof`) and `std`."""

    count: Int[Array, ""]
    mean: PyTree[Array]
    variance: PyTree[Array]
    std: PyTree[Array]


class Moments(AbstractReducer):
    """Streaming mean and variance of every output element over members.

    Each chunk's mean $\\bar x_B$ and sum of squared deviations $M_B = \\sum (x - \\bar x_B)^2$
    are computed in two passes over the chunk, then merged into the running ones
    (Chan, Golub and LeVeque 1979, the parallel form of Welford's update):
    $$n = n_A + n_B, \\quad \\delta = \\bar x_B - \\bar x_A, \\quad
      \\bar x = \\bar x_A + \\delta \\frac{n_B}{n}, \\quad
      M = M_A + M_B + \\delta^2 \\frac{n_A n_B}{n}, \\quad
      \\operatorname{Var} = \\frac{M}{n - \\text{ddof}}.$$
    No sum of squares is ever formed, so a large mean does not cancel the variance.

    **Arguments:**

    - `ddof`: the variance divides by `n - ddof` (0, like NumPy; 1 for the unbiased one).

    **Returns** (from `ensemble`): a `MomentStats` with `count`, `mean`, `variance`, `std`.

    **Example:**

    ```python
    res = ds.ensemble(lambda rho: run(rho).ys[-1], rhos, batch_size=4096, reduce=ds.Moments())
    res.values.mean, res.values.std   # each of shape (3,)
    ```
    """

    ddof: int = eqx.field(static=True, default=0)

    def __check_init__(self):
        if not isinstance(self.ddof, int) or self.ddof < 0:
            raise ValueError(f"Moments(ddof=...) must be a non-negative int; got {self.ddof!r}.")

    def init(self, example):
        zeros = _map(lambda s: jnp.zeros(s.shape, s.dtype), example)
        return jnp.zeros((), jnp.int32), zeros, zeros

    def update(self, state, values, mask):
        n_b = _count(mask)
        n = jnp.maximum(n_b, 1)

        # `where`, not multiplication: a failed member's NaN must not leak in.
        def chunk_mean(x):
            return jnp.sum(jnp.where(_mask_like(mask, x), x, 0), axis=0) / n.astype(x.dtype)

        def chunk_m2(x, mean):
            d = jnp.where(_mask_like(mask, x), x - mean, 0)
            return jnp.sum(d * d, axis=0)

        means = _map(chunk_mean, values)
        return self.merge(state, (n_b, means, _map(chunk_m2, values, means)))

    def merge(self, a, b):
        n_a, mean_a, m2_a = a
        n_b, mean_b, m2_b = b
        mean = _map(lambda ma, mb: _chan_mean(n_a, ma, n_b, mb), mean_a, mean_b)
        m2 = _map(
            lambda ma, qa, mb, qb: _chan_m2(n_a, ma, qa, n_b, mb, qb), mean_a, m2_a, mean_b, m2_b
        )
        return n_a + n_b, mean, m2

    def finalize(self, state):
        n, mean, m2 = state

        def variance(q):
            dof = (n - self.ddof).astype(q.dtype)
            return jnp.where(dof > 0, q / jnp.where(dof > 0, dof, 1), jnp.nan)

        var = _map(variance, m2)
        # Double where: the gradient of sqrt at 0 would be inf.
        std = _map(lambda v: jnp.where(v > 0, jnp.sqrt(jnp.where(v > 0, v, 1)), v * 0), var)
        return MomentStats(count=n, mean=mean, variance=var, std=std)


# --------------------------------------------------------------------------------------
# Min / max and counts


class MinMaxStats(eqx.Module):
    """What `MinMax` returns: trees like the output (`+inf`/`-inf` when no member counted)."""

    min: PyTree[Array]
    max: PyTree[Array]


class MinMax(AbstractReducer):
    """Streaming elementwise minimum and maximum over members.

    **Example:** `ds.ensemble(fn, xs, reduce=ds.MinMax()).values.max`
    """

    def init(self, example):
        lo = _map(lambda s: jnp.full(s.shape, jnp.inf, s.dtype), example)
        hi = _map(lambda s: jnp.full(s.shape, -jnp.inf, s.dtype), example)
        return lo, hi

    def update(self, state, values, mask):
        lo = _map(lambda x: jnp.min(jnp.where(_mask_like(mask, x), x, jnp.inf), axis=0), values)
        hi = _map(lambda x: jnp.max(jnp.where(_mask_like(mask, x), x, -jnp.inf), axis=0), values)
        return self.merge(state, (lo, hi))

    def merge(self, a, b):
        return _map(jnp.minimum, a[0], b[0]), _map(jnp.maximum, a[1], b[1])

    def finalize(self, state):
        return MinMaxStats(min=state[0], max=state[1])


class CountStats(eqx.Module):
    """What `Count` returns: `total` members counted, and `count` / `fraction` of them for
    which the predicate held (shaped like the predicate's output)."""

    total: Int[Array, ""]
    count: Int[Array, "..."] | None
    fraction: Float[Array, "..."] | None


class Count(AbstractReducer):
    """Count members, optionally those for which `predicate` holds: the estimate of a
    probability, a rare-event rate.

    **Arguments:**

    - `predicate`: `None` (count members) or a function of one member's output (floating
      leaves only; others are `None`) returning a boolean array of any shape; counted
      elementwise. Static: define it once, so that repeated calls do not recompile.

    **Example:**

    ```python
    escaped = ds.Count(lambda y: jnp.abs(y[-1, 0]) > 10.0)
    res = ds.ensemble(fn, rhos, reduce=escaped)
    res.values.fraction        # the fraction of members whose final x left [-10, 10]
    ```
    """

    predicate: Callable[[Any], Any] | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        if self.predicate is not None and not callable(self.predicate):
            raise TypeError(f"Count(predicate=...) must be callable; got {self.predicate!r}.")

    def init(self, example):
        total = jnp.zeros((), jnp.int32)
        if self.predicate is None:
            return total, None
        out = jax.eval_shape(self.predicate, example)
        return total, jnp.zeros(out.shape, jnp.int32)

    def update(self, state, values, mask):
        total, count = state
        if self.predicate is None:
            return total + _count(mask), None
        hits = jax.vmap(self.predicate)(values)
        hits = jnp.where(_mask_like(mask, hits), hits, False)
        return total + _count(mask), count + jnp.sum(hits, axis=0, dtype=jnp.int32)

    def merge(self, a, b):
        if self.predicate is None:
            return a[0] + b[0], None
        return a[0] + b[0], a[1] + b[1]

    def finalize(self, state):
        total, count = state
        if count is None:
            return CountStats(total=total, count=None, fraction=None)
        fraction = count / jnp.maximum(total, 1).astype(jnp.result_type(float))
        return CountStats(
            total=total, count=count, fraction=jnp.where(total > 0, fraction, jnp.nan)
        )


# --------------------------------------------------------------------------------------
# Histograms and quantiles


class HistogramStats(eqx.Module):
    """What `Histogram` returns, for one output leaf (a tree of these for a pytree output).

    **Fields:** `counts` (`(*shape, bins)`, members per bin of equal width between `low` and
    `high`), `underflow` and `overflow` (members below `low` / above `high`), `low`, `high`
    (broadcast to the element shape), `min`, `max` (exact, over the members counted).
    """

    counts: Int[Array, "... bins"]
    underflow: Int[Array, "..."]
    overflow: Int[Array, "..."]
    low: Float[Array, "..."]
    high: Float[Array, "..."]
    min: Float[Array, "..."]
    max: Float[Array, "..."]

    @property
    def edges(self) -> Float[Array, "... bins+1"]:
        """The bin edges, `(*shape, bins + 1)`."""
        bins = self.counts.shape[-1]
        u = jnp.linspace(0.0, 1.0, bins + 1, dtype=self.low.dtype)
        return self.low[..., None] + (self.high - self.low)[..., None] * u

    def quantile(self, q: ArrayLike) -> Float[Array, "... q"]:
        """Quantiles from the histogram, each within one bin width of the exact (NumPy
        `linear`) quantile when the order statistics around it lie in `[low, high]`, and
        within `low - min` (or `max - high`) when they lie beyond. `q` is a scalar or 1-d;
        the result has `q`'s shape prepended to the element shape."""
        return _histogram_quantile(self, jnp.asarray(q, self.low.dtype))


@jax.jit
def _histogram_quantile(h: HistogramStats, q):
    """NumPy's `linear` quantile interpolates between the order statistics $x_{(j)}$ and
    $x_{(j+1)}$ around the rank $r = q (n - 1)$, $j = \\lfloor r \\rfloor$. Each is estimated
    inside the bin that holds it (the first whose cumulative count exceeds its rank),
    taking that bin's members as evenly spread at the centres of equal sub-intervals; so
    each is off by less than its bin's width, and so is the interpolation. The smallest
    and largest order statistics are the exact min and max."""
    bins = h.counts.shape[-1]
    counts = jnp.concatenate([h.underflow[..., None], h.counts, h.overflow[..., None]], -1)
    n = counts.sum(-1)
    width = (h.high - h.low) / bins
    j = jnp.arange(bins, dtype=h.low.dtype)
    inner_left = h.low[..., None] + j * width[..., None]
    lefts = jnp.concatenate([h.min[..., None], inner_left, h.high[..., None]], -1)
    widths = jnp.concatenate(
        [
            (h.low - h.min)[..., None],
            jnp.broadcast_to(width[..., None], inner_left.shape),
            (h.max - h.high)[..., None],
        ],
        -1,
    )
    cum = jnp.cumsum(counts, -1)
    below_all = jnp.concatenate([jnp.zeros_like(cum[..., :1]), cum[..., :-1]], -1)
    dtype = h.low.dtype

    def order_statistic(rank):  # rank: integer-valued float, shaped like an element
        k = jnp.minimum(jnp.sum(cum <= rank[..., None], -1), bins + 1)

        def take(a):
            return jnp.take_along_axis(a, k[..., None], -1)[..., 0]

        within = rank - take(below_all).astype(dtype)
        c = jnp.maximum(take(counts), 1).astype(dtype)
        value = take(lefts) + (within + 0.5) / c * take(widths)
        value = jnp.where(rank <= 0, h.min, jnp.where(rank >= (n - 1).astype(dtype), h.max, value))
        return jnp.clip(value, h.min, h.max)

    def one(qi):
        r = qi * (n - 1).astype(dtype)
        lo = jnp.floor(r)
        hi = jnp.minimum(lo + 1, (n - 1).astype(dtype))
        v_lo, v_hi = order_statistic(lo), order_statistic(hi)
        value = v_lo + (r - lo) * (v_hi - v_lo)
        return jnp.where(n > 0, value, jnp.nan)

    if q.ndim == 0:
        return one(q)
    return jax.vmap(one)(q)


class Histogram(AbstractReducer):
    """Streaming histogram of every output element over members, with fixed bins.

    `bins` bins of equal width between `low` and `high` (scalars, or arrays broadcasting
    against each output leaf), plus an underflow and an overflow count and the exact
    min and max. The bins are fixed before the first member is seen, so that chunks and
    devices merge by adding counts; run a small pilot ensemble to choose the range.

    **Arguments:**

    - `low`, `high`: the range of the bins (`low < high`).
    - `bins`: the number of bins (a positive int).

    **Returns** (from `ensemble`): a tree like the output of `HistogramStats`, whose
    `quantile(q)` estimates quantiles.

    **Example:**

    ```python
    res = ds.ensemble(fn, rhos, reduce=ds.Histogram(low=-20.0, high=20.0, bins=400))
    res.values.counts, res.values.quantile(jnp.array([0.05, 0.5, 0.95]))
    ```
    """

    low: Float[ArrayLike, "..."]
    high: Float[ArrayLike, "..."]
    bins: int = eqx.field(static=True, default=100)

    def __check_init__(self):
        if not isinstance(self.bins, (int, np.integer)) or self.bins < 1:
            raise ValueError(f"Histogram(bins=...) must be a positive int; got {self.bins!r}.")
        if not isinstance(self.low, jax.core.Tracer) and not isinstance(self.high, jax.core.Tracer):
            lo, hi = np.asarray(self.low, float), np.asarray(self.high, float)
            if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)) and np.all(lo < hi)):
                raise ValueError(
                    f"Histogram needs finite low < high; got low={self.low!r}, high={self.high!r}."
                )

    def _edges(self, shape, dtype):
        lo = jnp.broadcast_to(jnp.asarray(self.low, dtype), shape)
        hi = jnp.broadcast_to(jnp.asarray(self.high, dtype), shape)
        return lo, hi

    def init(self, example):
        def leaf(s):
            return _HistogramState(
                counts=jnp.zeros(s.shape + (self.bins + 2,), jnp.int32),
                min=jnp.full(s.shape, jnp.inf, s.dtype),
                max=jnp.full(s.shape, -jnp.inf, s.dtype),
            )

        return _map(leaf, example)

    def update(self, state, values, mask):
        def leaf(st, x):
            m = _mask_like(mask, x)
            lo, hi = self._edges(x.shape[1:], x.dtype)
            u = (x - lo) / (hi - lo) * self.bins
            # Bin 0 is the underflow, bins + 1 the overflow; `high` itself goes in the last
            # bin (as in NumPy). NaNs only occur in members that do not count.
            k = jnp.clip(jnp.floor(jnp.where(m, u, 0)), -1, self.bins).astype(jnp.int32) + 1
            k = jnp.where(x == hi, self.bins, k)
            chunk, size = x.shape[0], int(np.prod(x.shape[1:], dtype=int))
            element = jnp.broadcast_to(jnp.arange(size), (chunk, size))
            weight = jnp.broadcast_to(m, x.shape).astype(jnp.int32).reshape(chunk, size)
            flat = st.counts.reshape(size, self.bins + 2)
            flat = flat.at[element, k.reshape(chunk, size)].add(weight)
            return _HistogramState(
                counts=flat.reshape(st.counts.shape),
                min=jnp.minimum(st.min, jnp.min(jnp.where(m, x, jnp.inf), axis=0)),
                max=jnp.maximum(st.max, jnp.max(jnp.where(m, x, -jnp.inf), axis=0)),
            )

        return _map_states(leaf, state, values)

    def merge(self, a, b):
        def leaf(sa, sb):
            return _HistogramState(
                counts=sa.counts + sb.counts,
                min=jnp.minimum(sa.min, sb.min),
                max=jnp.maximum(sa.max, sb.max),
            )

        return _map_states(leaf, a, b)

    def finalize(self, state):
        def leaf(st):
            lo, hi = self._edges(st.min.shape, st.min.dtype)
            return HistogramStats(
                counts=st.counts[..., 1:-1],
                underflow=st.counts[..., 0],
                overflow=st.counts[..., -1],
                low=lo,
                high=hi,
                min=st.min,
                max=st.max,
            )

        return _map_states(leaf, state)


class _HistogramState(eqx.Module):
    counts: Int[Array, "... bins+2"]
    min: Float[Array, "..."]
    max: Float[Array, "..."]


def _map_states(f, state, *rest):
    """Map over the per-leaf `_HistogramState`s of a state tree (`None` stays `None`)."""
    return jax.tree.map(
        lambda st, *xs: None if st is None else f(st, *xs),
        state,
        *rest,
        is_leaf=lambda s: s is None or isinstance(s, (_HistogramState, HistogramStats)),
    )


class Quantiles(AbstractReducer):
    """Streaming quantiles of every output element over members, from a `Histogram`.

    Each estimate is within one bin width, `(high - low) / bins`, of the exact quantile
    (NumPy's default `linear` method) when it lies in `[low, high]`. Memory is
    `bins + 2` counts per output element, whatever the number of members.

    **Arguments:**

    - `q`: the quantiles wanted, in `[0, 1]` (a sequence of floats).
    - `low`, `high`, `bins`: the histogram's range and resolution (see `Histogram`).

    **Returns** (from `ensemble`): a tree like the output, each leaf with a leading axis
    of `len(q)`.

    **Example:**

    ```python
    bands = ds.Quantiles(q=(0.05, 0.5, 0.95), low=-30.0, high=30.0, bins=1000)
    res = ds.ensemble(fn, rhos, batch_size=10_000, reduce=bands)
    lower, median, upper = res.values          # each shaped like one member's output
    ```
    """

    q: tuple[float, ...] = eqx.field(
        static=True, converter=lambda q: tuple(float(x) for x in np.ravel(q))
    )
    low: Float[ArrayLike, "..."]
    high: Float[ArrayLike, "..."]
    bins: int = eqx.field(static=True, default=1000)

    def __check_init__(self):
        if not self.q or not all(0.0 <= x <= 1.0 for x in self.q):
            raise ValueError(
                f"Quantiles(q=...) must be non-empty and within [0, 1]; got {self.q!r}."
            )
        self._histogram()  # checks low, high and bins

    def _histogram(self) -> Histogram:
        return Histogram(low=self.low, high=self.high, bins=self.bins)

    def init(self, example):
        return self._histogram().init(example)

    def update(self, state, values, mask):
        return self._histogram().update(state, values, mask)

    def merge(self, a, b):
        return self._histogram().merge(a, b)

    def finalize(self, state):
        stats = self._histogram().finalize(state)
        return _map_states(lambda h: h.quantile(jnp.asarray(self.q, h.low.dtype)), stats)


def check_reducers(reduce: Any) -> None:
    """Raise a `TypeError` unless `reduce` is a reducer or a pytree (dict, tuple) of them."""
    leaves = jax.tree.leaves(reduce, is_leaf=lambda x: isinstance(x, AbstractReducer))
    bad = [x for x in leaves if not isinstance(x, AbstractReducer)]
    if not leaves or bad:
        raise TypeError(
            "reduce must be None, a reducer (ds.Moments(), ds.MinMax(), ds.Count(...), "
            "ds.Histogram(...), ds.Quantiles(...)) or a dict/tuple of them; got "
            f"{reduce!r}."
        )


def is_reducer(x) -> bool:
    return isinstance(x, AbstractReducer)
