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
from jaxtyping import Array, Float, Int, PyTree


def _is_none(x) -> bool:
    return x is None


def mask_like(mask, x):
    """`mask` of shape `(chunk,)` broadcast against `x` of shape `(chunk, ...)`."""
    return mask.reshape(mask.shape + (1,) * (x.ndim - 1))


def _count(mask) -> Int[Array, ""]:
    return jnp.sum(mask, dtype=jnp.int32)


def map_floating(f, *trees):
    """`jax.tree.map` in which `None` (a non-floating leaf) stays `None`."""
    return jax.tree.map(lambda *xs: None if xs[0] is None else f(*xs), *trees, is_leaf=_is_none)


class AbstractReducer(eqx.Module):
    """Anything accepted as `ds.ensemble(..., reduce=...)`: a stateless module with
    `init(example) -> state`, `update(state, values, mask) -> state`, an associative
    `merge(a, b) -> state` and `finalize(state) -> statistics` (see the module
    docstring). Non-floating leaves of the output reach it as `None`.

    **Example:**

    ```python
    class Sum(ds.AbstractReducer):  # the sum over members of every output element
        def init(self, example):
            return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), example)

        def update(self, state, values, mask):
            def add(total, x):  # x: (chunk, ...); mask: (chunk,)
                keep = mask.reshape(mask.shape + (1,) * (x.ndim - 1))
                return total + jnp.sum(jnp.where(keep, x, 0), axis=0)

            return jax.tree.map(add, state, values)

        def merge(self, a, b):
            return jax.tree.map(jnp.add, a, b)

        def finalize(self, state):
            return state

    res = ds.ensemble(lambda x: x**2, jnp.arange(4.0), batch_size=3, reduce=Sum())
    print(res.values)  # 14.0 = 0 + 1 + 4 + 9
    ```
    """

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
    `variance` (with `ddof`) and `std`.

    **Example:** Monte Carlo estimates of the Ornstein-Uhlenbeck process at `t = 1`,
    against the exact ones.

    ```python
    ou = ds.systems.OrnsteinUhlenbeck(theta=1.0, sigma=0.5)

    def final(key):
        em = ds.EulerMaruyama(key=key)
        return ds.simulate(ou, jnp.array(1.0), t1=1.0, dt=0.01, integrator=em).ys[-1]

    keys = jax.random.split(jax.random.key(0), 1000)
    stats = ds.ensemble(final, keys, reduce=ds.Moments()).values
    print(stats.count)  # 1000
    print(stats.mean, ou.mean(1.0, 1.0))  # both about 0.37
    print(stats.variance, ou.variance(1.0))  # both about 0.11
    print(stats.std)  # about 0.34
    ```
    """

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
    y0 = jnp.array([1.0, 1.0, 1.0])

    def final_state(rho):
        return ds.simulate(ds.systems.Lorenz(rho=rho), y0, t1=1.0, dt=0.01).ys[-1]

    rhos = jnp.linspace(20.0, 30.0, 64)
    res = ds.ensemble(final_state, rhos, batch_size=16, reduce=ds.Moments(ddof=1))
    res.values.mean, res.values.std  # each of shape (3,)
    ```
    """

    ddof: int = eqx.field(static=True, default=0)

    def __check_init__(self):
        if not isinstance(self.ddof, int) or self.ddof < 0:
            raise ValueError(f"Moments(ddof=...) must be a non-negative int; got {self.ddof!r}.")

    def init(self, example):
        zeros = map_floating(lambda s: jnp.zeros(s.shape, s.dtype), example)
        return jnp.zeros((), jnp.int32), zeros, zeros

    def update(self, state, values, mask):
        n_b = _count(mask)
        n = jnp.maximum(n_b, 1)

        # `where`, not multiplication: a failed member's NaN must not leak in.
        def chunk_mean(x):
            return jnp.sum(jnp.where(mask_like(mask, x), x, 0), axis=0) / n.astype(x.dtype)

        def chunk_m2(x, mean):
            d = jnp.where(mask_like(mask, x), x - mean, 0)
            return jnp.sum(d * d, axis=0)

        means = map_floating(chunk_mean, values)
        return self.merge(state, (n_b, means, map_floating(chunk_m2, values, means)))

    def merge(self, a, b):
        n_a, mean_a, m2_a = a
        n_b, mean_b, m2_b = b
        mean = map_floating(lambda ma, mb: _chan_mean(n_a, ma, n_b, mb), mean_a, mean_b)
        m2 = map_floating(
            lambda ma, qa, mb, qb: _chan_m2(n_a, ma, qa, n_b, mb, qb), mean_a, m2_a, mean_b, m2_b
        )
        return n_a + n_b, mean, m2

    def finalize(self, state):
        n, mean, m2 = state

        def variance(q):
            dof = (n - self.ddof).astype(q.dtype)
            return jnp.where(dof > 0, q / jnp.where(dof > 0, dof, 1), jnp.nan)

        var = map_floating(variance, m2)
        # Double where: the gradient of sqrt at 0 would be inf.
        std = map_floating(lambda v: jnp.where(v > 0, jnp.sqrt(jnp.where(v > 0, v, 1)), v * 0), var)
        return MomentStats(count=n, mean=mean, variance=var, std=std)


