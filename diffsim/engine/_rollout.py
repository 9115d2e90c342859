"""`simulate`: roll a system forward in time.

Contract: `simulate(system, y0, ...)` is a pure function of pytrees. Static problems
(argument types, shapes, step counts, save times) raise `ValueError`/`TypeError` before
anything is compiled; runtime problems (a state turning NaN/inf, an adaptive solve
failing) come back from the compiled program as a status, which `_deliver` raises as a
`SimulationError` subclass naming the step (`_errors.py`), or, with `throw=False`,
returns as `traj.result`. jit, vmap and grad compose on top, and a second call with the same
shapes and static options does not recompile.

`simulate` itself is the phases a reader follows: check the arguments (`_checks.py`),
plan the rollout (fixed or adaptive, the adjoint, the step count), and run it: one
`lax.scan` whose body is the integrator's step for fixed-step integrators (`_fixed.py`,
which also saves and reports), one `diffrax.diffeqsolve` for adaptive ones
(`_adaptive_rollout.py`).
"""

import contextlib
from typing import Any

import equinox as eqx
import jax.numpy as jnp

from .._trees import floats_to_arrays, is_concrete, is_concrete_tree
from .._types import RealScalarLike, State
from . import _checks
from ._adaptive_rollout import simulate_adaptive
from ._adjoints import AbstractAdjoint, Checkpointed, Direct, Reversible, reverse_mode_only
from ._collect import collecting, hand_over, poison
from ._errors import error_if_failed, raise_if_failed, reraise_clean
from ._event import check_events
from ._event_adaptive import diffrax_adjoint, simulate_adaptive_events
from ._event_fixed import simulate_events
from ._fixed import simulate_fixed
from ._intercept import AdaptiveSolve, FixedSolve, intercepted, intercepted_fixed
from ._saveat import SaveAt
from ._solution import RESULTS, Trajectory
from ._trial import forward_jacobians, in_trial
from .integrators import RK4, AbstractAdaptiveIntegrator


