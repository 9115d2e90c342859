"""The solver of `ds.fit`, and its loop: optimistix's init / step / terminate in a
`while_loop`.

Contract: `solve(fn, solver, y0, max_steps, options, progress)` runs any optimistix
least-squares solver or minimiser on `fn(y, args) -> (value, loss)` from `y0` and returns
`(y, steps, converged, history, y_next)`, `history` holding the loss at every accepted
point (NaN past the last) and `y_next` the point the solver would try next. From a start
where the loss is non-finite it takes no step and does not converge. Our own loop,
rather than `optx.least_squares`, so that the history is recorded and progress printed. `choose_solver` turns `fit`'s `solver=` into
an optimistix solver (or refuses it); `forward_mode` says whether the fit differentiates
the model in forward mode only.
"""

import functools

import equinox as eqx
import jax
import jax.lax as lax
import jax.numpy as jnp
import optax
import optimistix as optx

from ._optimality import stationary


def solve(fn, solver, y0, max_steps, options, progress):
    """optimistix's iteration (init / step / terminate), recording the objective (the aux
    of `fn`) at each accepted point."""
    # As optimistix's own entry points do: closure-convert `fn`, so that the values it
    # closes over (data, masks, save times) are inputs of one traced function rather
    # than captured again by every linearisation in the loop (3.5 ms of a 4 ms fit with
    # a SaveAt(ts) model without it).
    fn = eqx.filter_closure_convert(fn, y0, None)
    f_struct, aux_struct = jax.eval_shape(lambda: fn(y0, None))

    def fresh(y):
        return solver.init(fn, y, None, options, f_struct, aux_struct, frozenset())

    state = fresh(y0)
    dynamic0, static = eqx.partition(state, eqx.is_array)
    _, loss0 = fn(y0, None)
    history0 = jnp.full((max_steps + 1,), jnp.nan, loss0.dtype).at[0].set(loss0)
    done0, result0 = solver.terminate(fn, y0, None, options, state, frozenset())
    # Levenberg-Marquardt's damping only falls when a step's reduction matches the model's
    # to 1%, and rises 4x on every rejection, so after a rough stretch it can stay so high
    # that the steps are tiny and the step-size test passes far from a minimum (the
    # damping collapse). So when it first says done away from a minimum
    # (`_optimality.stationary`), it starts again from that point with fresh damping,
    # once, and only improves (LM accepts only decreases).
    restarts_left0 = jnp.asarray(1 if _restartable(solver) else 0)
    forward = forward_mode(solver, options)

    def stationary_here(y):
        return stationary(lambda z: fn(z, None)[0], y, forward)

    # A start where the objective is non-finite (the simulation inside the model failed
    # there) has nothing to improve on: no iterations, and `fit` names the cause.
    start_ok = jnp.isfinite(loss0)

    def cond(carry):
        _, step, _, _, done, result, _ = carry
        return ~done & (result == optx.RESULTS.successful) & (step < max_steps) & start_ok

    def body(carry):
        y, step, dynamic, history, _, _, restarts_left = carry
        state = eqx.combine(static, dynamic)
        y, state, aux = solver.step(fn, y, None, options, state, frozenset())
        loss = _accepted_loss(state, aux)
        done, result = solver.terminate(fn, y, None, options, state, frozenset())
        stopped = done & (result == optx.RESULTS.successful) & (restarts_left > 0)
        # Restart only away from a minimum: a Gauss-Newton test (one Jacobian, taken
        # only when the solver first stops) instead of a restart's 5-20 extra steps.
        restart = lax.cond(stopped, lambda: ~stationary_here(y), lambda: jnp.asarray(False))
        # A cond, not a select: a fresh state costs a model evaluation, paid only once.
        dynamic = lax.cond(
            restart,
            lambda: eqx.filter(fresh(y), eqx.is_array),
            lambda: eqx.filter(state, eqx.is_array),
        )
        if progress:
            jax.debug.callback(_print_progress, step + 1, loss, ordered=True)
        history = history.at[step + 1].set(loss)
        restarts_left = restarts_left - restart.astype(restarts_left.dtype)
        return y, step + 1, dynamic, history, done & ~restart, result, restarts_left

    carry = (y0, jnp.asarray(0), dynamic0, history0, done0, result0, restarts_left0)
    y, steps, dynamic, history, done, result, _ = lax.while_loop(cond, body, carry)
    state = eqx.combine(static, dynamic)
    # The point the solver would evaluate next: where a stalled fit's trials may fail.
    y_next = getattr(state, "y_eval", y)
    y, _, _ = solver.postprocess(fn, y, None, None, options, state, frozenset(), result)
    converged = done & (result == optx.RESULTS.successful) & start_ok
    return y, steps, converged, history, y_next


def _restartable(solver) -> bool:
    return isinstance(solver, (optx.LevenbergMarquardt, optx.IndirectLevenbergMarquardt))


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


def choose_solver(solver, least_squares: bool, rtol: float, atol: float):
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
        got = f"the class {solver.__name__}" if isinstance(solver, type) else repr(solver)
        raise TypeError(
            "solver must be an optimistix least-squares solver or minimiser instance "
            "(optx.LevenbergMarquardt(rtol=1e-8, atol=1e-8)), or an optax "
            f"GradientTransformation; got {got[:80]}."
        )
    return solver


@functools.lru_cache(maxsize=32)
def _default_solver(least_squares: bool, rtol: float, atol: float):
    """Built once per tolerance pair: optimistix solvers are immutable modules."""
    if least_squares:
        return optx.LevenbergMarquardt(rtol=rtol, atol=atol)
    return optx.BFGS(rtol=rtol, atol=atol)


def forward_mode(solver, options) -> bool:
    """Whether the fit differentiates the model in forward mode only: least-squares
    solvers take forward-mode Jacobians unless options ask otherwise; minimisers take
    gradients (reverse mode)."""
    least_squares = isinstance(solver, optx.AbstractLeastSquaresSolver)
    return least_squares and options.get("jac", "fwd") == "fwd"
