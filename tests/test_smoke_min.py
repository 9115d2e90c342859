"""Smoke tests for the declared dependency floors (`make test-min` runs them, with
tests/test_readme.py, in a venv that has exactly the lowest versions pyproject.toml
declares). They touch each part that leans on a recent JAX/equinox/diffrax API: the
fixed-step scan and its adjoints, diffrax's adaptive and implicit solvers, the runtime
error model (eager and under jit), ensembles with failure reports and sharding, a fit,
and a scenario through the `diffsim` command. In the normal suite they are skipped: each
repeats, at the current versions, what the package's own tests check in more depth (and
make test stays within CI's 15 minutes)."""

import subprocess
import sys

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import diffsim as ds

pytestmark = pytest.mark.skipif(
    not __import__("os").environ.get("DIFFSIM_TEST_MIN"), reason="make test-min only"
)


def _final_angle(length, adjoint, integrator=ds.RK4()):
    # Undamped: ds.Reversible needs a velocity-independent force.
    p = ds.systems.Pendulum(length=length, damping=0.0)
    y0 = p.initial_state(1.0)
    return ds.simulate(p, y0, t1=1.0, dt=0.01, integrator=integrator, adjoint=adjoint).ys.q


@pytest.mark.parametrize("adjoint", [ds.Direct(), ds.Checkpointed(), ds.Reversible()])
def test_gradients_match_finite_differences(adjoint):
    integrator = ds.Leapfrog() if isinstance(adjoint, ds.Reversible) else ds.RK4()
    g = jax.grad(lambda L: _final_angle(L, adjoint, integrator)[0])(1.2)
    h = 1e-5
    fd = _final_angle(1.2 + h, adjoint, integrator) - _final_angle(1.2 - h, adjoint, integrator)
    assert np.isclose(g, fd[0] / (2 * h), rtol=1e-4)


def test_forward_mode_and_vmap():
    f = lambda L: _final_angle(L, ds.Direct())[0]  # noqa: E731
    assert np.isclose(jax.jacfwd(f)(1.2), jax.grad(f)(1.2), rtol=1e-8)
    batch = jax.vmap(f)(jnp.linspace(0.5, 2.0, 8))
    assert batch.shape == (8,) and np.all(np.isfinite(batch))


@pytest.mark.parametrize("integrator", [ds.Tsit5(), ds.Kvaerno5()])
def test_adaptive_solvers_and_backsolve(integrator):
    osc = ds.systems.HarmonicOscillator(omega=2.0)
    y0 = osc.initial_state(1.0)
    traj = ds.simulate(osc, y0, t1=1.0, integrator=integrator)
    assert np.isclose(traj.ys.q[-1], np.cos(2.0), atol=1e-4)

    def loss(omega):
        o = ds.systems.HarmonicOscillator(omega=omega)
        return ds.simulate(o, y0, t1=1.0, integrator=integrator, adjoint=ds.Backsolve()).ys.q[-1]

    assert np.isclose(jax.grad(loss)(2.0), -np.sin(2.0), atol=1e-3)  # d cos(w t)/dw at t=1


def test_runtime_errors_eager_and_under_jit():
    blowup = ds.ODESystem(lambda t, y, k: k * y**2, 1.0)  # y' = y^2 blows up at t = 1
    with pytest.raises(ds.NonFiniteStateError, match="step"):
        ds.simulate(blowup, jnp.array(1.0), t1=2.0, dt=0.01)
    traj = ds.simulate(blowup, jnp.array(1.0), t1=2.0, dt=0.01, throw=False)
    assert not traj.result.is_success() if hasattr(traj.result, "is_success") else True
    jitted = eqx.filter_jit(lambda y0: ds.simulate(blowup, y0, t1=2.0, dt=0.01).ys)
    with pytest.raises(Exception, match="non-finite|NaN|inf"):
        jax.block_until_ready(jitted(jnp.array(1.0)))


def test_ensemble_reports_the_failed_member():
    ks = jnp.array([0.1, 0.2, 5.0, 0.3])  # member 2 blows up before t = 1

    def run(k):
        system = ds.ODESystem(lambda t, y, k: k * y**2, k)
        return ds.simulate(system, jnp.array(1.0), t1=1.0, dt=0.01, throw=False)

    res = ds.ensemble(run, ks, batch_size=2, throw=False)
    assert res.num_failed == 1 and int(res.failed_indices[0]) == 2


def test_ensemble_over_a_device_mesh():
    res = ds.ensemble(lambda x: x**2, jnp.arange(8.0), devices=jax.devices()[:1], batch_size=4)
    assert np.allclose(res.values, np.arange(8.0) ** 2)


def test_fit_recovers_a_pendulum():
    ts = jnp.linspace(0.0, 3.0, 31)
    model = ds.TrajectoryModel(
        build=lambda p: (p, p.initial_state(1.0)), ts=ts, dt=0.01, observe=lambda t, y: y.q
    )
    data = model(ds.systems.Pendulum(length=1.3, damping=0.2))
    res = ds.fit(
        model,
        ds.systems.Pendulum(length=1.0, damping=0.05),
        data,
        where=lambda p: (p.length, p.damping),
    )
    assert np.allclose([res.params.length, res.params.damping], [1.3, 0.2], rtol=1e-4)


def test_a_scenario_runs_from_the_command(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "diffsim", "run", "fit_pendulum", "--smoke", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert list(tmp_path.glob("*.png"))


# At the floors this checks blackjax's oldest declared version.
def test_posterior_samples_at_the_floors():
    xs = jnp.linspace(0.0, 1.0, 10)
    post = ds.posterior(lambda p: p["a"] * xs, {"a": 1.0}, 2.0 * xs, prior={"a": ds.HalfNormal(5.0)},
                        sigma=0.1, key=jax.random.key(0), num_chains=2, num_warmup=200,
                        num_samples=200, warn=False)  # fmt: skip
    assert abs(float(post.samples["a"].mean()) - 2.0) < 0.1


def test_sparse_regression_finds_a_law_and_runs_it():
    xy = jnp.asarray(np.random.default_rng(0).uniform(0.5, 2.0, (100, 2)))
    law = ds.sparse_regression(ds.Library.polynomial(["x", "y"], 2), xy, -0.9 * xy[:, 0] * xy[:, 1])
    assert law.found and law.active == ((4, 0),)
    assert np.isclose(float(eqx.filter_jit(law)(jnp.array([1.0, 2.0]))), -1.8)


def test_refill_schedule_and_resumable_run(tmp_path):
    """The refill loop uses diffrax's stepping API (and two of its private helpers)."""

    def vdp(mu):
        field = ds.ODESystem(
            lambda t, y, mu: jnp.stack([y[1], mu * (1 - y[0] ** 2) * y[1] - y[0]]), mu
        )
        return ds.simulate(field, jnp.array([2.0, 0.0]), t1=5.0, integrator=ds.Tsit5(), throw=False)

    mus = jnp.geomspace(1.0, 20.0, 20)
    refill = ds.ensemble(vdp, mus, schedule=ds.Refill(lanes=4, block=8))
    vmapped = ds.ensemble(vdp, mus, schedule="vmap")
    np.testing.assert_allclose(refill.values.ys, vmapped.values.ys, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(
        refill.values.stats["num_steps"], vmapped.values.stats["num_steps"]
    )
    first = ds.ensemble(vdp, mus, batch_size=8, checkpoint=tmp_path)
    again = ds.ensemble(vdp, mus, batch_size=8, checkpoint=tmp_path)
    np.testing.assert_array_equal(first.values.ys, again.values.ys)
