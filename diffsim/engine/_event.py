"""`Event`: a zero crossing of a function of the state that the rollout stops at, logs,
and optionally jumps or ends at; and `EventLog`, what a rollout records of them.

An event is the time $\\tau$ at which a scalar condition $g(t, y(t))$ crosses zero (in a
chosen direction). The rollout locates $\\tau$ on the integrator's own interpolant,
applies the event's `reset` $y \\mapsto R(\\tau, y)$ there (a bounce, a switch) and
carries on from $(\\tau, R(\\tau, y(\\tau)))$, or, for a terminal event, ends there.
Gradients include the dependence of $\\tau$ on everything upstream, by the implicit
function theorem: $d\\tau = -\\partial g / (dg/dt)$ (see `_event_fixed.py`).
"""

from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PyTree

from .._trees import is_concrete, tree_where
from ._adjoints import Backsolve, Reversible
from .integrators import AbstractAdaptiveIntegrator, AbstractSDEIntegrator, EventStep


class Event(eqx.Module):
    """A state event for `ds.simulate(..., events=...)`: the zero crossing of
    `condition(t, y)`, a scalar.

    **Arguments:**

    - `condition`: `condition(t, y) -> scalar`; the event is where it crosses zero. A
      closure over arrays (a floor height, a target) is differentiated like the system.
    - `direction`: `+1` only rising crossings (negative to non-negative), `-1` only falling
      ones (positive to non-positive), `0` (default) both. A condition that starts at
      exactly zero and moves away (just after a reset) is not an event.
    - `reset`: `reset(t, y) -> y`, the state just after the event (a bounce, a switch);
      `None` (default): the state is unchanged, the event is only logged.
    - `terminal`: end the rollout at the event (after its reset, if any). Under `vmap` or
      in `ds.ensemble` each member stops at its own event time: values saved for later
      times are the state at the event and their `traj.ts` entries are the event time.

    Plain functions are static to `simulate`'s compiled program (compared by identity):
    build the event once, not anew in each call, or a repeated eager call recompiles;
    arrays a condition depends on can be fields of an `eqx.Module` condition instead.

    Every occurrence is logged in `traj.events` (a `ds.EventLog`) up to `simulate`'s
    `max_events`.

    **Example:** a ball dropped from 1 m bounces with restitution 0.8; the first bounce is
    at $\\sqrt{2/g}$ = 0.4515 s, the next $2 e \\sqrt{2/g}$ later:

    ```python
    ball = ds.systems.Projectile(gravity=9.81)  # free flight, no floor
    floor = ds.Event(lambda t, y: y.q[1], direction=-1,
                     reset=lambda t, y: ds.PhaseState(y.q, y.v * jnp.array([1.0, -0.8])))
    y0 = ds.PhaseState(q=jnp.array([0.0, 1.0]), v=jnp.array([0.0, 0.0]))
    traj = ds.simulate(ball, y0, t1=2.0, dt=0.01, events=floor)
    print(traj.events.count)  # 3
    print(traj.events.times[:3])  # [0.4515 1.1740 1.7520]
    ```
    """

    condition: Callable[[Any, Any], Any]
    reset: Callable[[Any, Any], Any] | None
    direction: int = eqx.field(static=True)
    terminal: bool = eqx.field(static=True)

    def __init__(self, condition, *, direction=0, reset=None, terminal=False):
        self.condition = condition
        self.direction = direction
        self.reset = reset
        self.terminal = terminal

    def __check_init__(self):
        if not callable(self.condition):
            raise TypeError(
                f"ds.Event(condition=...) must be a function condition(t, y) -> scalar; "
                f"got {self.condition!r}."
            )
        if self.direction not in (-1, 0, 1) or isinstance(self.direction, bool):
            raise ValueError(
                "ds.Event(direction=...) must be +1 (rising crossings), -1 (falling) or 0 "
                f"(both); got {self.direction!r}."
            )
        if self.reset is not None and not callable(self.reset):
            raise TypeError(
                f"ds.Event(reset=...) must be a function reset(t, y) -> y or None; got "
                f"{self.reset!r}."
            )
        if not isinstance(self.terminal, bool):
            raise TypeError(f"ds.Event(terminal=...) must be True or False; got {self.terminal!r}.")


