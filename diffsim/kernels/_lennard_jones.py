"""JAX primitives for the switched Lennard-Jones pair sum in a periodic box, over all
pairs or a neighbour list, lowered to the C++ kernels of `lennard_jones.cc` on a CPU.

Contract: `lennard_jones_pair_sum(q, box, c, onset, cutoff, idx)` equals
`_lennard_jones_reference.forward` (see its docstring for the maths and shapes) under
every transformation: `jit`, `vmap`, `jvp`, `grad`/`vjp` in `q`, `box` and `c`, and
higher derivatives. As for gravity (`_primitives.py`), three primitives:

- `forward_p(q, box, c, idx)`: linear in `c`, so its tangent in `c` is `forward_p` at
  `dc` and its transpose in `c` is the `c` part of `cotangent_p`;
- `tangent_p(q, box, c, idx, dq, dbox)`: linear in `dq, dbox`; its transpose is
  `cotangent_p`, so reverse mode stores only the inputs of each evaluation;
- `cotangent_p(q, box, c, idx, g)`: `(q_bar, box_rows, c_rows)`; with `params=False`
  only `q_bar` is computed (a gradient with respect to positions alone).

The derivatives of `tangent_p` and `cotangent_p` are those of the reference. On backends
other than the CPU (GPUs included: no Pallas kernel for this law yet), and where the C++
kernels are unavailable, the blocked reference runs.
"""

import functools

import jax
import jax.numpy as jnp
from jax.extend.core import Primitive
from jax.interpreters import ad

from . import _lennard_jones_reference as reference, _rules

forward_p = Primitive("diffsim_lennard_jones_forward")
tangent_p = Primitive("diffsim_lennard_jones_tangent")
cotangent_p = Primitive("diffsim_lennard_jones_cotangent")
cotangent_p.multiple_results = True


def lennard_jones_pair_sum(q, box, c, onset, cutoff, idx=None):
    """$F_i = \\sum_{j \\ne i} \\varphi(s_{ij}) r_{ij}$ with $\\varphi = 2\\,dU/ds$ and
    $U = (c_{12} x^{-6} - c_6 x^{-3}) S(x)$, $x = s / r_c^2$, over minimum-image pairs
    closer than `cutoff` $= r_c$: `q` of shape `(..., n, d)`, `box` broadcastable to
    `(..., d)`, `c` to `(..., 2)` (for the usual $\\epsilon, \\sigma$: $c = 4\\epsilon
    ((\\sigma / r_c)^{12}, (\\sigma / r_c)^6)$); `onset < cutoff` static numbers; `idx` a
    symmetric `(..., n, k)` neighbour list (entries outside `[0, n)` empty) or `None` for
    all pairs.

    **Example:**

    ```python
    q = jnp.array([[0.0, 0.0], [1.5, 0.0]])
    c = 4 * jnp.array([0.4**12, 0.4**6])  # epsilon = sigma = 1, cutoff 2.5
    lennard_jones_pair_sum(q, 10.0, c, 2.0, 2.5)
    # [[1.158..., 0], [-1.158..., 0]]: at r = 1.5 the pair attracts, |dU/dr| = 1.158
    ```
    """
    if not 0 < onset < cutoff:
        raise ValueError(f"lennard_jones_pair_sum: need 0 < onset < cutoff; got {onset}, {cutoff}")
    q = jnp.asarray(q)
    batch, d = q.shape[:-2], q.shape[-1]
    box = jnp.broadcast_to(jnp.asarray(box, q.dtype), (*batch, d))
    c = jnp.broadcast_to(jnp.asarray(c, q.dtype), (*batch, 2))
    idx = jnp.zeros((*q.shape[:-1], 0), jnp.int32) if idx is None else jnp.asarray(idx, jnp.int32)
    idx = jnp.broadcast_to(idx, (*q.shape[:-1], idx.shape[-1]))
    return forward_p.bind(q, box, c, idx, onset2=float(onset) ** 2, cutoff2=float(cutoff) ** 2)


# ---- shapes ------------------------------------------------------------------------


def _like_q(q, *_, **__):
    return jax.core.ShapedArray(q.shape, q.dtype)


