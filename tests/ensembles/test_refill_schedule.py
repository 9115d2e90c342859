"""`ds.ensemble(..., schedule=...)`: the refill schedule for adaptive members gives what
`vmap` gives (values, step counts, failures, statistics), is chosen by `"auto"` where it
applies, and refuses clearly where it does not."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import diffsim as ds
from diffsim.ensembles import _refill_batch

TSIT5 = ds.Tsit5(rtol=1e-6, atol=1e-6)
MUS = jnp.geomspace(1.0, 100.0, 70)  # Tsit5 steps vary ~15x over this range
REFILL = ds.Refill(lanes=8, block=16)


def _vdp(t, y, mu):
    return jnp.stack([y[1], mu * (1 - y[0] ** 2) * y[1] - y[0]])


def van_der_pol(mu, max_steps=4096, saveat=ds.SaveAt(t1=True)):
    system = ds.ODESystem(_vdp, mu)
    return ds.simulate(system, jnp.array([2.0, 0.0]), t1=12.0, integrator=TSIT5,
                       max_steps=max_steps, saveat=saveat, throw=False)  # fmt: skip


def few_steps(mu):  # the stiffest members run out of steps
    return van_der_pol(mu, max_steps=1200)


SAVE_TS = ds.SaveAt(ts=jnp.linspace(0.0, 12.0, 5), fn=lambda t, y: y[0] ** 2)


def saved(mu):
    return van_der_pol(mu, saveat=SAVE_TS)


@pytest.fixture
def count_refills(monkeypatch):
    """How many times the refill solver was traced."""
    calls = []
    original = _refill_batch.refill_solve

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(_refill_batch, "refill_solve", counting)
    return calls


def _assert_same(a, b, rtol=1e-9):
    np.testing.assert_allclose(a.values.ys, b.values.ys, rtol=rtol, atol=rtol)
    for key in ("num_steps", "num_accepted_steps", "num_rejected_steps"):
        np.testing.assert_array_equal(a.values.stats[key], b.values.stats[key])
    np.testing.assert_array_equal(a.failed, b.failed)
    np.testing.assert_array_equal(a.failed_indices, b.failed_indices)
    np.testing.assert_array_equal(a.failed_steps, b.failed_steps)
    np.testing.assert_array_equal(a.failed_results._value, b.failed_results._value)


def test_refill_equals_vmap_on_a_heterogeneous_ensemble(count_refills):
    vmapped = ds.ensemble(van_der_pol, MUS, schedule="vmap")
    refilled = ds.ensemble(van_der_pol, MUS, schedule=REFILL)
    assert len(count_refills) == 1
    steps = np.asarray(vmapped.values.stats["num_steps"])
    assert steps.max() > 10 * steps.min()  # heterogeneous, or the test shows nothing
    _assert_same(refilled, vmapped)


def test_failed_members_are_reported_as_under_vmap():
    vmapped = ds.ensemble(few_steps, MUS, schedule="vmap", throw=False)
    refilled = ds.ensemble(few_steps, MUS, schedule=REFILL, throw=False)
    assert 0 < int(vmapped.num_failed) < len(MUS)
    assert bool(jnp.all(refilled.failed_results == ds.RESULTS.max_steps_reached)) is False
    _assert_same(refilled, vmapped)
    with pytest.raises(ds.MaxStepsError, match=f"member {int(vmapped.failed_indices[0])}"):
        ds.ensemble(few_steps, MUS, schedule=REFILL)


def test_statistics_and_chunks_equal_vmap():
    reduce = {"m": ds.Moments(), "q": ds.MinMax()}
    vmapped = ds.ensemble(few_steps, MUS, schedule="vmap", reduce=reduce, throw=False)
    refilled = ds.ensemble(few_steps, MUS, schedule=REFILL, reduce=reduce, throw=False,
                           batch_size=32)  # fmt: skip
    np.testing.assert_allclose(refilled.values["m"].mean.ys, vmapped.values["m"].mean.ys, rtol=1e-9)
    np.testing.assert_allclose(refilled.values["q"].max.ys, vmapped.values["q"].max.ys, rtol=1e-9)
    assert int(refilled.num_failed) == int(vmapped.num_failed)
    np.testing.assert_array_equal(refilled.failed_indices, vmapped.failed_indices)


@pytest.mark.slow  # another refill compile, ~8 s; make test-slow
def test_saved_times_and_save_fn():
    vmapped = ds.ensemble(saved, MUS[::3], schedule="vmap")
    refilled = ds.ensemble(saved, MUS[::3], schedule=ds.Refill(lanes=4, block=8))
    assert refilled.values.ys.shape == (len(MUS[::3]), 5)
    np.testing.assert_array_equal(refilled.values.ts, vmapped.values.ts)
    np.testing.assert_allclose(refilled.values.ys, vmapped.values.ys, rtol=1e-9)


@pytest.mark.slow  # another refill compile, ~8 s; make test-slow
def test_float32():
    mus = MUS.astype(jnp.float32)

    def member(mu):
        system = ds.ODESystem(_vdp, mu)
        y0 = jnp.array([2.0, 0.0], jnp.float32)
        return ds.simulate(system, y0, t1=12.0, integrator=TSIT5, throw=False).ys

    with jax.enable_x64(False):  # else the float times promote the state to float64
        vmapped = ds.ensemble(member, mus, schedule="vmap").values
        refilled = ds.ensemble(member, mus, schedule=REFILL).values
    assert refilled.dtype == jnp.float32
    np.testing.assert_allclose(refilled, vmapped, rtol=1e-4, atol=1e-4)


def test_auto_refills_eager_calls_only(count_refills):
    eager = ds.ensemble(van_der_pol, MUS)  # 70 members > 64 lanes: refill
    assert len(count_refills) == 1
    small = ds.ensemble(van_der_pol, MUS[:10])  # fewer members than lanes: vmap
    assert len(count_refills) == 1
    np.testing.assert_allclose(small.values.ys, eager.values.ys[:10], rtol=1e-9)
    jitted = jax.jit(lambda mus: ds.ensemble(van_der_pol, mus).values.ys)(MUS)  # vmap
    assert len(count_refills) == 1
    np.testing.assert_allclose(jitted, eager.values.ys, rtol=1e-9)


@pytest.mark.slow  # reverse mode through 70 adaptive solves (~20 s); make test-slow
def test_auto_under_grad_is_vmap(count_refills):
    def mean_final(scale):  # under grad: vmap, which reverse mode differentiates
        return ds.ensemble(lambda mu: van_der_pol(mu * scale).ys, MUS).values.mean()

    grad = jax.grad(mean_final)(1.0)
    assert not count_refills

    def one(mu, scale):
        return van_der_pol(mu * scale).ys.sum() / (2 * len(MUS))

    per_member = jax.vmap(jax.grad(one, argnums=1), in_axes=(0, None))(MUS, 1.0)
    np.testing.assert_allclose(grad, per_member.sum(), rtol=1e-8)


def test_auto_falls_back_and_refill_refuses_what_it_cannot_take():
    def twice(mu):
        return van_der_pol(mu).ys + van_der_pol(2 * mu).ys

    def fixed_step(mu):
        system = ds.ODESystem(_vdp, mu)
        return ds.simulate(system, jnp.array([2.0, 0.0]), t1=1.0, dt=0.01).ys

    def dense(mu):
        return van_der_pol(mu, saveat=ds.SaveAt(dense=True)).evaluate(1.0)

    # auto falls back to vmap (one case run; the others are refused while tracing)
    auto = ds.ensemble(twice, MUS[:66])
    vmapped = ds.ensemble(twice, MUS[:66], schedule="vmap")
    np.testing.assert_array_equal(auto.values, vmapped.values)
    for fn, why in ((twice, "2 times"), (fixed_step, "0 times"), (dense, "dense output")):
        with pytest.raises(ValueError, match=f"cannot run this fn: .*{why}"):
            ds.ensemble(fn, MUS[:66], schedule="refill")


@pytest.mark.parametrize(
    "schedule, error", [("lockstep", ValueError), (8, TypeError), (None, TypeError)]
)
def test_bad_schedule(schedule, error):
    with pytest.raises(
        error, match="schedule must be 'auto', 'vmap', 'refill', 'fused' or ds.Refill"
    ):
        ds.ensemble(van_der_pol, MUS, schedule=schedule)


@pytest.mark.parametrize(
    "kwargs, error",
    [({"lanes": 0}, ValueError), ({"block": 2.5}, TypeError), ({"lanes": True}, TypeError)],
)
def test_bad_refill_settings(kwargs, error):
    with pytest.raises(error, match=r"ds.Refill\((lanes|block)=...\) must be a positive int"):
        ds.Refill(**kwargs)
