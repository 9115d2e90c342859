"""The pure-JAX switched Lennard-Jones pair sum in a periodic box: the reference the C++
kernels are tested against, and, blocked, their fallback where no kernel runs.

All functions take a batch of independent problems on leading axes:

- `q`: `(..., n, d)` positions; `box`: `(..., d)` box sides; `c`: `(..., 2)` the
  coefficients in units of the cutoff, $(c_{12}, c_6) = 4\\epsilon\\,((\\sigma / r_c)^{12},
  (\\sigma / r_c)^6)$ (so that no power of a length meets float32's range);
- `idx`: `(..., n, k)` int32 neighbour rows (entries outside `[0, n)` are empty slots),
  or `k = 0` for all pairs; `onset2`, `cutoff2`: $r_o^2 < r_c^2$ (static).

$$F_i = \\sum_{j \\ne i} \\varphi(s_{ij}) r_{ij}, \\quad r_{ij} = d - L \\operatorname{round}(d / L),
  \\quad d = q_j - q_i, \\quad \\varphi = 2\\, \\frac{dU}{ds}, \\quad
  U = (c_{12} x^{-6} - c_6 x^{-3}) S(x), \\quad x = s / r_c^2,$$

with $S$ CHARMM's switch (1 below $r_o^2 / r_c^2$, 0 beyond 1, $C^1$), $s = |r_{ij}|^2$. Here
$\\varphi$ is obtained by differentiating $U$ with JAX, independently of the kernels'
hand-written derivatives. `cotangent` returns the cotangents of `box` and `c` per target
row (each row computed with its own copy of them), as the kernels do; the caller sums them.
"""

import functools

import jax
import jax.lax as lax
import jax.numpy as jnp

_BLOCK_ELEMENTS = 2**21


def _switch(x, xo):
    poly = (1 - x) ** 2 * (1 + 2 * x - 3 * xo) / (1 - xo) ** 3
    return jnp.where(x <= xo, 1.0, jnp.where(x >= 1, 0.0, poly))


def energy(s, c, onset2, cutoff2):
    """$U(s)$ for one pair, `c` of shape `(2,)`."""
    x = s / cutoff2
    return (c[0] * x**-6 - c[1] * x**-3) * _switch(x, onset2 / cutoff2)


def _phi(s, c, onset2, cutoff2):
    pair = functools.partial(energy, c=c, onset2=onset2, cutoff2=cutoff2)
    return 2 * jax.jvp(pair, (s,), (jnp.ones_like(s),))[1]


def _rows(q, box_rows, c_rows, idx, rows, onset2, cutoff2):
    """Forces on target `rows` (indices >= n give 0), row `i` with its own `box_rows[i]`
    and `c_rows[i]`."""
    n = q.shape[0]
    targets = jnp.minimum(rows, n - 1)
    sources = (
        jnp.broadcast_to(jnp.arange(n), (rows.shape[0], n)) if idx.shape[-1] == 0 else idx[targets]
    )
    box, c = box_rows[targets][:, None, :], c_rows[targets]
    d = q[jnp.clip(sources, 0, n - 1)] - q[targets][:, None, :]
    r = d - box * jnp.round(d / box)
    s_raw = jnp.sum(r * r, axis=-1)
    valid = (sources >= 0) & (sources < n) & (sources != rows[:, None]) & (rows < n)[:, None]
    mask = valid & (s_raw < cutoff2)
    s = jnp.where(mask, s_raw, cutoff2)  # double where: no 0^-6
    phi = jax.vmap(_phi, in_axes=(0, 0, None, None))(s, c, onset2, cutoff2)
    return jnp.einsum("ij,ijk->ik", jnp.where(mask, phi, 0.0), r)


def _one(q, box_rows, c_rows, idx, onset2, cutoff2, blocked):
    n, d = q.shape
    width = idx.shape[-1] or n
    block = max(1, min(n, _BLOCK_ELEMENTS // max(1, width * d))) if blocked else n
    if block >= n:
        return _rows(q, box_rows, c_rows, idx, jnp.arange(n), onset2, cutoff2)
    n_blocks = -(-n // block)
    rows = jnp.arange(n_blocks * block).reshape(n_blocks, block)
    one_block = jax.checkpoint(lambda r, q, b, c: _rows(q, b, c, idx, r, onset2, cutoff2))
    out = lax.map(lambda r: one_block(r, q, box_rows, c_rows), rows)
    return out.reshape(-1, d)[:n]


def _batched(fn, n_batch):
    for _ in range(n_batch):
        fn = jax.vmap(fn)
    return fn


def _row_forward(q, box_rows, c_rows, idx, *, onset2, cutoff2, blocked=False):
    one = functools.partial(_one, onset2=onset2, cutoff2=cutoff2, blocked=blocked)
    return _batched(one, q.ndim - 2)(q, box_rows, c_rows, idx)


def _per_row(x, q):
    return jnp.broadcast_to(x[..., None, :], (*q.shape[:-1], x.shape[-1]))


def forward(q, box, c, idx, *, onset2, cutoff2, blocked=False):
    """$F$ for a batch: `(..., n, d)`."""
    kw = dict(onset2=onset2, cutoff2=cutoff2, blocked=blocked)
    return _row_forward(q, _per_row(box, q), _per_row(c, q), idx, **kw)


def tangent(q, box, c, idx, dq, dbox, *, onset2, cutoff2, blocked=False):
    """The forward-mode derivative of `forward` in `q` and `box` (linear in `dq, dbox`)."""
    kw = dict(onset2=onset2, cutoff2=cutoff2, blocked=blocked)
    fn = lambda q, box: forward(q, box, c, idx, **kw)  # noqa: E731
    return jax.jvp(fn, (q, box), (dq, dbox))[1]


def cotangent(q, box, c, idx, g, *, onset2, cutoff2, params=True, blocked=False):
    """`(q_bar, box_rows, c_rows)`: the cotangent of `q`, and per target row `(..., n, d)`
    and `(..., n, 2)` the contributions to those of `box` and `c`."""
    kw = dict(onset2=onset2, cutoff2=cutoff2, blocked=blocked)
    fn = lambda q, b, c: _row_forward(q, b, c, idx, **kw)  # noqa: E731
    _, pullback = jax.vjp(fn, q, _per_row(box, q), _per_row(c, q))
    return pullback(g)
