"""`flat_jit`, the eager dispatch of `ds.ensemble`: same results as `eqx.filter_jit`, one
trace per key, and a fall back to `eqx.filter_jit` where it does not apply."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import diffsim as ds
from diffsim._flat_jit import NOT_APPLICABLE, flat_jit


def _counting():
    traces = []

    def impl(tree, scale, *, power):
        traces.append(1)
        return {"y": jax.tree.map(lambda x: (x * scale) ** power, tree), "tag": "kept", "n": 3}

    return impl, traces


def test_same_result_one_trace_per_key_and_floats_dynamic():
    impl, traces = _counting()
    f = flat_jit(impl, float_dynamic=(False, True))
    tree = {"a": jnp.arange(3.0), "b": (jnp.ones(2), jnp.float32(2.0))}
    out = f(tree, 2.0, power=2)
    ref = eqx.filter_jit(impl)(tree, 2.0, power=2)
    assert out["tag"] == "kept" and out["n"] == 3  # non-array outputs come back
    jax.tree.map(np.testing.assert_array_equal, out, ref)
    assert len(traces) == 2  # one each
    # New values, the same shapes, a new float: no new trace.
    out = f({"a": jnp.arange(3.0) + 1, "b": (jnp.zeros(2), jnp.float32(1.0))}, 3.0, power=2)
    np.testing.assert_array_equal(out["y"]["a"], (3.0 * (jnp.arange(3.0) + 1)) ** 2)
    assert len(traces) == 2
    # A new shape, a new setting, a new dtype: a new trace each.
    f({"a": jnp.arange(4.0), "b": (jnp.ones(2), jnp.float32(2.0))}, 2.0, power=2)
    f(tree, 2.0, power=3)
    f({"a": jnp.arange(3), "b": (jnp.ones(2), jnp.float32(2.0))}, 2.0, power=2)
    assert len(traces) == 5 and len(f.cache) == 4


def test_floats_not_marked_dynamic_are_static():
    impl, traces = _counting()
    f = flat_jit(impl, float_dynamic=(False, False))
    f(jnp.ones(2), 2.0, power=1)
    f(jnp.ones(2), 3.0, power=1)
    assert len(traces) == 2 and len(f.cache) == 2


def test_not_applicable_to_tracers_and_unhashable_leaves():
    impl, _ = _counting()
    f = flat_jit(impl, float_dynamic=(False, True))

    class Unhashable:
        __hash__ = None

    assert f([jnp.ones(2), Unhashable()], 1.0, power=1) is NOT_APPLICABLE
    seen = []
    jax.jit(lambda x: seen.append(f(x, 1.0, power=1)) or x)(jnp.ones(2))
    assert seen == [NOT_APPLICABLE]


def test_cache_is_bounded():
    impl, traces = _counting()
    f = flat_jit(impl, float_dynamic=(False, False), max_entries=3)
    for n in range(1, 6):
        f(jnp.ones(n), 1.0, power=1)
    assert len(f.cache) == 3 and len(traces) == 5
    f(jnp.ones(5), 1.0, power=1)  # the newest is still there
    assert len(traces) == 5


def _blows_up(y0):
    system = ds.ODESystem(lambda t, y, p: p * y**2, 1.0)
    return ds.simulate(system, y0, t1=2.0, dt=0.01, throw=False)


@pytest.mark.parametrize("batch_size", [None, 3])
def test_ensemble_eager_equals_traced(batch_size):
    y0 = jnp.array([0.1, 1.0, 0.2, 3.0, 0.1, 0.3, 0.6, 0.2])
    eager = ds.ensemble(_blows_up, y0, batch_size=batch_size, throw=False)
    traced = jax.jit(lambda y: ds.ensemble(_blows_up, y, batch_size=batch_size, throw=False))(y0)
    assert type(eager) is type(traced) and eager.num_members == traced.num_members == 8
    assert int(eager.num_failed) == 3
    np.testing.assert_array_equal(eager.failed_indices[:3], [1, 3, 6])
    jax.tree.map(np.testing.assert_array_equal, eager, traced)
    # Python floats among the batched arguments are shared, and stay dynamic.
    run = lambda y, p: ds.simulate(ds.ODESystem(lambda t, y, p: -p * y, p), y, t1=1.0, dt=0.01)  # noqa: E731
    res = ds.ensemble(run, jnp.ones(4), 0.5, batch_size=batch_size)
    np.testing.assert_allclose(res.values.ys[:, -1], np.exp(-0.5), rtol=1e-7)


def test_ensemble_names_an_unhashable_static_leaf():
    class Scale:  # a non-array leaf without a hash
        __hash__ = None
        value = 2.0

    def run(y, settings):
        return y * settings[1].value

    for call in (
        lambda y: ds.ensemble(run, y, (1, Scale())),
        jax.jit(lambda y: ds.ensemble(run, y, (1, Scale())).values),
    ):
        with pytest.raises(
            TypeError, match=r"batched_args\[1\]\[1\] is a Scale, which is not an array"
        ):
            call(jnp.arange(4.0))
