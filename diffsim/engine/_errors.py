"""The runtime half of the error model: which exception for which failure, and how it
reaches the caller without raising from inside a compiled program.

A compiled rollout never raises. It returns a status (`traj.result`, and the first
non-finite step in `traj.stats`), and the Python that called it reads the status:

- when the status is concrete (an eager call: `ds.simulate`, `ds.ensemble` outside any
  transformation), Python raises a `SimulationError` subclass naming the step, the time
  and, in a batch, the member (`raise_if_failed`);
- when it is traced (under a user's `jax.jit`, `vmap` or `grad`), `eqx.error_if` carries
  it (`error_if_failed`): the error the user sees is equinox's runtime error
  (`eqx.EquinoxRuntimeError` under `eqx.filter_jit`; under `jax.jit`, JAX's
  `JaxRuntimeError` whose text contains it) with the same first line as the eager
  exception. The step and member are not known to Python there: `throw=False` and
  `traj.stats` give them.

Raising inside `jax.pure_callback` is undefined behaviour by JAX's documentation (and
printed a traceback on stderr even when the caller handled the error), so diffsim does
not do it; equinox's `error_if` is the one place a callback raises, as equinox documents.
"""

import equinox as eqx
import jax
import numpy as np

from ._solution import RESULTS


class SimulationError(RuntimeError):
    """A rollout failed at run time. Subclasses say how: `NonFiniteStateError`,
    `MaxStepsError`, `StepSizeError`. The message names the step, the time and (in a
    batch) the member; catch `ds.SimulationError` for all of them.

    Its parts are attributes, for callers that put the failure in their own words
    (`ds.fit`): `headline` (what failed, the first line), `location` (step, time,
    member), `hint` (how to fix it) and `retry` (how to get a result instead).

    **Example:** $\\dot y = y^2$ from $y(0) = 1$ has the solution $1/(1 - t)$, infinite at
    $t = 1$:

    ```python
    blowup = ds.ODESystem(lambda t, y, p: y**2, None)
    try:
        ds.simulate(blowup, jnp.array(1.0), t1=2.0, dt=0.01)
    except ds.SimulationError as e:
        print(type(e).__name__)  # NonFiniteStateError
        print(e.headline)  # ds.simulate: the state became non-finite (NaN or inf).
        print(e.location)  # At step 101 (t = 1.02).
    ```
    """

    def __init__(self, headline: str, location: str = "", hint: str = "", retry: str = ""):
        self.headline, self.location, self.hint, self.retry = headline, location, hint, retry
        details = " ".join(part for part in (location, hint, retry) if part)
        super().__init__(f"{headline}\n{details}" if details else headline)


class NonFiniteStateError(SimulationError):
    """The state became NaN or inf (an explicit integrator past its stability limit,
    unphysical parameters, a singularity).

    **Example:** $\\dot y = y^2$ from $y(0) = 1$ has the solution $1/(1 - t)$, infinite at
    $t = 1$:

    ```python
    blowup = ds.ODESystem(lambda t, y, p: y**2, None)
    try:
        ds.simulate(blowup, jnp.array(1.0), t1=2.0, dt=0.01)
    except ds.NonFiniteStateError as e:
        print(e)  # what failed; then the step, the time and how to fix it

    # Or, without raising (as an ensemble would):
    traj = ds.simulate(blowup, jnp.array(1.0), t1=2.0, dt=0.01, throw=False)
    print(traj.result == ds.RESULTS.nonfinite)  # True
    print(traj.stats["nonfinite_step"])  # 101: the first step to end non-finite
    ```
    """


class MaxStepsError(SimulationError):
    """An adaptive solve used `max_steps` steps before reaching `t1`.

    **Example:**

    ```python
    pendulum = ds.systems.Pendulum(length=1.0)
    try:
        ds.simulate(pendulum, pendulum.initial_state(0.5), t1=10.0, integrator=ds.Tsit5(),
                    max_steps=10)
    except ds.MaxStepsError as e:
        print(e.headline)  # ds.simulate: the adaptive solve reached max_steps before t1.
        print(e.location)  # After 10 steps.
    ```
    """


class StepSizeError(SimulationError):
    """An adaptive solve failed: its step size collapsed or its implicit solve diverged.

    **Example:** catch it with `ds.MaxStepsError`, the other way an adaptive solve fails.
    Towards the singularity of $\\dot y = y^2$ at $t = 1$ the steps shrink without end;
    with no minimum step size set, that ends at `max_steps`:

    ```python
    blowup = ds.ODESystem(lambda t, y, p: y**2, None)  # y = 1 / (1 - t)
    try:
        ds.simulate(blowup, jnp.array(1.0), t1=2.0, integrator=ds.Tsit5(), max_steps=256)
    except (ds.StepSizeError, ds.MaxStepsError) as e:
        print(type(e).__name__)  # MaxStepsError
    ```
    """


