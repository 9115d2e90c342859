"""Histogram and quantile reducers for `ds.ensemble(..., reduce=...)`.

Contract: as every reducer (`_reducers.py`): bounded state per output element, `merge`
associative. `Histogram` counts members in equal-width bins; `Quantiles` reads quantiles
off such a histogram, so their accuracy is the bin width.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int

from ._reducers import AbstractReducer, map_floating, mask_like


class HistogramStats(eqx.Module):
    """What `Histogram` returns, for one output leaf (a tree of these for a pytree output).

    **Fields:** `counts` (`(*shape, bins)`, members per bin of equal width between `low` and
    `high`), `underflow` and `overflow` (members below `low` / above `high`), `low`, `high`
    (broadcast to the element shape), `min`, `max` (exact, over the members counted).

    **Example:** the spread of an Ornstein-Uhlenbeck process at `t = 2`.

    ```python
    ou = ds.systems.OrnsteinUhlenbeck(theta=1.0, sigma=0.5)

    def final(key):
        em = ds.EulerMaruyama(key=key)
        return ds.simulate(ou, jnp.array(0.0), t1=2.0, dt=0.01, integrator=em).ys[-1]

    keys = jax.random.split(jax.random.key(0), 1000)
    h = ds.ensemble(final, keys, reduce=ds.Histogram(low=-1.0, high=1.0, bins=20)).values
    print(h.counts.shape, h.edges.shape)  # (20,) (21,)
    print(h.counts.sum() + h.underflow + h.overflow)  # 1000
    print(h.quantile(jnp.array([0.05, 0.95])))  # about [-0.58, 0.58]: 1.645 std
    ```
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
    y0 = jnp.array([1.0, 1.0, 1.0])

    def final_x(rho):
        return ds.simulate(ds.systems.Lorenz(rho=rho), y0, t1=1.0, dt=0.01).ys[-1, 0]

    hist = ds.Histogram(low=-20.0, high=20.0, bins=40)
    res = ds.ensemble(final_x, jnp.linspace(20.0, 30.0, 256), reduce=hist)
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

        return map_floating(leaf, example)

    def update(self, state, values, mask):
        def leaf(st, x):
            m = mask_like(mask, x)
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
    ou = ds.systems.OrnsteinUhlenbeck(theta=1.0, sigma=0.5)

    def path(key):  # the state every 0.1 s for 2 s: shape (21,)
        em = ds.EulerMaruyama(key=key)
        return ds.simulate(ou, jnp.array(0.0), t1=2.0, dt=0.01, integrator=em,
                           saveat=ds.SaveAt(every=10)).ys

    keys = jax.random.split(jax.random.key(0), 1000)
    bands = ds.Quantiles(q=(0.05, 0.5, 0.95), low=-1.5, high=1.5, bins=300)
    res = ds.ensemble(path, keys, batch_size=250, reduce=bands)
    lower, median, upper = res.values  # each shaped like one member's output
    print(upper[-1])  # about 0.55; exactly 1.645 standard deviations, 0.576
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
