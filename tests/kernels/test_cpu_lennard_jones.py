"""The Lennard-Jones primitives (C++ kernels on this CPU, through jax.ffi) against the
pure-JAX reference, whose force is JAX's derivative of the pair energy: values, forward
and reverse derivatives in positions, box and coefficients, all pairs and neighbour lists,
float32 and float64, batch axes, vmap, finite differences, the blocked fallback, SI units
in float32, and the system's forces against its XLA pair sum."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import diffsim as ds
from diffsim.kernels import _lennard_jones_reference as reference, lennard_jones_pair_sum

RTOL = {jnp.float64: 1e-12, jnp.float32: 2e-5}
ONSET, CUTOFF = 2.0, 2.5
KW = dict(onset2=ONSET**2, cutoff2=CUTOFF**2)


def _neighbours(q, box, radius, k, empty):
    """A symmetric list of the pairs closer than `radius`, rows padded with `empty`."""
    d = np.asarray(q)[None] - np.asarray(q)[:, None]
    d -= np.asarray(box) * np.round(d / np.asarray(box))
    close = (np.sum(d**2, -1) < radius**2) & ~np.eye(len(d), dtype=bool)
    assert close.sum(1).max() <= k
    idx = np.full((len(d), k), empty, np.int32)
    for i, row in enumerate(close):
        js = np.nonzero(row)[0]
        idx[i, : len(js)] = js
    return jnp.asarray(idx)


def _problem(batch, n, d, k, dtype, seed=0):
    rng = np.random.default_rng(seed)
    box = np.array([6.0, 5.5, 7.0][:d]) * (1 + 0.1 * rng.random((*batch, d)))
    q = rng.random((*batch, n, d)) * box[..., None, :] * 1.3  # some outside the box
    c = np.array([4.0, 4.0]) * 0.4 ** np.array([12, 6]) * rng.uniform(0.5, 1.5, (*batch, 1))
    arrays = dict(q=q, box=box, c=c, dq=rng.standard_normal(q.shape))
    arrays.update(dbox=rng.standard_normal(box.shape), dc=rng.standard_normal(c.shape))
    arrays.update(g=rng.standard_normal(q.shape))
    p = {key: jnp.asarray(v, dtype) for key, v in arrays.items()}
    if k:
        pairs = zip(q.reshape(-1, n, d), box.reshape(-1, d), strict=True)
        flat = [  # empty slots: n, or -1, alternately
            _neighbours(qq, bb, CUTOFF + 0.3, k, n if i % 2 == 0 else -1)
            for i, (qq, bb) in enumerate(pairs)
        ]
        p["idx"] = jnp.stack(flat).reshape(*batch, n, k)
    else:
        p["idx"] = jnp.zeros((*batch, n, 0), jnp.int32)
    return p


def _close(ours, ref, dtype):
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    assert ours.shape == ref.shape
    error = np.max(np.abs(ours - ref)) / (np.max(np.abs(ref)) + 1e-300)
    assert error < RTOL[dtype], error


def _ours(p):
    idx = p["idx"] if p["idx"].shape[-1] else None
    return lambda q, box, c: lennard_jones_pair_sum(q, box, c, ONSET, CUTOFF, idx)


def _ref(p):
    def forward(q, box, c):
        f64 = [x.astype(jnp.float64) for x in (q, box, c)]
        return reference.forward(*f64, p["idx"], **KW)

    return forward


_SLOW = pytest.mark.slow
# make test runs the first two (all pairs in float64; a batch of neighbour lists in
# float32); make test-slow the rest. Each costs mostly the reference's compilation.
CASES = [
    ((), 37, 3, 0, jnp.float64),
    ((2,), 20, 3, 20, jnp.float32),
    pytest.param((2,), 40, 3, 40, jnp.float32, marks=_SLOW),
    pytest.param((2, 3), 8, 2, 0, jnp.float32, marks=_SLOW),
    pytest.param((), 37, 3, 24, jnp.float64, marks=_SLOW),
    pytest.param((3,), 21, 1, 0, jnp.float64, marks=_SLOW),
    pytest.param((), 1, 3, 0, jnp.float64, marks=_SLOW),
    pytest.param((), 37, 2, 0, jnp.float32, marks=_SLOW),
]


@pytest.mark.parametrize("batch,n,d,k,dtype", CASES)
def test_kernels_equal_the_reference(batch, n, d, k, dtype):
    p = _problem(batch, n, d, k, dtype)
    ours, ref = _ours(p), _ref(p)
    primals = (p["q"], p["box"], p["c"])
    _close(jax.jit(ours)(*primals), ref(*primals), dtype)
    tangents = (p["dq"], p["dbox"], p["dc"])
    _close(jax.jvp(ours, primals, tangents)[1], jax.jvp(ref, primals, tangents)[1], dtype)
    ours_bar = jax.vjp(ours, *primals)[1](p["g"])
    ref_bar = jax.vjp(ref, *primals)[1](p["g"].astype(jnp.float64))
    for a, b in zip(ours_bar, ref_bar, strict=True):
        _close(a, b, dtype)
    # positions alone: the kernel skips the box's and coefficients' sums
    _close(jax.grad(lambda q: jnp.vdot(ours(q, *primals[1:]), p["g"]))(p["q"]), ref_bar[0], dtype)


def test_derivatives_match_finite_differences():
    p = _problem((), 30, 3, 0, jnp.float64, seed=1)
    ours = _ours(p)
    loss = lambda q, box, c: jnp.sum(ours(q, box, c) ** 2)  # noqa: E731
    primals = (p["q"], p["box"], p["c"])
    grads = jax.grad(loss, argnums=(0, 1, 2))(*primals)
    h = 1e-6
    for arg, grad in enumerate(grads):
        direction = jnp.asarray(np.random.default_rng(arg).standard_normal(grad.shape))
        shifted = [list(primals), list(primals)]
        shifted[0][arg] = primals[arg] + h * direction
        shifted[1][arg] = primals[arg] - h * direction
        fd = (loss(*shifted[0]) - loss(*shifted[1])) / (2 * h)
        assert abs(float(jnp.vdot(grad, direction)) - float(fd)) < 1e-6 * (1 + abs(float(fd)))


@pytest.mark.parametrize("in_axes", [(0, None, None), (None, 0, 0), (1, 0, None)])
def test_vmap_over_any_arguments(in_axes):
    p = _problem((3,), 16, 3, 0, jnp.float64, seed=2)
    q = jnp.moveaxis(p["q"], 0, 1) if in_axes[0] == 1 else p["q"]
    arrays = (q, p["box"], p["c"])
    args = [a if ax is not None else a[0] for a, ax in zip(arrays, in_axes, strict=True)]
    idx = p["idx"][0]
    fn = lambda q, box, c: reference.forward(q, box, c, idx, **KW)  # noqa: E731
    ours = jax.vmap(lambda q, box, c: lennard_jones_pair_sum(q, box, c, ONSET, CUTOFF), in_axes)
    _close(jax.jit(ours)(*args), jax.vmap(fn, in_axes)(*args), jnp.float64)


@pytest.mark.slow  # the reference's second derivatives compile slowly
def test_second_derivatives_equal_the_reference():
    p = _problem((), 12, 3, 0, jnp.float64, seed=3)
    ours, ref = _ours(p), _ref(p)
    for fn in (ours, ref):
        fn.hess = jax.hessian(lambda q, box, c, fn=fn: jnp.sum(fn(q, box, c) ** 2), (0, 1))
    a, b = ours.hess(p["q"], p["box"], p["c"]), ref.hess(p["q"], p["box"], p["c"])
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        _close(x, y, jnp.float64)


def test_blocked_fallback_equals_the_reference(monkeypatch):
    monkeypatch.setattr(reference, "_BLOCK_ELEMENTS", 2 * 13 * 3)  # uneven blocks
    p = _problem((2,), 13, 3, 0, jnp.float64, seed=4)
    args = (p["q"], p["box"], p["c"], p["idx"])
    _close(
        reference.forward(*args, **KW, blocked=True), reference.forward(*args, **KW), jnp.float64
    )


@pytest.mark.slow  # 10 s: the blocked cotangent compiles slowly
def test_blocked_fallback_cotangent_equals_the_reference(monkeypatch):
    monkeypatch.setattr(reference, "_BLOCK_ELEMENTS", 2 * 13 * 3)
    p = _problem((2,), 13, 3, 0, jnp.float64, seed=4)
    args = (p["q"], p["box"], p["c"], p["idx"])
    blocked = reference.cotangent(*args, p["g"], **KW, blocked=True)
    for a, b in zip(blocked, reference.cotangent(*args, p["g"], **KW), strict=True):
        _close(a, b, jnp.float64)


def test_si_units_in_float32():
    """Argon in metres and joules: powers of r alone would leave float32's range."""
    sigma, epsilon = 3.405e-10, 1.654e-21
    system, y0 = ds.systems.LennardJones.lattice(
        5, density=0.8, dim=3, temperature=1.0, key=jax.random.key(0)
    )  # reduced units, then scaled to SI
    si = ds.systems.LennardJones(
        box=system.box * sigma, epsilon=epsilon, sigma=sigma,
        onset=system.onset * sigma, cutoff=system.cutoff * sigma,
    )  # fmt: skip
    reduced_q = y0.q + 0.05 * jax.random.normal(jax.random.key(1), y0.q.shape)  # off-lattice
    reduced = system.acceleration(0.0, reduced_q, None)
    for dtype in (jnp.float32, jnp.float64):
        force = si.acceleration(0.0, (reduced_q * sigma).astype(dtype), None)
        _close(force * sigma / epsilon, reduced, dtype)


@pytest.mark.parametrize("neighbours", ["all", "list"])
def test_system_forces_equal_the_xla_pair_sum(neighbours):
    system, y0 = ds.systems.LennardJones.lattice(
        5, density=0.8, dim=3, temperature=1.0, key=jax.random.key(1)
    )
    q = y0.q + 0.05 * jax.random.normal(jax.random.key(2), y0.q.shape)
    xla = ds.systems.LennardJones(box=system.box, neighbours=ds.systems.AllPairs(block_size=125))
    if neighbours == "list":
        system = system.with_neighbour_list(q)
    ours = jax.jit(lambda q: system.acceleration(0.0, q, None))(q)
    _close(ours, xla.acceleration(0.0, q, None), jnp.float64)
