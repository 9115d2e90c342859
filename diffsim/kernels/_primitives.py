"""JAX primitives for the softened-gravity pair sum, lowered to a kernel per backend.

Contract: `gravity_pair_sum(q, w, e2)` equals `_reference.gravity_forward` (see its
docstring for the maths and shapes) under every transformation: `jit`, `vmap` (any
nesting), `jvp`/`jacfwd`, `grad`/`vjp`/`jacrev`, and higher derivatives.

Three primitives, because JAX cannot put a custom JVP and a custom VJP on one function:

- `forward_p(q, w, e2)`: its JVP rule is `forward_p` plus `tangent_p`;
- `tangent_p(q, w, e2, dq, dw, de2)`: linear in the tangents; its transpose rule is
  `cotangent_p`, so reverse mode (which JAX derives by transposing the JVP) runs the
  cotangent kernel and stores only `q, w, e2` per evaluation;
- `cotangent_p(q, w, e2, g, weights)`: the VJP as one kernel; with `weights=False` only
  the positions' cotangent is meaningful (the other two are left out of the work).

The derivatives of `tangent_p` and `cotangent_p` themselves (second order: a Hessian, a
gradient of a gradient) are those of the pure-JAX reference, correct and slower.

Lowering, decided when XLA compiles: on a CPU, the C++ kernels of `pairwise.cc` through
`jax.ffi` (built by `_build.py`); on an NVIDIA GPU, the Pallas kernels of
`_pallas_pairwise.py`; anywhere else, or where the C++ kernels are unavailable, the
blocked pure-JAX `_fallback.py`. Batching moves the vmapped axes to the front: every
kernel takes any leading batch axes.
"""

import functools

import jax
import jax.numpy as jnp
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir

from . import _build, _fallback, _reference

forward_p = Primitive("diffsim_gravity_forward")
tangent_p = Primitive("diffsim_gravity_tangent")
cotangent_p = Primitive("diffsim_gravity_cotangent")
cotangent_p.multiple_results = True

_FALLBACK = {forward_p: _fallback.forward, tangent_p: _fallback.tangent}
_FALLBACK[cotangent_p] = lambda q, w, e2, g, *, weights: _fallback.cotangent(q, w, e2, g)
_FFI_NAME = {forward_p: "Forward", tangent_p: "Tangent", cotangent_p: "Cotangent"}


def gravity_pair_sum(q, w, e2):
    """$a_i = \\sum_{j \\ne i} w_j (|q_j - q_i|^2 + e_2)^{-3/2} (q_j - q_i)$ for `q` of
    shape `(..., n, d)`, `w` broadcastable to `(..., n)`, `e2` to `(...)`.

    **Example:**

    ```python
    q = jnp.array([[0.0, 0.0], [1.0, 0.0]])
    gravity_pair_sum(q, jnp.ones(2), 0.0)  # [[1, 0], [-1, 0]]
    ```
    """
    q = jnp.asarray(q)
    w = jnp.broadcast_to(jnp.asarray(w, q.dtype), q.shape[:-1])
    e2 = jnp.broadcast_to(jnp.asarray(e2, q.dtype), q.shape[:-2])
    return forward_p.bind(q, w, e2)


# ---- shapes ------------------------------------------------------------------------


def _like_q(q, *_):
    return jax.core.ShapedArray(q.shape, q.dtype)


def _cotangent_shapes(q, w, e2, g, *, weights):
    rows = jax.core.ShapedArray(w.shape, w.dtype)
    return (jax.core.ShapedArray(q.shape, q.dtype), rows, rows)


forward_p.def_abstract_eval(_like_q)
tangent_p.def_abstract_eval(_like_q)
cotangent_p.def_abstract_eval(_cotangent_shapes)


@functools.cache
def _compiled(prim, params):
    return jax.jit(functools.partial(prim.bind, **dict(params)))


for _p in (forward_p, tangent_p, cotangent_p):
    # Eager calls compile the primitive alone (once per shape, as any jitted function).
    _p.def_impl(
        functools.partial(lambda p, *a, **k: _compiled(p, tuple(sorted(k.items())))(*a), _p)
    )


# ---- derivatives -------------------------------------------------------------------


def _forward_jvp(primals, tangents):
    tangents = [ad.instantiate_zeros(t) for t in tangents]
    return forward_p.bind(*primals), tangent_p.bind(*primals, *tangents)


