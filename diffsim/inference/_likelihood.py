"""Observation models for `ds.posterior`: the likelihood of the data given the model's
prediction and a noise scale.

Contract: `log_prob(observed, predicted, sigma, mask)` sums, over every entry where
`mask` is true (the non-NaN data), the log density of the observed value given the
predicted one; `check(observed)` refuses data the model cannot produce (before anything
runs). A prediction the model cannot have made (non-finite, or not positive for the
multiplicative model) gives `-inf`: the sampler rejects that proposal.
"""

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln

_LOG_2PI = float(np.log(2 * np.pi))


def _sum(tree) -> jax.Array:
    return sum(jnp.sum(x) for x in jax.tree.leaves(tree))


class AbstractLikelihood(eqx.Module):
    """An observation model for `ds.posterior(..., likelihood=...)`: how data scatter
    about the model's prediction with a noise scale $\\sigma$. Subclasses implement
    `log_density(y, m, sigma)`, elementwise (and `check(observed)` to refuse data they
    cannot produce).

    **Example:** Laplace (double-exponential) noise, robust like Student-t:

    ```python
    class LaplaceNoise(ds.AbstractLikelihood):
        def log_density(self, y, m, sigma):
            return -jnp.abs(y - m) / sigma - jnp.log(2 * sigma)

    y, m = jnp.array([1.0, 3.0]), jnp.array([1.0, 1.0])
    print(LaplaceNoise().log_prob(y, m, 1.0, jnp.array([True, True])))  # -3.386: -2 - 2 log 2
    ```
    """

    @abc.abstractmethod
    def log_density(self, y, m, sigma):
        """The log density of observing `y` where the model predicts `m`, elementwise."""

    def check(self, observed) -> None:
        """Refuse data this model cannot produce: a `ValueError` naming `observed`."""

    def log_prob(self, observed, predicted, sigma, mask):
        """$\\sum_i \\log p(y_i \\mid m_i, \\sigma_i)$ over the entries where `mask` is
        true; `-inf` where a prediction is not finite."""

        def one(y, m, s, keep):
            m = jnp.asarray(m).astype(y.dtype)
            value = self.log_density(jnp.where(keep, y, 1.0), m, s)
            value = jnp.where(keep, value, 0.0)
            return jnp.where(keep & ~jnp.isfinite(m), -jnp.inf, value)

        return _sum(jax.tree.map(one, observed, predicted, sigma, mask))


class GaussianNoise(AbstractLikelihood):
    """Additive Gaussian noise: $y = m + \\sigma \\varepsilon$, $\\varepsilon \\sim N(0, 1)$.
    The default of `ds.posterior`, and the model behind `ds.fit`'s least squares.

    **Example:**

    ```python
    like = ds.GaussianNoise()
    y, m = jnp.array([1.0, 2.0]), jnp.array([1.0, 2.5])
    print(like.log_prob(y, m, 0.5, jnp.array([True, True])))  # -1.3079: -0.5 - 2 log(0.5 sqrt(2 pi))
    ```
    """

    def log_density(self, y, m, sigma):
        z = (y - m) / sigma
        return -0.5 * z * z - jnp.log(sigma) - 0.5 * _LOG_2PI


class StudentTNoise(AbstractLikelihood):
    """Additive Student-t noise with `df` degrees of freedom and scale $\\sigma$: robust
    to outliers (heavier tails than Gaussian; Gaussian as `df` grows).

    $$\\log p(y \\mid m) = \\log\\Gamma(\\tfrac{\\nu+1}{2}) - \\log\\Gamma(\\tfrac{\\nu}{2})
      - \\tfrac12 \\log(\\nu\\pi) - \\log\\sigma - \\tfrac{\\nu+1}{2}
      \\log\\big(1 + z^2/\\nu\\big), \\quad z = (y - m)/\\sigma.$$

    **Example:**

    ```python
    like = ds.StudentTNoise(df=4.0)
    mask = jnp.array([True])
    # An outlier costs far less than under Gaussian noise:
    print(like.log_prob(jnp.array([10.0]), jnp.array([0.0]), 1.0, mask))  # -8.8
    print(ds.GaussianNoise().log_prob(jnp.array([10.0]), jnp.array([0.0]), 1.0, mask))  # -50.9
    ```
    """

    df: float = 4.0

    def __check_init__(self):
        if not (isinstance(self.df, (int, float)) and np.isfinite(self.df) and self.df > 0):
            raise ValueError(f"StudentTNoise(df=...) must be a positive number; got {self.df!r}.")

    def log_density(self, y, m, sigma):
        nu = self.df
        z = (y - m) / sigma
        const = gammaln(0.5 * (nu + 1)) - gammaln(0.5 * nu) - 0.5 * np.log(nu * np.pi)
        return const - jnp.log(sigma) - 0.5 * (nu + 1) * jnp.log1p(z * z / nu)


class LogNormalNoise(AbstractLikelihood):
    """Multiplicative noise: $y = m\\, e^{\\sigma \\varepsilon}$, $\\varepsilon \\sim N(0, 1)$,
    so $\\log y \\sim N(\\log m, \\sigma^2)$ and $\\sigma$ is a relative error. For positive
    data spanning decades (concentrations, populations, counts). Observed values must be
    positive; a prediction that is not positive has likelihood zero.

    **Example:**

    ```python
    like = ds.LogNormalNoise()
    y, m = jnp.array([110.0]), jnp.array([100.0])
    print(like.log_prob(y, m, 0.1, jnp.array([True])))  # -3.3746: 10% off at sigma = 0.1
    ```
    """

    def check(self, observed) -> None:
        for leaf in jax.tree.leaves(observed):
            if isinstance(leaf, jax.core.Tracer):
                continue
            values = np.asarray(leaf)
            values = values[~np.isnan(values)]
            if np.any(values <= 0):
                raise ValueError(
                    "observed must be positive for likelihood=ds.LogNormalNoise() (the "
                    f"noise multiplies the prediction); got a smallest value {values.min()}. "
                    "Use ds.GaussianNoise() for data that can be zero or negative."
                )

    def log_density(self, y, m, sigma):
        positive = m > 0
        z = (jnp.log(y) - jnp.log(jnp.where(positive, m, 1.0))) / sigma
        value = -0.5 * z * z - jnp.log(sigma) - 0.5 * _LOG_2PI - jnp.log(y)
        return jnp.where(positive, value, -jnp.inf)
