"""`sparse_regression`: find the few library terms that explain a learned correction
(missing-physics discovery by sequentially thresholded least squares, SINDy's STLSQ).

Contract: given samples $x_i$ of the features and targets $y_i$ (typically a trained
correction network's outputs along trajectories), return a `ds.SparseModel`: the sparsest
combination $y \\approx \\Theta(x)\\,\\Xi$ of the terms of a `ds.Library` that explains the
targets, with coefficient uncertainties, or an explicit "no sparse model found" with the
figures that say why. A host-side driver like `ds.fit`: it runs eagerly on NumPy
(float64, whatever the input's dtype; the matrices are samples × terms), loops over
thresholds, folds and iterations but never over samples, and is not jittable. The result
is a JAX module that jits, differentiates and refits like any other.

It does not depend on PySINDy: that would pull in scikit-learn for a dozen lines of
STLSQ, and we need the coefficient uncertainties, the cross-validated threshold and an
Equinox module as the result, which it does not give.
"""

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np
from jaxtyping import ArrayLike

from ._library import Library
from ._sparse_checks import check_inputs, check_theta
from ._sparse_model import SparseModel

_GRID = np.geomspace(1e-4, 1.0, 30)
_MAX_ITER = 10
# Mean squared errors (in units of the target's mean square) below this are rounding:
# a relative rms error of 1e-6. Without the floor, the one-standard-error rule would
# prefer an overfitted dense model whose error is 1e-31 to the exact sparse one at 1e-30.
_EXACT = 1e-12


