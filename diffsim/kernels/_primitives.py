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

import jax
import jax.numpy as jnp
from jax.extend.core import Primitive
from jax.interpreters import ad

from . import _fallback, _reference, _rules

forward_p = Primitive("diffsim_gravity_forward")
tangent_p = Primitive("diffsim_gravity_tangent")
cotangent_p = Primitive("diffsim_gravity_cotangent")
cotangent_p.multiple_results = True


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


# ---- derivatives -------------------------------------------------------------------


def _forward_jvp(primals, tangents):
    tangents = [ad.instantiate_zeros(t) for t in tangents]
    return forward_p.bind(*primals), tangent_p.bind(*primals, *tangents)


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
ad.primitive_jvps[tangent_p] = _rules.reference_jvp(_reference.gravity_tangent, False)
ad.primitive_jvps[cotangent_p] = _rules.reference_jvp(  # all outputs
    lambda q, w, e2, g, *, weights: _reference.gravity_vjp(q, w, e2, g), True
)
ad.primitive_transposes[tangent_p] = _tangent_transpose


# ---- batching and lowering ------------------------------------------------------------


def _pallas():
    from . import _pallas_pairwise as pallas  # imports Pallas only when a GPU compiles

    return {
        forward_p: pallas.gravity_forward,
        tangent_p: pallas.gravity_tangent,
        cotangent_p: lambda *a, weights: pallas.gravity_vjp(*a),
    }


_FALLBACK = {
    forward_p: _fallback.forward,
    tangent_p: _fallback.tangent,
    cotangent_p: lambda q, w, e2, g, *, weights: _fallback.cotangent(q, w, e2, g),
}
_TARGET = {
    p: f"diffsim_gravity_{name}"
    for p, name in ((forward_p, "Forward"), (tangent_p, "Tangent"), (cotangent_p, "Cotangent"))
}
_SYMBOLS = [
    (f"{_TARGET[p]}{suffix}", f"DiffsimGravity{_TARGET[p].rsplit('_', 1)[1]}{suffix}")
    for p in _TARGET
    for suffix in ("F32", "F64")
]
_rules.define(_TARGET, _FALLBACK, _TARGET, _SYMBOLS, gpu_kernels=_pallas)