# --------------------------------------------------------------------------------------
# Min / max and counts


class MinMaxStats(eqx.Module):
    """What `MinMax` returns: trees like the output (`+inf`/`-inf` when no member counted).

    **Example:** the envelope of pendulums released at angles from 0.1 to 0.5 rad.

    ```python
    pendulum = ds.systems.Pendulum(length=1.0)

    def swing(angle):  # the angle every 0.01 s for 2 s: shape (201,)
        saveat = ds.SaveAt(every=1)
        return ds.simulate(pendulum, pendulum.initial_state(angle), t1=2.0, dt=0.01,
                           saveat=saveat).ys.q

    envelope = ds.ensemble(swing, jnp.linspace(0.1, 0.5, 5), reduce=ds.MinMax()).values
    print(envelope.min.shape)  # (201,): one value per saved time
    print(envelope.max[0], envelope.min[0])  # 0.5 0.1: the release angles
    ```
    """

    min: PyTree[Array]
    max: PyTree[Array]


class MinMax(AbstractReducer):
    """Streaming elementwise minimum and maximum over members.

    **Returns** (from `ensemble`): a `MinMaxStats` with `min` and `max`.

    **Example:**

    ```python
    pendulum = ds.systems.Pendulum(length=1.0)

    def final_angle(angle):
        return ds.simulate(pendulum, pendulum.initial_state(angle), t1=1.0, dt=0.01).ys.q

    res = ds.ensemble(final_angle, jnp.linspace(0.1, 0.5, 5), reduce=ds.MinMax())
    print(res.values.min, res.values.max)  # [-0.49...] [-0.099...]: about half a swing
    ```
    """

    def init(self, example):
        lo = map_floating(lambda s: jnp.full(s.shape, jnp.inf, s.dtype), example)
        hi = map_floating(lambda s: jnp.full(s.shape, -jnp.inf, s.dtype), example)
        return lo, hi

    def update(self, state, values, mask):
        lo = map_floating(
            lambda x: jnp.min(jnp.where(mask_like(mask, x), x, jnp.inf), axis=0), values
        )
        hi = map_floating(
            lambda x: jnp.max(jnp.where(mask_like(mask, x), x, -jnp.inf), axis=0), values
        )
        return self.merge(state, (lo, hi))

    def merge(self, a, b):
        return map_floating(jnp.minimum, a[0], b[0]), map_floating(jnp.maximum, a[1], b[1])

    def finalize(self, state):
        return MinMaxStats(min=state[0], max=state[1])


class CountStats(eqx.Module):
    """What `Count` returns: `total` members counted, and `count` / `fraction` of them for
    which the predicate held (shaped like the predicate's output); `None` for both
    without a predicate.

    **Example:**

    ```python
    pendulum = ds.systems.Pendulum(length=1.0)

    def swing(angle):  # the angle every 0.01 s for 1 s: shape (101,)
        saveat = ds.SaveAt(every=1)
        return ds.simulate(pendulum, pendulum.initial_state(angle), t1=1.0, dt=0.01,
                           saveat=saveat).ys.q

    past_bottom = ds.Count(lambda q: q < 0)
    stats = ds.ensemble(swing, jnp.linspace(0.1, 1.0, 10), reduce=past_bottom).values
    print(stats.total)  # 10
    print(stats.count.shape)  # (101,): per saved time
    print(stats.fraction[0], stats.fraction[-1])  # 0.0 1.0: after about half a period
    ```
    """

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
    pendulum = ds.systems.Pendulum(length=1.0)

    def final_angle(omega0):  # launched from the bottom at omega0 rad/s
        y0 = pendulum.initial_state(0.0, omega0)
        return ds.simulate(pendulum, y0, t1=2.0, dt=0.01).ys.q[-1]

    over_the_top = ds.Count(lambda q: jnp.abs(q) > jnp.pi)
    res = ds.ensemble(final_angle, jnp.linspace(0.0, 8.0, 101), reduce=over_the_top)
    print(res.values.count)  # 22: those launched faster than 2 sqrt(g / L) = 6.26 rad/s
    print(res.values.fraction)  # 0.2178...
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
        hits = jnp.where(mask_like(mask, hits), hits, False)
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