def simulate(
    system: Any,
    y0: State,
    *,
    t0: RealScalarLike = 0.0,
    t1: RealScalarLike | None = None,
    dt: RealScalarLike | None = None,
    n_steps: int | None = None,
    integrator: Any = RK4(),
    saveat: SaveAt = SaveAt(t1=True),
    adjoint: AbstractAdjoint = Checkpointed(),
    max_steps: int | None = None,
    throw: bool = True,
    events: Any = None,
    max_events: int = 64,
) -> Trajectory:
    """Roll `system` forward from state `y0` at time `t0`.

    With a fixed-step integrator the rollout takes `n` steps of length `dt` from `t0`,
    where `n = n_steps` or `n = (t1 - t0) / dt` (which must be a whole number); it is one
    `lax.scan` and costs the same as a hand-written one. With an adaptive integrator
    (`ds.Tsit5`, `ds.Dopri8`, `ds.Kvaerno5`) it is one `diffrax.diffeqsolve` from `t0` to
    `t1`, and `dt` is the initial step (`None`: diffrax picks).

    **Backward time.** With `t1 < t0` the rollout integrates backwards (fixed-step and
    adaptive integrators alike): `dt` may be given as a magnitude (`dt=0.01`) or with the
    sign of `t1 - t0` (`dt=-0.01`); with `n_steps=`, a negative `dt` means backwards.
    `SaveAt(ts=...)` must then be non-increasing, within `[t1, t0]`, and `traj.ts` runs
    from `t0` down. Stochastic integrators and `ds.EventStep` run forwards only.

    **Arguments:**

    - `system`: a `ds.AbstractSystem` (anything with `vector_field(t, y)`); its fields are
      the parameters that gradients flow to. For a batch of systems (array fields with a
      leading batch axis), `eqx.filter_vmap` over `simulate`: it maps the array fields and
      broadcasts the Python-number ones. Elementwise systems (`Pendulum`) also broadcast
      batched fields against a batched state in one rollout.
    - `y0`: the initial state, a pytree of arrays (`ds.PhaseState(q, v)` for mechanical
      systems). Integer leaves become floats; float32 and float64 both work.
    - `t0`: the start time.
    - `t1` / `n_steps`: the end time (before `t0` to integrate backwards), or the number of
      steps; exactly one. With `t1`, the values of `t0`, `t1`, `dt` must be concrete (not
      traced). With `n_steps`, `t0` and `dt` may be traced and differentiated.
    - `dt`: the step size (fixed step) or initial step (adaptive): non-zero, positive or
      with the sign of `t1 - t0` (a negative `dt` with `t1 > t0` is an error).
    - `integrator`: fixed step: `ds.RK4()` (default), `ds.Euler()`,
      `ds.SemiImplicitEuler()`, `ds.Leapfrog()`, `ds.Yoshida4()`, `ds.Tsit5Fixed()`,
      `ds.Boris()` (charged particles), `ds.WisdomHolman()` (planets around a star,
      `ds.systems.NBody`), `ds.EulerMaruyama(key=...)` and
      `ds.BAOAB(key=...)` (stochastic systems), `ds.EventStep()` (systems with a guard
      and reset); adaptive: `ds.Tsit5()`, `ds.Dopri8()`, `ds.Kvaerno5()`, and
      `ds.Diffrax(solver, stepsize_controller)` for any diffrax ODE solver. Your own: a
      subclass of `ds.AbstractFixedStepIntegrator` (or `ds.AbstractExplicitRK`, from a
      Butcher tableau), `ds.AbstractSDEIntegrator` or `ds.AbstractAdaptiveIntegrator`.
    - `saveat`: a `ds.SaveAt`; default `SaveAt(t1=True)`, the final state only. Add
      `dense=True` for `traj.evaluate(t)` at any time (`ds.Trajectory.evaluate`).
    - `adjoint`: how reverse-mode gradients flow: `ds.Checkpointed()` (default,
      O(sqrt(n)) memory), `ds.Direct()` (stores every step), `ds.Reversible()` (O(1)
      memory, time-reversible integrators and velocity-independent forces) or
      `ds.Backsolve()` (adaptive integrators only, diffrax's continuous adjoint); or a
      subclass of `ds.AbstractAdjoint`.
    - `max_steps`: the step limit for adaptive integrators (default 4096); a fixed-step
      rollout longer than this raises.
    - `throw`: on a failure at run time raise the `ds.SimulationError` subclass for it:
      `ds.NonFiniteStateError` (the state became NaN or inf), `ds.MaxStepsError` or
      `ds.StepSizeError` (adaptive), naming the step and time. Under a user's `jax.jit`
      the error is equinox's runtime error with the same first line; inside `ds.ensemble`
      the ensemble reports it by member (docs/errors.md). With `False`, check
      `traj.result` instead. Fixed-step rollouts check the final state only (NaN and inf
      propagate), and on failure re-run the steps once to report the first non-finite
      one in `traj.stats["nonfinite_step"]`, so the check costs nothing per step.
    - `events`: a `ds.Event` or a list of them: zero crossings of `condition(t, y)` that
      are located (on the fixed-step method's cubic Hermite interpolant, or by diffrax's
      root find for adaptive integrators), logged in `traj.events`, and may reset the
      state or end the rollout; gradients include the derivative of the event times
      (`ds.Event`). Not with `ds.Reversible()`/`ds.Backsolve()`, stochastic integrators
      or `ds.EventStep()`, and forwards in time only. A fixed-step rollout with events is
      one scan of `n + max_events` iterations; saved values between grid times come from
      the interpolant. `ds.EventError` if the log overflows or events accumulate.
    - `max_events`: the capacity of `traj.events` (static, default 64).

    **Raises** before anything runs: `TypeError`/`ValueError` naming the argument, for
    bad arguments, a `dt` past an explicit integrator's stability limit on a PDE system,
    a stochastic system with a deterministic integrator. An error in the system's own
    code (the function an `ODESystem` wraps) propagates as itself.

    **Returns:** a `ds.Trajectory` with `ts`, `ys`, `result`, `stats` (and, with
    `SaveAt(dense=True)`, `evaluate(t)`).

    **Example:**

    ```python
    import jax.numpy as jnp
    import diffsim as ds

    pendulum = ds.systems.Pendulum(length=1.0)
    y0 = ds.PhaseState(q=jnp.array(0.5), v=jnp.array(0.0))
    traj = ds.simulate(pendulum, y0, t1=10.0, dt=0.01, integrator=ds.Leapfrog(),
                       saveat=ds.SaveAt(every=10))
    traj.ys.q.shape  # (101,)
    ```

    Gradients flow to the system's fields and to `y0` (here $\\partial q(1) / \\partial L$):

    ```python
    def final_angle(length):
        pendulum = ds.systems.Pendulum(length=length)
        traj = ds.simulate(pendulum, pendulum.initial_state(0.5), t1=1.0, dt=0.01)
        return traj.ys.q[-1]

    print(jax.grad(final_angle)(1.0))  # 0.04450...
    ```

    Backwards in time, from the state at `t0 = 10` back to `t1 = 0`:

    ```python
    end = jax.tree.map(lambda x: x[-1], traj.ys)
    back = ds.simulate(pendulum, end, t0=10.0, t1=0.0, dt=0.01, integrator=ds.Leapfrog())
    print(back.ys.q)  # [0.4999996]: 0.5 to round-off, as Leapfrog is time-reversible
    ```
    """
    _checks.check_strategies(integrator, saveat, adjoint, max_steps)
    _checks.check_noise(system, integrator)
    events = check_events(events, max_events, integrator, adjoint, saveat, t0, t1, dt)
    _checks.check_time("t0", t0)
    _checks.check_time("t1", t1)
    throw = throw and not in_trial()
    if isinstance(integrator, AbstractAdaptiveIntegrator):
        y0, dt = _check_adaptive(system, y0, t0, t1, dt, n_steps, integrator, saveat)
        if events:
            with reverse_mode_only(f"ds.{type(adjoint).__name__}()", "Use adjoint=ds.Direct()."):
                traj = simulate_adaptive_events(
                    _dynamic_floats(system, y0), y0, t0, t1, dt, integrator, saveat,
                    diffrax_adjoint(adjoint, forward_jacobians()), max_steps, events, max_events,
                )  # fmt: skip
            return _deliver(traj, throw, step_time=None)
        system = _dynamic_floats(system, y0)
        # ds.ensemble's refill schedule may solve it together with other members.
        traj = intercepted(AdaptiveSolve(system, y0, t0, t1, dt, integrator, saveat, max_steps))
        if traj is None:
            # Inside a least-squares solver's trial rollouts (forward-mode Jacobians
            # only): diffrax's forward-mode adjoint, as fixed-step rollouts switch to Direct.
            traj = simulate_adaptive(
                system, y0, t0, t1, dt, integrator, saveat, adjoint, max_steps,
                forward_only=forward_jacobians(),
            )  # fmt: skip
        return _deliver(traj, throw, step_time=None)
    n, y0, t0_arr, dt_arr, ts_known = _plan_fixed(
        system, y0, t0, t1, dt, n_steps, integrator, saveat, max_steps
    )
    if forward_jacobians():
        adjoint = Direct()
    if events:
        traj = simulate_events(
            _dynamic_floats(system, y0), y0, t0_arr, dt_arr, n, integrator, saveat, adjoint,
            events, max_events,
        )  # fmt: skip
        return _deliver(traj, throw, step_time=lambda k: t0_arr + (k + 1) * dt_arr)
    if isinstance(adjoint, Reversible):
        _checks.check_reversible_forces(system, t0_arr, y0)
    # Reversible is a custom VJP: JAX refuses forward mode through it when the jitted
    # rollout is differentiated, here.
    no_jvp = reverse_mode_only(
        "ds.Reversible()", "For forward mode use adjoint=ds.Direct() (or ds.Checkpointed())."
    )
    solve = FixedSolve(
        _dynamic_floats(system, y0),
        y0,
        t0_arr,
        dt_arr,
        n,
        integrator,
        saveat,
        adjoint,
        not ts_known,
    )
    traj = intercepted_fixed(solve)
    if traj is None:
        with no_jvp if isinstance(adjoint, Reversible) else contextlib.nullcontext():
            traj = simulate_fixed(*solve)
    return _deliver(traj, throw, step_time=lambda k: t0_arr + (k + 1) * dt_arr)


