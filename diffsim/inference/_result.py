"""`Posterior`: what `ds.posterior` returns: the draws, their diagnostics and summary, and
posterior-predictive ensembles."""

import functools
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PyTree

from ..ensembles import Quantiles, ensemble
from ..fitting import FitResult
from ._diagnostics import ess_bulk, ess_tail, split_rhat


class Posterior(eqx.Module):
    """Draws from the posterior of a model's parameters, as `ds.posterior` returns them.

    **Fields** (`C` chains, `D` draws per chain, `n` sampled values):

    - `samples`: a pytree like `where(params0)` (the selected parameters), each leaf with
      leading axes `(C, D)`, in physical units.
    - `noise`: `(C, D)` draws of the noise scale when it was inferred (`noise=`), else
      `None`.
    - `draws`: `(C, D, n)`, every sampled value flattened in the order of `names` (the
      selected leaves as in `jax.tree.leaves(where(params0))`, then `sigma` if inferred).
    - `names`: the name of each column of `draws`.
    - `log_likelihood`: `(C, D)`, the log-likelihood of the data at each draw.
    - `log_density`: `(C, D)`, the unnormalised log posterior in the sampler's
      unconstrained coordinates (log-likelihood + log-prior + log-Jacobian).
    - `divergent`: `(C, D)` bool, NUTS divergences. `tree_depth`: `(C, D)` int.
      `acceptance`: `(C, D)`, NUTS's mean acceptance probability of each transition.
    - `step_size`: `(C,)`, each chain's adapted step size.
    - `rhat`, `ess_bulk`, `ess_tail`: `(n,)`, rank-normalised split R-hat and bulk and
      tail effective sample sizes (Vehtari et al. 2021) of each column of `draws`.
    - `fit`: the `ds.FitResult` the chains started from (`None` if not fitted).

    **Example:**

    ```python
    ts = jnp.linspace(0.0, 2.0, 21)
    model = lambda p: p["amplitude"] * jnp.exp(-p["rate"] * ts)
    observed = model({"amplitude": 2.0, "rate": 1.5}) + 0.05 * jax.random.normal(
        jax.random.key(0), ts.shape)
    post = ds.posterior(model, {"amplitude": 1.0, "rate": 1.0}, observed,
                        prior={"amplitude": ds.Normal(2.0, 1.0), "rate": ds.HalfNormal(5.0)},
                        sigma=0.05, num_warmup=300, num_samples=300, key=jax.random.key(1))
    print(post.samples["rate"].shape)  # (4, 300)
    print(post.summary())  # rate about 1.5 +- 0.03, R-hat 1.00
    ```
    """

    samples: PyTree
    noise: Float[Array, "C D"] | None
    draws: Float[Array, "C D n"]
    names: tuple[str, ...] = eqx.field(static=True)
    log_likelihood: Float[Array, "C D"]
    log_density: Float[Array, "C D"]
    divergent: Bool[Array, "C D"]
    tree_depth: Int[Array, "C D"]
    acceptance: Float[Array, "C D"]
    step_size: Float[Array, " C"]
    rhat: Float[Array, " n"]
    ess_bulk: Float[Array, " n"]
    ess_tail: Float[Array, " n"]
    fit: FitResult | None
    # What `predict` needs to rebuild whole parameter pytrees from the draws.
    params0: PyTree
    where: Callable[[Any], Any] | None = eqx.field(static=True)

    @property
    def num_chains(self) -> int:
        """The number of chains, `C`."""
        return self.draws.shape[0]

    @property
    def num_samples(self) -> int:
        """The number of draws kept per chain, `D`."""
        return self.draws.shape[1]

    def params(self) -> PyTree:
        """`params0` with every selected leaf replaced by its draws, flattened to one
        leading axis of `C * D` members (chain-major): the batch `predict` runs."""
        flat = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), self.samples)
        if self.where is None:
            return flat
        count = self.num_chains * self.num_samples
        # Unselected leaves are shared: broadcast so that every leaf has the member axis.
        base = jax.tree.map(
            lambda x: (
                jnp.broadcast_to(jnp.asarray(x), (count,) + jnp.shape(x))
                if eqx.is_array_like(x)
                else x
            ),
            self.params0,
        )
        return eqx.tree_at(self.where, base, flat)

    def predict(
        self,
        fn: Callable[[Any], Any],
        *,
        q: tuple[float, ...] = (0.05, 0.5, 0.95),
        bins: int = 1000,
        pilot: int = 64,
        batch_size: int | None = None,
        devices: Any = None,
    ) -> tuple:
        """The posterior predictive: `fn(params)` at every draw, run as a `ds.ensemble`
        over the `C * D` draws, reduced to streaming quantiles (memory independent of the
        number of draws).

        `fn(params) -> pytree of arrays` (a rollout, a forecast beyond the data, a derived
        quantity) gets `params0` with the selected leaves set to one draw. The quantiles'
        range comes from a pilot of the first `pilot` draws (widened by half its width on
        each side); each estimate is within one bin width of the exact quantile inside it.

        **Returns:** a tuple with one pytree like `fn`'s output per entry of `q`.

        **Example:** 90% bands of the decay curve, and beyond the data:

        ```python
        ts = jnp.linspace(0.0, 2.0, 21)
        model = lambda p: p["amplitude"] * jnp.exp(-p["rate"] * ts)
        observed = model({"amplitude": 2.0, "rate": 1.5}) + 0.05 * jax.random.normal(
            jax.random.key(0), ts.shape)
        post = ds.posterior(model, {"amplitude": 1.0, "rate": 1.0}, observed,
                            prior={"amplitude": ds.Normal(2.0, 1.0), "rate": ds.HalfNormal(5.0)},
                            sigma=0.05, num_warmup=300, num_samples=300, key=jax.random.key(1))
        later = jnp.linspace(0.0, 4.0, 41)
        lower, median, upper = post.predict(lambda p: p["amplitude"] * jnp.exp(-p["rate"] * later))
        print(median[-1], upper[-1] - lower[-1])  # about 0.005, a band of about 0.002
        ```
        """
        params = self.params()
        count = self.num_chains * self.num_samples
        first = jax.tree.map(lambda x: x[: min(pilot, count)] if _batched(x, count) else x, params)
        example = jax.eval_shape(
            fn, jax.tree.map(lambda x: x[0] if _batched(x, count) else x, params)
        )
        _, unravel = jax.flatten_util.ravel_pytree(
            jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), example)
        )

        flat = _flattened(fn)
        seen = np.asarray(ensemble(flat, first, throw=False).values)
        lo, hi = np.nanmin(seen, axis=0), np.nanmax(seen, axis=0)
        half = 0.5 * np.maximum(hi - lo, 1e-6 * np.maximum(np.abs(hi), 1.0))
        bands = Quantiles(q=q, low=lo - half, high=hi + half, bins=bins)
        res = ensemble(flat, params, reduce=bands, batch_size=batch_size, devices=devices,
                       throw=False)  # fmt: skip
        return tuple(unravel(v) for v in res.values)

    def summary(self) -> str:
        """A table: per sampled value its mean, standard deviation, 5/50/95% quantiles,
        R-hat and bulk/tail ESS; then the divergences and chains."""
        draws = np.asarray(self.draws).reshape(-1, self.draws.shape[-1])
        width = max([9] + [len(n) for n in self.names])
        head = (
            f"{'parameter':{width}s} {'mean':>11s} {'sd':>10s} {'5%':>11s} {'50%':>11s} "
            f"{'95%':>11s} {'R-hat':>6s} {'ESS bulk':>9s} {'ESS tail':>9s}"
        )
        lines = [head, "-" * len(head)]
        q5, q50, q95 = np.quantile(draws, [0.05, 0.5, 0.95], axis=0)
        columns = zip(
            self.names,
            draws.mean(0),
            draws.std(0, ddof=1),
            q5,
            q50,
            q95,
            np.asarray(self.rhat),
            np.asarray(self.ess_bulk),
            np.asarray(self.ess_tail),
            strict=True,
        )
        for name, mean, sd, a, b, c, r, eb, et in columns:
            lines.append(
                f"{name:{width}s} {mean:11.5g} {sd:10.4g} {a:11.5g} {b:11.5g} {c:11.5g} "
                f"{r:6.3f} {eb:9.0f} {et:9.0f}"
            )
        lines.append(
            f"{self.num_chains} chains x {self.num_samples} draws; "
            f"{int(np.sum(np.asarray(self.divergent)))} divergent transitions"
        )
        return "\n".join(lines)


@functools.lru_cache(maxsize=32)
def _flattened(fn):
    """`fn` with its output flattened to one vector; one per `fn`, so that predicting
    again with the same function reuses the compiled ensemble."""

    def flat(p):
        return jax.flatten_util.ravel_pytree(fn(p))[0]

    return flat


def _batched(x, count: int) -> bool:
    return eqx.is_array(x) and x.ndim >= 1 and x.shape[0] == count


@jax.jit
def diagnostics(draws) -> tuple[Array, Array, Array]:
    """Split R-hat and bulk and tail ESS of each column of `draws` `(C, D, n)` (one
    compiled program: op by op, the rank transforms alone compile for seconds)."""
    moved = jnp.moveaxis(draws, -1, 0)
    return tuple(jax.vmap(f)(moved) for f in (split_rhat, ess_bulk, ess_tail))
