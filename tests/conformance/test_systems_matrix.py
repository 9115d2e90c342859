"""The conformance matrix: every system of `ds.systems` x every transformation and use.

Parametrised over (system, cell) from the declarations in `cases.py`. A supported cell
checks the transformation's numbers (against eager runs, loops, reverse mode or central
differences); a cell declared unsupported by design checks that the library refuses it
clearly (or, for `float32` of stochastic systems, that the declared limitation holds).
Only `DEFAULT_CELLS` run by default; the rest are `slow` (`pytest -m ""` runs them all).
"""

import pathlib
import tempfile

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import diffsim as ds
from tests.conformance import table
from tests.conformance.cases import CASES, CELLS, DEFAULT_CELLS, Case, discover_systems
from tests.systems.conformance import _cast

SYSTEMS = discover_systems()
ADJOINTS = {
    "grad_Direct": ds.Direct(),
    "grad_Checkpointed": ds.Checkpointed(),
    "grad_Reversible": ds.Reversible(),
}
# Known library bugs: {(system, cell): reason}; marked xfail(strict=True).
XFAIL: dict[tuple[str, str], str] = {
    ("SoftBouncingBall", "grad_Reversible"): (
        "known limit: Reversible's velocity-dependence probe needs concrete parameters; "
        "eager calls are refused up front (ValueError), but under grad the parameter is "
        "traced and the refusal is equinox's runtime error"
    ),
}


# ----------------------------------------------------------------------------- helpers


def _flat(tree) -> jax.Array:
    return jnp.concatenate([jnp.ravel(x) for x in jax.tree.leaves(tree)])


def _final(case: Case, p, **kwargs) -> jax.Array:
    """The final state, flattened into one vector."""
    return _flat(case.simulate(p, **kwargs).ys)


def _loss(case: Case, p, **kwargs) -> jax.Array:
    """A scalar of the final state that depends on every component."""
    y = _final(case, p, **kwargs)
    return jnp.sum(y * jnp.linspace(0.5, 1.5, y.size, dtype=y.dtype))


def _close(actual, desired, rtol, atol_scale=1e-12):
    actual, desired = np.asarray(actual, np.float64), np.asarray(desired, np.float64)
    atol = atol_scale * max(1.0, float(np.max(np.abs(desired))))
    np.testing.assert_allclose(actual, desired, rtol=rtol, atol=atol)


def _batch(case: Case) -> jax.Array:
    return case.p0 * jnp.array([0.9, 1.0, 1.1])


def _float32_rollout(case: Case):
    system = _cast(case.make(jnp.asarray(case.p0, jnp.float32)), jnp.float32)
    y0 = _cast(case.y0, jnp.float32)
    ys = case.simulate(None, system=system, y0=y0).ys
    for leaf in jax.tree.leaves(ys):
        assert leaf.dtype == jnp.float32, leaf.dtype
        assert np.isfinite(np.asarray(leaf)).all()
    return _flat(ys)


