"""LennardJones: the dimer, all pairs vs cell list, forces and pressure against autodiff,
energy conservation with Leapfrog, the periodic lean kernel, gradients."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import diffsim as ds
from diffsim.systems import AllPairs, CellList, LennardJones
from diffsim.systems._periodic_pairs import periodic_pair_sum
from tests.helpers import central_difference
from tests.systems.conformance import check_precisions, check_vmap_matches_loop


def _perturbed_lattice(n_per_side, density, key, jitter=0.1, **kwargs):
    system, y0 = LennardJones.lattice(
        n_per_side, density=density, temperature=1.0, key=jax.random.key(7), **kwargs
    )
    q = y0.q + jitter * jax.random.normal(key, y0.q.shape)
    return system, ds.PhaseState(q=q, v=y0.v)


def test_dimer_minimum_and_vibration_frequency():
    # Two particles: U = 4 eps ((s/r)^12 - (s/r)^6) below the switch onset; the minimum
    # is at r = 2^(1/6) sigma, where U'' = 72 eps / (2^(1/3) sigma^2) (Lennard-Jones 1924),
    # so small vibrations have omega^2 = U'' / mu with the reduced mass mu = m / 2.
    eps, sigma, m = 1.3, 0.9, 2.0
    system = LennardJones(box=10.0, epsilon=eps, sigma=sigma, masses=m)
    r_min = 2 ** (1 / 6) * sigma
    q = jnp.array([[1.0, 1.0, 1.0], [1.0 + r_min, 1.0, 1.0]])
    np.testing.assert_allclose(system.acceleration(0.0, q, q), 0.0, atol=1e-12)
    np.testing.assert_allclose(system.potential_energy(q), -eps, rtol=1e-14)
    omega = math.sqrt(72 * eps / (2 ** (1 / 3) * sigma**2) / (m / 2))
    amp = 1e-4
    y0 = ds.PhaseState(q=q.at[1, 0].add(amp), v=jnp.zeros_like(q))
    period = 2 * math.pi / omega
    traj = ds.simulate(
        system,
        y0,
        n_steps=2000,
        dt=period / 1000,
        integrator=ds.Yoshida4(),
        saveat=ds.SaveAt(every=250),
    )
    separation = traj.ys.q[:, 1, 0] - traj.ys.q[:, 0, 0]
    # Anharmonic corrections are O(amp^2) relative: ~1e-8 * amp.
    np.testing.assert_allclose(separation, r_min + amp * np.cos(omega * traj.ts), atol=1e-10)


def test_all_pairs_and_cell_list_agree_and_forces_are_minus_gradient():
    system, y = _perturbed_lattice(7, 0.8, jax.random.key(1), neighbours=AllPairs())
    cells = LennardJones(box=system.box, neighbours=CellList.for_box(system.box, 2.5, 343))

    @jax.jit
    def evaluate(y):
        shifted = y.q + system.box * jnp.round(jax.random.normal(jax.random.key(2), y.q.shape))
        return dict(
            a_all=system.acceleration(0.0, y.q, y.v),
            a_cells=cells.acceleration(0.0, y.q, y.v),
            a_shifted=cells.acceleration(0.0, shifted, y.v),
            minus_grad=-jax.grad(system.potential_energy)(y.q),
            u=jnp.stack([cells.potential_energy(y.q), system.potential_energy(y.q)]),
            p=jnp.stack([cells.pressure(y), system.pressure(y)]),
        )

    out = evaluate(y)
    np.testing.assert_allclose(out["a_cells"], out["a_all"], rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(out["u"][0], out["u"][1], rtol=1e-12)
    np.testing.assert_allclose(out["p"][0], out["p"][1], rtol=1e-12)
    np.testing.assert_allclose(out["a_all"], out["minus_grad"], atol=1e-9)
    np.testing.assert_allclose(jnp.sum(out["a_all"], axis=0), 0.0, atol=1e-10)  # Newton III
    # Positions need not be wrapped into the box: shifting particles by whole boxes
    # changes nothing.
    np.testing.assert_allclose(out["a_shifted"], out["a_all"], atol=1e-9)


def test_pressure_is_minus_volume_derivative_and_temperature():
    # Virial pressure (Allen & Tildesley, sec. 2.4): its configurational part equals
    # -dU/dV when all coordinates scale with the box, q -> lambda q, L -> lambda L.
    system, y = _perturbed_lattice(6, 0.7, jax.random.key(3))
    d, volume = 3, float(jnp.prod(system.box))

    def scaled_energy(lam):
        scaled = LennardJones(box=lam * system.box)
        return scaled.potential_energy(lam * y.q)

    dU_dV = jax.grad(scaled_energy)(1.0) / (d * volume)  # dV = d V dlambda at lambda = 1
    kinetic_part = 2 * system.kinetic_energy(y) / (d * volume)
    np.testing.assert_allclose(system.pressure(y) - kinetic_part, -dU_dV, rtol=1e-12)
    np.testing.assert_allclose(system.temperature(y), 1.0, rtol=1e-12)  # as prepared
    np.testing.assert_allclose(system.momentum(y), 0.0, atol=1e-12)


@pytest.mark.slow  # ~20 s; run with make test-slow
def test_energy_conserved_with_leapfrog():
    # 343 particles, liquid state point (density 0.8, T ~ 1.3), 1000 velocity-Verlet steps
    # of 0.004 (4 LJ time units). The switched potential has continuous forces, so the
    # energy error is a bounded O(dt^2) fluctuation with no drift.
    system, y0 = LennardJones.lattice(7, density=0.8, temperature=1.5, key=jax.random.key(0))
    traj = ds.simulate(
        system,
        y0,
        t1=8.0,
        dt=0.004,
        integrator=ds.Leapfrog(),
        saveat=ds.SaveAt(
            every=50, fn=lambda t, y: jnp.stack([system.energy(y), system.temperature(y)])
        ),
    )
    energy, temperature = np.asarray(traj.ys).T
    assert temperature[-1] < 1.4  # the lattice melted: energy went into the potential
    err = np.abs(energy / len(y0.q) - energy[0] / len(y0.q))  # per particle
    assert err.max() < 2e-3  # measured 7e-4 per particle (kinetic energy ~2 per particle)
    assert err[len(err) // 2 :].max() < 2 * err[: len(err) // 2].max() + 1e-4  # no drift


def test_periodic_lean_kernel_matches_autodiff_including_the_box():
    system, y = _perturbed_lattice(3, 0.05, jax.random.key(4))  # box 8.1, 27 particles
    weights = jnp.linspace(0.5, 1.5, 27)
    cot = jax.random.normal(jax.random.key(5), y.q.shape)
    from diffsim.systems._lennard_jones import _lj_phi

    def loss(lean):
        def f(q, w, theta, box):
            out = periodic_pair_sum(
                q, w, _lj_phi, theta, box, 2.5, block_size=5, lean_gradients=lean
            )
            return jnp.sum(cot * out)

        return f

    theta = (jnp.asarray(1.1), jnp.asarray(0.95), 2.0, 2.5)
    args = (y.q, weights, theta, system.box)
    ours = jax.jit(jax.grad(loss(True), argnums=(0, 1, 2, 3)))(*args)
    ref = jax.jit(jax.grad(loss(False), argnums=(0, 1, 2, 3)))(*args)
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(ref), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    assert float(jnp.abs(ours[3]).max()) > 0  # the box gradient is not trivially zero


def test_neighbour_list_matches_and_falls_back_when_stale():
    # A Verlet list (skin 0.5) gives the all-pairs forces while particles stay within
    # skin / 2 of where it was built; beyond that the cell list takes over, so forces
    # stay right even when the list is stale.
    system, y = _perturbed_lattice(7, 0.8, jax.random.key(9))
    listed = system.with_neighbour_list(y.q, skin=0.5)
    assert listed.neighbours.idx.shape[0] == 343
    moved = y.q + 0.1 * jax.random.normal(jax.random.key(10), y.q.shape)  # some > 0.25

    @jax.jit
    def forces(listed, q):
        y = ds.PhaseState(q=q, v=jnp.zeros_like(q))
        return (
            listed.acceleration(0.0, q, q),
            system.acceleration(0.0, q, q),
            listed._list_valid(q),
            jnp.stack([listed.pressure(y), system.pressure(y)]),
        )

    for q, valid in ((y.q + 0.01, True), (moved, False)):
        ours, ref, is_valid, pressures = forces(listed, q)
        assert bool(is_valid) == valid
        np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-10)
        # Energy (through the pressure's pair sum) goes through the list too.
        np.testing.assert_allclose(pressures[0], pressures[1], rtol=1e-12)


def test_cell_overflow_raises():
    system, y = _perturbed_lattice(7, 0.8, jax.random.key(1))
    tight = LennardJones(box=system.box, neighbours=CellList(grid=(3, 3, 3), capacity=4))
    with pytest.raises(Exception, match="capacity"):
        jax.block_until_ready(jax.jit(lambda q: tight.acceleration(0.0, q, q))(y.q))


@pytest.mark.slow  # over 5 s; run with `make test-slow`
def test_gradients_wrt_every_parameter():
    system, y0 = _perturbed_lattice(3, 0.05, jax.random.key(6))
    y0 = ds.PhaseState(q=y0.q * 0.75, v=y0.v)  # denser (box 6.1), so pairs interact

    def loss(p):
        eps, sigma, box, mass = p
        lj = LennardJones(box=box, epsilon=eps, sigma=sigma, masses=mass)
        ys = ds.simulate(lj, y0, t1=0.5, dt=0.01, integrator=ds.Leapfrog()).ys
        return jnp.sum(ys.q[-1] * jnp.arange(ys.q[-1].size).reshape(ys.q[-1].shape) / 100)

    p = jnp.array([1.0, 1.0, float(system.box[0]) * 0.75, 1.3])
    grad = jax.grad(loss)(p)
    assert np.all(grad != 0)
    np.testing.assert_allclose(grad, central_difference(jax.jit(loss), p), rtol=1e-6)


@pytest.mark.slow  # over 5 s; run with `make test-slow`
def test_jit_vmap_and_precisions():
    system, y0 = _perturbed_lattice(3, 0.05, jax.random.key(8))
    y0 = ds.PhaseState(q=y0.q * 0.75, v=y0.v)
    box = system.box * 0.75

    def make(eps):
        return LennardJones(box=box, epsilon=eps)

    kw = dict(t1=0.2, dt=0.01, integrator=ds.Leapfrog())
    check_vmap_matches_loop(make, jnp.array([0.8, 1.0, 1.2]), y0, **kw)
    check_precisions(make, jnp.asarray(1.0), y0, **kw)
