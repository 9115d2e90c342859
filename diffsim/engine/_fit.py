"""`fit`: recover physical parameters from observed data by differentiating through the
model (usually a rollout).

Contract: `fit(model, params0, observed)` minimises
$\\tfrac12 \\sum_i \\left((m_i(\\theta) - y_i)/\\sigma_i\\right)^2$ over the trainable leaves
$\\theta$ of `params0` (any pytree: a system, a dict, a tuple), skipping NaN entries of
`observed` (missing data). Bounded parameters are optimised in an unconstrained space and
reported in physical units. The solver is optimistix's (Levenberg-Marquardt by default) or
any optax optimiser; the loop is our own so that it can record the loss at every
iteration and print progress. Errors in the inputs raise before anything is compiled.
"""

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.flatten_util as jfu
import jax.lax as lax
import jax.numpy as jnp
import numpy as np
import optax
import optimistix as optx
from jaxtyping import Array, Bool, Float, Int, PyTree

from ._flat_jit import NOT_APPLICABLE, flat_jit
from ._rollout import _floats_to_arrays, trial_rollouts
from ._shooting import TrajectoryModel


class FitResult(eqx.Module):
    """What `ds.fit` returns.

    **Fields:**

    - `params`: `params0` with the fitted values in place of the trainable leaves.
    - `loss`: the final objective, $\\tfrac12 \\sum r_i^2$ (or the value of `loss=`).
    - `history`: the objective after each iteration (`history[0]` at `params0`), NaN
      past the last iteration when built under `jit`.
    - `stderr`: like `params`, with one standard error per trainable value (zero for
      fixed leaves), from `covariance`.
    - `covariance`: covariance of the trainable values, flattened in the order of
      `jax.tree.leaves(where(params))`: $s^2 (J^\\top J)^{-1}$ at the optimum with the
      Jacobian $J$ of the weighted residuals in physical units, where $s^2$ is the
      residual variance $\\sum r_i^2/(n - p)$ when `sigma` is not given and 1 when it is
      (Gauss-Newton). With `loss=`, the inverse Hessian of the loss (Laplace), which is a
      covariance when the loss is a negative log-likelihood.
    - `n_steps`: iterations taken. `converged`: whether the solver met its tolerance.
    - `names`: the trainable leaves' paths, for `summary()`.
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
        """A table of the fitted values with their standard errors."""
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


# ----------------------------------------------------------------------------- bounds


def _softplus_inv(x):
    return jnp.log(jnp.expm1(x))


@dataclasses.dataclass(frozen=True)
class _Bound:
    """An elementwise bijection R -> (lo, hi) (either side may be open). A frozen
    dataclass, not a module: it is a static, hashable part of the compiled program."""

    lo: float | None
    hi: float | None

    def to_physical(self, u):
        if self.lo is None and self.hi is None:
            return u
        if self.hi is None:
            return self.lo + jax.nn.softplus(u)
        if self.lo is None:
            return self.hi - jax.nn.softplus(u)
        return self.lo + (self.hi - self.lo) * jax.nn.sigmoid(u)

    def to_unconstrained(self, x):
        if self.lo is None and self.hi is None:
            return x
        if self.hi is None:
            return _softplus_inv(x - self.lo)
        if self.lo is None:
            return _softplus_inv(self.hi - x)
        z = (x - self.lo) / (self.hi - self.lo)
        return jnp.log(z) - jnp.log1p(-z)

    def contains(self, x) -> bool:
        x = np.asarray(x)
        ok = np.ones(x.shape, bool)
        if self.lo is not None:
            ok &= x > self.lo
        if self.hi is not None:
            ok &= x < self.hi
        return bool(ok.all())


def _parse_bounds(bounds, n_nodes, is_tuple, where):
    """One `_Bound` per top-level node of `where(params)`."""
    if bounds is None:
        return tuple(_Bound(None, None) for _ in range(n_nodes))
    if where is None:
        raise ValueError("bounds= needs where=: bounds are given per selected parameter.")
    if is_tuple:
        if not isinstance(bounds, (tuple, list)) or len(bounds) != n_nodes:
            raise ValueError(
                f"bounds must be a tuple with one (lo, hi) or None per parameter selected by "
                f"where ({n_nodes} of them); got {bounds!r}."
            )
        spec = list(bounds)
    else:
        spec = [bounds]
    out = []
    for i, b in enumerate(spec):
        if b is None:
            out.append(_Bound(None, None))
            continue
        if not (isinstance(b, (tuple, list)) and len(b) == 2):
            raise ValueError(f"bounds[{i}] must be (lo, hi) with None for an open side; got {b!r}.")
        lo, hi = (None if v is None else float(v) for v in b)
        if lo is not None and hi is not None and not lo < hi:
            raise ValueError(f"bounds[{i}] = {b!r} needs lo < hi.")
        out.append(_Bound(lo, hi))
    return tuple(out)


class _Marker:
    def __init__(self, index):
        self.index = index


@dataclasses.dataclass(frozen=True)
class _Selection:
    """Which leaves of `params` are fitted, with their bounds: a static, hashable
    description, so that a new `where` lambda with the same meaning does not recompile
    the fit."""

    node_of_leaf: tuple[int | None, ...]
    bounds: tuple[_Bound, ...]
    names: tuple[str, ...]

    @property
    def trainable(self) -> tuple[int, ...]:
        return tuple(i for i, node in enumerate(self.node_of_leaf) if node is not None)


def _is_float_leaf(x) -> bool:
    """A fittable leaf: a floating-point array, or a Python float (which the compiled call
    traces as a 0-d array)."""
    return type(x) is float or eqx.is_inexact_array(x)


def _select(params, where, bounds) -> _Selection:
    is_marker = lambda x: isinstance(x, _Marker)  # noqa: E731
    if where is None:
        tagged = jax.tree.map(lambda x: _Marker(0) if _is_float_leaf(x) else x, params)
        node_bounds = _parse_bounds(bounds, 1, False, None)
    else:
        try:
            nodes = where(params)
        except Exception as e:
            raise ValueError(f"where(params0) failed: {type(e).__name__}: {e}") from e
        is_tuple = isinstance(nodes, (tuple, list))
        node_list = list(nodes) if is_tuple else [nodes]
        tags = [jax.tree.map(lambda _, i=i: _Marker(i), node) for i, node in enumerate(node_list)]
        tagged = eqx.tree_at(where, params, tuple(tags) if is_tuple else tags[0])
        node_bounds = _parse_bounds(bounds, len(node_list), is_tuple, where)
    flat = jax.tree_util.tree_flatten_with_path(tagged, is_leaf=is_marker)[0]
    leaves = jax.tree.leaves(params)
    node_of_leaf, names = [], []
    for (path, tag), leaf in zip(flat, leaves, strict=True):
        if not is_marker(tag):
            node_of_leaf.append(None)
            continue
        if not _is_float_leaf(leaf):
            raise ValueError(
                f"where selected {jax.tree_util.keystr(path)}, which is not a floating-point "
                f"array ({type(leaf).__name__}); only floating-point parameters can be fitted."
            )
        node_of_leaf.append(tag.index)
        name = jax.tree_util.keystr(path).lstrip(".") or "params"
        size = int(np.size(leaf))
        names.extend([name] if size == 1 else [f"{name}[{i}]" for i in range(size)])
    if not names:
        raise ValueError("Nothing to fit: params0 has no floating-point leaves (pass where=).")
    return _Selection(tuple(node_of_leaf), node_bounds, tuple(names))


# ---------------------------------------------------------------------- the solve loop


def _solve(fn, solver, y0, max_steps, options, progress):
    """optimistix's iteration (init / step / terminate), recording the objective (the aux
    of `fn`) at each accepted point."""
    # As optimistix's own entry points do: closure-convert `fn`, so that the values it
    # closes over (data, masks, save times) are inputs of one traced function rather
    # than captured again by every linearisation in the loop (3.5 ms of a 4 ms fit with
    # a SaveAt(ts) model without it).
    fn = eqx.filter_closure_convert(fn, y0, None)
    f_struct, aux_struct = jax.eval_shape(lambda: fn(y0, None))
    state = solver.init(fn, y0, None, options, f_struct, aux_struct, frozenset())
    dynamic0, static = eqx.partition(state, eqx.is_array)
    _, loss0 = fn(y0, None)
    history0 = jnp.full((max_steps + 1,), jnp.nan, loss0.dtype).at[0].set(loss0)
    done0, result0 = solver.terminate(fn, y0, None, options, state, frozenset())

    def cond(carry):
        _, step, _, _, done, result = carry
        return ~done & (result == optx.RESULTS.successful) & (step < max_steps)

    def body(carry):
        y, step, dynamic, history, _, _ = carry
        state = eqx.combine(static, dynamic)
        y, state, aux = solver.step(fn, y, None, options, state, frozenset())
        loss = _accepted_loss(state, aux)
        done, result = solver.terminate(fn, y, None, options, state, frozenset())
        if progress:
            jax.debug.callback(_print_progress, step + 1, loss, ordered=True)
        history = history.at[step + 1].set(loss)
        return y, step + 1, eqx.filter(state, eqx.is_array), history, done, result

    carry = (y0, jnp.asarray(0), dynamic0, history0, done0, result0)
    y, steps, dynamic, history, done, result = lax.while_loop(cond, body, carry)
    state = eqx.combine(static, dynamic)
    y, _, _ = solver.postprocess(fn, y, None, None, options, state, frozenset(), result)
    converged = done & (result == optx.RESULTS.successful)
    return y, steps, converged, history


def _accepted_loss(state, aux):
    """The objective at the solver's last accepted point. optimistix keeps it in the
    state (`f_info` for Gauss-Newton and quasi-Newton methods, `f` for optax); the aux
    returned by `step` can lag, so it is only the fallback."""
    f_info = getattr(state, "f_info", None)
    if f_info is not None and hasattr(f_info, "as_min"):
        return f_info.as_min()
    f = getattr(state, "f", None)
    return f if f is not None else aux


def _print_progress(step, loss):
    print(f"  fit iteration {int(step):4d}   loss {float(loss):.8g}", flush=True)


# ---------------------------------------------------------------------------- fit


def fit(
    model: Callable[[Any], PyTree],
    params0: Any,
    observed: PyTree | None = None,
    *,
    where: Callable[[Any], Any] | None = None,
    sigma: Any = None,
    loss: Callable[[PyTree], Any] | None = None,
    prior: Callable[[Any], PyTree] | None = None,
    bounds: Any = None,
    solver: Any = None,
    max_steps: int = 256,
    rtol: float = 1e-8,
    atol: float = 1e-8,
    options: dict | None = None,
    shooting: int | None = None,
    shooting_weight: float = 100.0,
    progress: bool = False,
    throw: bool = True,
) -> FitResult:
    """Fit the parameters of `model` to `observed` data (or minimise `loss`).

    Least squares (the default, with `observed`):

    $$\\min_\\theta\\ \\tfrac12 \\sum_i \\left(\\frac{m_i(\\theta) - y_i}{\\sigma_i}\\right)^2
      + \\tfrac12 \\|\\mathrm{prior}(\\theta)\\|^2$$

    over the trainable leaves $\\theta$ of `params0`, summed over every non-NaN entry of
    `observed`. With `loss=`, $\\min_\\theta \\mathrm{loss}(m(\\theta))$ instead.

    **Arguments:**

    - `model`: `model(params) -> prediction`, a pytree with the structure and shapes of
      `observed`; typically builds a system from `params`, calls `ds.simulate` and returns
      observations at the data's times.
    - `params0`: the starting point: any pytree (usually a system, an `eqx.Module`).
    - `observed`: the data; NaN entries are missing and ignored.
    - `where`: picks the trainable leaves, as in `eqx.tree_at`:
      `where=lambda p: (p.length, p.damping)`. Default: every floating-point leaf.
    - `sigma`: the noise standard deviation, a scalar or a pytree like `observed`.
      Given, residuals are weighted by it and `stderr` uses it; not given, the noise is
      estimated from the residuals.
    - `loss`: a scalar objective of the prediction, instead of `observed`.
    - `prior`: `prior(params) -> residuals` appended to the least-squares residuals
      (a Gaussian prior or a smoothness penalty, e.g. `lambda p: 10 * jnp.diff(p.field)`).
    - `bounds`: with `where`, one `(lo, hi)` or `None` per selected node (`None` for an
      open side): `bounds=((0, None), (0, 1))` keeps a length positive and a damping in
      (0, 1). The fit runs in an unconstrained space; results are in physical units.
    - `solver`: an optimistix least-squares solver (default
      `optx.LevenbergMarquardt(rtol, atol)`; also `optx.GaussNewton`, `optx.Dogleg`), an
      optimistix minimiser (`optx.BFGS`, default with `loss=`), or an optax
      `GradientTransformation` (`optax.adam(1e-2)`; stops after `max_steps` or when
      the change in the loss falls below the tolerances).
    - `max_steps`: the iteration limit. `rtol`, `atol`: tolerances for the default and
      optax solvers.
    - `options`: passed to the optimistix solver, e.g. `{"jac": "bwd"}` for models without
      forward-mode derivatives (a custom VJP, `ds.Reversible`).
    - `shooting`: with a `ds.TrajectoryModel`, multiple shooting over this many segments:
      each segment after the first starts from its own fitted state, and continuity
      residuals `shooting_weight * (end of segment j - start of segment j+1)` join them
      (see `ds.TrajectoryModel`). For long or chaotic records, or a poor start. Results
      (`params`, `stderr`, `covariance`) are for the physical parameters only; the
      segment states are nuisance parameters whose uncertainty they include.
    - `progress`: print the loss at every iteration (ignored inside a user's `jit`).
    - `throw`: raise if the solver did not converge; with `False`, check `converged`.

    **Returns:** a `ds.FitResult`; `print(res.summary())` shows the table.

    Solvers try trial points that may be far from physical (a negative length). Give
    `bounds` for parameters that must stay physical; and if a trial may still make the
    rollout blow up, that is fine: while the solver runs, `ds.simulate` inside the model
    does not raise on a non-finite state (as if `throw=False`), and the solver's step
    control rejects the non-finite trial.

    **Example:**

    ```python
    def model(p):
        traj = ds.simulate(p, p.initial_state(1.0), t1=10.0, dt=0.01,
                           saveat=ds.SaveAt(ts=ts))
        return traj.ys.q

    res = ds.fit(model, ds.systems.Pendulum(length=1.0, damping=0.05), angles,
                 where=lambda p: (p.length, p.damping), bounds=((0, None), (0, None)))
    print(res.summary())
    ```
    """
    if (observed is None) == (loss is None):
        raise ValueError(
            "Pass exactly one of observed= (least squares) and loss= (a scalar objective)."
        )
    if not callable(model):
        raise TypeError(f"model must be a callable model(params) -> prediction; got {model!r}.")
    if not isinstance(max_steps, int) or max_steps < 1:
        raise ValueError(f"max_steps must be a positive int; got {max_steps!r}.")
    # Under a user's jit or vmap (e.g. one fit per dataset, vmapped): no host-side checks
    # on traced values, no progress printing, and the history keeps its full length.
    tracing = any(
        isinstance(x, jax.core.Tracer) for x in jax.tree.leaves((params0, observed, sigma))
    )
    if shooting is not None:
        params0 = _floats_to_arrays(params0)
        return _fit_shooting(
            model,
            params0,
            observed,
            shooting,
            shooting_weight,
            where=where,
            sigma=sigma,
            prior=prior,
            bounds=bounds,
            solver=solver,
            max_steps=max_steps,
            rtol=rtol,
            atol=atol,
            options=options,
            progress=progress,
            throw=throw,
            loss=loss,
        )
    selection = _select(params0, where, bounds)
    if not tracing:
        leaves = jax.tree.leaves(params0)
        trainable = jax.device_get([leaves[i] for i in selection.trainable])  # one transfer
        for i, value in zip(selection.trainable, trainable, strict=True):
            bound = selection.bounds[selection.node_of_leaf[i]]
            if not np.isfinite(value).all():
                raise ValueError(
                    "params0 has non-finite values in a fitted parameter; start from finite values."
                )
            if not bound.contains(value):
                raise ValueError(
                    f"params0's fitted value {np.asarray(value)} is not strictly inside its "
                    f"bounds ({bound.lo}, {bound.hi}); start inside them."
                )

    least_squares = observed is not None
    if least_squares:
        # Host data stays a NumPy array until the compiled call takes it (an eager
        # jnp.asarray per leaf costs more than the transfer).
        observed = jax.tree.map(lambda o: o if eqx.is_array(o) else np.asarray(o), observed)
        if not tracing and all(np.isnan(np.asarray(o)).all() for o in jax.tree.leaves(observed)):
            raise ValueError("observed is all NaN: there is no data to fit.")
        sigma = _broadcast_sigma(sigma, observed)

    if solver is None:
        solver = _default_solver(least_squares, rtol, atol)
    if isinstance(solver, optax.GradientTransformation):
        solver = optx.OptaxMinimiser(solver, rtol=rtol, atol=atol)
    if isinstance(solver, optx.AbstractLeastSquaresSolver) and not least_squares:
        raise ValueError(
            "A least-squares solver needs observed=; with loss= use a minimiser "
            "(optx.BFGS(), optax.adam(...))."
        )
    if not isinstance(solver, (optx.AbstractLeastSquaresSolver, optx.AbstractMinimiser)):
        raise TypeError(
            "solver must be an optimistix least-squares solver or minimiser, or an optax "
            f"GradientTransformation; got {solver!r}."
        )
    options = {} if options is None else dict(options)

    # Least-squares solvers take forward-mode Jacobians unless options ask otherwise.
    forward = isinstance(solver, optx.AbstractLeastSquaresSolver) and (
        options.get("jac", "fwd") == "fwd"
    )
    args = (model, loss, prior, selection, solver, max_steps, options, progress and not tracing)
    args += (params0, observed, sigma)
    with trial_rollouts(forward_jacobians=forward):
        # The solver and options are part of the compiled program's key, and they decide
        # `forward`, so a cached program was traced under the same trial_rollouts.
        # Eager calls keep Python floats in params0: flat_jit traces them as 0-d arrays;
        # eqx.filter_jit (traced calls, or a static leaf that cannot be hashed) would
        # bake them in, so they become arrays first.
        out = NOT_APPLICABLE if tracing else _fit_core_eager(*args)
        if out is NOT_APPLICABLE:
            out = _fit_core(*args[:8], _floats_to_arrays(params0), observed, sigma)
    params, final_loss, history, stderr, covariance, n_steps, converged, values = out
    if not tracing:
        # One transfer for the host-side figures. A NumPy slice of the history: slicing
        # the device array would compile once per iteration count.
        history, n_steps_host, converged_host = jax.device_get((history, n_steps, converged))
        history = history[: int(n_steps_host) + 1]
        if throw and not bool(converged_host):
            raise RuntimeError(
                f"fit did not converge in max_steps={max_steps} iterations (loss "
                f"{float(final_loss):.6g}). Increase max_steps, loosen rtol/atol, start "
                "closer, or pass throw=False and check res.converged."
            )
    return FitResult(
        params=params,
        loss=final_loss,
        history=history,
        stderr=stderr,
        covariance=covariance,
        n_steps=n_steps,
        converged=converged,
        names=selection.names,
        values=values,
    )


def _fit_program(
    model, loss, prior, selection, solver, max_steps, options, progress, params0, observed, sigma
):
    """Everything that runs on the device: the solve, then the uncertainty."""
    leaves, treedef = jax.tree.flatten(params0)
    trainable = selection.trainable
    bounds = [selection.bounds[selection.node_of_leaf[i]] for i in trainable]

    def rebuild(theta):
        new = list(leaves)
        for i, value in zip(trainable, theta, strict=True):
            new[i] = value
        return jax.tree.unflatten(treedef, new)

    def to_physical(u):
        return [b.to_physical(ui) for b, ui in zip(bounds, u, strict=True)]

    least_squares = observed is not None
    if least_squares:
        # Checked while tracing, so a cached call pays nothing for it.
        _check_prediction(model, params0, observed)
        weights = sigma.ones if isinstance(sigma, _UnitSigma) else sigma
        masks = jax.tree.map(lambda o: ~jnp.isnan(o), observed)
        filled = jax.tree.map(lambda o, m: jnp.where(m, o, 0.0), observed, masks)

    def residuals(theta):
        params = rebuild(theta)
        r = jax.tree.map(
            lambda pr, ob, m, s: jnp.where(m, (pr - ob) / s, 0.0),
            model(params),
            filled,
            masks,
            weights,
        )
        return (r, prior(params)) if prior is not None else r

    def objective(theta):
        if least_squares:
            return 0.5 * _sum_squares(residuals(theta))
        return loss(model(rebuild(theta)))

    if isinstance(solver, optx.AbstractLeastSquaresSolver):

        def fn(u, _):
            r = residuals(to_physical(u))
            return r, 0.5 * _sum_squares(r)
    else:

        def fn(u, _):
            value = objective(to_physical(u))
            return value, value

    u0 = [b.to_unconstrained(leaves[i]) for b, i in zip(bounds, trainable, strict=True)]
    u, n_steps, converged, history = _solve(fn, solver, u0, max_steps, options, progress)
    theta = to_physical(u)
    params = rebuild(theta)

    # Uncertainty, in physical units.
    flat_theta, unravel = jfu.ravel_pytree(theta)
    if least_squares:

        def flat_residuals(x):
            return jfu.ravel_pytree(residuals(unravel(x)))[0]

        differentiate = jax.jacfwd if options.get("jac", "fwd") == "fwd" else jax.jacrev
        jac = differentiate(flat_residuals)(flat_theta)
        r = flat_residuals(flat_theta)
        final_loss = 0.5 * jnp.sum(r**2)
        if sigma_given(sigma):
            scale = 1.0
        else:
            # Degrees of freedom: observed (non-NaN) values plus prior residuals, less p.
            n_prior = r.size - sum(m.size for m in jax.tree.leaves(masks))
            n_data = sum(jnp.sum(m) for m in jax.tree.leaves(masks))
            scale = 2 * final_loss / jnp.maximum(n_data + n_prior - flat_theta.size, 1)
        covariance = scale * jnp.linalg.pinv(jac.T @ jac)
    else:
        final_loss = objective(theta)
        covariance = jnp.linalg.pinv(jax.hessian(lambda x: objective(unravel(x)))(flat_theta))
    errors = unravel(jnp.sqrt(jnp.clip(jnp.diag(covariance), 0.0)))
    stderr_leaves = [jnp.zeros_like(x) if eqx.is_inexact_array(x) else x for x in leaves]
    for i, e in zip(trainable, errors, strict=True):
        stderr_leaves[i] = e
    stderr = jax.tree.unflatten(treedef, stderr_leaves)
    return params, final_loss, history, stderr, covariance, n_steps, converged, flat_theta


# Under a user's transformation: eqx.filter_jit. Eager calls: the same program through
# flat_jit, without filter_jit's per-call partitioning of the (large) argument pytrees.
_fit_core = eqx.filter_jit(_fit_program)
# Python floats in params0 are traced, not baked in.
_fit_core_eager = flat_jit(_fit_program, float_dynamic=(False,) * 8 + (True, False, False))


@functools.lru_cache(maxsize=32)
def _default_solver(least_squares: bool, rtol: float, atol: float):
    """Built once per tolerance pair: optimistix solvers are immutable modules."""
    if least_squares:
        return optx.LevenbergMarquardt(rtol=rtol, atol=atol)
    return optx.BFGS(rtol=rtol, atol=atol)


def _fit_shooting(
    model, params0, observed, k, weight, *, where, sigma, prior, bounds, loss, **kwargs
):
    """`fit` on the extended parameters (params, segment states); see `shooting=`."""
    if not isinstance(model, TrajectoryModel):
        raise TypeError(
            "shooting= needs model to be a ds.TrajectoryModel (it must know its segments)."
        )
    if loss is not None or observed is None:
        raise ValueError("shooting= fits observed data: pass observed=, not loss=.")
    states0 = model.segment_states(params0, k)
    if model.observes_state:
        # The state itself is observed: start each segment from the first observation in
        # it (Bock's initialisation), which is what lets shooting recover a chaotic record
        # from a poor first guess; a missing (NaN) value keeps the rollout's.
        first = model.first_observation_of_segments(k)[1:]
        states0 = jax.tree.map(
            lambda s, o: jnp.where(jnp.isnan(o[first]), s, o[first]), states0, observed
        )
    extended0 = (params0, states0)
    if where is None:
        physical_nodes = [eqx.filter(params0, eqx.is_inexact_array)]
        ext_where = lambda e: (eqx.filter(e[0], eqx.is_inexact_array), e[1])  # noqa: E731
        raise_if_none_where = True
    else:
        nodes = where(params0)
        is_tuple = isinstance(nodes, (tuple, list))
        physical_nodes = list(nodes) if is_tuple else [nodes]
        raise_if_none_where = False

        def ext_where(e):
            n = where(e[0])
            return (*n, e[1]) if is_tuple else (n, e[1])

    if raise_if_none_where:
        raise ValueError("shooting= needs where= to say which parameters to fit.")
    if bounds is not None and where is not None:
        bounds = (*bounds, None) if isinstance(where(params0), (tuple, list)) else (bounds, None)
    ext_model = model.shooting_model(k, weight)
    gaps0 = jax.eval_shape(ext_model, extended0)[1]
    ext_observed = (observed, jax.tree.map(lambda g: jnp.zeros(g.shape, g.dtype), gaps0))
    if sigma is not None:
        sigma = (sigma, jax.tree.map(lambda g: jnp.ones((), g.dtype), gaps0))
    ext_prior = None if prior is None else (lambda e: prior(e[0]))
    res = fit(
        ext_model,
        extended0,
        ext_observed,
        where=ext_where,
        sigma=sigma,
        prior=ext_prior,
        bounds=bounds,
        **kwargs,
    )
    p = sum(int(np.size(x)) for x in jax.tree.leaves(physical_nodes))
    return FitResult(
        params=res.params[0],
        loss=res.loss,
        history=res.history,
        stderr=res.stderr[0],
        covariance=res.covariance[:p, :p],
        n_steps=res.n_steps,
        converged=res.converged,
        names=tuple(n.removeprefix("[0].").removeprefix("[0]") or "params" for n in res.names[:p]),
        values=res.values[:p],
    )


def _check_prediction(model, params0, observed):
    try:
        pred_struct = jax.eval_shape(model, params0)
    except Exception as e:
        raise ValueError(f"model(params0) failed: {type(e).__name__}: {e}") from e
    if jax.tree.structure(pred_struct) != jax.tree.structure(observed):
        raise ValueError(
            "model(params0) and observed have different structures: "
            f"{jax.tree.structure(pred_struct)} vs {jax.tree.structure(observed)}."
        )
    for pr, ob in zip(jax.tree.leaves(pred_struct), jax.tree.leaves(observed), strict=True):
        if pr.shape != ob.shape:
            raise ValueError(
                f"model(params0) returns shape {pr.shape} where observed has shape "
                f"{ob.shape}; the model must predict every observed value (NaN marks "
                "missing data)."
            )


def _sum_squares(tree):
    return sum(jnp.sum(x**2) for x in jax.tree.leaves(tree))


class _UnitSigma(eqx.Module):
    """sigma not given: unit weights, and the noise is estimated from the residuals."""

    ones: PyTree


def sigma_given(sigma) -> bool:
    return not isinstance(sigma, _UnitSigma)


def _array(x, dtype=None):
    """An array for the compiled call: NumPy for host values (no eager device op), else
    as it is (a device array or a tracer)."""
    if eqx.is_array(x) and (dtype is None or x.dtype == dtype):
        return x
    if isinstance(x, jax.core.Tracer) or isinstance(x, jax.Array):
        return jnp.asarray(x, dtype)
    return np.asarray(x, dtype)


def _broadcast_sigma(sigma, observed):
    if sigma is None:
        return _UnitSigma(jax.tree.map(lambda o: np.ones((), o.dtype), observed))
    if jax.tree.structure(sigma) == jax.tree.structure(observed):
        sigmas = jax.tree.map(_array, sigma)
    elif (
        not jax.tree.leaves(sigma)
        or len(jax.tree.leaves(sigma)) == 1
        and np.ndim(jax.tree.leaves(sigma)[0]) == 0
    ):
        sigmas = jax.tree.map(lambda o: _array(sigma, o.dtype), observed)
    else:
        raise ValueError("sigma must be a positive scalar or a pytree like observed.")
    for s in jax.tree.leaves(sigmas):
        if not isinstance(s, jax.core.Tracer) and not (np.asarray(s) > 0).all():
            raise ValueError("sigma must be positive everywhere.")
    return sigmas