def _saveat(case: Case) -> ds.SaveAt:
    return ds.SaveAt(every=max(1, case.n_steps // 4))


# ------------------------------------------------------------------------------- cells


def cell_eager(case: Case):
    traj = case.simulate(case.p0)
    for leaf in jax.tree.leaves(traj.ys):
        assert leaf.shape[0] == 1
        assert np.isfinite(np.asarray(leaf)).all()


def cell_jit(case: Case):
    eager = _final(case, case.p0)
    jitted = jax.jit(lambda p: _final(case, p))(case.p0)
    _close(jitted, eager, rtol=1e-12)


def cell_vmap(case: Case):
    ps = _batch(case)
    batched = jax.jit(jax.vmap(lambda p: _final(case, p)))(ps)
    for i, p in enumerate(ps):
        _close(batched[i], _final(case, p), rtol=1e-10)


def _central(f, p0, eps):
    """Central difference of the first output of the compiled `f` (no extra compile)."""
    return (f(p0 + eps)[0] - f(p0 - eps)[0]) / (2 * eps)


def _grad_cell(name):
    def cell(case: Case):
        adjoint = ADJOINTS[name]
        f = jax.jit(jax.value_and_grad(lambda p: _loss(case, p, adjoint=adjoint)))
        p0 = jnp.asarray(case.p0)
        _, grad = f(p0)
        assert np.isfinite(grad) and grad != 0
        fd = _central(f, p0, 1e-6 * abs(case.p0))
        _close(grad, fd, rtol=case.rtol.get(name, 1e-6), atol_scale=1e-9)

    return cell


def cell_jvp(case: Case):
    p0 = jnp.asarray(case.p0)
    f = jax.jit(lambda p: jax.jvp(lambda p: _loss(case, p), (p,), (jnp.ones_like(p),)))
    _, tangent = f(p0)
    assert np.isfinite(tangent) and tangent != 0
    fd = _central(f, p0, 1e-6 * abs(case.p0))
    _close(tangent, fd, rtol=case.rtol.get("jvp", 1e-6), atol_scale=1e-9)


def cell_jacfwd(case: Case):
    p0 = jnp.asarray(case.p0)
    fwd = jax.jit(jax.jacfwd(lambda p: _final(case, p)))(p0)
    rev = jax.jit(jax.jacrev(lambda p: _final(case, p)))(p0)
    _close(fwd, rev, rtol=1e-9)


def cell_linearize(case: Case):
    p0 = jnp.asarray(case.p0)
    y, f_jvp = jax.linearize(lambda p: _final(case, p), p0)
    _close(y, _final(case, p0), rtol=1e-12)
    rev = jax.jit(jax.jacrev(lambda p: _final(case, p)))(p0)
    _close(f_jvp(jnp.ones_like(p0)), rev, rtol=1e-9)


def _fit_model(case: Case):
    saveat = _saveat(case)

    def model(p):
        return _final(case, p, saveat=saveat)

    return model


def cell_fit(case: Case):
    model = _fit_model(case)
    observed = model(jnp.asarray(case.p0))
    res = ds.fit(model, jnp.asarray(1.07 * case.p0), observed)
    _close(res.params, case.p0, rtol=1e-6)


def cell_posterior(case: Case):
    """NUTS through the rollout: from noise-free data with a small known noise scale, the
    posterior concentrates on the true parameter (a short run: it must work, not mix)."""
    model = _fit_model(case)
    p0 = jnp.asarray(case.p0)
    observed = model(p0)
    scale = 1e-3 * float(jnp.max(jnp.abs(observed))) + 1e-12
    prior = ds.Normal(1.05 * case.p0, 0.5 * abs(case.p0))
    post = ds.posterior(model, jnp.asarray(1.07 * case.p0), observed, prior=prior, sigma=scale,
                        key=jax.random.key(0), num_chains=2, num_warmup=150, num_samples=100,
                        warn=False)  # fmt: skip
    draws = np.asarray(post.draws).ravel()
    assert np.isfinite(draws).all()
    assert abs(np.median(draws) - case.p0) < 5 * draws.std() + 1e-6 * abs(case.p0)


def cell_ensemble(case: Case):
    ps = _batch(case)

    def final(p):
        return _final(case, p)

    out = ds.ensemble(final, ps).values
    _close(out, jax.jit(jax.vmap(final))(ps), rtol=1e-12)


def cell_ensemble_refill(case: Case):
    """The refill schedule (adaptive Tsit5, one lane per member at a time, blocks of 4
    steps) against `vmap` of the same adaptive rollout."""
    ps = _batch(case)
    tsit5 = ds.Tsit5(rtol=1e-8, atol=1e-8)

    def final(p):
        traj = ds.simulate(case.make(p), case.y0, t1=case.dt * case.n_steps, integrator=tsit5)
        return _flat(traj.ys)

    out = ds.ensemble(final, ps, schedule=ds.Refill(lanes=2, block=4)).values
    _close(out, jax.jit(jax.vmap(final))(ps), rtol=1e-9)


def _fused_state(case: Case):
    """The case's state in tuple form (one number per leaf), where its vector field maps
    that form to itself; else the state as it is (which the fused kernel refuses)."""
    y0 = case.y0
    if not (eqx.is_array(y0) and y0.ndim == 1):
        return y0
    tup = tuple(y0)
    try:
        out = jax.eval_shape(lambda y: case.make(case.p0).vector_field(0.0, y), tup)
    except Exception:  # noqa: BLE001 - a vector field that wants the array form
        return y0
    same = jax.tree.structure(out) == jax.tree.structure(tup)
    return tup if same and all(x.shape == () for x in jax.tree.leaves(out)) else y0


def cell_ensemble_fused(case: Case):
    """The fused kernel (Pallas' interpreter on the CPU; RK4, the tuple form of the state)
    against `vmap` of the same rollout."""
    ps = _batch(case)
    y0 = _fused_state(case)

    def final(p):
        traj = ds.simulate(case.make(p), y0, dt=case.dt, n_steps=case.n_steps, integrator=ds.RK4())
        return _flat(traj.ys)

    out = ds.ensemble(final, ps, schedule="fused").values
    _close(out, jax.jit(jax.vmap(final))(ps), rtol=1e-12)


def cell_ensemble_checkpoint(case: Case):
    """A resumable run (`checkpoint=`, one member per segment) equals the plain ensemble,
    and resuming after a lost segment gives the same result bit for bit."""
    ps = _batch(case)

    def final(p):
        return _final(case, p)

    folder = pathlib.Path(tempfile.mkdtemp())
    first = ds.ensemble(final, ps, batch_size=1, checkpoint=folder).values
    _close(first, ds.ensemble(final, ps).values, rtol=1e-12)
    (folder / "segment-00000001.npz").unlink()
    again = ds.ensemble(final, ps, batch_size=1, checkpoint=folder).values
    np.testing.assert_array_equal(again, first)


def cell_float32(case: Case):
    y32 = _float32_rollout(case)
    y64 = _final(case, case.p0)
    _close(y32, y64, rtol=case.rtol.get("float32", 1e-4), atol_scale=1e-5)


def cell_x64_float32_inputs(case: Case):
    assert jax.config.jax_enable_x64

    def model(p):
        system = _cast(case.make(p), jnp.float32)
        return _flat(case.simulate(None, system=system, y0=_cast(case.y0, jnp.float32)).ys)

    p0 = jnp.asarray(case.p0, jnp.float32)
    observed = model(p0)
    assert observed.dtype == jnp.float32
    res = ds.fit(model, jnp.asarray(1.07 * case.p0, jnp.float32), observed)
    params = jnp.asarray(res.params)
    assert params.dtype == jnp.float32, params.dtype
    _close(params, case.p0, rtol=case.rtol.get("x64_float32_inputs", 1e-3))


RUN = {
    "eager": cell_eager,
    "jit": cell_jit,
    "vmap": cell_vmap,
    **{name: _grad_cell(name) for name in ADJOINTS},
    "jvp": cell_jvp,
    "jacfwd": cell_jacfwd,
    "linearize": cell_linearize,
    "fit": cell_fit,
    "posterior": cell_posterior,
    "ensemble": cell_ensemble,
    "ensemble_refill": cell_ensemble_refill,
    "ensemble_fused": cell_ensemble_fused,
    "ensemble_checkpoint": cell_ensemble_checkpoint,
    "float32": cell_float32,
    "x64_float32_inputs": cell_x64_float32_inputs,
}


def refused(case: Case, cell: str):
    """A cell unsupported by design: the library refuses it clearly."""
    if cell in ADJOINTS:
        adjoint = ADJOINTS[cell]
        name = type(adjoint).__name__
        # A clear refusal names the adjoint; never a JAX-internals error.
        with pytest.raises((TypeError, ValueError, RuntimeError)) as info:
            jax.block_until_ready(jax.grad(lambda p: _loss(case, p, adjoint=adjoint))(case.p0))
        assert isinstance(info.value, (TypeError, ValueError)), (
            f"refused with {type(info.value).__name__}, not TypeError/ValueError: {info.value}"
        )
        assert name in str(info.value), str(info.value)
    elif cell == "float32":
        # Declared limitation: float32 runs, but along a different noise path.
        y32 = _float32_rollout(case)
        y64 = np.asarray(_final(case, case.p0))
        assert not np.allclose(y32, y64, rtol=1e-3, atol=1e-4), (
            "float32 now follows float64's path: move the cell to supported in cases.py"
        )
    elif cell == "ensemble_refill":
        with pytest.raises(ValueError, match="stochastic"):
            cell_ensemble_refill(case)
    elif cell == "ensemble_fused":
        # The fused schedule's refusal, or (noise) the deterministic integrator's.
        with pytest.raises(ValueError, match="schedule='fused' cannot run this fn|stochastic"):
            cell_ensemble_fused(case)
    else:
        pytest.fail(f"no refusal check for an unsupported {cell!r} cell")


# ------------------------------------------------------------------------------- tests


def _params():
    for system in SYSTEMS:
        for cell in CELLS:
            marks = [] if cell in DEFAULT_CELLS else [pytest.mark.slow]
            if (system, cell) in XFAIL:
                marks.append(pytest.mark.xfail(strict=True, reason=XFAIL[system, cell]))
            yield pytest.param(system, cell, id=f"{system}-{cell}", marks=marks)


@pytest.mark.parametrize("system, cell", list(_params()))
def test_cell(system, cell):
    if system not in CASES:
        pytest.fail(f"{system} has no Case: add one in tests/conformance/cases.py")
    case = CASES[system]
    assert isinstance(case.make(case.p0), SYSTEMS[system])
    if cell in case.unsupported:
        refused(case, cell)
    else:
        RUN[cell](case)


def test_every_system_has_a_case():
    missing = sorted(set(SYSTEMS) - set(CASES))
    assert not missing, f"systems without a Case: {missing}; add one in tests/conformance/cases.py"
    stale = sorted(set(CASES) - set(SYSTEMS))
    assert not stale, f"Cases for systems not in ds.systems: {stale}"
    for name, case in CASES.items():
        unknown = set(case.unsupported) - set(CELLS)
        assert not unknown, f"{name}: unknown cells {unknown}"
        assert all(case.unsupported.values()), f"{name}: every unsupported cell needs a reason"
    assert set(RUN) == set(CELLS)


def test_docs_table_is_up_to_date():
    path = pathlib.Path(__file__).resolve().parents[2] / "docs" / "conformance.md"
    assert path.exists() and path.read_text() == table.render(), (
        "docs/conformance.md is out of date: run "
        "`.venv/bin/python -m tests.conformance.table > docs/conformance.md`"
    )