def _reference_jvp(reference, multiple):
    def rule(primals, tangents, **params):
        tangents = [ad.instantiate_zeros(t) for t in tangents]
        out, out_dot = jax.jvp(reference, tuple(primals), tuple(tangents))
        return (list(out), list(out_dot)) if multiple else (out, out_dot)

    return rule


def _tangent_transpose(ct, q, w, e2, dq, dw, de2):
    if any(ad.is_undefined_primal(x) for x in (q, w, e2)):
        raise NotImplementedError("the gravity tangent is linear in dq, dw, de2 only")
    wanted = [ad.is_undefined_primal(x) for x in (dq, dw, de2)]
    if type(ct) is ad.Zero:
        return [None] * 3 + [
            ad.Zero(x.aval) if u else None for x, u in zip((dq, dw, de2), wanted, strict=True)
        ]
    # Positions alone (the common gradient) skip the weights' and e2's sums.
    q_bar, w_bar, e_rows = cotangent_p.bind(q, w, e2, ct, weights=any(wanted[1:]))
    bars = (q_bar, w_bar, jnp.sum(e_rows, axis=-1))
    return [None] * 3 + [bar if u else None for bar, u in zip(bars, wanted, strict=True)]


ad.primitive_jvps[forward_p] = _forward_jvp
ad.primitive_jvps[tangent_p] = _reference_jvp(_reference.gravity_tangent, False)
ad.primitive_jvps[cotangent_p] = _reference_jvp(_reference.gravity_vjp, True)  # all outputs
ad.primitive_transposes[tangent_p] = _tangent_transpose


# ---- batching: vmapped axes become leading batch axes, which every kernel takes ---------


def _batch_rule(prim):
    def rule(args, dims, **params):
        size = next(a.shape[d] for a, d in zip(args, dims, strict=True) if d is not None)
        moved = [
            jnp.broadcast_to(a, (size, *a.shape))
            if d is None  # not mapped
            else jnp.moveaxis(a, d, 0)
            for a, d in zip(args, dims, strict=True)
        ]
        out = prim.bind(*moved, **params)
        return out, ([0] * len(out) if prim.multiple_results else 0)

    return rule


for _p in (forward_p, tangent_p, cotangent_p):
    batching.primitive_batchers[_p] = _batch_rule(_p)


# ---- lowering ------------------------------------------------------------------------


def _cpu_lowering(prim):
    fallback = mlir.lower_fun(_FALLBACK[prim], multiple_results=prim.multiple_results)

    def lower(ctx, *args, **params):
        dtype = ctx.avals_in[0].dtype
        d = ctx.avals_in[0].shape[-1]
        if dtype not in (jnp.float32, jnp.float64) or d not in (1, 2, 3):
            return fallback(ctx, *args, **params)
        if not _register_cpu_targets():
            return fallback(ctx, *args, **params)
        suffix = "F32" if dtype == jnp.float32 else "F64"
        name = f"diffsim_gravity_{_FFI_NAME[prim]}{suffix}"
        return jax.ffi.ffi_lowering(name)(ctx, *args, **params)

    return lower


@functools.cache
def _register_cpu_targets() -> bool:
    """Loads the C++ kernels (building them if needed) and registers their FFI targets;
    `False` when they are unavailable (`_build.library` has warned why)."""
    lib = _build.library()
    if lib is None:
        return False
    for name in _FFI_NAME.values():
        for suffix in ("F32", "F64"):
            symbol = getattr(lib, f"DiffsimGravity{name}{suffix}")
            jax.ffi.register_ffi_target(
                f"diffsim_gravity_{name}{suffix}", jax.ffi.pycapsule(symbol), platform="cpu"
            )
    return True


def _gpu_lowering(prim):
    def lower(ctx, *args, **params):
        from . import _pallas_pairwise as pallas  # imports Pallas only when a GPU compiles

        kernel = {forward_p: pallas.gravity_forward, tangent_p: pallas.gravity_tangent}
        kernel[cotangent_p] = lambda *a, weights: pallas.gravity_vjp(*a)
        lowering = mlir.lower_fun(kernel[prim], multiple_results=prim.multiple_results)
        return lowering(ctx, *args, **params)

    return lower


for _p in (forward_p, tangent_p, cotangent_p):
    mlir.register_lowering(_p, mlir.lower_fun(_FALLBACK[_p], multiple_results=_p.multiple_results))
    mlir.register_lowering(_p, _cpu_lowering(_p), platform="cpu")
    mlir.register_lowering(_p, _gpu_lowering(_p), platform="cuda")
