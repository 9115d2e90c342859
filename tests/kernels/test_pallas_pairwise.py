"""The tiled Pallas kernels (run by the Pallas interpreter on the CPU) equal the pure-JAX
reference: forward, tangent and cotangent, in float64 and float32, with batch axes, with n
not a multiple of the tile and over several tiles, and with and without softening (a body
at the origin, where the padded sources sit, checks that the masking keeps 0^-1.5 out)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffsim.kernels import _pallas_pairwise as pallas, _reference as reference

# (batch, n, d, e2, tile): n = 37 fits one tile (padded to 64); n = 300 with tile = 32
# spans ten tiles, the last one padded.
CASES = [
    ((), 37, 3, 0.0, 128),
    ((2,), 37, 2, 0.1, 128),
    ((2, 3), 37, 3, 0.05, 128),
    ((2,), 300, 2, 0.0, 32),
]
CASE_IDS = ["single-d3-e0", "b2-d2-e.1", "b2x3-d3-e.05", "b2-n300-d2-e0-tile32"]
# float32 is compared with the float64 reference on the same (rounded) inputs, the error
# scaled by the largest entry: single entries may cancel to near zero.
RTOL = {jnp.float64: 1e-12, jnp.float32: 1e-4}
# float32 runs with make test-slow (the interpreter is slow; float64 is the tight check).
DTYPES = [jnp.float64, pytest.param(jnp.float32, marks=pytest.mark.slow)]

ref_forward = jax.jit(reference.gravity_forward)
ref_tangent = jax.jit(reference.gravity_tangent)
ref_vjp = jax.jit(reference.gravity_vjp)


def _problem(batch, n, d, e2, dtype):
    # NumPy draws: eager jax.random ops would each compile, and dominate the run time.
    rng = np.random.default_rng(0)
    q = rng.standard_normal((*batch, n, d))
    q[..., 0, :] = 0.0  # on top of the zero-padded sources
    p = dict(
        q=q,
        w=rng.uniform(0.5, 1.5, (*batch, n)),
        e2=np.full(batch, e2),
        dq=rng.standard_normal(q.shape),
        dw=rng.standard_normal((*batch, n)),
        de2=np.full(batch, 0.3),
        g=rng.standard_normal(q.shape),
    )
    return {k: jnp.asarray(v, dtype) for k, v in p.items()}


def _check(got, want, dtype):
    assert got.shape == want.shape and got.dtype == dtype
    assert np.all(np.isfinite(got))
    want = np.asarray(want, np.float64)
    scale = np.max(np.abs(want))
    np.testing.assert_allclose(got, want, rtol=RTOL[dtype], atol=RTOL[dtype] * scale)


def _f64(p):
    return {k: v.astype(jnp.float64) for k, v in p.items()}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch, n, d, e2, tile", CASES, ids=CASE_IDS)
def test_forward(batch, n, d, e2, tile, dtype):
    p = _problem(batch, n, d, e2, dtype)
    got = pallas.gravity_forward(p["q"], p["w"], p["e2"], interpret=True, tile=tile)
    x = _f64(p)
    _check(got, ref_forward(x["q"], x["w"], x["e2"]), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch, n, d, e2, tile", CASES, ids=CASE_IDS)
def test_tangent(batch, n, d, e2, tile, dtype):
    p = _problem(batch, n, d, e2, dtype)
    args = [p[k] for k in ("q", "w", "e2", "dq", "dw", "de2")]
    got = pallas.gravity_tangent(*args, interpret=True, tile=tile)
    x = _f64(p)
    _check(got, ref_tangent(*[x[k] for k in ("q", "w", "e2", "dq", "dw", "de2")]), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch, n, d, e2, tile", CASES, ids=CASE_IDS)
def test_vjp(batch, n, d, e2, tile, dtype):
    p = _problem(batch, n, d, e2, dtype)
    got = pallas.gravity_vjp(p["q"], p["w"], p["e2"], p["g"], interpret=True, tile=tile)
    x = _f64(p)
    want = ref_vjp(x["q"], x["w"], x["e2"], x["g"])
    assert len(got) == 3
    for got_part, want_part in zip(got, want, strict=True):
        _check(got_part, want_part, dtype)


def test_one_dimension_and_broadcast_softening():
    # d = 1 (any d works), and a scalar e2 shared by the batch.
    p = _problem((2,), 20, 1, 0.2, jnp.float64)
    got = pallas.gravity_forward(p["q"], p["w"], 0.2, interpret=True)
    _check(got, ref_forward(p["q"], p["w"], p["e2"]), jnp.float64)


def test_tile_must_be_a_power_of_two():
    p = _problem((), 8, 2, 0.0, jnp.float64)
    with pytest.raises(ValueError, match="power of two"):
        pallas.gravity_forward(p["q"], p["w"], p["e2"], interpret=True, tile=48)


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32])
def test_kernels_lower_to_triton(dtype):
    # No GPU here: lowering for CUDA still runs the Pallas -> Triton translation, which
    # rejects the ops and array sizes Triton lacks (compiling the Triton IR needs a GPU).
    pytest.importorskip("jax.experimental.pallas.triton")
    p = _problem((2,), 37, 3, 0.0, dtype)
    calls = [
        (pallas.gravity_forward, ("q", "w", "e2")),
        (pallas.gravity_tangent, ("q", "w", "e2", "dq", "dw", "de2")),
        (pallas.gravity_vjp, ("q", "w", "e2", "g")),
    ]
    for fn, names in calls:
        lowered = fn.trace(*[p[k] for k in names]).lower(lowering_platforms=("cuda",))
        assert "triton" in lowered.as_text().lower()
