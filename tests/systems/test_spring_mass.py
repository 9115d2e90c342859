"""SpringMassNetwork: two-body frequency, hanging-chain equilibrium, energy and momentum
conservation, cloth, gradients against finite differences."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import diffsim as ds
from diffsim.systems import SpringMassNetwork
from tests.helpers import central_difference
from tests.systems.conformance import check_precisions, check_vmap_matches_loop


def _dumbbell(k=50.0, m1=1.0, m2=3.0, rest=1.0, damping=0.0):
    return SpringMassNetwork(
        masses=jnp.array([m1, m2]),
        edges=jnp.array([[0, 1]]),
        rest_lengths=jnp.array([rest]),
        stiffness=k,
        damping=damping,
        gravity=jnp.zeros(3),
    )


def test_two_masses_oscillate_at_reduced_mass_frequency():
    # One spring between m1 and m2: the separation oscillates harmonically about the rest
    # length with omega^2 = k (m1 + m2) / (m1 m2); the centre of mass moves uniformly.
    k, m1, m2, rest, amp = 50.0, 1.0, 3.0, 1.0, 0.2
    net = _dumbbell(k, m1, m2, rest)
    omega = np.sqrt(k * (m1 + m2) / (m1 * m2))
    y0 = net.initial_state(
        jnp.array([[0.0, 0.0, 0.0], [rest + amp, 0.0, 0.0]]), jnp.array([[0.1, 0.2, 0.0]] * 2)
    )
    traj = ds.simulate(
        net, y0, t1=5.0, dt=1e-3, integrator=ds.Yoshida4(), saveat=ds.SaveAt(every=500)
    )
    separation = traj.ys.q[:, 1, 0] - traj.ys.q[:, 0, 0]
    np.testing.assert_allclose(separation, rest + amp * np.cos(omega * traj.ts), atol=1e-10)
    np.testing.assert_allclose(
        jax.vmap(net.momentum)(traj.ys), np.broadcast_to(net.momentum(y0), (11, 3)), atol=1e-13
    )


def test_hanging_chain_static_equilibrium():
    # A vertical chain hanging from node 0: spring s (joining nodes s and s+1) carries the
    # weight of the n - 1 - s nodes below it, so it is stretched by (n - 1 - s) m g / k.
    n, m, k, g, spacing = 8, 0.1, 200.0, 9.81, 0.1
    chain, y0 = SpringMassNetwork.chain(
        n, spacing=spacing, node_mass=m, stiffness=k, damping=10.0, direction=(0.0, -1.0)
    )
    stretch = (n - 1 - np.arange(n - 1)) * m * g / k
    depth = np.concatenate([[0.0], np.cumsum(spacing + stretch)])
    q_eq = np.stack([np.zeros(n), -depth], -1)
    # The known equilibrium is an equilibrium...
    np.testing.assert_allclose(
        chain.acceleration(0.0, jnp.asarray(q_eq), jnp.zeros((n, 2))), 0.0, atol=1e-12
    )
    # ...and the damped chain released unstretched settles into it.
    traj = ds.simulate(chain, y0, t1=20.0, dt=2e-3, integrator=ds.Leapfrog())
    np.testing.assert_allclose(traj.ys.q[-1], q_eq, atol=1e-8)
    np.testing.assert_allclose(chain.stretches(traj.ys.q[-1]), stretch, atol=1e-8)


@pytest.mark.slow  # ~16 s; run with make test-slow
def test_cloth_energy_conserved_without_damping():
    cloth, y0 = SpringMassNetwork.cloth(6, 5, spacing=0.1, stiffness=300.0, bend_stiffness=20.0)
    # 5 x 5 + 6 x 4 structural, 2 x 5 x 4 shear, 4 x 5 + 6 x 3 bending springs.
    assert cloth.edges.shape == (25 + 24 + 40 + 20 + 18, 2)
    traj = ds.simulate(
        cloth, y0, t1=2.0, dt=5e-4, integrator=ds.Yoshida4(), saveat=ds.SaveAt(every=200)
    )
    energy = jax.vmap(cloth.energy)(traj.ys)
    # The cloth falls and swings (kinetic energy ~0.5 J); the stiffest modes have
    # omega ~ 500 /s, so the fourth-order error ~(omega dt)^4 E is ~3e-7 J at this dt
    # (1.6e-5 at twice the dt: the error scales as dt^4).
    assert float(0.5 * jnp.sum(cloth.masses[:, None] * traj.ys.v[-1] ** 2)) > 0.05
    np.testing.assert_allclose(energy, energy[0], atol=1e-6)
    np.testing.assert_array_equal(traj.ys.q[:, 0], np.broadcast_to(y0.q[0], (21, 3)))  # pinned
    # With damping and drag the energy only decreases.
    damped = SpringMassNetwork.cloth(6, 5, spacing=0.1, stiffness=300.0, damping=0.5, drag=0.2)[0]
    traj = ds.simulate(damped, y0, t1=2.0, dt=1e-3, saveat=ds.SaveAt(every=100))
    energy = jax.vmap(damped.energy)(traj.ys)
    assert np.all(np.diff(energy) < 0)


def test_gradients_wrt_every_parameter():
    # A 2-d chain of 4 nodes with per-spring parameters, its first node pinned.
    chain, y0 = SpringMassNetwork.chain(4, spacing=0.2, direction=(0.6, -0.8))
    y0 = ds.PhaseState(q=y0.q, v=y0.v.at[3].set(jnp.array([0.5, 0.2])))
    sizes = (4, 3, 3, 3, 2, 1)  # masses, rest lengths, stiffness, damping, gravity, drag

    def loss(p):
        masses, rest, k, c, g, drag = jnp.split(p, np.cumsum(sizes)[:-1])
        net = SpringMassNetwork(
            masses=masses,
            edges=chain.edges,
            rest_lengths=rest,
            stiffness=k,
            damping=c,
            gravity=g,
            drag=drag[0],
            pinned=chain.pinned,
        )
        ys = ds.simulate(net, y0, t1=1.0, dt=1e-2, integrator=ds.Leapfrog()).ys
        return jnp.sum(ys.q[-1] * jnp.array([1.0, 0.3])) + 0.1 * jnp.sum(ys.v[-1])

    p = jnp.array([0.1, 0.2, 0.15, 0.1, 0.2, 0.25, 0.18, 40.0, 60.0, 50.0, 0.1, 0.2, 0.3,
                   0.5, -9.0, 0.1])  # fmt: skip
    grad = jax.grad(loss)(p)
    assert np.all(grad[1:] != 0)  # the pinned node's mass does not matter
    np.testing.assert_allclose(grad, central_difference(jax.jit(loss), p), rtol=1e-6, atol=1e-10)


@pytest.mark.slow  # over 5 s; run with `make test-slow`
def test_jit_vmap_and_precisions():
    chain, y0 = SpringMassNetwork.chain(5, spacing=0.1, direction=(1.0, 0.0), damping=0.1)

    def make(k):
        return SpringMassNetwork(
            masses=chain.masses,
            edges=chain.edges,
            rest_lengths=chain.rest_lengths,
            stiffness=k,
            damping=chain.damping,
            gravity=chain.gravity,
            pinned=chain.pinned,
        )

    check_vmap_matches_loop(
        make, jnp.array([50.0, 100.0, 200.0]), y0, t1=0.5, dt=1e-3, integrator=ds.Leapfrog()
    )
    check_precisions(make, jnp.asarray(100.0), y0, t1=0.5, dt=1e-3, integrator=ds.Leapfrog())
