"""Radial pair sums with rematerialised blocks: the kernel behind all-pairs forces.

$$a_i = \\sum_{j \\ne i} w_j\\, \\varphi(s_{ij}; \\theta)\\, r_{ij}, \\qquad
  r_{ij} = q_j - q_i, \\quad s_{ij} = |r_{ij}|^2$$

Gravity is $\\varphi(s) = G (s + \\epsilon^2)^{-3/2}$ with $w_j = m_j$; any radial force
has this form. Plain autodiff of such a sum keeps every $N \\times N$ intermediate
(separations, distances, powers) as residuals for the backward pass, at every step of a
rollout. Here the sum runs over blocks of target rows and each block is a
`jax.checkpoint`: reverse mode stores only a block's inputs and recomputes the block in the
backward pass, so residual memory is $O(N d)$ per evaluation and transient memory
$O(B N d)$ for a block of $B$ rows. Forward mode (`jax.jvp`, `jax.jacfwd`, the Jacobians
of `ds.fit`'s default solver) goes through the same code unchanged.

Softened gravity (`softened_gravity`, NBody's law) has a compiled kernel
(`diffsim.kernels`): `pair_sum` hands it over when called with that law and no
`block_size`. Its forward pass, JVP and VJP are C++ on a CPU and Pallas on a GPU, 5-20x
this file's XLA code, with the same lean memory (a VJP stores only the positions).

An earlier version had a custom VJP with the analytic derivative; it had no forward mode,
and rematerialisation keeps its memory at the same or lower cost (measured at N = 256 to
4096, blocked and unblocked, on the 2-core CPU: 0.8-1.35x its time, identical memory).

The diagonal $i = j$ is masked with the double-where trick, so $\\varphi$ never sees
$s = 0$ there and no NaN reaches values or gradients.
"""

from collections.abc import Callable
from typing import Any

import jax
import jax.lax as lax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ..kernels import gravity_pair_sum

# Target rows per block: keeps a block's (B, N, d) temporaries near 2^22 elements.
_BLOCK_ELEMENTS = 2**22


def _block_size(n: int, d: int, block_size: int | None) -> int:
    if block_size is not None:
        return max(1, min(block_size, n))
    return max(1, min(n, _BLOCK_ELEMENTS // max(1, n * d)))


def _blocks(n: int, block: int):
    """Target rows padded to a whole number of blocks: (n_blocks, B) row indices."""
    n_blocks = -(-n // block)
    return jnp.arange(n_blocks * block).reshape(n_blocks, block)


def _geometry(qt, rows):
    """Separations from target rows to every source, masked squared distances.

    `qt` is `(d, n)` and the separations come back as a list of `d` planes `(B, n)`, one
    per coordinate (structure of arrays), so every pair quantity is elementwise over
    `(B, n)`. With an `(B, n, d)` array instead, the sums over the short `d = 3` axis
    vectorise many times worse on a CPU (measured 5-15x on the whole kernel).
    """
    n = qt.shape[1]
    if rows is None:  # all rows at once: no gather, no padding
        r = [x[None, :] - x[:, None] for x in qt]
        mask = ~jnp.eye(n, dtype=bool)
        s = jnp.where(mask, sum(ra * ra for ra in r), 1.0)
        return r, s, mask
    valid = rows < n
    targets = jnp.minimum(rows, n - 1)
    r = [x[None, :] - x[targets][:, None] for x in qt]  # d planes (B, n)
    mask = valid[:, None] & (rows[:, None] != jnp.arange(n)[None, :])
    s = jnp.where(mask, sum(ra * ra for ra in r), 1.0)  # double where: s = 1 off the mask
    return r, s, mask


def _pair_sum_plain(q, weights, theta, phi, block, lean):
    n, d = q.shape

    def block_sum(rows, qt, weights, theta):
        r, s, mask = _geometry(qt, rows)
        coeff = jnp.where(mask, weights[None, :] * phi(s, theta), 0.0)
        return jnp.stack([jnp.sum(coeff * ra, axis=1) for ra in r], axis=-1)  # (B, d)

    if lean:
        # Reverse mode keeps the block's inputs, not its (B, n) planes.
        block_sum = jax.checkpoint(block_sum, static_argnums=(0,) if block >= n else ())
    if block >= n:  # one block: skip the loop and the row gather (small n)
        return block_sum(None, q.T, weights, theta)
    blocks = lax.map(lambda rows: block_sum(rows, q.T, weights, theta), _blocks(n, block))
    return blocks.reshape(-1, d)[:n]


def softened_gravity(s, theta):
    """Radial law of softened gravity, $G (s + \\epsilon^2)^{-3/2}$, with `theta = (G,
    epsilon)`. `pair_sum` runs it on the compiled kernel.

    As rsqrt cubed: one reciprocal square root and two products, several times cheaper
    than a general power, in the innermost loop of every all-pairs force."""
    G, softening = theta
    inv = jax.lax.rsqrt(s + softening**2)
    return G * (inv * inv * inv)


def _prepare(q, weights, theta, block_size):
    q = jnp.asarray(q)
    weights = jnp.broadcast_to(jnp.asarray(weights, q.dtype), q.shape[:1])
    theta = jax.tree.map(lambda x: jnp.asarray(x, q.dtype), theta)
    return q, weights, theta, _block_size(q.shape[0], q.shape[1], block_size)


def pair_sum_autodiff(q, weights, phi, theta, *, block_size=None):
    """`pair_sum` without rematerialisation: reverse mode stores the pair intermediates
    (faster for a single small evaluation, $O(N^2)$ memory per call in a rollout)."""
    q, weights, theta, block = _prepare(q, weights, theta, block_size)
    return _pair_sum_plain(q, weights, theta, phi, block, lean=False)


def pair_sum(
    q: Float[Array, "n d"],
    weights: Float[Array, " n"],
    phi: Callable[[Float[Array, "b n"], Any], Float[Array, "b n"]],
    theta: Any,
    *,
    block_size: int | None = None,
) -> Float[Array, "n d"]:
    """$a_i = \\sum_{j \\ne i} w_j \\varphi(|q_j - q_i|^2; \\theta) (q_j - q_i)$ with a
    memory-lean reverse mode (rematerialised blocks, see the module docstring); forward
    mode works too.

    **Arguments:**

    - `q`: `(n, d)` positions.
    - `weights`: `(n,)` source weights (masses, charges).
    - `phi`: `phi(s, theta)`, elementwise in the squared distance `s` (static: define it
      once at module level so it hashes the same every call).
    - `theta`: the pytree of parameters of `phi` (differentiable).
    - `block_size`: target rows per block (default: about 2^22 / (n d)). With
      `phi=softened_gravity` and no `block_size`, the compiled kernel runs instead
      (`diffsim.kernels`; same values and derivatives, to rounding).

    **Example:**

    ```python
    def gravity(s, theta):
        G, eps = theta
        return G * (s + eps**2) ** -1.5

    accel = pair_sum(q, masses, gravity, (1.0, 0.01))
    ```
    """
    if phi is softened_gravity and block_size is None:
        q = jnp.asarray(q)
        G, softening = (jnp.asarray(t, q.dtype) for t in theta)
        return G * gravity_pair_sum(q, weights, softening**2)
    q, weights, theta, block = _prepare(q, weights, theta, block_size)
    return _pair_sum_plain(q, weights, theta, phi, block, lean=True)
