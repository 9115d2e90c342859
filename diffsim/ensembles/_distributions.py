"""Distributions of one scalar, for `ds.sample`: each given by its inverse CDF.

Contract: `from_unit(u)` maps a point `u` of `[0, 1)` to a draw; a design places the
points, so a stratified design stratifies every distribution's marginal. Concrete
parameters are checked when a distribution is made (numbers, shapes that broadcast,
finite, `low < high`, `std > 0`): a `TypeError` or `ValueError` naming the parameter.
Traced parameters (a distribution built under `jit`) are not checked.
"""

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtri
from jaxtyping import Array, ArrayLike, Float


class AbstractDistribution(eqx.Module):
    """A distribution of one scalar, given by its inverse CDF on `[0, 1)`: subclasses
    implement `from_unit(u)`, and every design (`ds.MonteCarlo`, `ds.LatinHypercube`,
    `ds.Sobol`) then works with them.

    **Example:**

    ```python
    class Exponential(ds.AbstractDistribution):
        rate: float

        def from_unit(self, u):
            return -jnp.log1p(-u) / self.rate

    batch = ds.sample(jax.random.key(0), ds.systems.Pendulum(length=1.0), 1000,
                      where=lambda p: p.damping, dist=Exponential(rate=10.0))
    print(batch.damping.mean())  # about 0.1 = 1 / rate
    ```
    """

    @abc.abstractmethod
    def from_unit(self, u: Float[Array, "..."]) -> Float[Array, "..."]:
        """Map uniform draws on `[0, 1)` to draws of this distribution."""


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


class Uniform(AbstractDistribution):
    """Uniform on `[low, high)`.

    **Example:**

    ```python
    print(ds.Uniform(0.0, 21.0).from_unit(jnp.array([0.0, 0.5])))  # [ 0.  10.5]
    systems = ds.sample(jax.random.key(0), ds.systems.Lorenz(), 1000,
                        where=lambda s: s.rho, dist=ds.Uniform(0.0, 21.0))
    print(systems.rho.shape)  # (1000,)
    ```
    """

    low: Float[ArrayLike, "..."]
    high: Float[ArrayLike, "..."]

    def __check_init__(self):
        _check_range("Uniform", self.low, self.high)

    def from_unit(self, u):
        return self.low + (self.high - self.low) * u


class LogUniform(AbstractDistribution):
    """Uniform in $\\log x$ on `[low, high)` (`0 < low < high`): for scale parameters that
    span decades (rates, stiffnesses, damping).

    **Example:**

    ```python
    print(ds.LogUniform(1.0, 100.0).from_unit(jnp.array([0.0, 0.5])))  # [ 1. 10.]
    batch = ds.sample(jax.random.key(0), ds.systems.Pendulum(length=1.0), 1000,
                      where=lambda p: p.damping, dist=ds.LogUniform(0.01, 1.0))
    print(jnp.median(batch.damping))  # about 0.1: the geometric middle
    ```
    """

    low: Float[ArrayLike, "..."]
    high: Float[ArrayLike, "..."]

    def __check_init__(self):
        _check_range("LogUniform", self.low, self.high, positive=True)

    def from_unit(self, u):
        lo, hi = jnp.log(jnp.asarray(self.low, u.dtype)), jnp.log(jnp.asarray(self.high, u.dtype))
        return jnp.exp(lo + (hi - lo) * u)


class Normal(AbstractDistribution):
    """Normal with mean `mean` and standard deviation `std` (> 0), by the inverse CDF.

    **Example:**

    ```python
    print(ds.Normal(10.0, 2.0).from_unit(jnp.array([0.5, 0.8413447])))  # about [10. 12.]
    batch = ds.sample(jax.random.key(0), ds.systems.Pendulum(length=1.0), 1000,
                      where=lambda p: p.length, dist=ds.Normal(1.0, 0.05))
    print(batch.length.std())  # about 0.05
    ```
    """

    mean: Float[ArrayLike, "..."]
    std: Float[ArrayLike, "..."]

    def __check_init__(self):
        pair = _check_pair("Normal", ("mean", "std"), self.mean, self.std)
        if pair is None:
            return
        mean, std = pair
        if not np.all(np.isfinite(mean)):
            raise ValueError(f"Normal(mean=...) must be finite; got {self.mean!r}.")
        if not np.all(np.isfinite(std) & (std > 0)):
            raise ValueError(f"Normal(std=...) must be positive and finite; got {self.std!r}.")

    def from_unit(self, u):
        # u = 0 is possible from a uniform draw; its inverse CDF is -inf.
        finfo = jnp.finfo(u.dtype)
        u = jnp.clip(u, finfo.tiny, 1 - finfo.epsneg)
        return self.mean + self.std * ndtri(u)