class EventError(SimulationError):
    """A rollout with `events=` failed: more events than `max_events`, or events
    accumulating (more than 16 inside one step, Zeno behaviour such as a ball bouncing
    ever faster as it comes to rest).

    **Example:** a ball bouncing with restitution 0.5 comes to rest after infinitely many
    bounces in finite time:

    ```python
    ball = ds.systems.Projectile()
    floor = ds.Event(lambda t, y: y.q[0], direction=-1,
                     reset=lambda t, y: ds.PhaseState(y.q, -0.5 * y.v))
    y0 = ds.PhaseState(q=jnp.array([1.0]), v=jnp.array([0.0]))
    try:
        ds.simulate(ball, y0, t1=3.0, dt=0.01, events=floor, max_events=8)
    except ds.EventError as e:
        print(e.headline)  # ds.simulate: more events occurred than max_events.
    traj = ds.simulate(ball, y0, t1=3.0, dt=0.01, events=floor, max_events=8, throw=False)
    print(traj.result == ds.RESULTS.event_capacity)  # True
    ```
    """


# What failed (the first line, the same eagerly and under jit) and how to fix it.
FAILURES = [
    (
        RESULTS.nonfinite,
        NonFiniteStateError,
        "the state became non-finite (NaN or inf)",
        "Use a smaller dt, a stiff integrator (ds.Kvaerno5()) or check the system's parameters.",
    ),
    (
        RESULTS.max_steps_reached,
        MaxStepsError,
        "the adaptive solve reached max_steps before t1",
        "Increase max_steps=, loosen rtol/atol, or use a stiff integrator "
        "(ds.Kvaerno5()) if the system is stiff.",
    ),
    (
        RESULTS.adaptive_failed,
        StepSizeError,
        "the adaptive solve failed (step size collapsed or the implicit solve diverged)",
        "Check the system's parameters for a singularity, tighten rtol/atol or use "
        "ds.Kvaerno5() for a stiff system.",
    ),
    (
        RESULTS.event_capacity,
        EventError,
        "more events occurred than max_events",
        "Increase max_events= (the capacity of traj.events).",
    ),
    (
        RESULTS.event_accumulation,
        EventError,
        "events accumulated (more than 16 in one step: Zeno behaviour)",
        "Events are converging in time, e.g. a ball coming to rest: end the rollout with a "
        "terminal event (ds.Event(..., terminal=True)) when the motion is small enough, or "
        "make the reset remove the accumulation (no bounce below some speed).",
    ),
]


_NO_THROW = "throw=False returns traj.result instead of raising."


def _code(result) -> int:
    return int(np.asarray(result._value).reshape(-1)[0])


def failure(result) -> tuple[type[SimulationError], str, str]:
    """The exception class, first line and hint for one (concrete, scalar) result code."""
    for code, *entry in FAILURES:
        if _code(code) == _code(result):
            return tuple(entry)
    raise AssertionError(f"not a failure: {result!r}")


def first_line(what: str, result) -> str:
    _, headline, _ = failure(result)
    return f"{what}: {headline}."


def raise_if_failed(traj, *, what: str = "ds.simulate", step_time=None) -> None:
    """Raise the `SimulationError` subclass for a concrete failed `traj` (else nothing).

    `step_time(step) -> t`: the time at the end of a fixed step, to name it."""
    codes = np.asarray(traj.result._value).reshape(-1)
    ok = _code(RESULTS.successful)
    if np.all(codes == ok):
        return
    first = int(np.argmax(codes != ok))
    code = jax.tree.map(lambda v: np.asarray(v).reshape(-1)[first], traj.result)
    cls, _, hint = failure(code)

    def pick(name):
        value = np.asarray(traj.stats.get(name, -1)).reshape(-1)
        return int(value[min(first, value.size - 1)]) if value.size else -1

    if isinstance(cls, type) and issubclass(cls, EventError) and traj.events is not None:
        count = np.asarray(traj.events.count).reshape(-1)[first]
        times = np.asarray(traj.events.times).reshape(-1, traj.events.times.shape[-1])[first]
        last = times[min(int(count), times.size) - 1] if count else float("nan")
        where = f"After {int(count)} events, the last logged at t = {float(last):.6g}"
    elif pick("nonfinite_step") >= 0:
        k = pick("nonfinite_step")
        time = f" (t = {float(step_time(k)):.6g})" if step_time is not None else ""
        where = f"At step {k}{time}"
    else:
        where = f"After {pick('num_steps')} steps"
    if codes.size > 1:
        where += f", in batch member {first} ({int(np.sum(codes != ok))} of {codes.size} failed)"
    raise cls(first_line(what, code), f"{where}.", hint, _NO_THROW)


def error_if_failed(x, result, *, what: str = "ds.simulate"):
    """Return `x`; under a transformation, raise equinox's runtime error if `result` (a
    traced code, possibly batched) is a failure. The first line matches the eager one."""
    # equinox picks the message by the result code itself (0: successful, no message).
    messages = [""] * (1 + max(_code(code) for code, *_ in FAILURES))
    for code, _, _, hint in FAILURES:
        messages[_code(code)] = (
            f"{first_line(what, code)}\nThe step and member are not known under a "
            f"transformation: pass throw=False and read traj.result and traj.stats. {hint}"
        )
    index = result._value
    return eqx.branched_error_if(x, result != RESULTS.successful, index, messages)


def reraise_clean(error: Exception, *, what: str = "ds.simulate") -> None:
    """An error raised by `error_if_failed` that Python sees (an eager `jax.vmap` or
    `jax.grad` over `simulate`) as the `SimulationError` subclass it stands for."""
    text = str(error)
    for code, cls, _, hint in FAILURES:
        line = first_line(what, code)
        if line in text:
            raise cls(line, hint=hint) from None
