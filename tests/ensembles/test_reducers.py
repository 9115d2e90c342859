"""Streaming statistics (reducers) against NumPy on the stored outputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import diffsim as ds

from .helpers import RHOS, Y0, lorenz_run

# --------------------------------------------------------------------------------------
# Streaming statistics against NumPy on the stored outputs.


def test_streaming_moments_minmax_count_vs_numpy(loop):
    reduce = {
        "moments": ds.Moments(),
        "unbiased": ds.Moments(ddof=1),
        "range": ds.MinMax(),
        "count": ds.Count(lambda traj: traj.ys[-1, 2] > 5.0),
        "members": ds.Count(),
    }
    stats = ds.ensemble(lorenz_run, RHOS, batch_size=4, reduce=reduce).values
    np.testing.assert_allclose(stats["moments"].mean.ys, loop.mean(0), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(stats["moments"].variance.ys, loop.var(0), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(stats["moments"].std.ys, loop.std(0), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(
        stats["unbiased"].variance.ys, loop.var(0, ddof=1), rtol=1e-10, atol=1e-20
    )
    np.testing.assert_array_equal(stats["range"].min.ys, loop.min(0))
    np.testing.assert_array_equal(stats["range"].max.ys, loop.max(0))
    assert int(stats["moments"].count) == 11 and int(stats["members"].total) == 11
    assert int(stats["count"].count) == int((loop[:, -1, 2] > 5.0).sum())
    assert float(stats["count"].fraction) == pytest.approx((loop[:, -1, 2] > 5.0).mean())
    # Integer leaves (step counts, result codes) are not reduced.
    assert stats["moments"].mean.stats["num_steps"] is None


def test_moments_stable_with_large_mean_float32():
    # Data 1e4 + N(0, 1) in float32: a sum of squares would lose the variance entirely
    # (1e8 against float32's 7 digits); chunk-wise two-pass + Chan merging keeps it.
    x = 1e4 + jax.random.normal(jax.random.key(3), (20_000,), jnp.float32)
    stats = ds.ensemble(lambda x: x, x, batch_size=1000, reduce=ds.Moments()).values
    exact = np.var(np.asarray(x, np.float64))
    assert float(stats.variance) == pytest.approx(exact, rel=1e-3)
    naive = float(jnp.mean(x * x) - jnp.mean(x) ** 2)
    assert abs(naive - exact) > 0.1 * exact  # the naive formula really does fail here


def test_streaming_histogram_and_quantiles_vs_numpy():
    x = jax.random.normal(jax.random.key(4), (5000, 2)) * jnp.array([1.0, 3.0])
    lo, hi, bins = -6.0, 6.0, 600
    q = jnp.array([0.0, 0.01, 0.25, 0.5, 0.9, 0.999, 1.0])
    reduce = ds.Histogram(low=lo, high=hi, bins=bins)
    hist = ds.ensemble(lambda x: x, x, batch_size=700, reduce=reduce).values
    xs = np.asarray(x)
    for j in range(2):
        counts, _ = np.histogram(xs[:, j], bins=bins, range=(lo, hi))
        np.testing.assert_array_equal(hist.counts[j], counts)
        assert int(hist.underflow[j]) == int((xs[:, j] < lo).sum())
        assert int(hist.overflow[j]) == int((xs[:, j] > hi).sum())
    estimate = np.asarray(hist.quantile(q))
    exact = np.quantile(xs, q, axis=0)
    width = (hi - lo) / bins
    inside = (exact >= lo) & (exact <= hi)
    assert inside[:, 0].all() and not inside.all()  # column 1's tails lie outside the range
    err = np.abs(estimate - exact)
    assert (err[inside] <= width).all(), err
    # Outside the range an estimate stays between the range's edge and the extreme.
    low_tail, high_tail = exact[:, 1] < lo, exact[:, 1] > hi
    est = estimate[:, 1]
    assert ((est[low_tail] >= xs[:, 1].min()) & (est[low_tail] <= lo)).all()
    assert ((est[high_tail] <= xs[:, 1].max()) & (est[high_tail] >= hi)).all()
    np.testing.assert_array_equal(estimate[0], xs.min(0))
    np.testing.assert_array_equal(estimate[-1], xs.max(0))


def test_memory_bounded_by_chunks():
    # 10^6 members x 1000 saved steps of a 3-d state would be 24 GB of outputs; streamed
    # in chunks of 1000 through Moments the compiled program needs tens of MB. Compiled
    # (not run): XLA's own memory analysis of the whole ensemble.
    def run(rho):
        system = ds.systems.Lorenz(rho=rho)
        return ds.simulate(system, Y0, n_steps=1000, dt=1e-3, saveat=ds.SaveAt(every=1)).ys

    def stats(rhos, batch_size):
        return ds.ensemble(run, rhos, batch_size=batch_size, reduce=ds.Moments()).values.mean

    rhos = jax.ShapeDtypeStruct((10**6,), jnp.float64)
    chunked = jax.jit(lambda r: stats(r, 1000)).lower(rhos).compile().memory_analysis()
    assert chunked.temp_size_in_bytes < 200e6, chunked.temp_size_in_bytes
    assert chunked.output_size_in_bytes < 1e6  # (1001, 3) means, not (10^6, 1001, 3)
