"""Resumable ensembles (`checkpoint=`) and outputs on disk (`out=`): a run killed with
SIGKILL at random points resumes to the result of an uninterrupted run; a different call
refuses the checkpoint; a zarr store reopens lazily and equals the in-memory result."""

import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import jax.numpy as jnp
import numpy as np
import pytest

import diffsim as ds

Y0 = jnp.array([1.0, 0.0, 0.0])


def final_state(rho):
    lorenz = ds.systems.Lorenz(rho=rho)
    return ds.simulate(lorenz, Y0, t1=1.0, dt=1e-2, integrator=ds.Tsit5Fixed(), throw=False)


RHOS = jnp.linspace(0.0, 28.0, 300)


def test_checkpointed_equals_plain_and_resumes_identically(tmp_path):
    plain = ds.ensemble(final_state, RHOS, batch_size=64)
    first = ds.ensemble(final_state, RHOS, batch_size=64, checkpoint=tmp_path / "ck")
    # To rounding only: the segment program and the chunk loop are compiled apart.
    np.testing.assert_allclose(first.values.ys, plain.values.ys, rtol=1e-12, atol=1e-12)
    assert sorted(p.name for p in (tmp_path / "ck").iterdir())[:2] == [
        "run.json",
        "segment-00000000.npz",
    ]
    assert len(list((tmp_path / "ck").glob("segment-*.npz"))) == 5  # ceil(300 / 64)
    # Half the segments lost: the rerun recomputes them and agrees bit for bit.
    for k in (1, 3):
        (tmp_path / "ck" / f"segment-{k:08d}.npz").unlink()
    again = ds.ensemble(final_state, RHOS, batch_size=64, checkpoint=tmp_path / "ck")
    np.testing.assert_array_equal(again.values.ys, first.values.ys)
    np.testing.assert_array_equal(again.values.ts, first.values.ts)


def test_reducers_resume_to_the_same_statistics(tmp_path):
    reduce = {"m": ds.Moments(), "mm": ds.MinMax()}
    plain = ds.ensemble(final_state, RHOS, batch_size=50, reduce=reduce)
    first = ds.ensemble(final_state, RHOS, batch_size=50, reduce=reduce, checkpoint=tmp_path)
    m, mm = first.values["m"], first.values["mm"]  # rounding only, as above
    np.testing.assert_allclose(m.mean.ys, plain.values["m"].mean.ys, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(mm.max.ys, plain.values["mm"].max.ys, rtol=1e-12, atol=1e-12)
    (tmp_path / "segment-00000002.npz").unlink()
    again = ds.ensemble(final_state, RHOS, batch_size=50, reduce=reduce, checkpoint=tmp_path)
    np.testing.assert_array_equal(again.values["m"].mean.ys, first.values["m"].mean.ys)
    np.testing.assert_array_equal(again.values["m"].variance.ys, first.values["m"].variance.ys)


def test_failures_survive_a_resume(tmp_path):
    def rollout(omega):  # RK4 is unstable for omega * dt > 2.79: the last two fail
        osc = ds.systems.HarmonicOscillator(omega=omega)
        return ds.simulate(osc, osc.initial_state(1.0), t1=30.0, dt=0.1, throw=False)

    omegas = jnp.array([1.0, 2.0, 3.0, 5.0, 10.0, 50.0, 100.0])
    plain = ds.ensemble(rollout, omegas, throw=False)
    assert int(plain.num_failed) == 2  # overflows in float64 too
    for _ in range(2):
        res = ds.ensemble(rollout, omegas, batch_size=3, throw=False, checkpoint=tmp_path)
        np.testing.assert_array_equal(res.failed, plain.failed)
        np.testing.assert_array_equal(res.failed_indices, plain.failed_indices)
        np.testing.assert_array_equal(res.failed_steps, plain.failed_steps)
    with pytest.raises(ds.NonFiniteStateError, match="member 5"):
        ds.ensemble(rollout, omegas, batch_size=3, checkpoint=tmp_path)


@pytest.mark.parametrize(
    "change",
    ["values", "fn", "settings"],
)
def test_a_different_call_refuses_the_checkpoint(tmp_path, change):
    ds.ensemble(final_state, RHOS, batch_size=100, checkpoint=tmp_path)
    rhos, fn, bs = RHOS, final_state, 100
    if change == "values":
        rhos = RHOS.at[7].set(3.0)
    elif change == "fn":

        def fn(rho):
            return final_state(rho + 1.0)

    else:
        bs = 50
    with pytest.raises(
        ValueError, match=f"different call: its {'arguments' if change == 'values' else change}"
    ):
        ds.ensemble(fn, rhos, batch_size=bs, checkpoint=tmp_path)


_SCRIPT = textwrap.dedent(
    """
    import sys, jax, jax.numpy as jnp, numpy as np, diffsim as ds

    def fn(x):
        # ~10 ms per segment of 8 members: long enough to be killed mid-run.
        y = jnp.sin(x) + jnp.arange(200000.0) * 1e-9
        for _ in range(8):
            y = jnp.sin(y) * 1.0001
        return {"s": jnp.sum(y), "x": x}

    xs = jnp.linspace(0.0, 1.0, 400)
    res = ds.ensemble(fn, xs, batch_size=8, checkpoint=sys.argv[1])
    np.save(sys.argv[2], np.asarray(res.values["s"]))
    if len(sys.argv) > 3:  # the uninterrupted run: a new folder, the same program
        fresh = ds.ensemble(fn, xs, batch_size=8, checkpoint=sys.argv[3])
        np.save(sys.argv[4], np.asarray(fresh.values["s"]))
    """
)


@pytest.mark.slow  # three subprocess starts and compiles, ~20 s; make test-slow
def test_sigkill_at_random_points_then_resume(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(_SCRIPT)
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    args = [sys.executable, str(script), str(tmp_path / "ck"), str(tmp_path / "out.npy")]
    rng = random.Random(0)
    kills = 0
    for _ in range(3):
        proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(rng.uniform(2.5, 5.0))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    committed = len(list((tmp_path / "ck").glob("segment-*.npz")))
    fresh = [str(tmp_path / "fresh"), str(tmp_path / "fresh.npy")]
    subprocess.run(args + fresh, env=env, check=True, capture_output=True)
    resumed = np.load(tmp_path / "out.npy")
    np.testing.assert_array_equal(resumed, np.load(tmp_path / "fresh.npy"))
    assert kills >= 1 and 0 < committed, (kills, committed)
