"""`fit`: recover physical parameters from observed data by differentiating through the
model (usually a rollout).

Contract: `fit(model, params0, observed)` minimises
$\\tfrac12 \\sum_i \\left((m_i(\\theta) - y_i)/\\sigma_i\\right)^2$ over the trainable leaves
$\\theta$ of `params0` (any pytree: a system, a dict, a tuple), skipping NaN entries of
`observed` (missing data). Bounded parameters are optimised in an unconstrained space and
reported in physical units. The solver is optimistix's (Levenberg-Marquardt by default) or
any optax optimiser; the loop is our own so that it can record the loss at every
iteration and print progress. Errors in the inputs raise before anything is compiled
(`_checks.py`, `_data.py`, `_selection.py`); a fit that fails is explained after the fact
(`_diagnose.py`); unidentifiable parameters get infinite errors and a warning
(`_identifiability.py`).

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
import optimistix as optx
from jaxtyping import PyTree

from .._flat_jit import NOT_APPLICABLE, flat_jit
from .._trees import floats_to_arrays
from ..engine import trial_rollouts
from ._checks import check_call, check_options, check_shooting, check_start
from ._data import (
    UnitSigma,
    check_prediction,
    check_traced_data,
    prepare_data,
    sigma_given,
    sum_squares,
)
from ._diagnose import explain_start, explain_stop
from ._identifiability import (
    hessian_covariance,
    jacobian_covariance,
    mark,
    warn_unidentifiable,
)
from ._multiple_shooting import fit_shooting
from ._optimality import not_converged, stationary
from ._result import FitResult
from ._selection import Selection, select
from ._solve import choose_solver, forward_mode, solve


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
    - `throw`: raise if the fit failed (below); with `False`, check `converged`.

    **Returns:** a `ds.FitResult`; `print(res.summary())` shows the table. Parameters the
    data cannot identify (the model ignores them, or only a combination such as `a + b`
    enters: a rank-deficient Jacobian, see `FitResult.covariance`) get `stderr` `inf`,
    and `fit` warns naming them (`ds.IdentifiabilityWarning`).

    **Errors.** Bad arguments are refused before anything is compiled, with a message
    naming the argument:

    - `TypeError`: a wrong kind of object (`model`, `loss`, `prior` not callable; `solver`
      not an optimistix solver instance or optax optimiser; `options` not a dict).
    - `ValueError`: a wrong value: an inf in `observed` (NaN marks missing data), `sigma`
      not positive and finite or not broadcastable to `observed`, a prediction whose
      structure or shape differs from `observed`, `where` selecting nothing, `bounds`
      with `lo >= hi` or `params0` outside them, `max_steps < 1`, an unknown `options`
      key. Under a user's `jit`/`vmap` the values of traced `observed` and `sigma` are
      checked at run time (equinox's runtime error).
    - An exception raised by `model`, `loss` or `prior` themselves propagates as itself.

    A fit that fails at run time (eagerly, with `throw=True`):

    - the objective is non-finite at `params0`: the `ds.SimulationError` subclass of the
      simulation inside the model (`ds.MaxStepsError`, ...) run at `params0`, with the
      fit's context, or a `ValueError` naming the non-finite model output, `prior` or
      `loss`;
    - not converged in `max_steps` iterations: the simulation's `ds.SimulationError`
      subclass when the model fails where the solver stopped or would try next, else a
      `RuntimeError` saying how to get convergence.

    `SimulationError` is a `RuntimeError`, so `except RuntimeError` catches every failed
    fit. With `throw=False`, or under a user's `jit`/`vmap`, nothing is raised at run time:
    `res.converged` is `False` (and `res.history[0]` non-finite for a failing start).

    Solvers try trial points that may be far from physical (a negative length). Give
    `bounds` for parameters that must stay physical; and if a trial may still make the
    rollout blow up, that is fine: while the solver runs, `ds.simulate` inside the model
    does not raise on a non-finite state (as if `throw=False`), and the solver's step
    control rejects the non-finite trial.

    **Example:**

    ```python
    ts = jnp.linspace(0.0, 5.0, 51)

    def model(p):
        traj = ds.simulate(p, p.initial_state(1.0), t1=5.0, dt=0.01,
                           saveat=ds.SaveAt(ts=ts))
        return traj.ys.q

    # Synthetic data: a pendulum of length 1.2 m and damping 0.1 /s, with noise.
    noise = 0.01 * jax.random.normal(jax.random.key(0), ts.shape)
    angles = model(ds.systems.Pendulum(length=1.2, damping=0.1)) + noise

    res = ds.fit(model, ds.systems.Pendulum(length=1.0, damping=0.05), angles,
                 where=lambda p: (p.length, p.damping), bounds=((0, None), (0, None)))
    print(res.summary())  # length 1.2001 +- 0.0008, damping 0.0998 +- 0.0015
    ```
    """
    check_call(model, observed, loss, prior, max_steps, rtol, atol)
    options = check_options(options)
    # Under a user's jit or vmap (e.g. one fit per dataset, vmapped): no host-side checks
    # on traced values, no progress printing, and the history keeps its full length.
    tracing = any(
        isinstance(x, jax.core.Tracer) for x in jax.tree.leaves((params0, observed, sigma))
    )
    if shooting is not None:
        check_shooting(shooting_weight)
        if observed is not None:
            prepare_data(observed, sigma)  # refused here, named as the user wrote them
        return fit_shooting(
            fit,
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
        check_start(params0, selection)
    if observed is not None:
        observed, sigma = prepare_data(observed, sigma)
        if tracing:
            observed, sigma = check_traced_data(observed, sigma)
    # transform: the solver, and the Jacobian mode its trial rollouts will see
    solver = choose_solver(solver, observed is not None, rtol, atol)
    forward = forward_mode(solver, options)
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
    if tracing:
        return _result(out, selection)
    return _summarise(out, selection, throw, (model, params0, observed, loss, prior))


def _summarise(out, selection: Selection, throw: bool, problem):
    """The eager `FitResult`: the history trimmed to the iterations taken; with `throw`,
    a failed fit raised with its cause (`_diagnose.py`); unidentifiable parameters warned
    about."""
    # One transfer for the host-side figures. A NumPy slice of the history: slicing the
    # device array would compile once per iteration count.
    history, steps, converged, final_loss, covariance = jax.device_get(
        (out[2], out[5], out[6], out[1], out[4])
    )
    history = history[: int(steps) + 1]
    model, params0, observed, loss, prior = problem
    if throw and not np.isfinite(history[0]):
        explain_start(model, params0, observed, loss, prior)
    if throw and not bool(converged):
        explain_stop(model, out[0], out[8], bool(np.isfinite(final_loss)), int(steps))
        raise RuntimeError(not_converged(float(final_loss), int(steps), len(out[2]) - 1))
    warn_unidentifiable(selection.names, covariance, stacklevel=4)
    return _result(out, selection, history=history)


def _result(out, selection: Selection, history=None) -> FitResult:
    params, final_loss, full_history, stderr, covariance, n_steps, converged, values, _ = out
    return FitResult(
        params=params,
        loss=final_loss,
        history=full_history if history is None else history,
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
    z, n_steps, converged, history, z_next = solve(fn, solver, z0, max_steps, options, progress)
    if least_squares and isinstance(solver, optx.AbstractLeastSquaresSolver):
        physical = lambda z: to_physical(_times(z, scale))  # noqa: E731
        ok = stationary(lambda z: residuals(physical(z)), z, forward_mode(solver, options))
        converged = converged & ok
    theta = to_physical(_times(z, scale))
    params = rebuild(theta)
    params_next = rebuild(to_physical(_times(z_next, scale)))

    final_loss, covariance, flat_theta, unravel = _uncertainty(
        theta,
        residuals if least_squares else None,
        objective,
        masks if least_squares else None,
        sigma,
        forward_mode(solver, options),
    )
    errors = unravel(jnp.sqrt(jnp.clip(jnp.diag(covariance), 0.0)))
    stderr_leaves = [jnp.zeros_like(x) if eqx.is_inexact_array(x) else x for x in leaves]
    for i, e, dtype in zip(trainable, errors, dtypes, strict=True):
        stderr_leaves[i] = e.astype(dtype)
    stderr = jax.tree.unflatten(treedef, stderr_leaves)
    out = (params, final_loss, history, stderr, covariance, n_steps, converged, flat_theta)
    return (*out, params_next)


def _solver_objective(solver, residuals, objective, to_physical, u0):
    """The function the solver sees, of z = u / scale, and the scale."""
    if isinstance(solver, optx.AbstractLeastSquaresSolver):
        # Least squares solves for z = u / |u0| where |u0| > 10 (a large value relative
        # to its start, as SciPy's x_scale): LM's damping starts at 1 whatever the units,
        # so a parameter of size 1e4 would take steps of 1e-6 of it and meet the step
        # test at once. Values of order one keep unit scale: rescaling them too cost the
        # pendulum benchmark's fit 10 -> 13-29 iterations.
        scale = [jnp.where(jnp.abs(u) > 10, jnp.abs(u), 1.0).astype(u.dtype) for u in u0]

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


def _uncertainty(theta, residuals, objective, masks, sigma, forward: bool):
    """The final loss and the covariance of the fitted values, in physical units:
    Gauss-Newton $s^2 (J^\\top J)^{+}$ for least squares (`residuals` given), the inverse
    Hessian of the objective otherwise; infinite variances for the parameters the data do
    not identify (`_identifiability.py`). Also the flat values and how to unflatten them."""
    flat_theta, unravel = jfu.ravel_pytree(theta)
    if residuals is None:
        final_loss = objective(theta)
        hessian = jax.hessian(lambda x: objective(unravel(x)))(flat_theta)
        covariance = _where_finite(final_loss, hessian_covariance(hessian))
        return final_loss, covariance, flat_theta, unravel

    def flat_residuals(x):
        return jfu.ravel_pytree(residuals(unravel(x)))[0]

    # The mode the rollouts were traced for (`trial_rollouts`): a minimiser's rollouts
    # may have reverse-mode-only adjoints.
    differentiate = jax.jacfwd if forward else jax.jacrev
    jac = differentiate(flat_residuals)(flat_theta)
    r = flat_residuals(flat_theta)
    final_loss = 0.5 * jnp.sum(r**2)
    covariance, rank, unidentifiable = jacobian_covariance(jac)
    if sigma_given(sigma):
        scale = 1.0
    else:
        # Degrees of freedom: observed (non-NaN) values plus prior residuals, less the
        # number of identifiable directions (the rank of J).
        n_prior = r.size - sum(m.size for m in jax.tree.leaves(masks))
        n_data = sum(jnp.sum(m) for m in jax.tree.leaves(masks))
        scale = 2 * final_loss / jnp.maximum(n_data + n_prior - rank, 1)
    covariance = _where_finite(final_loss, mark(scale * covariance, unidentifiable))
    return final_loss, covariance, flat_theta, unravel


def _where_finite(final_loss, covariance):
    """No covariance (NaN) where the fit ended at a non-finite loss: the model failed
    there, and its derivatives say nothing about the data."""
    return jnp.where(jnp.isfinite(final_loss), covariance, jnp.nan)


# Under a user's transformation: eqx.filter_jit. Eager calls: the same program through
# flat_jit, without filter_jit's per-call partitioning of the (large) argument pytrees.
_fit_core = eqx.filter_jit(_fit_program)
# Python floats in params0 are traced, not baked in.
_fit_core_eager = flat_jit(_fit_program, float_dynamic=(False,) * 8 + (True, False, False))
