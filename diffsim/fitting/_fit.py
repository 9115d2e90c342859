"""`fit`: recover physical parameters from observed data by differentiating through the
model (usually a rollout).

Contract: `fit(model, params0, observed)` minimises
$\\tfrac12 \\sum_i \\left((m_i(\\theta) - y_i)/\\sigma_i\\right)^2$ over the trainable leaves
$\\theta$ of `params0` (any pytree: a system, a dict, a tuple), skipping NaN entries of
`observed` (missing data). Bounded parameters are optimised in an unconstrained space and
reported in physical units. The solver is optimistix's (Levenberg-Marquardt by default) or
any optax optimiser; the loop is our own so that it can record the loss at every
iteration and print progress. Errors in the inputs raise before anything is compiled.

`fit` reads as its phases: select the trainable leaves and their bounds
(`_selection.py`), transform (the data and `sigma` in `_data.py`, the solver and its
Jacobian mode here), solve (one compiled program: the loop in `_solve.py`, then the
covariance), summarise (`FitResult`, `_result.py`).
"""

import functools
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.flatten_util as jfu
import jax.numpy as jnp
import numpy as np
import optax
import optimistix as optx
from jaxtyping import PyTree

from .._flat_jit import NOT_APPLICABLE, flat_jit
from .._trees import floats_to_arrays
from ..engine import trial_rollouts
from ._data import UnitSigma, broadcast_sigma, check_prediction, sigma_given, sum_squares
from ._result import FitResult
from ._selection import Selection, select
from ._shooting import TrajectoryModel
from ._solve import solve

# ----------------------------------------------------------------------------- bounds