def _dynamic_floats(system, y0):
    """In an eager call the system's Python floats become arrays, so that a new value
    does not recompile; inside a transformation they stay literals (`floats_to_arrays`)."""
    return floats_to_arrays(system) if is_concrete_tree((system, y0)) else system


def _deliver(traj: Trajectory, throw: bool, step_time) -> Trajectory:
    """Hand a finished rollout to the caller, raising on failure as the error model says
    (`_errors.py`): in Python when the status is concrete, to a collecting caller
    (`_collect.py`), or through `eqx.error_if` under a transformation."""
    if not throw:
        return traj
    if is_concrete(traj.result._value):
        raise_if_failed(traj, step_time=step_time)
        return traj
    if collecting():
        if hand_over(traj.result, traj.stats.get("nonfinite_step", jnp.asarray(-1, jnp.int32))):
            return traj
        failed = traj.result != RESULTS.successful
        return _map_outputs(lambda out: poison(out, failed), traj)
    try:
        return _map_outputs(lambda out: error_if_failed(out, traj.result), traj)
    except Exception as e:  # an eager vmap or grad runs the check at once: Python sees it
        reraise_clean(e)
        raise


def _map_outputs(fn, traj: Trajectory) -> Trajectory:
    """`traj` with `fn` applied to what a caller reads: the saved states and, with dense
    output, the interpolant (a caller may use `traj.evaluate` alone, and the check must
    not be dropped with the unused `ys`)."""
    if traj.interpolation is None:
        return eqx.tree_at(lambda t: t.ys, traj, fn(traj.ys))
    where = lambda t: (t.ys, t.interpolation)  # noqa: E731
    return eqx.tree_at(where, traj, fn(where(traj)))


