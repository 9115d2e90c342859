"""Distributions of one scalar, for `ds.sample`: each given by its inverse CDF.

Contract: `from_unit(u)` maps a point `u` of `[0, 1)` to a draw; a design places the
points, so a stratified design stratifies every distribution's marginal.
"""

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtri
from jaxtyping import Array, ArrayLike, Float


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
