"""One chunk of an ensemble under the refill schedule (private).

Contract: `refill_batch(fn, member, static, lanes=, block=)` returns a function of a
chunk's `(batched, rest)` that gives what `jax.vmap(member)` gives (each member's array
outputs, result code and failing step), or raises `NotRefillable` while it is traced when
`fn` is not one adaptive solve it can take over. The members' adaptive solves run
together in `refill_solve` (`_refill.py`): lanes that take the next member as soon as
theirs finishes, instead of a `vmap` in which every member waits for the slowest.

How, without knowing what `fn` does: `fn` is traced three times, each under `vmap`.
1. *Collect*: `simulate` hands its adaptive solve over (`engine/_intercept.py`) and gets
   a placeholder trajectory of the right shapes; the chunk's solves (systems, initial
   states, times) come out as arrays with a member axis. This runs no solver.
2. *Solve*: `refill_solve` runs them all.
3. *Finish*: `fn` again, `simulate` now handing back the member's solution, so that the
   rest of `fn` (what it reads from the trajectory, `throw`, other arrays it returns) is
   what it would be under `vmap`.

Members' values equal those of `vmap(diffeqsolve)` to rounding (the same steps, the
arithmetic unbatched per lane). `fn` qualifies when it calls `ds.simulate` with an
adaptive integrator exactly once, directly (not inside a `vmap`, `scan` or `grad` of its
own), without events or dense output.
"""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp

from ..engine import Trajectory
from ..engine._adaptive_rollout import DEFAULT_MAX_STEPS, result_code, simulate_adaptive
from ..engine._adjoints import Direct
from ..engine._collect import collect_failures
from ..engine._intercept import Replay, intercept_adaptive
from ._refill import refill_solve

# CPU defaults, measured (benchmarks/ensemble_refill.py, ensemble.py part (b)): lanes
# are a sixteenth of the chunk, but at least 256 (and at most a quarter of it, at least
# 64, at most 2048). Members with nearly equal step counts (Lorenz, Tsit5 at 1e-8) have no
# lockstep to lose, and few lanes pay loop overhead: at 1024 members 64 lanes were 1.5x
# slower than vmap, 256 lanes 0.9x; at 4096, 256 lanes matched vmap; at 16384, 1024 lanes
# beat it (380 vs 546 ms). Van der Pol members whose steps vary 120x were fastest with
# 64 lanes at 512 members (128: +8%) and 128-256 at 4096 (1024 lanes: 1.7x slower, still
# 5x faster than vmap). Blocks of 32-128 steps cost the same, shorter ones more (loading
# members is once per block).
LANES = 64
BLOCK = 32


def default_lanes(chunk: int) -> int:
    return max(LANES, min(chunk // 4, max(256, chunk // 16), 2048))


class Refill(eqx.Module):
    """The refill schedule of `ds.ensemble` for adaptive solves, with its settings.

    `lanes` members are solved at once; every `block` solver steps, the lanes whose
    member finished take the next one. More lanes use a CPU's or GPU's vector width
    better; a smaller `block` wastes fewer steps on finished members but checks more
    often. `schedule="refill"` is `Refill()`.

    **Example:** Van der Pol oscillators whose stiffness, and so step count, varies 10x.

    ```python
    def van_der_pol(mu):
        system = ds.ODESystem(lambda t, y, mu: jnp.stack([y[1], mu * (1 - y[0]**2) * y[1] - y[0]]), mu)
        return ds.simulate(system, jnp.array([2.0, 0.0]), t1=10.0, integrator=ds.Tsit5())

    mus = jnp.geomspace(1.0, 30.0, 100)
    res = ds.ensemble(van_der_pol, mus, schedule=ds.Refill(lanes=16, block=32))
    steps = res.values.stats["num_steps"]
    print(steps[0], steps[-1])  # 92 282: each member takes its own steps
    ```
    """

    lanes: int = eqx.field(static=True, default=LANES)
    block: int = eqx.field(static=True, default=BLOCK)

    def __check_init__(self):
        for name in ("lanes", "block"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"ds.Refill({name}=...) must be a positive int; got {value!r}.")
            if value < 1:
                raise ValueError(f"ds.Refill({name}=...) must be a positive int; got {value!r}.")


class NotRefillable(Exception):
    """`fn` cannot run under the refill schedule; the message says why."""


class _Collect:
    """Phase 1's handler: keeps the solve, answers with a placeholder trajectory."""

    def __init__(self):
        self.solves: list = []
        self.why_not: str | None = None

    def __call__(self, solve, same_trace):
        if not same_trace:
            self.why_not = "fn calls ds.simulate inside a transformation of its own"
        elif solve.saveat.dense or solve.saveat.every is not None:
            self.why_not = "the solve saves dense output"
        self.solves.append(solve)
        shapes = jax.eval_shape(lambda: simulate_adaptive(*solve[:-1], Direct(), solve.max_steps))
        return jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), shapes)


