"""ensemble(): equals a loop of simulate; chunking, sharding, failures, errors, and
jit/vmap/grad composition. Streaming statistics: test_reducers.py; sampling designs:
test_sampling.py."""

import logging
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import diffsim as ds

from .helpers import RHOS, Y0, lorenz_run


def _blows_up(y0):
    # y' = y^2 blows up at t = 1 / y0: members with y0 > 0.5 fail before t = 2.
    system = ds.ODESystem(lambda t, y, p: p * y**2, 1.0)
    return ds.simulate(system, y0, t1=2.0, dt=0.01, throw=False)


BLOWUP_Y0 = jnp.array([0.1, 1.0, 0.2, 3.0, 0.1, 0.3, 0.6, 0.2, 0.4, 0.05])
BLOWUP_BAD = [1, 3, 6]


# --------------------------------------------------------------------------------------
# Equal to a loop; chunking.


def test_ensemble_equals_python_loop_of_simulate(loop):
    res = ds.ensemble(lorenz_run, RHOS)
    assert isinstance(res, ds.EnsembleResult)
    assert res.values.ys.shape == (11, 11, 3) and res.num_members == 11
    np.testing.assert_allclose(res.values.ys, loop, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(res.values.ts[0], np.linspace(0.0, 1.0, 11), atol=1e-14)
    assert int(res.num_failed) == 0 and not np.asarray(res.failed).any()
    assert (np.asarray(res.failed_indices) == -1).all()
    assert bool((res.values.result == ds.RESULTS.successful).all())


def test_chunked_equals_unchunked(loop):
    # 11 members in chunks of 4: the last chunk (members 7..10) overlaps the one before.
    res = ds.ensemble(lorenz_run, RHOS, batch_size=4)
    np.testing.assert_allclose(res.values.ys, loop, rtol=1e-12, atol=1e-12)
    assert int(res.num_failed) == 0


def test_batched_systems_states_and_shared_floats():
    # A batched system (array field), a batched initial state and a shared Python float.
    systems = ds.systems.Lorenz(rho=RHOS[:5], beta=jnp.linspace(1.0, 3.0, 5))
    y0s = Y0 + 0.1 * jnp.arange(5.0)[:, None]

    def run(system, y0, sigma):
        system = ds.systems.Lorenz(rho=system.rho, beta=system.beta, sigma=sigma)
        return ds.simulate(system, y0, n_steps=20, dt=1e-2).ys[-1]

    res = ds.ensemble(run, systems, y0s, 9.0, batch_size=2)
    for i in range(5):
        one = ds.systems.Lorenz(rho=RHOS[i], beta=systems.beta[i])
        expected = run(one, y0s[i], 9.0)
        np.testing.assert_allclose(res.values[i], expected, rtol=1e-12)


def test_sampled_systems_and_keys():
    key = jax.random.key(1)
    systems = ds.sample(
        key,
        ds.systems.Lorenz(),
        6,
        where=lambda s: (s.rho, s.beta),
        dist=(ds.Uniform(0.0, 21.0), ds.LogUniform(1.0, 3.0)),
    )
    keys = jax.random.split(key, 6)

    def run(system, key):
        y0 = Y0 + 0.01 * jax.random.normal(key, (3,))
        return ds.simulate(system, y0, n_steps=20, dt=0.01).ys[-1]

    res = ds.ensemble(run, systems, keys, batch_size=4)
    for i in range(6):
        system = ds.systems.Lorenz(rho=systems.rho[i], beta=systems.beta[i])
        np.testing.assert_allclose(res.values[i], run(system, keys[i]), rtol=1e-12)


def test_float32_stays_float32():
    rhos = RHOS.astype(jnp.float32)

    def run(rho):
        return ds.simulate(ds.systems.Lorenz(rho=rho), Y0.astype(jnp.float32), t1=0.1, dt=0.01)

    res = ds.ensemble(run, rhos, batch_size=4, throw=False)
    assert res.values.ys.dtype == jnp.float32
    loop = np.stack([np.asarray(run(rho).ys) for rho in rhos])
    np.testing.assert_allclose(res.values.ys, loop, rtol=1e-6)
    stats = ds.ensemble(lambda x: x, res.values.ys, batch_size=4, reduce=ds.Moments()).values
    assert stats.mean.dtype == jnp.float32
    np.testing.assert_allclose(stats.mean, np.mean(loop, 0), rtol=1e-6)


# --------------------------------------------------------------------------------------
# Failures.


def test_failed_members_isolated_and_reported():
    res = ds.ensemble(_blows_up, BLOWUP_Y0, throw=False)
    assert int(res.num_failed) == 3
    assert np.asarray(res.failed_indices)[:3].tolist() == BLOWUP_BAD
    assert (np.asarray(res.failed_indices)[3:] == -1).all()
    assert np.asarray(res.failed).tolist() == [i in BLOWUP_BAD for i in range(10)]
    for j, i in enumerate(BLOWUP_BAD):
        alone = _blows_up(BLOWUP_Y0[i])
        assert int(res.failed_steps[j]) == int(alone.stats["nonfinite_step"]) > 0
    codes = np.asarray(res.failed_results == ds.RESULTS.nonfinite)
    assert codes.tolist() == [True] * 3 + [False] * 7  # padding holds `successful`
    ok = [i for i in range(10) if i not in BLOWUP_BAD]
    expected = np.stack([np.asarray(_blows_up(BLOWUP_Y0[i]).ys) for i in ok])
    np.testing.assert_allclose(np.asarray(res.values.ys)[ok], expected, rtol=1e-12)
    assert "3 of 10 members failed: 1 (step" in res.report()


def test_failed_members_left_out_of_statistics():
    res = ds.ensemble(_blows_up, BLOWUP_Y0, batch_size=3, reduce=ds.Moments(), throw=False)
    ok = np.array([i not in BLOWUP_BAD for i in range(10)])
    finals = np.stack([np.asarray(_blows_up(y).ys) for y in BLOWUP_Y0[ok]])
    assert int(res.values.count) == 7 and int(res.num_failed) == 3
    np.testing.assert_allclose(res.values.mean.ys, finals.mean(0), rtol=1e-12)
    np.testing.assert_allclose(res.values.variance.ys, finals.var(0), rtol=1e-10)
    assert np.asarray(res.failed_indices)[:3].tolist() == BLOWUP_BAD
    assert np.asarray(res.failed_steps)[:3].min() > 0
    assert res.failed_indices.shape == (10,)  # min(members, MAX_REPORTED_FAILURES)


def test_nonfinite_output_without_trajectory_counts_as_failure():
    res = ds.ensemble(lambda x: jnp.log(x), jnp.array([1.0, -1.0, 2.0]), throw=False)
    assert int(res.num_failed) == 1 and int(res.failed_indices[0]) == 1
    assert int(res.failed_steps[0]) == -1  # no step is known without a Trajectory
    with pytest.raises(ds.SimulationError, match="member 1 failed: its output is non-finite"):
        ds.ensemble(lambda x: jnp.log(x), jnp.array([1.0, -1.0, 2.0]))


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"batch_size": 3, "reduce": ds.Moments()}],
    ids=["whole", "chunked-reduced"],
)
def test_throw_names_first_failed_member(kwargs):
    step = int(_blows_up(BLOWUP_Y0[1]).stats["nonfinite_step"])
    with pytest.raises(
        ds.SimulationError, match=f"member 1 failed: .* non-finite .* at step {step}"
    ):
        ds.ensemble(_blows_up, BLOWUP_Y0, **kwargs)
    # The first failure is member 1 even when a later chunk fails too.
    with pytest.raises(ds.SimulationError, match="member 3 failed"):
        ds.ensemble(_blows_up, BLOWUP_Y0.at[1].set(0.1), **kwargs)


