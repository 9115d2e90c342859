"""The pure-JAX softened-gravity pair sum: the reference every compiled kernel is tested
against, and the fallback where no kernel runs (other backends, no C++ compiler).

All functions take a batch of independent problems on leading axes:

- `q`: `(..., n, d)` positions, `w`: `(..., n)` source weights, `e2`: `(...)` squared
  softening $\\epsilon^2$.

$$a_i = \\sum_{j \\ne i} w_j\\, \\varphi(s_{ij})\\, r_{ij}, \\quad r_{ij} = q_j - q_i, \\quad
  s_{ij} = |r_{ij}|^2, \\quad \\varphi(s) = (s + \\epsilon^2)^{-3/2}$$

(the gravitational constant multiplies outside). The derivatives the kernels compute:

- tangent (`gravity_tangent`): with $\\varphi' = -\\tfrac32 (s + \\epsilon^2)^{-5/2}$,
  $$\\dot a_i = \\sum_{j \\ne i} \\dot w_j \\varphi r_{ij}
      + w_j \\big[\\varphi \\dot r_{ij} + \\varphi' (2 r_{ij} \\cdot \\dot r_{ij}
      + \\dot{\\epsilon^2}) r_{ij}\\big], \\quad \\dot r_{ij} = \\dot q_j - \\dot q_i ;$$
- cotangent (`gravity_vjp`), with $J(r) = \\varphi I + 2 \\varphi' r r^T$ (even in $r$):
  $$\\bar q_k = \\sum_{j \\ne k} J(r_{kj}) (w_k g_j - w_j g_k), \\quad
    \\bar w_k = -\\sum_{j \\ne k} \\varphi(s_{kj})\\, g_j \\cdot r_{kj}, \\quad
    \\bar e_k = \\sum_{j \\ne k} w_j \\varphi'(s_{kj})\\, g_k \\cdot r_{kj},$$
  where $\\bar{\\epsilon^2} = \\sum_k \\bar e_k$ (returned per row, summed by the caller).
"""

import jax
import jax.numpy as jnp


def _one(q, w, e2):
    n = q.shape[0]
    r = q[None, :, :] - q[:, None, :]  # r[i, j] = q_j - q_i
    off = ~jnp.eye(n, dtype=bool)
    s = jnp.where(off, jnp.sum(r * r, axis=-1) + e2, 1.0)  # double where: no 0^-1.5
    phi = jnp.where(off, jax.lax.rsqrt(s) ** 3, 0.0)
    return jnp.einsum("ij,j,ijk->ik", phi, w, r)


def _batched(fn, n_batch):
    for _ in range(n_batch):
        fn = jax.vmap(fn)
    return fn


def gravity_forward(q, w, e2):
    """$a$ for a batch: `(..., n, d)`."""
    return _batched(_one, q.ndim - 2)(q, w, e2)


def gravity_tangent(q, w, e2, dq, dw, de2):
    """The forward-mode derivative of `gravity_forward` (linear in `dq, dw, de2`)."""
    return jax.jvp(gravity_forward, (q, w, e2), (dq, dw, de2))[1]


def gravity_vjp(q, w, e2, g):
    """`(q_bar, w_bar, e2_bar_rows)`: the cotangents of `q`, `w` and, per target row
    `(..., n)`, the contributions to the cotangent of `e2` (sum them over the last axis)."""
    _, pullback = jax.vjp(gravity_forward, q, w, e2)
    q_bar, w_bar, _ = pullback(g)
    # e2's row contributions, by the formula in the module docstring (the pullback gives
    # only their sum).
    rows = _batched(_e2_rows, q.ndim - 2)(q, w, e2, g)
    return q_bar, w_bar, rows


def _e2_rows(q, w, e2, g):
    n = q.shape[0]
    r = q[None, :, :] - q[:, None, :]
    off = ~jnp.eye(n, dtype=bool)
    s = jnp.where(off, jnp.sum(r * r, axis=-1) + e2, 1.0)
    dphi = jnp.where(off, -1.5 * jax.lax.rsqrt(s) ** 5, 0.0)
    return jnp.einsum("kj,j,kjc,kc->k", dphi, w, r, g)
