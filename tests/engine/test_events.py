"""`ds.simulate(..., events=...)`: event times against closed forms, gradients through
them against closed forms and finite differences, terminal events under vmap, several
events in one step, accumulation and capacity reported, and bad arguments refused."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import diffsim as ds
from tests.helpers import central_difference

G = 9.81
FIXED = pytest.param(dict(integrator=ds.RK4(), dt=0.01), id="RK4")
# diffrax's checkpointed adjoint is reverse mode only: Direct differentiates both ways.
ADAPTIVE = pytest.param(
    dict(integrator=ds.Tsit5(rtol=1e-10, atol=1e-10), adjoint=ds.Direct()), id="Tsit5"
)
# Compile-bound (a scan of diffrax solves with a root find, differentiated): 10-40 s each
# on a 2-core CPU, so in make test-slow.
ADAPTIVE_SLOW = pytest.param(*ADAPTIVE.values, id="Tsit5", marks=pytest.mark.slow)


def _bounce_times(e, h, k):
    """The first k times a ball dropped from h (at rest) hits the floor, restitution e."""
    first = np.sqrt(2 * h / G)
    flights = 2 * first * e ** np.arange(1, k)
    return first + np.concatenate([[0.0], np.cumsum(flights)])


def _bounces(e, h, t1, max_events, **timing):
    ball = ds.systems.Projectile(gravity=G)
    floor = ds.Event(
        lambda t, y: y.q[0], direction=-1, reset=lambda t, y: ds.PhaseState(y.q, -e * y.v)
    )
    y0 = ds.PhaseState(q=jnp.stack([jnp.asarray(h, float)]), v=jnp.zeros(1))
    return ds.simulate(ball, y0, t1=t1, events=floor, max_events=max_events, **timing)


@pytest.mark.parametrize("timing", [FIXED, ADAPTIVE])
def test_fifty_bounce_times_match_the_closed_form(timing):
    e, h = 0.95, 1.0
    closed = _bounce_times(e, h, 50)
    t1 = np.round(closed[-1] + 0.5 * (closed[-1] - closed[-2]), 2)  # before the 51st
    traj = _bounces(e, h, t1, 50, **timing)
    assert int(traj.events.count) == 50
    np.testing.assert_allclose(traj.events.times, closed, rtol=0, atol=1e-10)
    assert (np.asarray(traj.events.which) == 0).all()
    # The logged state is the one just before the reset: on the floor, falling.
    np.testing.assert_allclose(traj.events.states.q[:, 0], 0.0, atol=1e-9)
    assert (np.asarray(traj.events.states.v) < 0).all()


# make test-slow: 21 s of compilation; reverse mode through events stays in make test in
# the event conformance matrix, forward mode in the landing-point test below.
FIXED_SLOW = pytest.param(*FIXED.values, id="RK4", marks=pytest.mark.slow)


@pytest.mark.parametrize("timing", [FIXED_SLOW, ADAPTIVE_SLOW])
def test_bounce_time_gradients_match_the_closed_form_in_both_modes(timing):
    k = 6

    def kth(x):
        return _bounces(x[0], x[1], 3.5, 8, **timing).events.times[k - 1]  # 6 bounces

    x = jnp.array([0.8, 1.3])
    e, h = 0.8, 1.3
    first = np.sqrt(2 * h / G)
    j = np.arange(1, k)
    closed = [2 * first * np.sum(j * e ** (j - 1)), (1 + 2 * np.sum(e**j)) * first / (2 * h)]
    np.testing.assert_allclose(jax.grad(kth)(x), closed, rtol=1e-7)
    np.testing.assert_allclose(jax.jacfwd(kth)(x), closed, rtol=1e-7)
    np.testing.assert_allclose(central_difference(jax.jit(kth), x, 1e-6), closed, rtol=1e-6)


def _landing(speed, angle, **timing):
    """Where a drag-free projectile launched from the ground comes down."""
    ball = ds.systems.Projectile(gravity=G)
    ground = ds.Event(lambda t, y: y.q[1], direction=-1, terminal=True)
    y0 = ball.initial_state(speed=speed, angle=angle)
    y0 = ds.PhaseState(y0.q.at[1].set(1e-12), y0.v)  # just above the ground: not an event
    traj = ds.simulate(ball, y0, t1=10.0, events=ground, max_events=1, **timing)
    return traj.ys.q[-1, 0], traj.ts[-1]


@pytest.mark.parametrize(
    "timing, derivatives",
    [
        pytest.param(*FIXED.values, (jax.jacfwd,), id="RK4-forward"),
        # Reverse mode compiles for ~6 s more; the bounce test above covers it.
        pytest.param(*FIXED.values, (jax.grad,), id="RK4-reverse", marks=pytest.mark.slow),
        pytest.param(*ADAPTIVE.values, (jax.grad, jax.jacfwd), id="Tsit5", marks=pytest.mark.slow),
    ],
)
def test_landing_point_and_its_gradient_match_the_range_formula(timing, derivatives):
    speed, angle = 12.0, 0.6
    x, t = _landing(speed, angle, **timing)
    np.testing.assert_allclose(x, speed**2 * np.sin(2 * angle) / G, rtol=1e-10)
    np.testing.assert_allclose(t, 2 * speed * np.sin(angle) / G, rtol=1e-10)
    closed = [2 * speed * np.sin(2 * angle) / G, 2 * speed**2 * np.cos(2 * angle) / G]

    def land(p):
        return _landing(p[0], p[1], **timing)[0]

    p = jnp.array([speed, angle])
    for derivative in derivatives:
        np.testing.assert_allclose(derivative(land)(p), closed, rtol=1e-8)


@pytest.mark.parametrize("timing", [FIXED, ADAPTIVE_SLOW])
def test_terminal_events_stop_each_member_at_its_own_time(timing):
    ball = ds.systems.Projectile(gravity=G)
    ground = ds.Event(lambda t, y: y.q[0], direction=-1, terminal=True)
    ts = jnp.linspace(0.0, 1.0, 11)

    def drop(h):
        y0 = ds.PhaseState(q=jnp.stack([h]), v=jnp.zeros(1))
        return ds.simulate(ball, y0, t1=1.0, events=ground, saveat=ds.SaveAt(ts=ts), **timing)

    hs = jnp.array([0.5, 1.0, 2.0, 9.0])
    traj = jax.vmap(drop)(hs)
    landing = np.sqrt(2 * np.asarray(hs) / G)
    for i, t_land in enumerate(landing):
        after = np.asarray(ts) >= t_land
        # Saved times after the event are the event time; the state there is the event's.
        np.testing.assert_allclose(traj.ts[i], np.minimum(ts, t_land), atol=1e-10)
        np.testing.assert_allclose(traj.ys.q[i, after, 0], 0.0, atol=1e-9)
        before = ~after
        np.testing.assert_allclose(
            traj.ys.q[i, before, 0], hs[i] - 0.5 * G * np.asarray(ts)[before] ** 2, atol=1e-9
        )
        assert int(traj.events.count[i]) == (1 if t_land <= 1.0 else 0)


@pytest.mark.parametrize("timing", [FIXED, ADAPTIVE_SLOW])
def test_several_events_in_one_step_are_handled_in_time_order(timing):
    osc = ds.systems.HarmonicOscillator(omega=1.0)  # q = cos t
    levels = [0.4, 0.45, 0.5]  # listed latest first: the log must still be in time order
    events = [ds.Event(lambda t, y, c=c: y.q - c, direction=-1) for c in levels]
    timing = dict(timing, dt=0.5) if "dt" in timing else timing  # all three in one step
    traj = ds.simulate(osc, osc.initial_state(1.0), t1=2.0, events=events, **timing)
    assert int(traj.events.count) == 3
    np.testing.assert_array_equal(traj.events.which[:3], [2, 1, 0])
    tol = 1e-3 if "dt" in timing else 1e-8  # a cubic over a half-radian step
    np.testing.assert_allclose(traj.events.times[:3], np.arccos(levels[::-1]), atol=tol)


def test_direction_selects_rising_falling_or_both():
    osc = ds.systems.HarmonicOscillator(omega=1.0)
    y0 = osc.initial_state(1.0)  # q = cos t: falling zeros at pi/2, 5 pi/2, rising at 3 pi/2

    def times(direction):
        event = ds.Event(lambda t, y: y.q, direction=direction)
        traj = ds.simulate(osc, y0, t1=9.0, dt=0.01, events=event, max_events=4)
        return np.asarray(traj.events.times)

    np.testing.assert_allclose(times(-1)[:2], [np.pi / 2, 5 * np.pi / 2], atol=1e-5)
    np.testing.assert_allclose(times(1)[:1], [3 * np.pi / 2], atol=1e-5)
    np.testing.assert_allclose(times(0)[:3], [np.pi / 2, 3 * np.pi / 2, 5 * np.pi / 2], atol=1e-5)
    assert np.isinf(times(1)[1:]).all()  # padding


def test_accumulating_events_are_reported_not_looped_on():
    with pytest.raises(ds.EventError, match="accumulated"):
        _bounces(0.5, 1.0, 3.0, 1000, dt=0.01)
    traj = _bounces(0.5, 1.0, 3.0, 1000, dt=0.01, throw=False)
    assert traj.result == ds.RESULTS.event_accumulation
    # The ball comes to rest at t = (1 + e) / (1 - e) sqrt(2 h / g) = 1.355 s.
    assert 1.3 < float(traj.events.times[int(traj.events.count) - 1]) < 1.36


@pytest.mark.parametrize("timing", [FIXED, ADAPTIVE_SLOW])
def test_more_events_than_the_capacity_is_an_error_or_a_status(timing):
    with pytest.raises(ds.EventError, match="max_events"):
        _bounces(0.9, 1.0, 3.0, 2, **timing)
    traj = _bounces(0.9, 1.0, 3.0, 2, throw=False, **timing)
    assert traj.result == ds.RESULTS.event_capacity
    assert np.isfinite(traj.events.times).all()  # the first two are kept


def test_events_compose_with_ensemble_and_report_failed_members():
    def final_height(h):
        return _bounces(0.8, h, 2.0, 3, dt=0.01).ys.q[-1, 0]

    # Dropped from 0.2 m the ball bounces more than max_events = 3 times before t = 2 s;
    # from 1 m three times, from 2 m twice.
    heights = jnp.array([2.0, 1.0, 0.2])
    res = ds.ensemble(final_height, heights, throw=False)
    np.testing.assert_array_equal(res.failed, [False, False, True])
    np.testing.assert_array_equal(res.failed_indices, [2, -1, -1])
    np.testing.assert_array_equal(res.failed_results == ds.RESULTS.event_capacity, [1, 0, 0])
    with pytest.raises(ds.EventError, match="member 2"):
        ds.ensemble(final_height, heights)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(events="floor"), "events"),
        (dict(events=[ds.Event(lambda t, y: y.q), "x"]), r"events\[1\]"),
        (dict(max_events=0), "max_events"),
        (dict(integrator=ds.EventStep()), "EventStep"),
        (dict(adjoint=ds.Reversible(), integrator=ds.Leapfrog()), "Reversible"),
    ],
)
def test_bad_arguments_are_refused_before_anything_runs(kwargs, match):
    osc = ds.systems.HarmonicOscillator(omega=1.0)
    kwargs = {"events": ds.Event(lambda t, y: y.q), **kwargs}
    with pytest.raises((TypeError, ValueError), match=match):
        ds.simulate(osc, osc.initial_state(1.0), t1=1.0, dt=0.1, **kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(condition=1.0), "condition"),
        (dict(direction=2), "direction"),
        (dict(reset="x"), "reset"),
        (dict(terminal=1), "terminal"),
    ],
)
def test_bad_event_fields_are_refused(kwargs, match):
    condition = kwargs.pop("condition", lambda t, y: y)
    with pytest.raises((TypeError, ValueError), match=match):
        ds.Event(condition, **kwargs)


def test_an_adaptive_step_with_two_events_keeps_both_in_time_order():
    """diffrax reports the first event in list order within a step; a free fall is exact
    for Tsit5, so its steps grow long enough to hold both crossings."""
    ball = ds.systems.Projectile(gravity=G)
    y0 = ds.PhaseState(q=jnp.array([0.0, 1.0]), v=jnp.array([2.0, 0.0]))
    half = ds.Event(lambda t, y: y.q[1] - 0.5, direction=-1)  # at sqrt(1 / g)
    wall = ds.Event(lambda t, y: y.q[0] - 1.0, direction=1, terminal=True)  # at 0.5 s
    traj = ds.simulate(
        ball, y0, t1=2.0, events=[wall, half], integrator=ds.Tsit5(rtol=1e-8, atol=1e-8)
    )
    np.testing.assert_array_equal(traj.events.which[:3], [1, 0, -1])
    np.testing.assert_allclose(traj.events.times[:2], [np.sqrt(1 / G), 0.5], rtol=1e-10)
