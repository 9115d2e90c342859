"""diffsim._progress: a text bar on stderr driven from inside compiled code."""

import io

import jax
import numpy as np
import pytest

import diffsim as ds
from diffsim._progress import ProgressBar, saveat_fn


def test_bar_draws_forward_only():
    stream = io.StringIO()
    bar = ProgressBar("run", stream=stream, enabled=True, width=10, min_interval=0.0)
    bar.update(0.5)
    bar.update(0.2)  # late, out-of-order report: ignored
    assert bar.done == 0.5
    bar.update(1.0)
    bar.close()
    text = stream.getvalue()
    assert "run [#####.....]  50%" in text and "run [##########] 100%" in text
    assert "20%" not in text and text.endswith("\n")


def test_bar_off_and_not_a_terminal_draw_nothing():
    for enabled in (False, None):  # StringIO is not a terminal
        stream = io.StringIO()
        bar = ProgressBar("run", stream=stream, enabled=enabled)
        bar.update(0.7)
        bar.close()
        assert stream.getvalue() == ""


def test_rollout_reports_from_inside_jit():
    stream = io.StringIO()
    bar = ProgressBar("rollout", stream=stream, enabled=True, min_interval=0.0)
    pendulum = ds.systems.Pendulum(length=1.0)
    y0 = pendulum.initial_state(1.0)
    energy = lambda t, y: pendulum.energy(y)  # noqa: E731

    def rollout(fn):
        return ds.simulate(pendulum, y0, t1=2.0, dt=0.01, saveat=ds.SaveAt(every=50, fn=fn)).ys

    plain = jax.jit(lambda: rollout(energy))()
    tracked = jax.jit(lambda: rollout(saveat_fn(energy, bar, t0=0.0, t1=2.0)))()
    jax.effects_barrier()
    np.testing.assert_array_equal(tracked, plain)  # the same values saved
    assert bar.done == 1.0 and "100%" in stream.getvalue()
    with pytest.raises(ValueError, match="t1 > t0"):
        saveat_fn(energy, bar, t0=1.0, t1=1.0)
