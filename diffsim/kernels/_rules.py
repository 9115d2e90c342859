"""What every kernel primitive of this package needs besides its maths: eager evaluation,
batching, derivatives from a pure-JAX reference, and lowering per backend.

Contract: `define(prims, ...)` registers, for each primitive, an eager implementation (the
primitive compiled alone, once per shape), a batching rule (vmapped axes become leading
batch axes, which every kernel takes), and lowerings: the C++ FFI target on a CPU when the
kernels are built and the dtype and dimension are supported, a Pallas kernel on CUDA where
one is given, and the blocked pure-JAX fallback everywhere else.
"""

import functools

import jax
import jax.numpy as jnp
from jax.interpreters import ad, batching, mlir

from . import _build


@functools.cache
def _compiled(prim, params):
    return jax.jit(functools.partial(prim.bind, **dict(params)))


def _impl(prim):
    return lambda *args, **params: _compiled(prim, tuple(sorted(params.items())))(*args)


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


def reference_jvp(reference, multiple):
    """A JVP rule that differentiates `reference` (same arguments as the primitive, its
    params as keywords): the derivatives of derivative kernels, correct and slower."""

    def rule(primals, tangents, **params):
        tangents = [ad.instantiate_zeros(t) for t in tangents]
        out, out_dot = jax.jvp(
            functools.partial(reference, **params), tuple(primals), tuple(tangents)
        )
        return (list(out), list(out_dot)) if multiple else (out, out_dot)

    return rule


@functools.cache
def _cpu_targets(symbols: tuple[tuple[str, str], ...]) -> bool:
    """Loads the C++ kernels (building them if needed) and registers the FFI targets
    `(name, symbol)`; `False` when they are unavailable (`_build.library` has warned why)."""
    lib = _build.library()
    if lib is None:
        return False
    for name, symbol in symbols:
        capsule = jax.ffi.pycapsule(getattr(lib, symbol))
        jax.ffi.register_ffi_target(name, capsule, platform="cpu")
    return True


def _cpu_lowering(prim, fallback, target, symbols):
    def lower(ctx, *args, **params):
        dtype = ctx.avals_in[0].dtype
        d = ctx.avals_in[0].shape[-1]
        if dtype not in (jnp.float32, jnp.float64) or d not in (1, 2, 3):
            return fallback(ctx, *args, **params)
        if not _cpu_targets(symbols):
            return fallback(ctx, *args, **params)
        suffix = "F32" if dtype == jnp.float32 else "F64"
        return jax.ffi.ffi_lowering(f"{target}{suffix}")(ctx, *args, **params)

    return lower


def define(prims, fallbacks, targets, symbols, gpu_kernels=None):
    """Registers everything but the derivatives for `prims`. `fallbacks[p]`: the pure-JAX
    function; `targets[p]`: the FFI target's name without its dtype suffix; `symbols`:
    every `(target name, library symbol)` pair of the family; `gpu_kernels()`: a dict of
    Pallas functions per primitive, imported only when a GPU compiles."""
    for prim in prims:
        prim.def_impl(_impl(prim))
        batching.primitive_batchers[prim] = _batch_rule(prim)
        fallback = mlir.lower_fun(fallbacks[prim], multiple_results=prim.multiple_results)
        mlir.register_lowering(prim, fallback)
        cpu = _cpu_lowering(prim, fallback, targets[prim], tuple(symbols))
        mlir.register_lowering(prim, cpu, platform="cpu")
        if gpu_kernels is not None:
            mlir.register_lowering(prim, _gpu_lowering(prim, gpu_kernels), platform="cuda")


def _gpu_lowering(prim, gpu_kernels):
    def lower(ctx, *args, **params):
        kernel = gpu_kernels()[prim]
        lowering = mlir.lower_fun(kernel, multiple_results=prim.multiple_results)
        return lowering(ctx, *args, **params)

    return lower
