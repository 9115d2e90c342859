"""The covariance of `ds.fit`'s estimates, and which parameters the data cannot identify.

Contract: `jacobian_covariance(J)` returns the Gauss-Newton covariance $(J^\\top J)^{+}$
of the parameters (one column of `J` each), the rank of `J` and a mask of the
unidentifiable parameters; `mark(covariance, mask)`, applied once the covariance is scaled
by the noise variance, makes their variances `inf` and their covariances NaN.
`hessian_covariance(H)` does both for the inverse Hessian of a general loss. A
non-finite `J` or `H` gives a NaN covariance and flags nobody.
`warn_unidentifiable(names, covariance)` warns (`IdentifiabilityWarning`) naming the
parameters with an infinite variance.

The rule. The columns of `J` are first scaled to unit norm, so that the decision does not
depend on the parameters' units (a length in metres next to a stiffness of 1e6). With the
SVD of the scaled Jacobian $\\tilde J = U S V^\\top$, a singular value counts as zero when
$s_k \\le \\max(m, n)\\,\\varepsilon\\,s_{\\max}$: LAPACK's and NumPy's (`matrix_rank`)
tolerance, the size of the rounding error of the SVD itself, so only directions the
model does not see at all to working precision are dropped; merely poorly determined
ones keep their (large, honest) finite errors. A parameter is unidentifiable when its
unit vector has a weight $\\sum_{k\\ \\mathrm{dropped}} V_{ik}^2 > \\sqrt{\\varepsilon}$
(about 1.5e-8 in float64) in the dropped directions: a parameter the model ignores (a zero
column) has weight 1, each of two that enter only as `a + b` weight 1/2, and a
well-determined one only rounding noise, far below. Its variance is infinite: no amount of
such data pins it down. The other parameters' variances come from the pseudo-inverse on
the kept directions, which for them (estimable functions) is exact. For a Hessian the
same rule holds on the eigenvalues of the scaled $H$ with the tolerance
$n\\,\\varepsilon\\,|\\lambda|_{\\max}$; a zero or negative curvature is unidentifiable.
"""

import contextlib
import contextvars
import warnings

import jax.numpy as jnp
import numpy as np

# Set while `ds.fit` runs an inner fit whose parameters it names itself (shooting).
_QUIET = contextvars.ContextVar("diffsim_fit_quiet", default=False)


class IdentifiabilityWarning(RuntimeWarning):
    """`ds.fit`: the data cannot identify some fitted parameters (the model ignores them,
    or only a combination of them, such as `a + b`, enters). Their `stderr` is `inf`.

    **Example:**

    ```python
    import warnings

    ts = jnp.linspace(0.0, 1.0, 20)

    def model(p):
        return (p["a"] + p["b"]) * ts  # only a + b enters

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = ds.fit(model, {"a": 1.0, "b": 1.0}, 3.0 * ts)
    print(caught[0].category.__name__)  # IdentifiabilityWarning
    print(res.stderr["a"], res.stderr["b"])  # inf inf
    ```

    Fix one of them (`where=lambda p: p["a"]`), or fit the sum as one parameter.
    """


def jacobian_covariance(jac):
    """`((J^T J)^+, rank, unidentifiable)` for the Jacobian `jac` of shape `(m, n)`; pass
    the covariance, once scaled by the noise variance, to `mark`."""
    m, n = jac.shape
    if m < n:
        # Zero rows change nothing but give the SVD a full set of right singular vectors.
        jac = jnp.concatenate([jac, jnp.zeros((n - m, n), jac.dtype)])
    norms = jnp.linalg.norm(jac, axis=0)
    scale = jnp.where(norms > 0, norms, 1.0)
    _, s, vt = jnp.linalg.svd(jac / scale, full_matrices=False)
    keep = s > max(m, n) * jnp.finfo(jac.dtype).eps * s[0]
    inverse = jnp.where(keep, 1.0 / jnp.where(keep, s, 1.0) ** 2, 0.0)
    covariance = (vt.T * inverse) @ vt / jnp.outer(scale, scale)
    # A non-finite Jacobian (the fit stopped where the model fails) says nothing about
    # identifiability: NaN covariance, nobody flagged.
    finite = jnp.all(jnp.isfinite(jac))
    covariance = jnp.where(finite, covariance, jnp.nan)
    return covariance, jnp.sum(keep), _unidentifiable(vt, keep) & finite


def hessian_covariance(hessian):
    """`(H^+, unidentifiable)` for the symmetric Hessian `(n, n)` of a loss at its
    minimum; directions of zero or negative curvature are unidentifiable (the Laplace
    approximation has no finite variance along them)."""
    n = hessian.shape[0]
    diagonal = jnp.sqrt(jnp.abs(jnp.diag(hessian)))
    scale = jnp.where(diagonal > 0, diagonal, 1.0)
    eigenvalues, v = jnp.linalg.eigh(hessian / jnp.outer(scale, scale))
    top = jnp.max(jnp.abs(eigenvalues))
    keep = eigenvalues > n * jnp.finfo(hessian.dtype).eps * top
    inverse = jnp.where(keep, 1.0 / jnp.where(keep, eigenvalues, 1.0), 0.0)
    covariance = (v * inverse) @ v.T / jnp.outer(scale, scale)
    finite = jnp.all(jnp.isfinite(hessian))
    covariance = jnp.where(finite, covariance, jnp.nan)
    return mark(covariance, _unidentifiable(v.T, keep) & finite)


def _unidentifiable(vt, keep):
    weight = jnp.sum(jnp.where(keep[:, None], 0.0, vt**2), axis=0)
    return weight > jnp.sqrt(jnp.finfo(vt.dtype).eps)


def mark(covariance, bad):
    """Infinite variance for the unidentifiable parameters `bad`; NaN for their
    covariances with the others."""
    covariance = jnp.where(bad[:, None] | bad[None, :], jnp.nan, covariance)
    return jnp.where(jnp.diag(bad), jnp.inf, covariance)


def warn_unidentifiable(names, covariance, stacklevel: int = 3) -> None:
    """Warn if any variance on the diagonal of the (concrete) `covariance` is infinite."""
    variances = np.diag(np.asarray(covariance))
    bad = [name for name, var in zip(names, variances, strict=True) if np.isposinf(var)]
    if not bad or _QUIET.get():
        return
    shown = ", ".join(bad[:6]) + (f" and {len(bad) - 6} more" if len(bad) > 6 else "")
    warnings.warn(
        f"ds.fit: the data do not identify {shown} (the model ignores them, or only a "
        "combination of them enters): their stderr is inf. Fix them (where=), "
        "reparametrise, add data or a prior=.",
        IdentifiabilityWarning,
        stacklevel=stacklevel,
    )


@contextlib.contextmanager
def quiet():
    """Within this context `warn_unidentifiable` says nothing: the caller warns itself,
    with names of its own."""
    token = _QUIET.set(True)
    try:
        yield
    finally:
        _QUIET.reset(token)