# ---------------------------------------------------------------------- the solve loop


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
      forward-mode derivatives (a custom VJP of your own). `ds.simulate` inside the model
      needs nothing: while a least-squares solver takes forward-mode Jacobians, its
      rollouts use `ds.Direct()` (fixed step) or `diffrax.ForwardMode()` (adaptive),
      whatever adjoint they ask for.
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
    _check_call(model, observed, loss, max_steps)
    # Under a user's jit or vmap (e.g. one fit per dataset, vmapped): no host-side checks
    # on traced values, no progress printing, and the history keeps its full length.
    tracing = any(
        isinstance(x, jax.core.Tracer) for x in jax.tree.leaves((params0, observed, sigma))
    )
    if shooting is not None:
        return _fit_shooting(
            model,
            floats_to_arrays(params0),
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
    # select: the trainable leaves and their bounds
    selection = select(params0, where, bounds)
    if not tracing:
        _check_start(params0, selection)
    if observed is not None:
        observed, sigma = _prepare_data(observed, sigma, tracing)
    # transform: the solver, and the Jacobian mode its trial rollouts will see
    solver = _choose_solver(solver, observed is not None, rtol, atol)
    options = {} if options is None else dict(options)
    # Least-squares solvers take forward-mode Jacobians unless options ask otherwise.
    forward = isinstance(solver, optx.AbstractLeastSquaresSolver) and (
        options.get("jac", "fwd") == "fwd"
    )
    # solve: one compiled program
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
            out = _fit_core(*args[:8], floats_to_arrays(params0), observed, sigma)
    # summarise
    return _summarise(out, selection, max_steps, throw, tracing)


def _check_call(model, observed, loss, max_steps) -> None:
    if (observed is None) == (loss is None):
        raise ValueError(
            "Pass exactly one of observed= (least squares) and loss= (a scalar objective)."
        )
    if not callable(model):
        raise TypeError(f"model must be a callable model(params) -> prediction; got {model!r}.")
    if not isinstance(max_steps, int) or max_steps < 1:
        raise ValueError(f"max_steps must be a positive int; got {max_steps!r}.")


def _check_start(params0, selection: Selection) -> None:
    """The fitted values of `params0` are finite and strictly inside their bounds."""
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


def _prepare_data(observed, sigma, tracing: bool):
    """`observed` as arrays (host data stays NumPy until the compiled call takes it: an
    eager jnp.asarray per leaf costs more than the transfer) and `sigma` broadcast to it."""
    observed = jax.tree.map(lambda o: o if eqx.is_array(o) else np.asarray(o), observed)
    if not tracing and all(np.isnan(np.asarray(o)).all() for o in jax.tree.leaves(observed)):
        raise ValueError("observed is all NaN: there is no data to fit.")
    return observed, broadcast_sigma(sigma, observed)


def _choose_solver(solver, least_squares: bool, rtol: float, atol: float):
    """The optimistix solver to run: the default, an optax optimiser wrapped, or the
    user's own, checked against the kind of objective."""
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
    return solver


def _summarise(out, selection: Selection, max_steps: int, throw: bool, tracing: bool):
    """The `FitResult`; eagerly, the history trimmed to the iterations taken and a
    non-converged fit raised when `throw`."""
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

    # The solver works in the widest float of the fit: with x64 on, float32 parameters
    # are solved for in float64 (optimistix's damped systems are built in the scalar
    # dtype, and mixing the two fails inside lineax), and reach the model as float32.
    dtypes = [jnp.result_type(leaves[i]) for i in trainable]
    solve_dtype = functools.reduce(jnp.promote_types, dtypes, jnp.result_type(float))

    def rebuild(theta):
        new = list(leaves)
        for i, value, dtype in zip(trainable, theta, dtypes, strict=True):
            new[i] = jnp.asarray(value).astype(dtype)
        return jax.tree.unflatten(treedef, new)

    def to_physical(u):
        return [b.to_physical(ui) for b, ui in zip(bounds, u, strict=True)]

    least_squares = observed is not None
    if least_squares:
        # Checked while tracing, so a cached call pays nothing for it.
        check_prediction(model, params0, observed)
        weights = sigma.ones if isinstance(sigma, UnitSigma) else sigma
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
        r = (r, prior(params)) if prior is not None else r
        # float32 predictions or records under x64: the solver's vectors share one dtype.
        return jax.tree.map(lambda x: x.astype(solve_dtype), r)

    def objective(theta):
        if least_squares:
            return 0.5 * sum_squares(residuals(theta))
        return jnp.asarray(loss(model(rebuild(theta)))).astype(solve_dtype)

    u0 = [
        b.to_unconstrained(jnp.asarray(leaves[i], solve_dtype))
        for b, i in zip(bounds, trainable, strict=True)
    ]
    fn, scale = _solver_objective(solver, residuals, objective, to_physical, u0)
    z0 = [u / s for u, s in zip(u0, scale, strict=True)]
    z, n_steps, converged, history = solve(fn, solver, z0, max_steps, options, progress)
    theta = to_physical(_times(z, scale))
    params = rebuild(theta)

    final_loss, covariance, flat_theta, unravel = _uncertainty(
        theta,
        residuals if least_squares else None,
        objective,
        masks if least_squares else None,
        sigma,
        options,
    )
    errors = unravel(jnp.sqrt(jnp.clip(jnp.diag(covariance), 0.0)))
    stderr_leaves = [jnp.zeros_like(x) if eqx.is_inexact_array(x) else x for x in leaves]
    for i, e, dtype in zip(trainable, errors, dtypes, strict=True):
        stderr_leaves[i] = e.astype(dtype)
    stderr = jax.tree.unflatten(treedef, stderr_leaves)
    return params, final_loss, history, stderr, covariance, n_steps, converged, flat_theta


def _solver_objective(solver, residuals, objective, to_physical, u0):
    """The function the solver sees, of z = u / scale, and the scale."""
    if isinstance(solver, optx.AbstractLeastSquaresSolver):
        # Least squares solves for z = u / |u0| (each value relative to its start, as
        # SciPy's x_scale): LM's damping starts at 1 whatever the units, so a parameter
        # of size 1e4 would take steps of 1e-6 of it and meet the step test at once.
        scale = [jnp.where(u == 0, 1.0, jnp.abs(u)).astype(u.dtype) for u in u0]

        def fn(z, _):
            r = residuals(to_physical(_times(z, scale)))
            return r, 0.5 * sum_squares(r)
    else:
        # Minimisers (optax's learning rates, BFGS) work in the user's units.
        scale = [jnp.ones_like(u) for u in u0]

        def fn(z, _):
            value = objective(to_physical(z))
            return value, value

    return fn, scale


def _times(z, scale):
    return [zi * si for zi, si in zip(z, scale, strict=True)]


def _uncertainty(theta, residuals, objective, masks, sigma, options):
    """The final loss and the covariance of the fitted values, in physical units:
    Gauss-Newton $s^2 (J^\\top J)^{-1}$ for least squares (`residuals` given), the inverse
    Hessian of the objective otherwise. Also the flat values and how to unflatten them."""
    flat_theta, unravel = jfu.ravel_pytree(theta)
    if residuals is None:
        final_loss = objective(theta)
        hessian = jax.hessian(lambda x: objective(unravel(x)))(flat_theta)
        return final_loss, jnp.linalg.pinv(hessian), flat_theta, unravel

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
    return final_loss, scale * jnp.linalg.pinv(jac.T @ jac), flat_theta, unravel


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
