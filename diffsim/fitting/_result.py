"""`FitResult`: what `ds.fit` returns, and its summary table."""

import equinox as eqx
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PyTree


class FitResult(eqx.Module):
    """What `ds.fit` returns.


    **Fields:**


    - `params`: `params0` with the fitted values in place of the trainable leaves.
    - `loss`: the final objective, $\\tfrac12 \\sum r_i^2$ (or the value of `loss=`).
    - `history`: the objective after each iteration (`history[0]` at `params0`), NaN
      past the last iteration when built under `jit`.
    - `stderr`: like `params`, with one standard error per trainable value (zero for
      fixed leaves), from `covariance`; `inf` for a value the data do not identify.
    - `covariance`: covariance of the trainable values, flattened in the order of
      `jax.tree.leaves(where(params))`: $s^2 (J^\\top J)^{-1}$ at the optimum with the
      Jacobian $J$ of the weighted residuals in physical units, where $s^2$ is the
      residual variance $\\sum r_i^2/(n - p)$ when `sigma` is not given and 1 when it is
      (Gauss-Newton). With `loss=`, the inverse Hessian of the loss (Laplace), which is a
      covariance when the loss is a negative log-likelihood. A parameter the data do not
      identify (the model ignores it, or only a combination such as `a + b` enters: $J$
      is rank deficient, judged by an SVD with the tolerance $\\max(m, n)\\,\varepsilon$
      relative to the largest singular value) has variance `inf` and NaN covariances;
      `ds.fit` warns (`ds.IdentifiabilityWarning`). NaN throughout when the fit ended
      at a non-finite loss.
    - `n_steps`: iterations taken. `converged`: whether the solver met its tolerance.
    - `names`: the trainable leaves' paths, for `summary()`.
    - `values`: the fitted trainable values, flattened in the order of `covariance`.

    **Example:**

    ```python
    ts = jnp.linspace(0.0, 2.0, 21)

    def model(p):
        return p["amplitude"] * jnp.exp(-p["rate"] * ts)

    noise = 0.01 * jax.random.normal(jax.random.key(0), ts.shape)
    observed = model({"amplitude": 2.0, "rate": 1.5}) + noise
    res = ds.fit(model, {"amplitude": 1.0, "rate": 1.0}, observed, sigma=0.01)
    print(res.params["rate"], res.stderr["rate"])  # 1.507 0.008: within 1 stderr of 1.5
    print(res.converged, res.n_steps)  # True, after about 20 iterations
    print(res.covariance.shape)  # (2, 2): amplitude and rate, as in res.names
    print(res.summary())
    ```
    """

    params: PyTree
    loss: Float[Array, ""]
    history: Float[Array, " steps"]
    stderr: PyTree
    covariance: Float[Array, "p p"]
    n_steps: Int[Array, ""]
    converged: Bool[Array, ""]
    names: tuple[str, ...] = eqx.field(static=True)
    values: Float[Array, " p"]

    def summary(self) -> str:
        """A table of the fitted values with their standard errors (absolute and relative),
        and the final loss, the iterations taken and whether the fit converged."""
        errors = np.sqrt(np.clip(np.diag(np.asarray(self.covariance)), 0, None))
        width = max([9] + [len(n) for n in self.names])
        lines = [
            f"{'parameter':{width}s} {'value':>14s} {'stderr':>12s} {'rel.':>8s}",
            "-" * (width + 37),
        ]
        for name, value, err in zip(self.names, np.asarray(self.values), errors, strict=True):
            rel = abs(err / value) if value != 0 else float("inf")
            lines.append(f"{name:{width}s} {value:14.6g} {err:12.4g} {rel:8.2%}")
        lines.append(
            f"loss {float(self.loss):.6g} after {int(self.n_steps)} iterations "
            f"({'converged' if bool(self.converged) else 'NOT converged'})"
        )
        return "\n".join(lines)
