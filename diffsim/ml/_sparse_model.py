"""`SparseModel`: the result of `ds.sparse_regression`, and a callable that can replace a
correction network.

Contract: the active coefficients are the module's one array leaf, so `eqx.filter_grad`,
`ds.fit(..., where=lambda m: m.correction.coefficients)` and `jax.vmap` see the
expression as they would see a network's weights; everything else (the library, which
terms are active, the uncertainties, the verdict) is static. A model that was not found
refuses to be called, at trace time.
"""

import math
from collections.abc import Sequence

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ._library import Library


def _format(c: float, se: float) -> str:
    """`c ± se` with the digits the uncertainty supports (3 to 6 significant)."""
    if not math.isfinite(se) or se <= 0 or c == 0:
        return f"{c:.4g} ± {se:.2g}"
    sig = math.floor(math.log10(abs(c))) - math.floor(math.log10(se)) + 2
    return f"{c:.{min(max(sig, 3), 6)}g} ± {se:.2g}"


class SparseModel(eqx.Module):
    """A sparse expression $f_k(x) = \\sum_{j} \\xi_{jk}\\,\\theta_j(x)$ over the active
    terms of a `ds.Library`, as found by `ds.sparse_regression`.

    **Fields:**

    - `coefficients`: the active coefficients $\\xi_{jk}$, 1-d, in the order of `active`
      (by output, then by term): the one trainable leaf.
    - `library`: the `ds.Library` of candidate terms (static).
    - `active`: `(term index, output index)` of each coefficient (static).
    - `num_outputs`, `output_names`: the outputs (static).
    - `stderr`: one standard error per coefficient, a tuple of floats (static: not
      trained). For a network's outputs it measures the misfit, not a posterior.
    - `threshold`: the contribution threshold used; `r2`: the cross-validated $R^2$ per
      output.
    - `found`: whether a sparse model explains every output; if not, `reason` says
      why, and calling the model raises.
    - `scalar_output`: the targets were 1-d, so the model returns a scalar.

    Called on one feature vector `x` of shape `(d,)` (or a scalar when $d = 1$) it returns shape `(num_outputs,)`
    (a scalar when `scalar_output`); it works under `jit`, `grad` and `vmap`.

    **Example:** learn nothing here, but replace a trained hybrid model's correction by
    the expression it found, simulate, and refit the coefficients on the data:

    ```python
    import equinox as eqx

    def linear(t, y, p):  # the known physics of Lotka-Volterra: growth and decay
        return jnp.stack([p[0] * y[0], -p[1] * y[1]])

    xy = jax.random.uniform(jax.random.key(0), (100, 2), minval=0.5, maxval=2.0)
    interaction = jnp.stack([-0.9 * xy[:, 0] * xy[:, 1], 0.8 * xy[:, 0] * xy[:, 1]], 1)
    # (in practice: interaction = jax.vmap(trained_hybrid.correction)(states))
    sparse = ds.sparse_regression(ds.Library.polynomial(["x", "y"], 2), xy, interaction,
                                  output_names=["dx", "dy"])
    hybrid = ds.systems.HybridODE(ds.ODESystem(linear, jnp.array([1.1, 0.4])),
                                  correction=eqx.nn.MLP(2, 2, 8, 1, key=jax.random.key(1)))
    model = eqx.tree_at(lambda m: m.correction, hybrid, sparse)
    y0 = jnp.array([1.0, 0.5])
    data = ds.simulate(model, y0, t1=2.0, dt=0.05).ys

    start = eqx.tree_at(lambda m: m.correction.coefficients, model,
                        sparse.coefficients * 1.1)
    res = ds.fit(lambda m: ds.simulate(m, y0, t1=2.0, dt=0.05).ys, start, data,
                 where=lambda m: m.correction.coefficients)
    print(res.params.correction.coefficients)  # [-0.9, 0.8]; uncertainties: res.stderr
    ```

    After such a refit, the model's `stderr` (static) are still the regression's; the
    fit's are in `res.stderr`.
    """

    coefficients: Float[Array, " n_active"]
    library: Library = eqx.field(static=True)
    active: tuple[tuple[int, int], ...] = eqx.field(static=True)
    num_outputs: int = eqx.field(static=True)
    output_names: tuple[str, ...] = eqx.field(static=True)
    stderr: tuple[float, ...] = eqx.field(static=True)
    threshold: float = eqx.field(static=True)
    r2: tuple[float, ...] = eqx.field(static=True)
    found: bool = eqx.field(static=True)
    reason: str = eqx.field(static=True)
    scalar_output: bool = eqx.field(static=True)

    def __call__(self, x: Float[Array, " d"]) -> Float[Array, " m"]:
        if not self.found:
            raise ValueError(
                f"SparseModel: no sparse model found, so it cannot be called: {self.reason}"
            )
        x = jnp.asarray(x)
        if x.ndim == 0:  # one scalar feature, as a network with "scalar" input takes it
            x = x[None]
        if x.ndim != 1:
            raise ValueError(
                f"SparseModel: `x` must be one feature vector of shape (d,) (or a scalar "
                f"for d = 1); got shape {x.shape}. For many samples use "
                f"jax.vmap(model)(X)."
            )
        # Only the active terms are evaluated: an inactive term (a log, a sqrt) can
        # neither fail nor give NaN gradients.
        used = sorted({j for j, _ in self.active})
        position = {j: i for i, j in enumerate(used)}
        values = [jnp.asarray(self.library.fns[j](x)) for j in used]
        theta = jnp.stack(values) if values else jnp.zeros((0,), x.dtype)
        rows = np.array([position[j] for j, _ in self.active], dtype=int)
        outs = np.array([k for _, k in self.active], dtype=int)
        dtype = jnp.result_type(self.coefficients, theta)
        contributions = self.coefficients * theta[rows]
        out = jnp.zeros(self.num_outputs, dtype).at[outs].add(contributions)
        return out[0] if self.scalar_output else out

    @classmethod
    def stack(cls, models: Sequence["SparseModel"]) -> "SparseModel":
        """One model whose outputs are those of `models`, in order: for example one law
        per equation, each from its own `ds.sparse_path` (the terms of different
        equations need not drop out at the same threshold). Every model must be found
        and use the same library; `threshold` is then the largest of theirs.

        **Example:**

        ```python
        xy = jax.random.uniform(jax.random.key(0), (100, 2), minval=0.5, maxval=2.0)
        lib = ds.Library.polynomial(["x", "y"], 2)
        dx = ds.sparse_regression(lib, xy, -0.9 * xy[:, 0] * xy[:, 1], output_names=["dx"])
        dy = ds.sparse_regression(lib, xy, 0.8 * xy[:, 0] * xy[:, 1], output_names=["dy"])
        both = ds.SparseModel.stack([dx, dy])
        print(both(jnp.array([1.0, 2.0])))  # [-1.8  1.6]
        ```
        """
        models = tuple(models)
        if not models or not all(isinstance(m, SparseModel) for m in models):
            raise TypeError(
                f"SparseModel.stack: `models` must be a non-empty list of ds.SparseModel; "
                f"got {models!r}."
            )
        missing = [m.output_names for m in models if not m.found]
        if missing:
            raise ValueError(
                f"SparseModel.stack: the models for {missing} were not found; stack only "
                "found models (see their `reason`)."
            )
        if any(m.library != models[0].library for m in models):
            raise ValueError("SparseModel.stack: every model must use the same `library`.")
        offsets = np.cumsum([0] + [m.num_outputs for m in models])
        return cls(
            coefficients=jnp.concatenate([m.coefficients for m in models]),
            library=models[0].library,
            active=tuple(
                (j, int(k + o))
                for m, o in zip(models, offsets[:-1], strict=True)
                for j, k in m.active
            ),
            num_outputs=int(offsets[-1]),
            output_names=sum((m.output_names for m in models), ()),
            stderr=sum((m.stderr for m in models), ()),
            threshold=max(m.threshold for m in models),
            r2=sum((m.r2 for m in models), ()),
            found=True,
            reason="",
            scalar_output=False,
        )

    def terms(self) -> dict[str, dict[str, tuple[float, float]]]:
        """`{output name: {term name: (coefficient, stderr)}}` for the active terms (for a
        model that was not found: its closest attempt, for diagnosis only).

        **Example:**

        ```python
        v = jnp.linspace(-1.0, 1.0, 50)[:, None]
        model = ds.sparse_regression(ds.Library.polynomial(["v"], 3), v, 2.0 * v[:, 0] ** 3)
        coef, stderr = model.terms()["f"]["v^3"]  # 2.0, 0.0 (noiseless)
        ```
        """
        out: dict[str, dict[str, tuple[float, float]]] = {n: {} for n in self.output_names}
        coefficients = np.asarray(self.coefficients, dtype=float)
        for (j, k), c, se in zip(self.active, coefficients, self.stderr, strict=True):
            out[self.output_names[k]][self.library.names[j]] = (float(c), float(se))
        return out

    def expression(self) -> str:
        """The expression, one line per output: `dx = (-0.9 ± 0.002) x*y`; for a model
        that was not found, "no sparse model found: <reason>" and its closest attempt.

        **Example:**

        ```python
        v = jnp.linspace(-1.0, 1.0, 50)[:, None]
        model = ds.sparse_regression(ds.Library.polynomial(["v"], 3), v, 2.0 * v[:, 0] ** 3)
        print(model.expression())  # f = (2 ± 0) v^3
        ```
        """
        lines = []
        for name, terms in self.terms().items():
            parts = [
                f"({_format(c, se)})" if term == "1" else f"({_format(c, se)}) {term}"
                for term, (c, se) in terms.items()
            ]
            lines.append(f"{name} = {' + '.join(parts) if parts else '0'}")
        if self.found:
            return "\n".join(lines)
        attempt = "\n".join("  " + line for line in lines)
        return f"no sparse model found: {self.reason}\nclosest attempt (not a model):\n{attempt}"

    def __str__(self) -> str:
        return self.expression()
