"""One chunk of an ensemble under the fused schedule (private).

Contract: `fused_batch(fn, member, static, interpret=)` returns a function of a chunk's
`(batched, rest)` that gives what `jax.vmap(member)` gives, or raises `NotFusable` while
it is traced when `fn` is not one fixed-step solve the fused kernel can take over. The
members' rollouts then run in `fused_rk_final` (`kernels/_fused_ensemble.py`): one
kernel that keeps each member's state in registers through all the steps, where a
vmapped scan goes through memory at every stage of every step.

How, as for the refill schedule (`_refill_batch.py`), without knowing what `fn` does:
`fn` is traced under `vmap` to collect every member's solve (`engine/_intercept.py`; no
rollout runs), the kernel runs them all, and `fn` is traced again with `simulate`
handing each member its trajectory, so that `throw`, failure hand-over and whatever `fn`
computes from the trajectory are as under `vmap`. A member whose final state is not
finite is found again by the ordinary rollout, to name its first bad step; that runs
only when some member of the chunk failed.

`fn` qualifies when it calls `ds.simulate` exactly once, directly, with a fixed-step
explicit Runge-Kutta integrator (`ds.RK4` or an `ds.AbstractExplicitRK` such as
`ds.Tsit5Fixed`), no events, saving only the initial and final states (no `fn`), a state
whose leaves are one number per member (e.g. Lorenz's tuple form), a system whose array
fields are one number per member in the state's dtype, and `t0`, `dt` the same for all
members (they are compiled into the kernel). The kernel has no derivative rules: it is
for forward runs.
"""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..engine._fixed import _first_nonfinite_step, _plan, simulate_fixed
from ..engine._intercept import Replay, intercept_fixed
from ..engine._solution import RESULTS, Trajectory
from ..engine.integrators import RK4, AbstractExplicitRK
from ..kernels._fused_ensemble import fused_rk_final

# The classical fourth-order method, the step `ds.RK4` takes.
_RK4 = diffrax.ButcherTableau(
    c=np.array([0.5, 0.5, 1.0]),
    b_sol=np.array([1 / 6, 1 / 3, 1 / 3, 1 / 6]),
    b_error=np.zeros(4),
    a_lower=(np.array([0.5]), np.array([0.0, 0.5]), np.array([0.0, 0.0, 1.0])),
)


class NotFusable(Exception):
    """`fn` cannot run under the fused schedule; the message says why."""


def _tableau(integrator):
    if isinstance(integrator, AbstractExplicitRK):
        return integrator.tableau
    if type(integrator) is RK4:
        return _RK4
    raise NotFusable(
        f"the integrator {type(integrator).__name__} is not an explicit Runge-Kutta method "
        "(ds.RK4, ds.Tsit5Fixed or another ds.AbstractExplicitRK)"
    )


def _why_not(solve, same_trace) -> str | None:
    """The first reason this member's solve cannot be fused, or `None`."""
    saveat = solve.saveat
    y_leaves = jax.tree.leaves(solve.y0)
    sys_leaves = jax.tree.leaves(eqx.filter(solve.system, eqx.is_array))
    dtype = jnp.result_type(*y_leaves) if y_leaves else None
    if not same_trace:
        return "fn calls ds.simulate inside a transformation of its own"
    if saveat.ts is not None or saveat.every is not None or saveat.dense or saveat.fn:
        return "the solve saves more than its initial and final states (or through fn)"
    if any(isinstance(x, jax.core.Tracer) for x in (solve.t0, solve.dt)):
        return "t0 or dt varies between members (the kernel compiles them in)"
    if not y_leaves or any(jnp.shape(x) != () for x in y_leaves):
        return "the state is not one number per member in each leaf (use the tuple form)"
    if any(jnp.shape(x) != () or jnp.result_type(x) != dtype for x in sys_leaves):
        return "the system has array fields that are not one number per member"
    _tableau(solve.integrator)
    return None


class _Collect:
    """The collecting pass: keeps the solve, answers with a placeholder trajectory."""

    def __init__(self):
        self.solves: list = []
        self.why_not: str | None = None

    def __call__(self, solve, same_trace):
        self.why_not = self.why_not or _why_not(solve, same_trace)
        self.solves.append(solve)
        shapes = jax.eval_shape(lambda: simulate_fixed(*solve))
        return jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), shapes)


