"""`ds.ensemble(..., out=PATH)`: members' outputs written to a zarr store segment by
segment, reopened lazily, equal to the in-memory result, and resumable."""

import jax.numpy as jnp
import numpy as np
import pytest

import diffsim as ds

zarr = pytest.importorskip("zarr")


def rollout(omega):
    osc = ds.systems.HarmonicOscillator(omega=omega)
    ts = jnp.linspace(0.0, 30.0, 7)
    return ds.simulate(osc, osc.initial_state(1.0), t1=30.0, dt=0.1, throw=False,
                       saveat=ds.SaveAt(ts=ts))  # fmt: skip


OMEGAS = jnp.concatenate([jnp.linspace(0.5, 3.0, 40), jnp.array([60.0])])  # the last fails


def test_outputs_on_disk_equal_the_in_memory_result(tmp_path):
    plain = ds.ensemble(rollout, OMEGAS, batch_size=16, throw=False, checkpoint=tmp_path / "ck")
    res = ds.ensemble(rollout, OMEGAS, batch_size=16, throw=False, out=tmp_path / "out")
    assert isinstance(res.values.ys.q, zarr.Array)  # lazy: read when indexed
    assert res.values.ys.q.shape == (41, 7) and res.values.ys.q.chunks == (16, 7)
    np.testing.assert_array_equal(res.values.ys.q[:], plain.values.ys.q)
    np.testing.assert_array_equal(res.values.ts[:], plain.values.ts)
    np.testing.assert_array_equal(res.failed, plain.failed)
    assert int(res.num_failed) == 1 and int(res.failed_indices[0]) == 40
    # Reopened later, by name, without diffsim.
    group = zarr.open_group(str(tmp_path / "out"), mode="r")
    np.testing.assert_array_equal(group["ys.q"][3:5], plain.values.ys.q[3:5])
    names = group.attrs["diffsim_leaves"]
    assert names[:4] == ["ts", "ys.q", "ys.v", "result"], names


def test_store_resumes_and_refuses_another_call(tmp_path):
    first = ds.ensemble(rollout, OMEGAS, batch_size=16, throw=False, out=tmp_path)
    expected = first.values.ys.v[:]
    # A lost commit: the segment is rewritten on the next call.
    (tmp_path / ".checkpoint" / "segment-00000001.npz").unlink()
    group = zarr.open_group(str(tmp_path), mode="r+")
    group["ys.v"][16:32] = 0.0
    again = ds.ensemble(rollout, OMEGAS, batch_size=16, throw=False, out=tmp_path)
    np.testing.assert_array_equal(again.values.ys.v[:], expected)
    with pytest.raises(ValueError, match="different call"):
        ds.ensemble(rollout, OMEGAS * 2, batch_size=16, throw=False, out=tmp_path)


def test_bad_store_arguments(tmp_path):
    (tmp_path / "other.txt").write_text("not a store")
    with pytest.raises(ValueError, match="not empty and not a ds.ensemble store"):
        ds.ensemble(rollout, OMEGAS, out=tmp_path)
    with pytest.raises(ValueError, match="out= writes every member's outputs"):
        ds.ensemble(rollout, OMEGAS, out=tmp_path / "x", reduce=ds.Moments())
    with pytest.raises(TypeError, match="out must be a path"):
        ds.ensemble(rollout, OMEGAS, out=3)
