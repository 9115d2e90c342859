"""The pure-JAX lowering of the gravity primitives, for backends without a kernel: CPUs
where the C++ kernels cannot be built, TPUs, and whatever else XLA targets.

Contract: `forward`, `tangent` and `cotangent` compute exactly what `_reference.py`
defines, with the same batch conventions, but over blocks of target rows so that no
`(n, n)` array is ever whole: about 2^22 pair elements at a time, each block a
`jax.checkpoint` so the cotangent recomputes a block instead of storing it. (The reference
itself materialises every pair at once: clear to read, and the tests' yardstick.)
"""

import jax
import jax.lax as lax
import jax.numpy as jnp

from . import _reference

_BLOCK_ELEMENTS = 2**22


def _rows(q, w, e2, rows):
    """Accelerations of target `rows` (padded indices >= n give 0) from every source,
    target `i` with its own softening `e2[i]`: the cotangent of that `(n,)` vector is then
    the per-row share of the scalar's, which `cotangent` returns."""
    n = q.shape[0]
    targets = jnp.minimum(rows, n - 1)
    r = q[None, :, :] - q[targets][:, None, :]
    off = (rows[:, None] != jnp.arange(n)[None, :]) & (rows < n)[:, None]
    s = jnp.where(
        off, jnp.sum(r * r, axis=-1) + e2[targets][:, None], 1.0
    )  # double where: no 0^-1.5
    phi = jnp.where(off, lax.rsqrt(s) ** 3, 0.0)
    return jnp.einsum("ij,j,ijk->ik", phi, w, r)


def _one(q, w, e2_rows):
    n, d = q.shape
    block = max(1, min(n, _BLOCK_ELEMENTS // max(1, n * d)))
    if block >= n:
        return _rows(q, w, e2_rows, jnp.arange(n))
    n_blocks = -(-n // block)
    rows = jnp.arange(n_blocks * block).reshape(n_blocks, block)
    one_block = jax.checkpoint(lambda r, q, w, e2: _rows(q, w, e2, r))
    return lax.map(lambda r: one_block(r, q, w, e2_rows), rows).reshape(-1, d)[:n]


def _per_row(e2, q):
    return jnp.broadcast_to(e2[..., None], q.shape[:-1])


def forward(q, w, e2):
    return _reference._batched(_one, q.ndim - 2)(q, w, _per_row(e2, q))


def tangent(q, w, e2, dq, dw, de2):
    return jax.jvp(forward, (q, w, e2), (dq, dw, de2))[1]


def cotangent(q, w, e2, g):
    rows_forward = _reference._batched(_one, q.ndim - 2)
    _, pullback = jax.vjp(rows_forward, q, w, _per_row(e2, q))
    return pullback(g)
