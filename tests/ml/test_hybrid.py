"""Hybrid systems: gradients reach physical parameters and network weights (against finite
differences in float64), shape errors name the argument. The adjoints and vmap are
exercised on policies in test_policy.py."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import diffsim as ds
from diffsim.systems import HybridODE, HybridSystem, Pendulum
from tests.helpers import central_difference


def _mlp(in_size, out_size, key, width=3):
    return eqx.nn.MLP(in_size, out_size, width, 1, activation=jax.nn.tanh, key=key)


def _hybrid(features=None, in_size=2):
    return HybridSystem(
        physics=Pendulum(length=jnp.asarray(1.2), damping=jnp.asarray(0.1)),
        correction=_mlp(in_size, "scalar", jax.random.key(1)),
        features=features,
    )


def _y0():
    return ds.PhaseState(q=jnp.asarray(0.8), v=jnp.asarray(0.3))


def _loss(model, adjoint=ds.Checkpointed(), integrator=ds.RK4()):
    traj = ds.simulate(
        model,
        _y0(),
        t1=0.5,
        dt=0.05,
        integrator=integrator,
        adjoint=adjoint,
        saveat=ds.SaveAt(every=5),
    )
    return jnp.sum(traj.ys.q**2) + 0.1 * jnp.sum(traj.ys.v)


def test_hybrid_adds_correction_to_physics():
    model = _hybrid()
    q, v = jnp.asarray(0.4), jnp.asarray(-0.7)
    expected = model.physics.acceleration(0.0, q, v) + model.correction(jnp.stack([q, v]))
    np.testing.assert_allclose(model.acceleration(0.0, q, v), expected, rtol=1e-14)
    assert model.correction_acceleration(0.0, q, v).shape == ()


def test_gradients_reach_physics_and_network_and_match_finite_differences():
    model = _hybrid()
    # eqx.filter_jit / eqx.filter_value_and_grad work on a hybrid system unchanged.
    value, grads = eqx.filter_jit(eqx.filter_value_and_grad(_loss))(model)
    assert np.isfinite(value)
    g_phys = np.array([grads.physics.length, grads.physics.damping])
    assert np.all(np.isfinite(g_phys)) and np.all(g_phys != 0)
    g_net = jax.tree.leaves(grads.correction)
    assert all(np.all(np.isfinite(g)) for g in g_net)
    assert all(np.any(g != 0) for g in g_net)  # every weight matrix and bias is reached

    params, static = eqx.partition(model, eqx.is_inexact_array)
    flat, unravel = ravel_pytree(params)
    flat_loss = jax.jit(lambda x: _loss(eqx.combine(unravel(x), static)))
    fd = central_difference(flat_loss, flat)
    np.testing.assert_allclose(ravel_pytree(grads)[0], fd, rtol=1e-6, atol=1e-8)


def test_correction_of_wrong_size_is_a_clear_error():
    model = HybridSystem(physics=Pendulum(length=1.0), correction=_mlp(2, 3, jax.random.key(0)))
    with pytest.raises(ValueError, match="`correction` returned an array of shape \\(3,\\)"):
        ds.simulate(model, _y0(), t1=0.1, dt=0.05)


def test_first_order_physics_is_refused_with_a_pointer_to_hybrid_ode():
    with pytest.raises(TypeError, match="`physics` must be a mechanical system.*HybridODE"):
        HybridSystem(physics=ds.systems.Lorenz(), correction=_mlp(3, 3, jax.random.key(0)))
    with pytest.raises(TypeError, match="`correction` must be callable"):
        HybridSystem(physics=Pendulum(length=1.0), correction=3.0)


def test_hybrid_ode_corrects_a_first_order_system():
    physics = ds.systems.Lorenz()
    net = _mlp(3, 3, jax.random.key(0))
    model = HybridODE(physics=physics, correction=net)
    y = jnp.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(
        model.vector_field(0.0, y), physics.vector_field(0.0, y) + net(y), rtol=1e-14
    )
    bad = HybridODE(physics=physics, correction=_mlp(3, 2, jax.random.key(0)))
    with pytest.raises(ValueError, match="HybridODE: `correction`.*3 values"):
        ds.simulate(bad, y, t1=0.1, dt=0.01)


@pytest.mark.slow
def test_hybrid_ode_gradients_reach_physics_and_network():
    model = HybridODE(physics=ds.systems.Lorenz(), correction=_mlp(3, 3, jax.random.key(0)))
    y = jnp.array([1.0, 2.0, 3.0])
    grads = eqx.filter_grad(lambda m: jnp.sum(ds.simulate(m, y, t1=0.1, dt=0.01).ys[-1] ** 2))(
        model
    )
    assert all(np.all(np.isfinite(g)) and np.any(g != 0) for g in jax.tree.leaves(grads))