def test_throw_under_jit():
    f = jax.jit(lambda y0: ds.ensemble(_blows_up, y0, batch_size=4).values.ys)
    assert np.isfinite(f(jnp.full(10, 0.1))).all()
    with pytest.raises(Exception, match="member 3 failed"):
        f(BLOWUP_Y0.at[1].set(0.1)).block_until_ready()


def test_simulate_throwing_inside_fn_is_reported_by_member():
    # simulate(..., throw=True) inside fn hands its failure to ds.ensemble, which names
    # the member by its index in the ensemble, whatever the chunking, with its step.
    def strict(y0):
        system = ds.ODESystem(lambda t, y, p: p * y**2, 1.0)
        return ds.simulate(system, y0, t1=2.0, dt=0.01).ys  # throw=True

    step = int(_blows_up(BLOWUP_Y0[1]).stats["nonfinite_step"])
    with pytest.raises(ds.NonFiniteStateError, match=f"member 1 failed: .* at step {step}"):
        ds.ensemble(strict, BLOWUP_Y0, batch_size=3)

    # Nested in a transformation of its own inside fn, simulate cannot hand its status
    # out: it returns NaN where it failed, and the member is still reported.
    def nested(y0):
        return jax.vmap(strict)(jnp.stack([y0, 0.5 * y0]))

    with pytest.raises(ds.SimulationError, match="member 1 failed: its output is non-finite"):
        ds.ensemble(nested, BLOWUP_Y0, batch_size=3)


