"""Distributions of one scalar, for `ds.sample` and as priors for `ds.posterior`.

Contract: `from_unit(u)` maps a point `u` of `[0, 1)` to a draw (the inverse CDF); a
design places the points, so a stratified design stratifies every distribution's
marginal. `log_prob(x)` is the log density, elementwise, `-inf` outside the support, in
the dtype of `x` and differentiable in `x` and the parameters; `support` is `(lo, hi)`,
Python floats or `None` for an open or unknown side. Concrete parameters are checked when
a distribution is made (numbers, shapes that broadcast, finite, `low < high`, `std > 0`):
a `TypeError` or `ValueError` naming the parameter. Traced parameters (a distribution
built under `jit`) are not checked.
"""

import abc
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtri
from jaxtyping import Array, ArrayLike, Float

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


class AbstractDistribution(eqx.Module):
    """A distribution of one scalar, given by its inverse CDF on `[0, 1)`: subclasses
    implement `from_unit(u)`, and every design (`ds.MonteCarlo`, `ds.LatinHypercube`,
    `ds.Sobol`) then works with them. To serve as a prior in `ds.posterior` a subclass
    also implements `log_prob(x)`, and `support` if it is not the whole real line.

    **Example:**

    ```python
    class Exponential(ds.AbstractDistribution):
        rate: float

        def from_unit(self, u):
            return -jnp.log1p(-u) / self.rate

        def log_prob(self, x):
            x = jnp.asarray(x, float)
            return jnp.where(x >= 0, jnp.log(self.rate) - self.rate * x, -jnp.inf)

        @property
        def support(self):
            return (0.0, None)

    batch = ds.sample(jax.random.key(0), ds.systems.Pendulum(length=1.0), 1000,
                      where=lambda p: p.damping, dist=Exponential(rate=10.0))
    print(batch.damping.mean())  # about 0.1 = 1 / rate
    print(Exponential(rate=10.0).log_prob(jnp.array([-1.0, 0.0])))  # [     -inf 2.3025851]
    ```
    """

    @abc.abstractmethod
    def from_unit(self, u: Float[Array, "..."]) -> Float[Array, "..."]:
        """Map uniform draws on `[0, 1)` to draws of this distribution."""

    def log_prob(self, x: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
        """The log probability density at `x`, elementwise (the parameters broadcast
        against `x`), `-inf` outside the support, in the floating dtype of `x`, and
        differentiable in `x` and in the parameters (under `jit`, `vmap` and `grad`).

        The base class has none: a subclass that only implements `from_unit` works with
        `ds.sample`, and raises `NotImplementedError` here.
        """
        raise NotImplementedError(
            f"{type(self).__name__} has no log density: implement "
            f"{type(self).__name__}.log_prob(x) (the log probability density at x) to use "
            "it as a prior in ds.posterior; from_unit alone is enough for ds.sample."
        )

    @property
    def support(self) -> tuple[float | None, float | None]:
        """`(lo, hi)`: the interval where the density can be positive, each side a Python
        float or `None` when open (or unknown, for traced parameters). With array
        parameters, the widest bounds: the least `lo` and the greatest `hi`."""
        return (None, None)


def _concrete(owner: str, name: str, value) -> np.ndarray | None:
    """`value` as a float array, `None` when traced (checked at run time, never here), or
    a `TypeError` naming the argument."""
    if isinstance(value, jax.core.Tracer):
        return None
    try:
        return np.asarray(value, float)
    except (TypeError, ValueError):
        raise TypeError(
            f"{owner}({name}=...) must be a number or an array of numbers; got "
            f"{type(value).__name__}."
        ) from None


def _check_pair(owner: str, names: tuple[str, str], a, b) -> tuple | None:
    """Both parameters as float arrays of shapes that broadcast, or `None` if traced."""
    x, y = _concrete(owner, names[0], a), _concrete(owner, names[1], b)
    if x is None or y is None:
        return None
    try:
        np.broadcast_shapes(x.shape, y.shape)
    except ValueError:
        raise ValueError(
            f"{owner}: {names[0]} and {names[1]} have shapes {x.shape} and {y.shape}, which "
            "do not broadcast; give one value each or arrays of the field's shape."
        ) from None
    return x, y


def _check_range(name: str, low, high, positive: bool = False) -> None:
    pair = _check_pair(name, ("low", "high"), low, high)
    if pair is None:
        return
    lo, hi = pair
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)) and np.all(lo < hi)):
        raise ValueError(f"{name} needs finite low < high; got low={low!r}, high={high!r}.")
    if positive and not np.all(lo > 0):
        raise ValueError(f"{name} needs low > 0 (it is uniform in log); got low={low!r}.")


