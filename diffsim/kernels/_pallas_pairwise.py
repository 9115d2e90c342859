"""Tiled Pallas GPU kernels for the softened-gravity all-pairs sum and its derivatives.

The maths is exactly that of `diffsim.kernels._reference` (see its docstring): with
$r_{ij} = q_j - q_i$, $s_{ij} = |r_{ij}|^2$ and $\\varphi(s) = (s + \\epsilon^2)^{-3/2}$,

- `gravity_forward`: $a_i = \\sum_{j \\ne i} w_j \\varphi r_{ij}$;
- `gravity_tangent`: its JVP in $(\\dot q, \\dot w, \\dot{\\epsilon^2})$;
- `gravity_vjp`: the cotangents $(\\bar q, \\bar w)$ and the per-row contributions to
  $\\bar{\\epsilon^2}$.

Each function takes and returns the reference's shapes and batch conventions (any number
of leading batch axes, flattened here to one axis `B`), plus `interpret` (run the Pallas
interpreter, e.g. on the CPU) and `tile` (a power of two, the rows per program).

Tiling: that of the classic shared-memory N-body kernel. The positions are stored
structure-of-arrays, `(B, d, n_pad)`, with `n` padded up to a multiple of the tile. The
grid is `(B, n_pad / tile)`; each program holds one tile of targets as `d` vectors of
length `tile` and loops (`lax.fori_loop`) over the source tiles, loading each coordinate's
slice with `pl.ds`, forming the `(tile, tile)` pair block with elementwise ops and reducing
it over the source axis into per-target accumulators (where a source tile is staged,
registers, shared memory or cache, is left to Triton). The diagonal, padded sources and
padded targets are masked with a select *before* the `rsqrt`, so `0^{-3/2}` never appears,
also when $\\epsilon^2 = 0$; the padding therefore does not change any result.

The kernels use only elementwise ops, row reductions, `fori_loop` and `pl.ds` slices of
refs, and every loaded or stored array has a power-of-two size, as the Triton lowering
needs. They are tested in interpret mode on the CPU, and their lowering to Triton IR is
checked there, but they have never been compiled or run on a GPU: their GPU speed (and
whether they beat the XLA reference) is unmeasured, as no GPU was available when they
were written.
"""

import functools
import math

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as pltriton


def _tile_size(n, tile):
    if tile < 1 or tile & (tile - 1):
        raise ValueError(f"tile must be a power of two, got {tile}")
    # A small problem needs no more than one tile of the next power of two (less padded
    # work); the floor of 16 avoids degenerate, tiny Triton blocks.
    return min(tile, max(16, 1 << max(n - 1, 0).bit_length()))


