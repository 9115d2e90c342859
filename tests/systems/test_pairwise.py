"""The pairwise-interaction kernel: rematerialised blocks against plain autodiff, in both
modes, and its memory."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffsim.systems._pairwise import pair_sum, pair_sum_autodiff


def _lj(s, theta):
    # A Lennard-Jones-like radial kernel with two parameters, to exercise d/dtheta.
    eps, sigma = theta
    inv = sigma**2 / s
    return 24 * eps * (2 * inv**6 - inv**3) / s


def _gravity(s, theta):
    G, soft = theta
    return G * (s + soft**2) ** -1.5


# Softened gravity itself runs on the compiled kernel (tests/kernels); here this file's
# own copy of it checks the XLA code that other laws use. The softened case and the
# Lennard-Jones-like law run in make test; zero softening with make test-slow.
@pytest.mark.parametrize(
    "phi,theta",
    [
        (_gravity, (1.3, 0.05)),
        pytest.param(_gravity, (1.0, 0.0), marks=pytest.mark.slow),
        (_lj, (0.8, 0.3)),
    ],
)
# 7: several blocks with padding (23 = 3 x 7 + 2) in make test; None (one block), 1 and 64
# (one row per block, a block larger than n) with make test-slow.
@pytest.mark.parametrize(
    "block_size",
    [pytest.param(b, marks=pytest.mark.slow) if b != 7 else b for b in (None, 7, 1, 64)],
)
def test_lean_gradients_match_autodiff(phi, theta, block_size):
    n, d = 23, 3
    q = jax.random.uniform(jax.random.key(0), (n, d)) * 3.0
    w = jax.random.uniform(jax.random.key(1), (n,)) + 0.5
    theta = tuple(jnp.asarray(t) for t in theta)
    cot = jax.random.normal(jax.random.key(2), (n, d))

    def loss(kernel):
        return lambda q, w, th: jnp.sum(cot * kernel(q, w, phi, th, block_size=block_size))

    value = pair_sum(q, w, phi, theta, block_size=block_size)
    assert np.allclose(value, pair_sum_autodiff(q, w, phi, theta), rtol=1e-13)
    ours = jax.grad(loss(pair_sum), argnums=(0, 1, 2))(q, w, theta)
    ref = jax.grad(loss(pair_sum_autodiff), argnums=(0, 1, 2))(q, w, theta)
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(ref), strict=True):
        assert np.allclose(a, b, rtol=1e-10, atol=1e-12)
        assert np.isfinite(a).all()


def test_pair_sum_is_newtons_third_law():
    q = jax.random.normal(jax.random.key(3), (10, 2))
    w = jnp.ones(10)
    assert np.allclose(pair_sum(q, w, _gravity, (1.0, 0.0)).sum(axis=0), 0.0, atol=1e-12)


def test_residual_memory_is_linear_in_n():
    # Through 200 steps of a toy rollout, reverse mode keeps O(n d) per step with the
    # rematerialised blocks and O(n^2) per step with plain autodiff.
    def temp_bytes(kernel, n):
        def loss(q):
            def step(q, _):
                return q + 1e-4 * kernel(q, jnp.ones(n), _gravity, (1.0, 0.1)), None

            return jnp.sum(jax.lax.scan(step, q, None, length=200)[0])

        q = jax.random.normal(jax.random.key(0), (n, 3))
        return jax.jit(jax.grad(loss)).lower(q).compile().memory_analysis().temp_size_in_bytes

    lean, plain = temp_bytes(pair_sum, 256), temp_bytes(pair_sum_autodiff, 256)
    assert lean < plain / 20


def _dense(q, w, phi, theta):
    # The sum written out independently: (n, n, d) separations, the diagonal dropped.
    r = q[None, :, :] - q[:, None, :]
    s = jnp.sum(r**2, axis=-1) + jnp.eye(q.shape[0])
    coeff = jnp.where(jnp.eye(q.shape[0], dtype=bool), 0.0, w[None, :] * phi(s, theta))
    return jnp.einsum("ij,ijd->id", coeff, r)


# One block (None) compiles for ~9 s; several blocks (7) cover the same rule in make test.
@pytest.mark.parametrize("block_size", [pytest.param(None, marks=pytest.mark.slow), 7])
def test_forward_mode_matches_reverse_mode_and_finite_differences(block_size):
    n, d = 11, 3
    q = jax.random.uniform(jax.random.key(4), (n, d)) * 3.0
    w = jax.random.uniform(jax.random.key(5), (n,)) + 0.5
    theta = (jnp.asarray(1.3), jnp.asarray(0.05))
    dq = jax.random.normal(jax.random.key(6), (n, d))

    def f(eps):
        return pair_sum(q + eps * dq, w, _gravity, theta, block_size=block_size)

    _, tangent = jax.jvp(f, (0.0,), (1.0,))
    h = 1e-6
    fd = (_dense(q + h * dq, w, _gravity, theta) - _dense(q - h * dq, w, _gravity, theta)) / (2 * h)
    np.testing.assert_allclose(tangent, fd, rtol=1e-6, atol=1e-8)
    fwd = jax.jacfwd(pair_sum, argnums=(0, 1, 3))(q, w, _gravity, theta, block_size=block_size)
    rev = jax.jacrev(pair_sum, argnums=(0, 1, 3))(q, w, _gravity, theta, block_size=block_size)
    for a, b in zip(jax.tree.leaves(fwd), jax.tree.leaves(rev), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