class EventLog(eqx.Module):
    """The events of one rollout, in time order: `traj.events`.

    **Fields** (padded to `simulate`'s `max_events`; the first `count` rows are real):

    - `times`: `(max_events,)` event times; padding is `inf`.
    - `which`: `(max_events,)` int, the index of the event in `events=`; padding is -1.
    - `states`: the state at each event, just before its reset: a pytree like `y0` with
      a leading `max_events` axis; padding is zeros.
    - `count`: the number of events that occurred.

    Under `vmap` every field gains the batch axis in front.

    **Example:**

    ```python
    osc = ds.systems.HarmonicOscillator(omega=1.0)
    crossing = ds.Event(lambda t, y: y.q)  # q = cos t crosses zero at pi/2, 3 pi/2, ...
    traj = ds.simulate(osc, osc.initial_state(1.0), t1=6.0, dt=0.01, events=crossing,
                       max_events=4)
    print(traj.events.count)  # 2
    print(traj.events.times)  # [1.5708 4.7124 inf inf]
    print(traj.events.which)  # [ 0  0 -1 -1]
    ```
    """

    times: Float[Array, " capacity"]
    which: Int[Array, " capacity"]
    states: PyTree[Float[Array, "capacity ..."]]
    count: Int[Array, ""]


def empty_log(y, capacity: int, dtype) -> EventLog:
    """A log with no events yet, shaped for `capacity` events of states like `y`."""
    return EventLog(
        times=jnp.full((capacity,), jnp.inf, dtype),
        which=jnp.full((capacity,), -1, jnp.int32),
        states=jax.tree.map(lambda x: jnp.zeros((capacity,) + jnp.shape(x), x.dtype), y),
        count=jnp.asarray(0, jnp.int32),
    )


def record(log: EventLog, t, which, y, happened) -> EventLog:
    """`log` with one more event if `happened`; an event past the capacity is counted, not
    stored. (A masked write, not an indexed one: under `vmap` an indexed write becomes a
    scatter, measured 10x slower here.)"""
    rows = jnp.arange(log.times.shape[0]) == log.count
    put_row = rows & happened

    def put(buffer, value):
        mask = put_row.reshape((-1,) + (1,) * (buffer.ndim - 1))
        return jnp.where(mask, value.astype(buffer.dtype), buffer)

    return EventLog(
        times=put(log.times, t),
        which=put(log.which, jnp.asarray(which, jnp.int32)),
        states=jax.tree.map(put, log.states, y),
        count=log.count + happened.astype(jnp.int32),
    )


def conditions(events, t, y):
    """Every event's condition at `(t, y)`, as one array in the dtype of `t`."""
    return jnp.stack([jnp.asarray(e.condition(t, y)).astype(t.dtype) for e in events])


def conditions_and_rates(events, t, y, dy):
    r"""The conditions at `(t, y)` and their rates of change $d/dt\, g(t, y(t))$ along a
    motion with velocity `dy` (the vector field there)."""

    def along(s):
        return conditions(events, t + s, jax.tree.map(lambda a, b: a + s * b, y, dy))

    return jax.jvp(along, (jnp.zeros_like(t),), (jnp.ones_like(t),))


def apply(events, which, t, y):
    """The state just after event `which` (an index, traced) at `(t, y)`, and whether it
    ends the rollout."""
    after, terminal = y, jnp.asarray(False)
    for i, event in enumerate(events):
        if event.reset is not None:
            after = tree_where(which == i, event.reset(t, y), after)
        if event.terminal:
            terminal = terminal | (which == i)
    return after, terminal