def _stlsq(A: np.ndarray, b: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """STLSQ on scaled columns: least squares, drop $|w_j| <$ threshold, refit, until the
    support stops changing (at most `_MAX_ITER` times). Returns (w, support)."""
    support = np.ones(A.shape[1], bool)
    w = np.zeros(A.shape[1])
    for _ in range(_MAX_ITER):
        w = np.zeros(A.shape[1])
        if support.any():
            w[support] = np.linalg.lstsq(A[:, support], b, rcond=None)[0]
        new = support & (np.abs(w) >= threshold)
        if np.array_equal(new, support):
            return w, support
        support = new
    w = np.zeros(A.shape[1])
    if support.any():
        w[support] = np.linalg.lstsq(A[:, support], b, rcond=None)[0]
    return w, support


def _cv_errors(A: np.ndarray, B: np.ndarray, thresholds, folds: int) -> np.ndarray:
    """Held-out mean squared errors, shape (thresholds, folds, outputs), in units of each
    output's mean square. Fold j holds samples j, j + folds, ...: each fold spans the
    whole record (interpolation between neighbours along a trajectory)."""
    n = A.shape[0]
    fold_of = np.arange(n) % folds
    errors = np.zeros((len(thresholds), folds, B.shape[1]))
    for t, threshold in enumerate(thresholds):
        for f in range(folds):
            train, test = fold_of != f, fold_of == f
            for k in range(B.shape[1]):
                w, _ = _stlsq(A[train], B[train, k], threshold)
                errors[t, f, k] = np.mean((A[test] @ w - B[test, k]) ** 2)
    return errors


def _choose_threshold(A: np.ndarray, B: np.ndarray, folds: int) -> float:
    """The one-standard-error rule over `_GRID`: among the thresholds whose mean CV error
    is within one standard error of the minimum, the one whose full-data model keeps the
    fewest terms (the largest such threshold on ties)."""
    errors = _cv_errors(A, B, _GRID, folds).mean(axis=2)  # (thresholds, folds)
    mean = errors.mean(axis=1)
    se = errors.std(axis=1, ddof=1) / math.sqrt(folds)
    best = int(np.argmin(mean))
    ok = mean <= mean[best] + max(se[best], _EXACT)
    sizes = [sum(int(_stlsq(A, B[:, k], t)[1].sum()) for k in range(B.shape[1])) for t in _GRID]
    candidates = [i for i in range(len(_GRID)) if ok[i]]
    chosen = min(candidates, key=lambda i: (sizes[i], -_GRID[i]))
    return float(_GRID[chosen])


def _ols(theta: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least squares on the support with stderr $\\sqrt{\\mathrm{diag}(s^2 (A^T A)^{-1})}$,
    $s^2 = \\mathrm{RSS}/(N - p)$ (by SVD, so a near-singular support gives large, not
    NaN, errors; an exactly singular one gives inf)."""
    n, p = theta.shape
    if p == 0:
        return np.zeros(0), np.zeros(0)
    u, s, vt = np.linalg.svd(theta, full_matrices=False)
    tiny = s[0] * max(theta.shape) * np.finfo(float).eps
    inv = np.where(s > tiny, 1.0 / np.where(s > tiny, s, 1.0), 0.0)
    coef = vt.T @ (inv * (u.T @ y))
    s2 = np.sum((theta @ coef - y) ** 2) / max(n - p, 1)
    var = np.sum((vt.T * inv) ** 2, axis=1) * s2
    var = np.where(np.sum(s > tiny) < p, np.inf, var)
    return coef, np.sqrt(var)


def _cv_r2(A: np.ndarray, B: np.ndarray, threshold: float, folds: int) -> np.ndarray:
    """Cross-validated $R^2$ per output: 1 - held-out squared error / variance (the mean
    square when the output is constant; 1 for an output that is zero and fitted so)."""
    mse = _cv_errors(A, B, [threshold], folds)[0].mean(axis=0)
    var = B.var(axis=0)
    ms = np.mean(B**2, axis=0)
    denom = np.where(var > 1e-12 * ms, var, ms)
    return np.where(denom > 0, 1.0 - mse / np.where(denom > 0, denom, 1.0), 1.0)


def _verdict(r2, kept, names, n_terms, min_r2, max_terms) -> str:
    """The reason no sparse model was found, or "" when every output has one."""
    for k, name in enumerate(names):
        if r2[k] < min_r2:
            return (
                f"output {name!r}: cross-validated R^2 = {r2[k]:.3g} < min_r2 = {min_r2:g} "
                f"with {kept[k]} of {n_terms} terms kept. Widen the library with the terms "
                "the law needs, or train the correction longer (its outputs may be noise)."
            )
        if kept[k] > max_terms:
            return (
                f"output {name!r}: keeps {kept[k]} of {n_terms} terms (max_terms = "
                f"{max_terms}; cross-validated R^2 = {r2[k]:.3g}): no sparse law. Widen the "
                "library with the missing term, or train the correction longer."
            )
    return ""


def sparse_regression(
    library: Library,
    x: ArrayLike,
    y: ArrayLike,
    *,
    threshold: float | None = None,
    folds: int = 5,
    output_names: Sequence[str] | None = None,
    min_r2: float = 0.95,
    max_terms: int | None = None,
) -> SparseModel:
    """Find a sparse expression $y \\approx \\Theta(x)\\,\\Xi$ in the terms of `library`
    (SINDy's sequentially thresholded least squares: Brunton, Proctor & Kutz 2016,
    "Discovering governing equations from data by sparse identification of nonlinear
    dynamical systems", PNAS 113, 3932).

    Each output $y_k$ separately: solve $\\min_\\xi \\|\\Theta\\xi - y_k\\|^2$, zero every
    coefficient whose scale-free contribution

    $$c_j = |\\xi_j|\\,\\mathrm{rms}(\\Theta_{:,j}) / \\mathrm{rms}(y_k)$$

    is below `threshold` (a fraction of the target's size), refit on the remaining terms,
    and repeat until the set of terms stops changing (at most 10 times). The final
    coefficients are ordinary least squares on the kept terms $A$, with standard errors
    $\\sqrt{\\mathrm{diag}(s^2 (A^T A)^{-1})}$, $s^2 = \\mathrm{RSS}/(N - p)$. When $y$ are
    a network's outputs at states along trajectories, the samples are correlated and the
    residuals are the network's misfit, not independent noise: `stderr` then measures how
    well the expression fits the samples, not a posterior width. For the same reason
    the cross-validated default can prefer a denser expression that fits the network's
    smooth error: judge the candidates of `ds.sparse_path` on the data instead (both
    scenarios `hybrid_friction` and `missing_physics` do).

    **Arguments:**

    - `library`: a `ds.Library` of candidate terms.
    - `x`: the features, shape `(N, d)`, one row per sample.
    - `y`: the targets, shape `(N,)` (the model then returns a scalar) or `(N, m)`.
    - `threshold`: the contribution below which a term is dropped. `None` (default):
      chosen by `folds`-fold cross-validation over 30 thresholds from 1e-4 to 1 with the
      one-standard-error rule (the sparsest model whose held-out error is within one
      standard error of the best; errors below 1e-12 of the target's mean square count
      as exact, i.e. rounding). Fold j holds samples j, j + folds, ..., so every fold
      spans the record; along trajectories neighbours are correlated and the held-out
      error is optimistic. One threshold serves all outputs.
    - `folds`: the number of cross-validation folds, 2 to N (also used for `r2`).
    - `output_names`: a name per output for printing (default "f", or "f[0]", "f[1]", ...).
    - `min_r2`: the least cross-validated $R^2$ (fraction of variance explained on
      held-out samples) every output must reach, in (0, 1].
    - `max_terms`: the most terms any one output may keep; default half the library
      (at least 1). A law that needs more is not sparse in this library.

    **Returns:** a `ds.SparseModel` whose coefficients have the dtype of `x` and `y`
    (the regression itself runs in float64 on the host). When an output's cross-validated $R^2$ is below
    `min_r2` or it keeps more than `max_terms` terms, `found` is `False` and `reason`
    states the figures and a fix: a dense expression of small coefficients is not a law.
    Such a model prints the reason and its closest attempt, and refuses to be called.

    **Errors:** bad arguments raise `TypeError`/`ValueError` naming the argument, before
    any fitting: `x` not 2-d, `y` rows differing from `x` rows, NaN or inf in `x` or `y`
    or in a term's values, fewer samples than terms + 1, a term that is not scalar, ...

    **Example:**

    ```python
    xy = jax.random.uniform(jax.random.key(0), (200, 2), minval=0.5, maxval=2.0)
    dxy = jnp.stack([-0.9 * xy[:, 0] * xy[:, 1], 0.8 * xy[:, 0] * xy[:, 1]], axis=1)
    lib = ds.Library.polynomial(["x", "y"], degree=2)
    model = ds.sparse_regression(lib, xy, dxy, output_names=["dx", "dy"])
    print(model)  # dx = (-0.9 ± 2.5e-09) x*y, then dy = (0.8 ± 2.4e-09) x*y
    assert model.found and model.active == ((4, 0), (4, 1))
    ```
    """
    problem = _prepare(library, x, y, threshold, folds, output_names, min_r2, max_terms)
    if threshold is None:
        threshold = _choose_threshold(problem.A, problem.B, folds)
    return _model_at(problem, float(threshold))


class _Problem(NamedTuple):
    """A checked regression, ready for any threshold: the library's values `theta`
    (samples x terms), the targets `Y` (samples x outputs), both scaled by their rms
    (`A`, `B`), which terms are usable (not identically zero), and the settings."""

    library: Library
    theta: np.ndarray
    Y: np.ndarray
    A: np.ndarray
    B: np.ndarray
    usable: np.ndarray
    dtype: Any
    names: tuple[str, ...]
    folds: int
    min_r2: float
    max_terms: int
    scalar_output: bool


def _prepare(library, x, y, threshold, folds, output_names, min_r2, max_terms) -> _Problem:
    """Check the arguments and evaluate the library once."""
    x, y, dtype, names, max_terms = check_inputs(
        library, x, y, threshold, folds, output_names, min_r2, max_terms
    )
    Y = y.reshape(len(y), -1)
    theta = np.asarray(library.evaluate(jnp.asarray(x, dtype)), dtype=np.float64)
    check_theta(library, theta)
    col = np.sqrt(np.mean(theta**2, axis=0))
    usable = col > 0  # an identically-zero term explains nothing: never kept
    A = np.where(usable, theta / np.where(usable, col, 1.0), 0.0)
    scale = np.sqrt(np.mean(Y**2, axis=0))
    B = Y / np.where(scale > 0, scale, 1.0)
    return _Problem(
        library, theta, Y, A, B, usable, dtype, names, folds, min_r2, max_terms, y.ndim == 1
    )


def _model_at(problem: _Problem, threshold: float) -> SparseModel:
    """STLSQ at `threshold` for every output, OLS on the kept terms, and the verdict."""
    theta, Y = problem.theta, problem.Y
    r2 = _cv_r2(problem.A, problem.B, threshold, problem.folds)
    active, coefficients, stderr, kept = [], [], [], []
    for k in range(Y.shape[1]):
        support = _stlsq(problem.A, problem.B[:, k], threshold)[1] & problem.usable
        terms = np.flatnonzero(support)
        coef, se = _ols(theta[:, terms], Y[:, k])
        active += [(int(j), k) for j in terms]
        coefficients += list(coef)
        stderr += list(se)
        kept.append(len(terms))
    n_terms = len(problem.library.names)
    reason = _verdict(r2, kept, problem.names, n_terms, problem.min_r2, problem.max_terms)
    return SparseModel(
        coefficients=jnp.asarray(np.asarray(coefficients, dtype=np.float64), problem.dtype),
        library=problem.library,
        active=tuple(active),
        num_outputs=Y.shape[1],
        output_names=problem.names,
        stderr=tuple(float(s) for s in stderr),
        threshold=threshold,
        r2=tuple(float(r) for r in r2),
        found=not reason,
        reason=reason,
        scalar_output=problem.scalar_output,
    )


def sparse_path(
    library: Library,
    x: ArrayLike,
    y: ArrayLike,
    *,
    thresholds: Sequence[float] | None = None,
    folds: int = 5,
    output_names: Sequence[str] | None = None,
    min_r2: float = 0.95,
    max_terms: int | None = None,
) -> tuple[SparseModel, ...]:
    """Every distinct sparse model on the threshold path of `ds.sparse_regression`, the
    sparsest first: the candidates to judge against the data themselves.

    Cross-validation on the correction's outputs (what `sparse_regression` does by
    default) judges how well an expression reproduces the *network*, which may have
    learned the missing term only approximately: along a short record, different terms
    (say $xy$ and $y^2$) can fit its outputs about equally. Refitting each candidate's
    coefficients on the observations (`ds.fit`, as in the example) and choosing by an
    information criterion or held-out data judges them by what was measured instead.

    **Arguments:** `library`, `x`, `y` and the keywords (`output_names`, `min_r2`,
    `max_terms`, `folds`) as in `ds.sparse_regression`; `thresholds`: the contribution
    thresholds to try (default 30 from 1e-4 to 1, geometrically spaced).

    **Returns:** a tuple of `ds.SparseModel`, one per distinct set of active terms, ordered
    by the number of terms kept (then by threshold, largest first). Models that are not
    `found` (too many terms, too little variance explained) are left out; the tuple is
    empty when none is.

    **Example:** the candidates for a law $-0.9\\,xy$, and the one a Bayesian information
    criterion on the samples prefers:

    ```python
    xy = jax.random.uniform(jax.random.key(0), (200, 2), minval=0.5, maxval=2.0)
    f = -0.9 * xy[:, 0] * xy[:, 1] + 0.01 * jax.random.normal(jax.random.key(1), (200,))
    lib = ds.Library.polynomial(["x", "y"], degree=2)
    candidates = ds.sparse_path(lib, xy, f)

    def bic(model):
        rss = jnp.sum((jax.vmap(model)(xy) - f) ** 2)
        return 200 * jnp.log(rss / 200) + len(model.active) * jnp.log(200)

    best = min(candidates, key=bic)
    print(best)  # f = (-0.9 ± ...) x*y
    ```
    """
    grid = list(_GRID[::-1]) if thresholds is None else sorted(map(float, thresholds), reverse=True)
    if not grid or any(not (t >= 0 and math.isfinite(t)) for t in grid):
        raise ValueError(
            f"thresholds must be a non-empty sequence of finite numbers >= 0; got {thresholds!r}."
        )
    # Checked and evaluated once; each threshold is then a few least-squares solves.
    problem = _prepare(library, x, y, None, folds, output_names, min_r2, max_terms)
    seen: dict = {}
    for threshold in grid:
        model = _model_at(problem, float(threshold))
        if model.found:
            seen.setdefault(model.active, model)
    return tuple(sorted(seen.values(), key=lambda m: (len(m.active), -m.threshold)))