def test_caught_failure_prints_nothing(capfd):
    with pytest.raises(ds.SimulationError):
        ds.ensemble(_blows_up, BLOWUP_Y0)
    with pytest.raises(ds.SimulationError):
        ds.simulate(ds.ODESystem(lambda t, y, p: y**2, None), jnp.array(1.0), t1=2.0, dt=0.01)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


# --------------------------------------------------------------------------------------
# Errors name the argument.


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        ds.ensemble(lorenz_run, RHOS, batch_size=0)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        ds.ensemble(lorenz_run, RHOS, batch_size=2.5)
    with pytest.raises(
        ValueError, match=r"batched_args\[1\] has leading axis 3 but batched_args\[0\] has 11"
    ):
        ds.ensemble(lambda a, b: a + b, RHOS, jnp.ones(3))
    with pytest.raises(
        ValueError,
        match=r"batched_args\[0\]\.beta has leading axis 3 but batched_args\[0\]\.rho has 2",
    ):
        ds.ensemble(lorenz_run, ds.systems.Lorenz(rho=jnp.ones(2), beta=jnp.ones(3)))
    with pytest.raises(ValueError, match=r"batched_args\[0\] is a 0-d array"):
        ds.ensemble(lorenz_run, jnp.asarray(1.0))
    with pytest.raises(ValueError, match="at least one batched argument"):
        ds.ensemble(lorenz_run)
    with pytest.raises(ValueError, match="0 members"):
        ds.ensemble(lorenz_run, jnp.zeros(0))
    with pytest.raises(TypeError, match="fn must be callable"):
        ds.ensemble("lorenz", RHOS)
    with pytest.raises(TypeError, match="reduce must be None, a reducer"):
        ds.ensemble(lorenz_run, RHOS, reduce="mean")
    with pytest.raises(TypeError, match="devices must be"):
        ds.ensemble(lorenz_run, RHOS, devices=3)
    with pytest.raises(ValueError, match="Histogram needs finite low < high"):
        ds.Histogram(low=1.0, high=-1.0)
    with pytest.raises(ValueError, match="Quantiles\\(q=...\\) must be"):
        ds.Quantiles(q=(0.5, 1.5), low=0.0, high=1.0)


# --------------------------------------------------------------------------------------
# jit, vmap, grad; no recompilation; progress.


def test_no_recompilation_on_second_call(caplog):
    ds.ensemble(lorenz_run, RHOS, batch_size=4)
    with jax.log_compiles(), caplog.at_level(logging.WARNING):
        caplog.clear()
        ds.ensemble(lorenz_run, RHOS + 1.0, batch_size=4)
        ds.ensemble(lorenz_run, RHOS * 0.5, batch_size=4)
    compiles = [r for r in caplog.records if "Compiling" in r.getMessage()]
    assert not [r for r in compiles if "_ensemble" in r.getMessage()], compiles


def test_grad_through_chunked_ensemble_matches_vmap():
    # A parameter shared by all members (closed over) and one per member (batched).
    def mean_final_x(sigma, rhos, batch_size):
        def run(rho):
            system = ds.systems.Lorenz(rho=rho, sigma=sigma)
            return ds.simulate(system, Y0, n_steps=30, dt=0.01).ys[-1, 0]

        res = ds.ensemble(run, rhos, batch_size=batch_size, reduce=ds.Moments())
        return res.values.mean

    def reference(sigma, rhos):
        def run(rho):
            system = ds.systems.Lorenz(rho=rho, sigma=sigma)
            return ds.simulate(system, Y0, n_steps=30, dt=0.01).ys[-1, 0]

        return jnp.mean(jax.vmap(run)(rhos))

    g_ref = jax.grad(reference, argnums=(0, 1))(10.0, RHOS)
    g = jax.jit(jax.grad(mean_final_x, argnums=(0, 1)), static_argnums=2)(10.0, RHOS, 4)
    np.testing.assert_allclose(g[0], g_ref[0], rtol=1e-10)
    np.testing.assert_allclose(g[1], g_ref[1], rtol=1e-10, atol=1e-14)
    assert float(jnp.abs(g[1]).max()) > 1e-3  # the per-member gradients are not trivial