def save_states(saveat, ts, states):
    """What `saveat` keeps of `states` (leading axis: the times `ts`)."""
    return states if saveat.fn is None else jax.vmap(saveat.fn)(ts, states)


def save_ends(saveat, t0, y0, t_end, y_end):
    """`SaveAt(t0=..., t1=...)`: the times and what is kept at them; the end is where the
    rollout ended (`t1`, or a terminal event)."""
    times = ([t0] if saveat.t0 else []) + ([t_end] if saveat.t1 else [])
    states = ([y0] if saveat.t0 else []) + ([y_end] if saveat.t1 else [])
    ts = jnp.stack(times)
    return ts, save_states(saveat, ts, jax.tree.map(lambda *x: jnp.stack(x), *states))


def as_events(events: Any) -> tuple[Event, ...]:
    """`events=` as a tuple of `Event`s, or a `TypeError` naming the bad entry."""
    if events is None:
        return ()
    items = [events] if isinstance(events, Event) else events
    if not isinstance(items, Sequence) or isinstance(items, str):
        raise TypeError(f"events must be a ds.Event or a list of them; got {events!r}.")
    for i, event in enumerate(items):
        if not isinstance(event, Event):
            raise TypeError(
                f"events[{i}] must be a ds.Event(condition, direction=, reset=, terminal=); "
                f"got {event!r}."
            )
    return tuple(items)


def check_events(events, max_events, integrator, adjoint, saveat, t0, t1, dt):
    """`events=` as a tuple of `Event`s, checked against `max_events`, the integrator,
    the adjoint, the save policy and the direction of time; a `TypeError`/`ValueError`
    naming the argument otherwise."""
    events = as_events(events)
    if not events:
        return events
    _check_max_events(max_events)
    backward = (t1 is not None and is_concrete(t1) and is_concrete(t0) and t1 < t0) or (
        t1 is None and dt is not None and is_concrete(dt) and dt < 0
    )
    if backward:
        raise ValueError("events= integrates forwards only (t1 > t0, dt > 0) for now.")
    name = type(integrator).__name__
    if isinstance(integrator, (AbstractSDEIntegrator, EventStep)):
        why = (
            "is stochastic"
            if isinstance(integrator, AbstractSDEIntegrator)
            else ("handles the system's own guard; give the event as ds.Event instead")
        )
        raise ValueError(f"events= cannot be used with integrator=ds.{name}(): it {why}.")
    if isinstance(adjoint, Reversible):
        raise ValueError(
            "events= cannot be used with adjoint=ds.Reversible(): an event's reset is not "
            "time-reversible. Use adjoint=ds.Checkpointed() (the default) or ds.Direct()."
        )
    if isinstance(adjoint, Backsolve):
        raise ValueError(
            "events= cannot be used with adjoint=ds.Backsolve() (diffrax's continuous "
            "adjoint does not see the segments between events). Use adjoint="
            "ds.Checkpointed() (the default) or ds.Direct()."
        )
    if saveat.every is not None and isinstance(integrator, AbstractAdaptiveIntegrator):
        raise ValueError(
            "SaveAt(every=k) counts fixed steps and has no meaning for the adaptive "
            f"integrator {type(integrator).__name__}; use SaveAt(ts=times) instead."
        )
    if saveat.dense and isinstance(integrator, AbstractAdaptiveIntegrator):
        raise ValueError(
            "SaveAt(dense=True) with events= needs a fixed-step integrator for now; with "
            f"ds.{type(integrator).__name__}() save at times instead: SaveAt(ts=...)."
        )
    return events


def _check_max_events(max_events) -> None:
    if not isinstance(max_events, int) or isinstance(max_events, bool) or max_events < 1:
        raise ValueError(
            f"max_events must be a positive int (the capacity of traj.events); got {max_events!r}."
        )