def _call(fn, b, rest, static):
    return fn(*eqx.combine(b, rest, static))


def _collect(fn, static, found: list):
    """Phase 1 for one member: the dynamic parts of its solve; the static parts (one
    trace, so the same for all members) go to `found`."""

    def one(b, rest):
        handler = _Collect()
        with intercept_adaptive(handler), collect_failures():
            _call(fn, b, rest, static)
        if len(handler.solves) != 1:
            raise NotRefillable(
                f"fn calls an adaptive ds.simulate {len(handler.solves)} times (refill "
                "takes over exactly one)"
            )
        if handler.why_not is not None:
            raise NotRefillable(handler.why_not)
        solve = handler.solves[0]
        times = dict(t0=jnp.asarray(solve.t0), t1=jnp.asarray(solve.t1))
        if solve.dt is not None:
            times["dt"] = jnp.asarray(solve.dt)
        dynamic, solve_static = eqx.partition(solve._replace(**times), eqx.is_array)
        found[:] = [solve_static]
        return dynamic

    return one


def _trajectories(solve, sol) -> Trajectory:
    """The members' `Trajectory`s from `refill_solve`'s solution, as
    `simulate_adaptive` would have built each."""
    ys = sol.ys
    if solve.saveat.fn is not None:  # diffrax saves fn of the interpolated state
        ys = jax.vmap(jax.vmap(solve.saveat.fn))(sol.ts, ys)
    stats = {
        "num_steps": sol.num_steps,
        "num_accepted_steps": sol.num_accepted_steps,
        "num_rejected_steps": sol.num_rejected_steps,
    }
    return Trajectory(
        ts=sol.ts, ys=ys, result=jax.vmap(result_code)(sol.result), stats=stats,
        interpolation=None,
    )  # fmt: skip


def _solve(solve, lanes, block):
    """Phase 2: every member's solve (a member axis on the arrays of `solve`)."""
    static = eqx.partition(solve.system, eqx.is_array)[1]
    integrator = solve.integrator

    def vector_field(t, y, system_arrays):
        return eqx.combine(system_arrays, static).vector_field(t, y)

    n = jnp.shape(solve.t0)[0]
    if solve.saveat.ts is not None and jnp.ndim(solve.saveat.ts) == 1:
        ts = jnp.broadcast_to(solve.saveat.ts, (n,) + jnp.shape(solve.saveat.ts))
    else:
        ts = solve.saveat.ts
    return refill_solve(
        vector_field,
        integrator.diffrax_solver(),
        integrator.diffrax_controller(),
        eqx.filter(solve.system, eqx.is_array),
        solve.y0,
        solve.t0,
        solve.t1,
        solve.dt,
        ts=ts,
        save_t0=solve.saveat.t0,
        save_t1=solve.saveat.t1,
        max_steps=DEFAULT_MAX_STEPS if solve.max_steps is None else solve.max_steps,
        lanes=lanes,
        block=block,
    )


def refill_batch(fn, member, static, *, lanes: int, block: int):
    """See the module docstring. `member(b, rest)` is one member's `(outputs, result,
    step)` (`_chunks.member_fn`)."""

    def batch(xs, rest):
        found: list = []
        dynamic = jax.vmap(_collect(fn, static, found), in_axes=(0, None))(xs, rest)
        solve = eqx.combine(dynamic, found[0])
        if not isinstance(solve.integrator.diffrax_controller(), diffrax.PIDController):
            raise NotRefillable("the integrator's step-size controller is not a PIDController")
        trajs = _trajectories(solve, _solve(solve, lanes, block))

        def finish(b, rest, traj):
            with intercept_adaptive(Replay(traj)):
                return member(b, rest)

        return jax.vmap(finish, in_axes=(0, None, 0))(xs, rest, trajs)

    return batch