def test_vmap_over_ensemble():
    def final(scale):
        def run(rho):
            return ds.simulate(ds.systems.Lorenz(rho=rho * scale), Y0, n_steps=20, dt=0.01).ys[-1]

        return ds.ensemble(run, RHOS, batch_size=4).values

    scales = jnp.array([0.5, 1.0])
    batched = jax.vmap(final)(scales)
    for i, scale in enumerate(scales):
        for j in (0, 10):
            system = ds.systems.Lorenz(rho=RHOS[j] * scale)
            expected = ds.simulate(system, Y0, n_steps=20, dt=0.01).ys[-1]
            np.testing.assert_allclose(batched[i, j], expected, rtol=1e-12)


def test_progress_prints_chunks(capsys):
    ds.ensemble(lorenz_run, RHOS, batch_size=4, progress=True)
    jax.effects_barrier()
    err = capsys.readouterr().err
    assert "chunk 1/3" in err and "chunk 3/3 (100%)" in err
    ds.ensemble(lorenz_run, RHOS, batch_size=4)
    jax.effects_barrier()
    assert "chunk" not in capsys.readouterr().err  # off by default
    # Not a terminal (captured here): whole lines, about one per 10% of 40 chunks.
    ds.ensemble(lambda x: 2 * x, jnp.arange(40.0), batch_size=1, progress=True)
    jax.effects_barrier()
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert "\r" not in err and 10 <= len(lines) <= 12, lines
    assert lines[0].startswith("ds.ensemble: chunk 1/40") and "chunk 40/40 (100%)" in lines[-1]


# --------------------------------------------------------------------------------------
# Devices: 8 CPU devices in a subprocess (XLA_FLAGS must be set before jax starts).

_HEADER = """
import os
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
import jax, jax.numpy as jnp, numpy as np
jax.config.update("jax_enable_x64", True)
from jax.sharding import Mesh
import diffsim as ds
from tests.ensembles.helpers import lorenz_run
from tests.ensembles.test_ensemble import _blows_up, BLOWUP_Y0

assert len(jax.devices()) == 8
"""

_SHARDED = """
rhos = jnp.linspace(0.0, 21.0, 37)  # not a multiple of 8: the last device is padded
one = ds.ensemble(lorenz_run, rhos)
many = ds.ensemble(lorenz_run, rhos, devices=jax.devices(), batch_size=2)
np.testing.assert_allclose(many.values.ys, one.values.ys, rtol=1e-12, atol=1e-12)
mesh = Mesh(np.array(jax.devices()), ("batch",))
# Statistics merged across devices, of the stored trajectories (a cheap fn, so that
# the test spends its time on sharding, not on compiling simulate again).
reduce = {"m": ds.Moments(), "q": ds.Quantiles(q=(0.1, 0.5, 0.9), low=-30.0, high=30.0),
          "r": ds.MinMax()}
ys = one.values.ys
a = ds.ensemble(lambda y: y, ys, batch_size=5, reduce=reduce).values
b = ds.ensemble(lambda y: y, ys, devices=mesh, batch_size=2, reduce=reduce).values
assert int(b["m"].count) == 37
np.testing.assert_allclose(b["m"].mean, a["m"].mean, rtol=1e-12, atol=1e-13)
np.testing.assert_allclose(b["m"].variance, a["m"].variance, rtol=1e-10, atol=1e-20)
np.testing.assert_allclose(b["m"].mean, np.mean(ys, 0), rtol=1e-12, atol=1e-13)
np.testing.assert_allclose(b["q"], a["q"], rtol=1e-12, atol=1e-12)
np.testing.assert_array_equal(b["r"].max, np.max(ys, 0))
print("SHARDED OK")
"""