def _cotangent_shapes(q, box, c, idx, g, **_):
    rows = (*q.shape[:-1],)
    return (
        jax.core.ShapedArray(q.shape, q.dtype),
        jax.core.ShapedArray(q.shape, q.dtype),
        jax.core.ShapedArray((*rows, 2), q.dtype),
    )


forward_p.def_abstract_eval(_like_q)
tangent_p.def_abstract_eval(_like_q)
cotangent_p.def_abstract_eval(_cotangent_shapes)


# ---- derivatives -------------------------------------------------------------------


def _zero(t):
    return type(t) is ad.Zero


def _forward_jvp(primals, tangents, **params):
    q, box, c, idx = primals
    dq, dbox, dc, _ = tangents
    out = forward_p.bind(q, box, c, idx, **params)
    parts = []
    if not (_zero(dq) and _zero(dbox)):
        dq, dbox = ad.instantiate_zeros(dq), ad.instantiate_zeros(dbox)
        parts.append(tangent_p.bind(q, box, c, idx, dq, dbox, **params))
    if not _zero(dc):
        parts.append(forward_p.bind(q, box, dc, idx, **params))  # linear in c
    if not parts:
        return out, ad.Zero.from_primal_value(out)
    return out, functools.reduce(jnp.add, parts)


def _forward_transpose(ct, q, box, c, idx, **params):
    if not ad.is_undefined_primal(c) or any(ad.is_undefined_primal(x) for x in (q, box)):
        raise NotImplementedError("the Lennard-Jones forward is linear in c only")
    if _zero(ct):
        return [None, None, ad.Zero(c.aval), None]
    # c's cotangent does not depend on c; the kernel's q and box sums are a wasted pass.
    zeros = jnp.zeros(c.aval.shape, c.aval.dtype)
    _, _, c_rows = cotangent_p.bind(q, box, zeros, idx, ct, params=True, **params)
    return [None, None, jnp.sum(c_rows, axis=-2), None]


def _tangent_transpose(ct, q, box, c, idx, dq, dbox, **params):
    if any(ad.is_undefined_primal(x) for x in (q, box, c)):
        raise NotImplementedError("the Lennard-Jones tangent is linear in dq, dbox only")
    wanted = [ad.is_undefined_primal(x) for x in (dq, dbox)]
    if _zero(ct):
        return [None] * 4 + [
            ad.Zero(x.aval) if u else None for x, u in zip((dq, dbox), wanted, strict=True)
        ]
    q_bar, box_rows, _ = cotangent_p.bind(q, box, c, idx, ct, params=wanted[1], **params)
    bars = (q_bar, jnp.sum(box_rows, axis=-2))
    return [None] * 4 + [bar if u else None for bar, u in zip(bars, wanted, strict=True)]


ad.primitive_jvps[forward_p] = _forward_jvp
ad.primitive_transposes[forward_p] = _forward_transpose
# idx is an integer input: its tangent is float0 zeros, which jax.jvp takes as they are.
ad.primitive_jvps[tangent_p] = _rules.reference_jvp(reference.tangent, False)
ad.primitive_jvps[cotangent_p] = _rules.reference_jvp(reference.cotangent, True)
ad.primitive_transposes[tangent_p] = _tangent_transpose


# ---- batching and lowering ------------------------------------------------------------

_FALLBACK = {
    forward_p: functools.partial(reference.forward, blocked=True),
    tangent_p: functools.partial(reference.tangent, blocked=True),
    cotangent_p: functools.partial(reference.cotangent, blocked=True),
}
_NAMES = {forward_p: "Forward", tangent_p: "Tangent", cotangent_p: "Cotangent"}
_TARGET = {p: f"diffsim_lennard_jones_{name}" for p, name in _NAMES.items()}
_SYMBOLS = [
    (f"{_TARGET[p]}{suffix}", f"DiffsimLennardJones{name}{suffix}")
    for p, name in _NAMES.items()
    for suffix in ("F32", "F64")
]
_rules.define(_NAMES, _FALLBACK, _TARGET, _SYMBOLS)
