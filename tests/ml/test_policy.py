"""Policies inside rollouts: the cart-pole under a network policy composes with vmap over
initial states and with every adjoint; gradients reach the weights; shape errors are clear."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import diffsim as ds
from diffsim.systems import CartPole, HybridSystem, Pendulum, Policy
from tests.helpers import central_difference, tree_allclose


def _features(t, q, v):
    return jnp.stack([q[0], jnp.sin(q[1]), jnp.cos(q[1]), v[0], v[1]])


def _cartpole(key=jax.random.key(0)):
    net = eqx.nn.MLP(5, "scalar", 4, 1, activation=jax.nn.tanh, key=key)
    return CartPole(force=Policy(net, _features, bound=5.0))


def _starts(n=3):
    angles = jnp.linspace(2.8, 3.4, n)
    return ds.PhaseState(q=jnp.stack([jnp.zeros(n), angles], -1), v=jnp.zeros((n, 2)))


def _cost(cartpole, y0s, adjoint=ds.Checkpointed()):
    def one(y0):
        traj = ds.simulate(
            cartpole, y0, t1=0.5, dt=0.05, adjoint=adjoint, saveat=ds.SaveAt(every=1)
        )
        return jnp.mean(1 - jnp.cos(traj.ys.q[:, 1])) + 0.1 * jnp.mean(traj.ys.q[:, 0] ** 2)

    return jnp.mean(jax.vmap(one)(y0s))


def test_policy_is_bounded_and_matches_its_formula():
    policy = _cartpole().force
    q, v = jnp.array([0.3, 2.0]), jnp.array([-1.0, 4.0])
    u = policy(0.0, q, v)
    assert u.shape == ()
    np.testing.assert_allclose(u, 5.0 * jnp.tanh(policy.network(_features(0.0, q, v))))
    big = Policy(lambda x: 1e6 * jnp.sum(x), bound=2.0)
    assert np.isclose(big(0.0, q, v), 2.0)


def test_rollout_vmaps_over_initial_states():
    cartpole, y0s = _cartpole(), _starts(4)
    run = lambda y0: ds.simulate(cartpole, y0, t1=0.5, dt=0.05).ys.q[-1]  # noqa: E731
    batched = jax.vmap(run)(y0s)
    looped = np.stack([run(jax.tree.map(lambda x, i=i: x[i], y0s)) for i in range(4)])
    np.testing.assert_allclose(batched, looped, rtol=1e-12)


@pytest.mark.slow  # ~12 s: three adjoints compiled through a controller rollout
def test_policy_gradient_reaches_weights_and_adjoints_agree():
    cartpole, y0s = _cartpole(), _starts()
    direct = eqx.filter_grad(lambda c: _cost(c, y0s, ds.Direct()))(cartpole)
    leaves = jax.tree.leaves(direct)
    assert leaves and all(np.all(np.isfinite(g)) and np.any(g != 0) for g in leaves)
    checkpointed = eqx.filter_grad(lambda c: _cost(c, y0s, ds.Checkpointed(every=4)))(cartpole)
    assert tree_allclose(checkpointed, direct, rtol=1e-9, atol=1e-12)


@pytest.mark.slow
def test_policy_grad_of_vmap_is_mean_of_vmap_of_grad():
    cartpole, y0s = _cartpole(), _starts()
    direct = eqx.filter_grad(lambda c: _cost(c, y0s))(cartpole)
    per_start = jax.vmap(
        lambda y0: eqx.filter_grad(lambda c: _cost(c, jax.tree.map(lambda x: x[None], y0)))(
            cartpole
        )
    )(y0s)
    assert tree_allclose(jax.tree.map(lambda g: g.mean(0), per_start), direct, rtol=1e-9)


@pytest.mark.slow
def test_policy_gradient_matches_finite_differences():
    cartpole, y0s = _cartpole(), _starts(2)
    # Differentiate along one direction in weight space: a directional derivative.
    params, static = eqx.partition(cartpole, eqx.is_inexact_array)
    direction = jax.tree.map(lambda x: jnp.cos(jnp.arange(x.size).reshape(x.shape)), params)
    grads = eqx.filter_grad(lambda c: _cost(c, y0s))(cartpole)
    exact = sum(
        jnp.vdot(g, d)
        for g, d in zip(jax.tree.leaves(grads), jax.tree.leaves(direction), strict=True)
    )

    def along(s):
        moved = jax.tree.map(lambda p, d: p + s * d, params, direction)
        return _cost(eqx.combine(moved, static), y0s)

    fd = central_difference(jax.jit(along), jnp.asarray(0.0))
    np.testing.assert_allclose(exact, fd, rtol=1e-6)


def test_reversible_adjoint_for_a_position_feedback_pendulum():
    # The cart-pole's acceleration depends on velocity (the centripetal term), so it is not
    # reversible; a pendulum under a torque policy u = pi(theta) is, with Leapfrog.
    net = eqx.nn.MLP(2, "scalar", 4, 1, activation=jax.nn.tanh, key=jax.random.key(3))
    model = HybridSystem(
        physics=Pendulum(length=1.0),
        correction=net,
        features=lambda t, q, v: jnp.stack([jnp.sin(q), jnp.cos(q)]),
    )
    y0s = ds.PhaseState(q=jnp.array([2.5, 3.0]), v=jnp.zeros(2))

    def cost(m, adjoint):
        def one(y0):
            traj = ds.simulate(
                m,
                y0,
                t1=1.0,
                dt=0.05,
                integrator=ds.Leapfrog(),
                adjoint=adjoint,
                saveat=ds.SaveAt(every=5),
            )
            return jnp.mean(jnp.cos(traj.ys.q))

        return jnp.mean(jax.vmap(one)(y0s))

    reversible = eqx.filter_grad(lambda m: cost(m, ds.Reversible()))(model)
    direct = eqx.filter_grad(lambda m: cost(m, ds.Direct()))(model)
    assert tree_allclose(reversible, direct, rtol=1e-8, atol=1e-12)


def test_wrong_policy_output_shape_is_a_clear_error():
    net = eqx.nn.MLP(5, 2, 4, 1, key=jax.random.key(0))
    cartpole = CartPole(force=Policy(net, _features))
    with pytest.raises(ValueError, match="Policy: `network` returned an array of shape \\(2,\\)"):
        ds.simulate(cartpole, cartpole.initial_state(angle=3.0), t1=0.1, dt=0.05)
    raw = CartPole(force=lambda t, q, v: jnp.ones(1))
    with pytest.raises(ValueError, match="CartPole: `force` returned shape \\(1,\\)"):
        ds.simulate(raw, raw.initial_state(angle=3.0), t1=0.1, dt=0.05)
    with pytest.raises(ValueError, match="`bound` must be positive"):
        Policy(net, bound=0.0)
    with pytest.raises(TypeError, match="`network` must be callable"):
        Policy("mlp")