class _Layout:
    """The flattening, padding and block specs shared by the three kernels."""

    def __init__(self, q, tile, *arrays):
        self.batch, (self.n, self.d) = q.shape[:-2], q.shape[-2:]
        self.b = math.prod(self.batch)
        self.t = _tile_size(self.n, tile)
        self.n_pad = -(-self.n // self.t) * self.t
        self.dtype = jnp.result_type(q, *arrays)
        self.grid = (self.b, self.n_pad // self.t)

    def vecs(self, x):
        """`(..., n, d)` -> `(B, d, n_pad)`, zero-padded (structure of arrays)."""
        x = jnp.asarray(x, self.dtype).reshape(self.b, self.n, self.d)
        return jnp.pad(x, ((0, 0), (0, self.n_pad - self.n), (0, 0))).transpose(0, 2, 1)

    def rows(self, x):
        """`(..., n)` -> `(B, n_pad)`, zero-padded (padded sources weigh nothing)."""
        x = jnp.asarray(x, self.dtype).reshape(self.b, self.n)
        return jnp.pad(x, ((0, 0), (0, self.n_pad - self.n)))

    def scalar(self, x):
        """`(...)` -> `(B, 1)`: one value per problem, read as `ref[0]` in the kernel."""
        return jnp.broadcast_to(jnp.asarray(x, self.dtype), self.batch).reshape(self.b, 1)

    def unvecs(self, x):
        return x.transpose(0, 2, 1)[:, : self.n].reshape(*self.batch, self.n, self.d)

    def unrows(self, x):
        return x[:, : self.n].reshape(*self.batch, self.n)

    # Block specs: a target tile (moves with the grid's tile index), the whole source
    # array of the problem (looped over inside the kernel) and the per-problem scalars.
    def tgt_vecs(self):
        return pl.BlockSpec((None, self.d, self.t), lambda b, i: (b, 0, i))

    def src_vecs(self):
        return pl.BlockSpec((None, self.d, self.n_pad), lambda b, i: (b, 0, 0))

    def tgt_rows(self):
        return pl.BlockSpec((None, self.t), lambda b, i: (b, i))

    def src_rows(self):
        return pl.BlockSpec((None, self.n_pad), lambda b, i: (b, 0))

    def scalars(self):
        return pl.BlockSpec((None, 1), lambda b, i: (b, 0))

    def out_vecs(self):
        return jax.ShapeDtypeStruct((self.b, self.d, self.n_pad), self.dtype)

    def out_rows(self):
        return jax.ShapeDtypeStruct((self.b, self.n_pad), self.dtype)


def _load_vecs(ref, start, t):
    """The `d` coordinate vectors of one tile of a `(d, n_pad)` ref."""
    return tuple(ref[c, pl.ds(start, t)] for c in range(ref.shape[0]))


def _pairs(qt, qs, e2, i0, j0, n, t):
    """`r[c][i, j] = qs[c][j] - qt[c][i]` and `inv = (s + e2)^{-1/2}`, zero where masked.

    Masking `s` before the `rsqrt` keeps `0^{-1/2}` (the diagonal with `e2 == 0`, or a
    padded source on a target) out of the computation, so no inf or nan appears even in
    lanes that are thrown away; masking `inv` after it zeroes every power of it at once.
    """
    r = tuple(b[None, :] - a[:, None] for a, b in zip(qt, qs, strict=True))
    s = e2 + r[0] * r[0]
    for rc in r[1:]:
        s = s + rc * rc
    i = i0 + jnp.arange(t, dtype=jnp.int32)[:, None]
    j = j0 + jnp.arange(t, dtype=jnp.int32)[None, :]
    keep = (i != j) & (j < n) & (i < n)
    inv = jnp.where(keep, lax.rsqrt(jnp.where(keep, s, 1.0)), 0.0)
    return r, inv


def _source_loop(body, n_pad, t, init):
    def step(k, acc):
        return body(pl.multiple_of(k * t, t), acc)

    return lax.fori_loop(0, n_pad // t, step, init)


def _forward_kernel(qt_ref, qs_ref, ws_ref, e2_ref, a_ref, *, n, t):
    d, n_pad = qs_ref.shape
    i0 = pl.program_id(1) * t
    qt, e2 = tuple(qt_ref[c, :] for c in range(d)), e2_ref[0]

    def body(j0, acc):
        r, inv = _pairs(qt, _load_vecs(qs_ref, j0, t), e2, i0, j0, n, t)
        coef = ws_ref[pl.ds(j0, t)][None, :] * (inv * inv * inv)
        return tuple(a + jnp.sum(coef * rc, axis=1) for a, rc in zip(acc, r, strict=True))

    acc = _source_loop(body, n_pad, t, (jnp.zeros((t,), a_ref.dtype),) * d)
    for c in range(d):
        a_ref[c, :] = acc[c]


def _tangent_kernel(
    qt_ref, dqt_ref, qs_ref, ws_ref, dqs_ref, dws_ref, e2_ref, de2_ref, da_ref, *, n, t
):
    d, n_pad = qs_ref.shape
    i0 = pl.program_id(1) * t
    qt = tuple(qt_ref[c, :] for c in range(d))
    dqt = tuple(dqt_ref[c, :] for c in range(d))
    e2, de2 = e2_ref[0], de2_ref[0]

    def body(j0, acc):
        r, inv = _pairs(qt, _load_vecs(qs_ref, j0, t), e2, i0, j0, n, t)
        dr = tuple(
            b[None, :] - a[:, None] for a, b in zip(dqt, _load_vecs(dqs_ref, j0, t), strict=True)
        )
        phi = inv * inv * inv
        dphi = -1.5 * phi * inv * inv
        ws = ws_ref[pl.ds(j0, t)][None, :]
        rdr = r[0] * dr[0]
        for rc, drc in zip(r[1:], dr[1:], strict=True):
            rdr = rdr + rc * drc
        # d(w phi r) = dw phi r + w [phi dr + phi' (2 r.dr + de2) r]: the factors of r
        # and of dr, so that the sum over c is two multiply-adds per pair.
        coef_r = dws_ref[pl.ds(j0, t)][None, :] * phi + ws * dphi * (2.0 * rdr + de2)
        coef_dr = ws * phi
        return tuple(
            a + jnp.sum(coef_r * rc + coef_dr * drc, axis=1)
            for a, rc, drc in zip(acc, r, dr, strict=True)
        )

    acc = _source_loop(body, n_pad, t, (jnp.zeros((t,), da_ref.dtype),) * d)
    for c in range(d):
        da_ref[c, :] = acc[c]


def _vjp_kernel(
    qt_ref, wt_ref, gt_ref, qs_ref, ws_ref, gs_ref, e2_ref, qb_ref, wb_ref, eb_ref, *, n, t
):
    d, n_pad = qs_ref.shape
    i0 = pl.program_id(1) * t
    qt = tuple(qt_ref[c, :] for c in range(d))
    gt = tuple(gt_ref[c, :] for c in range(d))
    wt, e2 = wt_ref[:][:, None], e2_ref[0]

    def body(j0, acc):
        r, inv = _pairs(qt, _load_vecs(qs_ref, j0, t), e2, i0, j0, n, t)
        gs = _load_vecs(gs_ref, j0, t)
        ws = ws_ref[pl.ds(j0, t)][None, :]
        phi = inv * inv * inv
        dphi = -1.5 * phi * inv * inv
        # v = w_k g_j - w_j g_k; J(r) v = phi v + 2 phi' r (r.v).
        v = tuple(wt * gj[None, :] - ws * gk[:, None] for gj, gk in zip(gs, gt, strict=True))
        rv, gsr, gtr = r[0] * v[0], gs[0][None, :] * r[0], gt[0][:, None] * r[0]
        for c in range(1, d):
            rv = rv + r[c] * v[c]
            gsr = gsr + gs[c][None, :] * r[c]
            gtr = gtr + gt[c][:, None] * r[c]
        two_dphi_rv = 2.0 * dphi * rv
        qb = tuple(
            a + jnp.sum(phi * vc + two_dphi_rv * rc, axis=1)
            for a, vc, rc in zip(acc[:d], v, r, strict=True)
        )
        wb = acc[d] - jnp.sum(phi * gsr, axis=1)
        eb = acc[d + 1] + jnp.sum(ws * dphi * gtr, axis=1)
        return (*qb, wb, eb)

    acc = _source_loop(body, n_pad, t, (jnp.zeros((t,), qb_ref.dtype),) * (d + 2))
    for c in range(d):
        qb_ref[c, :] = acc[c]
    wb_ref[:] = acc[d]
    eb_ref[:] = acc[d + 1]


# Selects the Triton lowering on GPUs: recent JAX otherwise picks Mosaic GPU, which
# rejects these kernels (its async copies take at most 256 elements per dimension, less
# than a whole source row, and its TMA has no float64). The interpreter ignores it.
_TRITON = pltriton.CompilerParams()

_jit = functools.partial(jax.jit, static_argnames=("interpret", "tile"))


@_jit
def gravity_forward(q, w, e2, *, interpret=False, tile=128):
    """$a$ for a batch: `(..., n, d)` (as `_reference.gravity_forward`)."""
    lay = _Layout(q, tile, w, e2)
    a = pl.pallas_call(
        functools.partial(_forward_kernel, n=lay.n, t=lay.t),
        grid=lay.grid,
        in_specs=[lay.tgt_vecs(), lay.src_vecs(), lay.src_rows(), lay.scalars()],
        out_specs=lay.tgt_vecs(),
        out_shape=lay.out_vecs(),
        interpret=interpret,
        compiler_params=_TRITON,
    )(lay.vecs(q), lay.vecs(q), lay.rows(w), lay.scalar(e2))
    return lay.unvecs(a)


@_jit
def gravity_tangent(q, w, e2, dq, dw, de2, *, interpret=False, tile=128):
    """The JVP of `gravity_forward` in `(dq, dw, de2)`: `(..., n, d)`."""
    lay = _Layout(q, tile, w, e2, dq, dw, de2)
    tv, sv, sr, sc = lay.tgt_vecs(), lay.src_vecs(), lay.src_rows(), lay.scalars()
    da = pl.pallas_call(
        functools.partial(_tangent_kernel, n=lay.n, t=lay.t),
        grid=lay.grid,
        in_specs=[tv, tv, sv, sr, sv, sr, sc, sc],
        out_specs=tv,
        out_shape=lay.out_vecs(),
        interpret=interpret,
        compiler_params=_TRITON,
    )(
        lay.vecs(q),
        lay.vecs(dq),
        lay.vecs(q),
        lay.rows(w),
        lay.vecs(dq),
        lay.rows(dw),
        lay.scalar(e2),
        lay.scalar(de2),
    )
    return lay.unvecs(da)


@_jit
def gravity_vjp(q, w, e2, g, *, interpret=False, tile=128):
    """`(q_bar, w_bar, e2_bar_rows)`, shapes `(..., n, d), (..., n), (..., n)` (as
    `_reference.gravity_vjp`; sum `e2_bar_rows` over its last axis for `e2`'s cotangent)."""
    lay = _Layout(q, tile, w, e2, g)
    tv, tr, sv, sr = lay.tgt_vecs(), lay.tgt_rows(), lay.src_vecs(), lay.src_rows()
    qv, wr, gv = lay.vecs(q), lay.rows(w), lay.vecs(g)
    qb, wb, eb = pl.pallas_call(
        functools.partial(_vjp_kernel, n=lay.n, t=lay.t),
        grid=lay.grid,
        in_specs=[tv, tr, tv, sv, sr, sv, lay.scalars()],
        out_specs=[tv, tr, tr],
        out_shape=[lay.out_vecs(), lay.out_rows(), lay.out_rows()],
        interpret=interpret,
        compiler_params=_TRITON,
    )(qv, wr, gv, qv, wr, gv, lay.scalar(e2))
    return lay.unvecs(qb), lay.unrows(wb), lay.unrows(eb)