def _collect(fn, static, found: list):
    def one(b, rest):
        handler = _Collect()
        with intercept_fixed(handler):
            fn(*eqx.combine(b, rest, static))
        if len(handler.solves) != 1:
            raise NotFusable(
                f"fn calls a fixed-step ds.simulate {len(handler.solves)} times (the fused "
                "kernel takes over exactly one)"
            )
        if handler.why_not is not None:
            raise NotFusable(handler.why_not)
        solve = handler.solves[0]
        times = (float(solve.t0), float(solve.dt))
        dynamic, solve_static = eqx.partition(solve._replace(t0=None, dt=None), eqx.is_array)
        found[:] = [(solve_static, times)]
        return dynamic

    return one


def _run_kernel(solve, t0, dt, interpret):
    """Every member's final state (leaves with a member axis), from the fused kernel."""
    y_leaves, y_def = jax.tree.flatten(solve.y0)
    arrays, sys_static = eqx.partition(solve.system, eqx.is_array)
    p_leaves, p_def = jax.tree.flatten(arrays)

    def system_fn(t, y, p):
        system = eqx.combine(jax.tree.unflatten(p_def, list(p)), sys_static)
        return tuple(jax.tree.leaves(system.vector_field(t, jax.tree.unflatten(y_def, list(y)))))

    y0 = jnp.stack(y_leaves, axis=1)
    params = jnp.stack(p_leaves, axis=1) if p_leaves else None
    tableau = _tableau(solve.integrator)
    final = fused_rk_final(
        system_fn, y0, tableau, t0, dt, solve.n, params=params, interpret=interpret
    )
    return jax.tree.unflatten(y_def, list(final.T))


def _first_bad_steps(solve, t0, dt, y_final):
    """Each member's first non-finite step, by the ordinary rollout (`_report`'s way)."""

    dtype = jax.tree.leaves(y_final)[0].dtype
    t0, dt = jnp.asarray(t0, dtype), jnp.asarray(dt, dtype)  # as simulate passes them

    def one(system, y0, y_final):
        plan = _plan(system, y0, t0, dt, solve.integrator, solve.saveat, solve.adjoint)
        return _first_nonfinite_step(plan.step, plan.params, plan.carry0, solve.n, y_final)

    # The system's Python numbers (fields left as floats) are the same for every member.
    system_axes = jax.tree.map(lambda x: 0 if eqx.is_array(x) else None, solve.system)
    return jax.vmap(one, in_axes=(system_axes, 0, 0))(solve.system, solve.y0, y_final)


def _trajectories(solve, t0, dt, y_final) -> Trajectory:
    """What `simulate_fixed` returns for each member, from its final state."""
    m = jax.tree.leaves(y_final)[0].shape[0]
    finite = jnp.all(jnp.stack([jnp.isfinite(x) for x in jax.tree.leaves(y_final)]), axis=0)
    bad = jax.lax.cond(
        jnp.all(finite),
        lambda: jnp.full((m,), -1, jnp.int32),
        lambda: _first_bad_steps(solve, t0, dt, y_final),
    )
    dtype = jax.tree.leaves(y_final)[0].dtype
    t0, dt = jnp.asarray(t0, dtype), jnp.asarray(dt, dtype)
    times, states = [], []
    if solve.saveat.t0:
        times.append(t0)
        states.append(solve.y0)
    if solve.saveat.t1:
        times.append(t0 + solve.n * dt)  # as `_save_ends` computes it
        states.append(y_final)
    ts = jnp.broadcast_to(jnp.stack(times), (m, len(times)))
    ys = jax.tree.map(lambda *xs: jnp.stack(xs, axis=1), *states)
    code = lambda b: RESULTS.where(b >= 0, RESULTS.nonfinite, RESULTS.successful)  # noqa: E731
    result = jax.vmap(code)(bad)
    stats = {"num_steps": jnp.full((m,), solve.n, jnp.int32), "nonfinite_step": bad}
    return Trajectory(ts=ts, ys=ys, result=result, stats=stats, interpolation=None)


def fused_batch(fn, member, static, *, interpret: bool):
    """See the module docstring. `interpret`: run the kernel in Pallas' interpreter (on
    a CPU: for tests, far slower than `vmap`)."""

    def batch(xs, rest):
        found: list = []
        dynamic = jax.vmap(_collect(fn, static, found), in_axes=(0, None))(xs, rest)
        solve_static, (t0, dt) = found[0]
        solve = eqx.combine(dynamic, solve_static)
        y_final = _run_kernel(solve, t0, dt, interpret)
        trajs = _trajectories(solve, t0, dt, y_final)

        def finish(b, rest, traj):
            with intercept_fixed(Replay(traj)):
                return member(b, rest)

        return jax.vmap(finish, in_axes=(0, None, 0))(xs, rest, trajs)

    return batch