_SHARDED_FAILURES = """
# Failures across devices: reported in order, the first one raised.
y0 = jnp.concatenate([BLOWUP_Y0, jnp.full(7, 0.1)])
res = ds.ensemble(_blows_up, y0, devices=jax.devices(), throw=False, reduce=ds.Moments())
assert int(res.num_failed) == 3 and np.asarray(res.failed_indices)[:4].tolist() == [1, 3, 6, -1]
assert int(res.values.count) == 14
try:  # the same program as above (throw is checked on the host)
    ds.ensemble(_blows_up, y0, devices=jax.devices(), reduce=ds.Moments())
    raise AssertionError("no error")
except ds.SimulationError as e:
    assert "member 1 failed" in str(e) and "3 of 17 members failed" in str(e), e
# simulate's own error inside fn on one device fails the run cleanly (no device is left
# waiting in a collective for the failed one).
def strict(y0):  # simulate with throw=True
    return ds.simulate(ds.ODESystem(lambda t, y, p: p * y**2, 1.0), y0, t1=2.0, dt=0.01).ys
try:
    ds.ensemble(strict, y0, devices=jax.devices())
    raise AssertionError("no error")
except ds.SimulationError as e:
    assert "within one chunk of 3 members" in str(e), e
# Under jit, throw=True cannot be checked on the host after a sharded run.
try:
    jax.jit(lambda y: ds.ensemble(_blows_up, y, devices=jax.devices()).num_failed)(y0)
    raise AssertionError("no error")
except ValueError as e:
    assert "throw=False" in str(e)
n_failed = jax.jit(
    lambda y: ds.ensemble(_blows_up, y, devices=jax.devices(), throw=False).num_failed)(y0)
assert int(n_failed) == 3
print("SHARDED OK")
"""


def _run_on_8_devices(script: str):
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=str(root))
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_HEADER + script)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "SHARDED OK" in out.stdout, out.stderr[-3000:]


@pytest.mark.slow  # a subprocess with 8 host devices, ~9 s
def test_sharded_equals_unsharded_on_8_host_devices():
    _run_on_8_devices(_SHARDED)


@pytest.mark.slow
def test_sharded_failures_on_8_host_devices():
    _run_on_8_devices(_SHARDED_FAILURES)


# Two processes on localhost, 4 CPU devices each, joined by JAX's own distributed runtime
# (jax.distributed.initialize, gloo collectives on CPU): one 8-device mesh across hosts.
_MULTIHOST = """
import os, sys
process_id, port = int(sys.argv[1]), sys.argv[2]
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
import jax
jax.config.update("jax_enable_x64", True)
jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.distributed.initialize(f"localhost:{port}", num_processes=2, process_id=process_id)
import jax.numpy as jnp, numpy as np
import diffsim as ds
from tests.ensembles.helpers import lorenz_run
from tests.ensembles.test_ensemble import _blows_up, BLOWUP_Y0

assert jax.process_count() == 2 and len(jax.devices()) == 8 and len(jax.local_devices()) == 4
rhos = jnp.linspace(0.0, 21.0, 37)
reduce = {"m": ds.Moments(), "r": ds.MinMax()}
many = ds.ensemble(lorenz_run, rhos, devices=jax.devices(), batch_size=2, reduce=reduce)
one = ds.ensemble(lorenz_run, rhos, reduce=reduce)
np.testing.assert_allclose(many.values["m"].mean.ys, one.values["m"].mean.ys, rtol=1e-12)
np.testing.assert_allclose(many.values["m"].variance.ys, one.values["m"].variance.ys, rtol=1e-10, atol=1e-20)
np.testing.assert_allclose(many.values["r"].max.ys, one.values["r"].max.ys, rtol=1e-12)
res = ds.ensemble(_blows_up, BLOWUP_Y0, devices=jax.devices(), reduce=ds.Moments(), throw=False)
assert np.asarray(res.failed_indices)[:4].tolist() == [1, 3, 6, -1]
print("MULTIHOST OK", process_id)
"""


@pytest.mark.slow
def test_two_processes_on_localhost():
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=str(root))
    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = str(s.getsockname()[1])
    script = textwrap.dedent(_MULTIHOST)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(i), port],
            cwd=root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    for i, (out, err) in enumerate(outs):
        assert f"MULTIHOST OK {i}" in out, err[-3000:]


def test_trajectories_vmapped_inside_fn():
    # Each member runs two rollouts (vmapped inside fn): the member fails with the first
    # failed rollout's step.
    def pair(y0s):
        return jax.vmap(_blows_up)(y0s)

    res = ds.ensemble(pair, jnp.array([[0.1, 0.2], [0.1, 1.0], [3.0, 0.1]]), throw=False)
    assert np.asarray(res.failed_indices).tolist() == [1, 2, -1]
    steps = [int(_blows_up(jnp.asarray(y)).stats["nonfinite_step"]) for y in (1.0, 3.0)]
    assert np.asarray(res.failed_steps)[:2].tolist() == steps