def _check_std(owner: str, std) -> None:
    value = _concrete(owner, "std", std)
    if value is not None and not np.all(np.isfinite(value) & (value > 0)):
        raise ValueError(f"{owner}(std=...) must be positive and finite; got {std!r}.")


def _check_mean_std(owner: str, mean, std) -> None:
    pair = _check_pair(owner, ("mean", "std"), mean, std)
    if pair is None:
        return
    if not np.all(np.isfinite(pair[0])):
        raise ValueError(f"{owner}(mean=...) must be finite; got {mean!r}.")
    _check_std(owner, std)


def _bound(value, reduce) -> float | None:
    """`reduce` (`np.min` or `np.max`) of a concrete parameter as a float; `None` if traced."""
    if isinstance(value, jax.core.Tracer):
        return None
    return float(reduce(np.asarray(value, float)))


def _floating(x) -> Array:
    """`x` as an array of its floating dtype (JAX's default float for ints and bools)."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    return x


def _standard_normal_quantile(u: Array) -> Array:
    # u = 0 is possible from a uniform draw; its inverse CDF is -inf.
    finfo = jnp.finfo(u.dtype)
    return ndtri(jnp.clip(u, finfo.tiny, 1 - finfo.epsneg))


def _normal_log_prob(z: Array, std: Array) -> Array:
    """log of the standard normal density at `z = (x - mean) / std`, over `std`."""
    return -0.5 * z * z - jnp.log(std) - _HALF_LOG_2PI


class Uniform(AbstractDistribution):
    """Uniform on `[low, high)`. Its `log_prob` is `-log(high - low)` on the closed
    interval `[low, high]` (like `jax.scipy.stats.uniform`), `-inf` outside.

    **Example:**

    ```python
    print(ds.Uniform(0.0, 21.0).from_unit(jnp.array([0.0, 0.5])))  # [ 0.  10.5]
    systems = ds.sample(jax.random.key(0), ds.systems.Lorenz(), 1000,
                        where=lambda s: s.rho, dist=ds.Uniform(0.0, 21.0))
    print(systems.rho.shape)  # (1000,)
    print(ds.Uniform(0.0, 2.0).log_prob(jnp.array([1.0, 3.0])))  # [-0.6931472      -inf]
    print(ds.Uniform(0.0, 2.0).support)  # (0.0, 2.0)
    ```
    """

    low: Float[ArrayLike, "..."]
    high: Float[ArrayLike, "..."]

    def __check_init__(self):
        _check_range("Uniform", self.low, self.high)

    def from_unit(self, u):
        return self.low + (self.high - self.low) * u

    def log_prob(self, x):
        x = _floating(x)
        lo, hi = jnp.asarray(self.low, x.dtype), jnp.asarray(self.high, x.dtype)
        return jnp.where((x >= lo) & (x <= hi), -jnp.log(hi - lo), -jnp.inf)

    @property
    def support(self):
        return (_bound(self.low, np.min), _bound(self.high, np.max))


class LogUniform(AbstractDistribution):
    """Uniform in $\\log x$ on `[low, high)` (`0 < low < high`): for scale parameters that
    span decades (rates, stiffnesses, damping). Its density is
    $1 / (x (\\log \\mathrm{high} - \\log \\mathrm{low}))$ on `[low, high]`.

    **Example:**

    ```python
    print(ds.LogUniform(1.0, 100.0).from_unit(jnp.array([0.0, 0.5])))  # [ 1. 10.]
    batch = ds.sample(jax.random.key(0), ds.systems.Pendulum(length=1.0), 1000,
                      where=lambda p: p.damping, dist=ds.LogUniform(0.01, 1.0))
    print(jnp.median(batch.damping))  # about 0.1: the geometric middle
    print(ds.LogUniform(1.0, 100.0).log_prob(jnp.array([1.0, 10.0])))  # about [-1.53 -3.83]
    ```
    """

    low: Float[ArrayLike, "..."]
    high: Float[ArrayLike, "..."]

    def __check_init__(self):
        _check_range("LogUniform", self.low, self.high, positive=True)

    def from_unit(self, u):
        lo, hi = jnp.log(jnp.asarray(self.low, u.dtype)), jnp.log(jnp.asarray(self.high, u.dtype))
        return jnp.exp(lo + (hi - lo) * u)

    def log_prob(self, x):
        x = _floating(x)
        lo, hi = jnp.asarray(self.low, x.dtype), jnp.asarray(self.high, x.dtype)
        inside = (x >= lo) & (x <= hi)
        safe = jnp.where(inside, x, 1)  # no log of x <= 0, nor its NaN gradient
        value = -jnp.log(safe) - jnp.log(jnp.log(hi) - jnp.log(lo))
        return jnp.where(inside, value, -jnp.inf)

    @property
    def support(self):
        return (_bound(self.low, np.min), _bound(self.high, np.max))


class Normal(AbstractDistribution):
    """Normal with mean `mean` and standard deviation `std` (> 0), by the inverse CDF.

    **Example:**

    ```python
    print(ds.Normal(10.0, 2.0).from_unit(jnp.array([0.5, 0.8413447])))  # about [10. 12.]
    batch = ds.sample(jax.random.key(0), ds.systems.Pendulum(length=1.0), 1000,
                      where=lambda p: p.length, dist=ds.Normal(1.0, 0.05))
    print(batch.length.std())  # about 0.05
    print(ds.Normal(0.0, 1.0).log_prob(jnp.array([0.0, 1.0])))  # [-0.9189385 -1.4189385]
    ```
    """

    mean: Float[ArrayLike, "..."]
    std: Float[ArrayLike, "..."]

    def __check_init__(self):
        _check_mean_std("Normal", self.mean, self.std)

    def from_unit(self, u):
        return self.mean + self.std * _standard_normal_quantile(u)

    def log_prob(self, x):
        x = _floating(x)
        mean, std = jnp.asarray(self.mean, x.dtype), jnp.asarray(self.std, x.dtype)
        return _normal_log_prob((x - mean) / std, std)


class HalfNormal(AbstractDistribution):
    """The absolute value of a normal of mean 0 and standard deviation `std` (> 0), on
    `[0, inf)`: for positive scales (noise levels, rates) expected near 0 and of size about
    `std`. Its mean is `std * sqrt(2 / pi)`.

    **Example:**

    ```python
    print(ds.HalfNormal(2.0).from_unit(jnp.array([0.0, 0.6826895])))  # about [0. 2.]
    batch = ds.sample(jax.random.key(0), ds.systems.Pendulum(length=1.0), 1000,
                      where=lambda p: p.damping, dist=ds.HalfNormal(0.1))
    print(batch.damping.mean())  # about 0.08 = 0.1 * sqrt(2 / pi)
    print(ds.HalfNormal(1.0).log_prob(jnp.array([-1.0, 0.0])))  # [      -inf -0.22579135]
    print(ds.HalfNormal(1.0).support)  # (0.0, None)
    ```
    """

    std: Float[ArrayLike, "..."]

    def __check_init__(self):
        _check_std("HalfNormal", self.std)

    def from_unit(self, u):
        # The quantile of |Z| at u is ndtri((1 + u) / 2) = -ndtri((1 - u) / 2); the second
        # form keeps its argument above 0 for u near 1, where (1 + u) / 2 rounds to 1
        # (and `0 - ...` gives 0.0, not -0.0, at u = 0).
        u = jnp.clip(u, 0, 1 - jnp.finfo(u.dtype).epsneg)
        return self.std * (0 - ndtri((1 - u) / 2))

    def log_prob(self, x):
        x = _floating(x)
        std = jnp.asarray(self.std, x.dtype)
        value = math.log(2.0) + _normal_log_prob(x / std, std)
        return jnp.where(x >= 0, value, -jnp.inf)

    @property
    def support(self):
        return (0.0, None)


class LogNormal(AbstractDistribution):
    """A positive `x` whose logarithm is normal with mean `mean` and standard deviation
    `std` (> 0), like NumPyro's `LogNormal(loc, scale)`: its median is `exp(mean)`, and
    `std` is about the relative spread for small `std`.

    **Example:**

    ```python
    print(ds.LogNormal(0.0, 1.0).from_unit(jnp.array([0.5, 0.8413447])))  # about [1. 2.72]
    batch = ds.sample(jax.random.key(0), ds.systems.Pendulum(length=1.0), 1000,
                      where=lambda p: p.length, dist=ds.LogNormal(0.0, 0.1))
    print(jnp.median(batch.length))  # about 1.0 = exp(mean)
    print(ds.LogNormal(0.0, 1.0).log_prob(jnp.array([0.0, 1.0])))  # [      -inf -0.9189385]
    ```
    """

    mean: Float[ArrayLike, "..."]
    std: Float[ArrayLike, "..."]

    def __check_init__(self):
        _check_mean_std("LogNormal", self.mean, self.std)

    def from_unit(self, u):
        return jnp.exp(self.mean + self.std * _standard_normal_quantile(u))

    def log_prob(self, x):
        x = _floating(x)
        mean, std = jnp.asarray(self.mean, x.dtype), jnp.asarray(self.std, x.dtype)
        inside = x > 0
        log_x = jnp.log(jnp.where(inside, x, 1))  # no NaN gradient at x <= 0
        value = _normal_log_prob((log_x - mean) / std, std) - log_x
        return jnp.where(inside, value, -jnp.inf)

    @property
    def support(self):
        return (0.0, None)
