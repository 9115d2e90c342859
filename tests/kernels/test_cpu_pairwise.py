"""The gravity primitives (C++ kernels on this CPU, through jax.ffi) against the pure-JAX
reference: values, forward and reverse derivatives (all three cotangents), float32 and
float64, any batch axes, jit, vmap over any mix of arguments, second derivatives, finite
differences; the blocked pure-JAX fallback against the reference; and the build's
fallback when no kernel can be had."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffsim.kernels import _build, _fallback, _reference as reference, gravity_pair_sum
from diffsim.kernels._primitives import cotangent_p

RTOL = {jnp.float64: 1e-12, jnp.float32: 2e-5}


def _problem(batch, n, d, e2, dtype, seed=0):
    rng = np.random.default_rng(seed)
    arrays = dict(
        q=rng.standard_normal((*batch, n, d)),
        w=rng.uniform(0.5, 1.5, (*batch, n)),
        e2=np.full(batch, e2),
        dq=rng.standard_normal((*batch, n, d)),
        dw=rng.standard_normal((*batch, n)),
        de2=rng.standard_normal(batch),
        g=rng.standard_normal((*batch, n, d)),
    )
    return {k: jnp.asarray(v, dtype) for k, v in arrays.items()}


def _close(ours, ref, dtype):
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    scale = np.max(np.abs(ref)) + 1e-300
    assert ours.shape == ref.shape
    assert np.max(np.abs(ours - ref)) / scale < RTOL[dtype], np.max(np.abs(ours - ref)) / scale


def _ref64(fn, p, *names):
    return fn(*(p[k].astype(jnp.float64) for k in names))


# n = 37: packs of 8 with a partial last one; 8: exactly one pack; 1: no pair at all.
# The first two in both precisions run in make test; the rest with make test-slow.
_SLOW = pytest.mark.slow
CASES = [
    ((), 37, 3, 0.0, jnp.float64),
    ((2, 3), 8, 3, 0.05, jnp.float32),
    pytest.param((2,), 37, 2, 0.1, jnp.float64, marks=_SLOW),
    pytest.param((3,), 21, 1, 0.2, jnp.float64, marks=_SLOW),
    pytest.param((), 1, 3, 0.1, jnp.float64, marks=_SLOW),
    pytest.param((), 37, 3, 0.0, jnp.float32, marks=_SLOW),
    pytest.param((2,), 37, 2, 0.1, jnp.float32, marks=_SLOW),
]


@pytest.mark.parametrize("batch,n,d,e2,dtype", CASES)
def test_kernels_equal_the_reference(batch, n, d, e2, dtype):
    p = _problem(batch, n, d, e2, dtype)
    fwd = jax.jit(gravity_pair_sum)(p["q"], p["w"], p["e2"])
    _close(fwd, _ref64(reference.gravity_forward, p, "q", "w", "e2"), dtype)
    tangent = jax.jit(lambda *a: jax.jvp(gravity_pair_sum, a[:3], a[3:])[1])
    ref = _ref64(reference.gravity_tangent, p, "q", "w", "e2", "dq", "dw", "de2")
    _close(tangent(*(p[k] for k in ("q", "w", "e2", "dq", "dw", "de2"))), ref, dtype)
    # Reverse mode: JAX transposes the tangent primitive into the cotangent kernel.
    vjp = jax.jit(lambda q, w, e2, g: jax.vjp(gravity_pair_sum, q, w, e2)[1](g))
    q_bar, w_bar, e2_bar = vjp(p["q"], p["w"], p["e2"], p["g"])
    rq, rw, rows = _ref64(reference.gravity_vjp, p, "q", "w", "e2", "g")
    for ours, ref in [(q_bar, rq), (w_bar, rw), (e2_bar, rows.sum(-1))]:
        _close(ours, ref, dtype)
    # The cotangent kernel alone, its per-row e2 shares too, and the positions-only form.
    q_all, w_all, e_all = cotangent_p.bind(p["q"], p["w"], p["e2"], p["g"], weights=True)
    _close(e_all, rows, dtype)
    q_only = cotangent_p.bind(p["q"], p["w"], p["e2"], p["g"], weights=False)[0]
    _close(q_only, rq, dtype)


def test_coincident_bodies_without_softening_are_not_finite():
    # A real singularity: it must show (the error model looks for non-finite states).
    q = jnp.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    a = gravity_pair_sum(q, jnp.ones(3), 0.0)
    assert np.all(np.isfinite(a[0])) and not np.all(np.isfinite(a[1:]))
    assert np.all(np.isfinite(gravity_pair_sum(q, jnp.ones(3), 0.01)))


def test_derivatives_match_finite_differences():
    p = _problem((), 11, 3, 0.05, jnp.float64, seed=3)
    args = (p["q"], p["w"], p["e2"])
    loss = lambda q, w, e2: jnp.sum(jnp.sin(gravity_pair_sum(q, w, e2)))  # noqa: E731
    grads = jax.grad(loss, argnums=(0, 1, 2))(*args)
    h = 1e-6
    for argnum, direction in enumerate((p["dq"], p["dw"], p["de2"])):
        plus = [a + h * direction if i == argnum else a for i, a in enumerate(args)]
        minus = [a - h * direction if i == argnum else a for i, a in enumerate(args)]
        fd = (loss(*plus) - loss(*minus)) / (2 * h)
        assert np.isclose(jnp.sum(grads[argnum] * direction), fd, rtol=1e-7, atol=1e-9)


@pytest.mark.slow  # 14 s: the reference's Hessians compile slowly
def test_second_derivatives_equal_the_reference():
    p = _problem((), 9, 2, 0.1, jnp.float64, seed=1)

    def loss(f):
        return lambda q, w: jnp.sum(jnp.cos(f(q, w, p["e2"])))

    for transform in (jax.hessian, lambda f: jax.jacfwd(jax.grad(f))):
        ours = jax.jit(transform(loss(gravity_pair_sum)))(p["q"], p["w"])
        ref = jax.jit(transform(loss(reference.gravity_forward)))(p["q"], p["w"])
        _close(ours, ref, jnp.float64)
    # Reverse over reverse, with respect to the weights.
    grad2 = lambda f: jax.grad(lambda w: jnp.sum(jax.grad(loss(f))(p["q"], w) ** 2))  # noqa: E731
    _close(grad2(gravity_pair_sum)(p["w"]), grad2(reference.gravity_forward)(p["w"]), jnp.float64)


@pytest.mark.parametrize(
    "in_axes",
    [
        (0, None, None),
        pytest.param((None, 0, None), marks=_SLOW),
        pytest.param((1, 0, 0), marks=_SLOW),
        (0, 0, 0),
    ],
)
def test_vmap_over_any_arguments(in_axes):
    p = _problem((3,), 13, 3, 0.05, jnp.float64, seed=2)
    q = jnp.moveaxis(p["q"], 0, 1) if in_axes[0] == 1 else p["q"]
    args = [
        a if ax is not None else a[0] for a, ax in zip((q, p["w"], p["e2"]), in_axes, strict=True)
    ]
    loss = lambda f: lambda q, w, e2: jnp.sum(f(q, w, e2) ** 2)  # noqa: E731
    for transform in (lambda f: f, lambda f: jax.grad(loss(f), argnums=(0, 1, 2))):
        ours = jax.vmap(transform(gravity_pair_sum), in_axes)(*args)
        ref = jax.vmap(transform(reference.gravity_forward), in_axes)(*args)
        jax.tree.map(lambda a, b: _close(a, b, jnp.float64), ours, ref)
    nested = jax.vmap(jax.vmap(gravity_pair_sum, (0, None, None)), (None, 0, None))
    _close(
        nested(p["q"], p["w"], 0.05),
        jax.vmap(jax.vmap(reference.gravity_forward, (0, None, None)), (None, 0, None))(
            p["q"], p["w"], 0.05
        ),
        jnp.float64,
    )


@pytest.mark.parametrize("block_elements", [pytest.param(2**22, marks=_SLOW), 2 * 13 * 3])
def test_blocked_fallback_equals_the_reference(monkeypatch, block_elements):
    # The lowering for backends without a kernel, whole and in blocks of two rows.
    monkeypatch.setattr(_fallback, "_BLOCK_ELEMENTS", block_elements)
    p = _problem((2,), 13, 3, 0.05, jnp.float64, seed=4)
    _close(
        _fallback.forward(p["q"], p["w"], p["e2"]),
        _ref64(reference.gravity_forward, p, "q", "w", "e2"),
        jnp.float64,
    )
    names = ("q", "w", "e2", "dq", "dw", "de2")
    _close(
        _fallback.tangent(*(p[k] for k in names)),
        _ref64(reference.gravity_tangent, p, *names),
        jnp.float64,
    )
    ours = _fallback.cotangent(p["q"], p["w"], p["e2"], p["g"])
    for a, b in zip(ours, _ref64(reference.gravity_vjp, p, "q", "w", "e2", "g"), strict=True):
        _close(a, b, jnp.float64)


def test_the_build_falls_back_with_a_warning(monkeypatch):
    monkeypatch.setattr(_build, "compiler", lambda: None)
    with pytest.warns(UserWarning, match="no C\\+\\+ compiler"):
        assert _build.library.__wrapped__() is None
    monkeypatch.setenv("DIFFSIM_CPU_KERNELS", "0")
    assert _build.library.__wrapped__() is None  # chosen: no warning needed


def test_the_kernels_are_built_here():
    # This machine has a compiler (CI too): the fast path is what the suite exercises.
    assert _build.compiler() is not None and _build.library() is not None


def test_concurrent_threaded_calls_finish_and_agree():
    # Independent force evaluations big enough to use the thread pool: XLA may run them
    # at the same time, each waiting on pool work (the kernel never waits for a task to
    # start, so a busy pool cannot deadlock it).
    qs = jax.random.normal(jax.random.key(0), (4, 1024, 3))
    w = jnp.ones(1024)
    together = jax.jit(lambda qs: [gravity_pair_sum(q, w, 0.01) for q in qs])(qs)
    for q, a in zip(qs, together, strict=True):
        _close(a, reference.gravity_forward(q, w, jnp.asarray(0.01)), jnp.float64)