def _check_adaptive(system, y0, t0, t1, dt, n_steps, integrator, saveat):
    """The checks an adaptive solve needs; returns `y0` cast to the state's dtype and the
    initial step `dt` with the sign of `t1 - t0` (diffrax's rule)."""
    if t1 is None or n_steps is not None:
        raise ValueError(
            f"The adaptive integrator {type(integrator).__name__} needs t1= (the end "
            "time) and no n_steps=; it chooses its own steps."
        )
    dt = _checks.signed_step(dt, t0, t1, required=False)
    y0 = _checks.check_state(system, y0, t0, dt, integrator)
    if dt is not None and not all(map(is_concrete, (t0, t1, dt))):  # checked at run time
        wrong = ~jnp.isfinite(dt) | (dt == 0) | ((dt < 0) & (t1 > t0))
        y0 = eqx.error_if(y0, wrong, f"{_checks.DT_MESSAGE} Its sign must be that of t1 - t0.")
        dt = jnp.where(t1 < t0, -jnp.abs(dt), jnp.abs(dt))
    if saveat.ts is not None:
        _checks.check_saveat_ts(saveat.ts, t0, t1)
    times = [x for x in (t0, t1, saveat.ts) if x is not None and not is_concrete(x)]
    if times:  # traced: checked at run time
        bad = jnp.stack([~jnp.all(jnp.isfinite(x)) for x in times]).any()
        y0 = eqx.error_if(y0, bad, "t0, t1 and SaveAt(ts=...) must be finite.")
    return y0, dt


def _plan_fixed(system, y0, t0, t1, dt, n_steps, integrator, saveat, max_steps):
    """Check a fixed-step rollout and plan it: the step count, `y0` cast to the state's
    dtype, `t0` and `dt` as arrays of that dtype, and whether the save times could be
    checked now (else the rollout checks them at run time)."""
    dt = _checks.signed_step(dt, t0, t1)  # negative for a backward rollout
    n = _checks.number_of_steps(t0, t1, dt, n_steps)
    _checks.check_backward(integrator, dt)
    if max_steps is not None and n > max_steps:
        raise ValueError(
            f"This rollout takes {n} steps, more than max_steps={max_steps}; increase "
            "max_steps or use a larger dt."
        )
    y0 = _checks.check_state(system, y0, t0, dt, integrator)
    _checks.check_stability(system, integrator, dt, y0)
    dtype = _checks.float_dtype(y0)
    t0_arr = _checks.as_dtype(t0, dtype)
    dt_arr = _checks.as_dtype(dt, dtype)
    ts_known = True
    if saveat.ts is not None:
        t1_end = (
            t1 if t1 is not None else (t0 + n * dt if is_concrete(t0) and is_concrete(dt) else None)
        )
        ts_known = t1_end is not None and all(map(is_concrete, (saveat.ts, t0, t1_end)))
        if ts_known:
            _checks.check_saveat_ts(saveat.ts, t0, t1_end)
    if not is_concrete(dt):
        dt_arr = eqx.error_if(dt_arr, ~(jnp.isfinite(dt_arr) & (dt_arr != 0)), _checks.DT_MESSAGE)
    if not is_concrete(t0):  # on y0, which every output depends on (t0 may not be)
        y0 = eqx.error_if(y0, ~jnp.isfinite(t0_arr), "t0 must be finite.")
    return n, y0, t0_arr, dt_arr, ts_known
