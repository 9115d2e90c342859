"""`refill_solve` against diffrax: every member equals its own `diffeqsolve` (values to
rounding, saved times, step counts and result codes exactly), whatever the lanes and
block, failures stay in their member."""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffsim.ensembles._refill import refill_solve

TSIT5 = diffrax.Tsit5()
PID = diffrax.PIDController(rtol=1e-6, atol=1e-6)


def vdp(t, y, mu):
    return jnp.stack([y[1], mu * (1 - y[0] ** 2) * y[1] - y[0]])


def blow_up(t, y, a):
    return a * y**2  # y(t) = 1 / (1 - a t): infinite at t = 1/a


def _one(vf, solver, ctrl, max_steps, save_t0, y0, t0, t1, dt0, args, ts):
    saveat = diffrax.SaveAt(t0=save_t0, t1=True, ts=ts)
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(vf), solver, t0, t1, dt0, y0, args, saveat=saveat,
        stepsize_controller=ctrl, max_steps=max_steps, throw=False,
    )  # fmt: skip
    stats = [sol.stats[k] for k in ("num_steps", "num_accepted_steps", "num_rejected_steps")]
    return sol.ts, sol.ys, jax.tree.leaves(sol.result)[0], jnp.stack(stats)


@eqx.filter_jit
def own(vf, solver, ctrl, max_steps, save_t0, members):
    """Each member alone: `lax.map` runs the unbatched `diffeqsolve` one at a time."""
    return jax.lax.map(lambda m: _one(vf, solver, ctrl, max_steps, save_t0, *m), members)


@eqx.filter_jit
def vmapped(vf, solver, ctrl, max_steps, save_t0, members):
    return jax.vmap(lambda *m: _one(vf, solver, ctrl, max_steps, save_t0, *m))(*members)


def refill(vf, solver, ctrl, max_steps, save_t0, members, lanes=8, block=16):
    y0, t0, t1, dt0, args, ts = members
    return refill_solve(
        vf, solver, ctrl, args, y0, t0, t1, dt0, ts=ts, save_t0=save_t0,
        max_steps=max_steps, lanes=lanes, block=block,
    )  # fmt: skip


def check(sol, ref, rtol, values=slice(None)):
    """Codes and counts exactly; times and the `values` members' states to `rtol`."""
    ts, ys, result, stats = ref
    np.testing.assert_array_equal(jax.tree.leaves(sol.result)[0], result)
    counts = jnp.stack([sol.num_steps, sol.num_accepted_steps, sol.num_rejected_steps], 1)
    np.testing.assert_array_equal(counts, stats)
    np.testing.assert_allclose(sol.ts, ts, rtol=rtol)
    np.testing.assert_allclose(sol.ys[values], ys[values], rtol=rtol, atol=rtol)


def vdp_members(n, t1=10.0, with_ts=True, dtype=jnp.float64, backward=0):
    """`n` Van der Pol members, mu log-spaced in [1, 100], from [2, 0]; the last
    `backward` ones run from t1 back to 0 (mu = 1 there: stable enough backwards)."""
    mu = jnp.logspace(0, 2, n, dtype=dtype)
    mu = mu.at[n - backward :].set(1.0)
    y0 = jnp.tile(jnp.array([2.0, 0.0], dtype), (n, 1))
    t0 = jnp.zeros(n, dtype).at[n - backward :].set(2.0)
    t1 = jnp.full(n, t1, dtype).at[n - backward :].set(0.0)
    frac = jnp.linspace(0.2, 0.9, n, dtype=dtype)[:, None] * jnp.array([0.3, 0.6, 1.0], dtype)
    ts = t0[:, None] + (t1 - t0)[:, None] * frac if with_ts else None
    return y0, t0, t1, None, mu, ts


@pytest.fixture(scope="module")
def members():
    return vdp_members(64)


@pytest.fixture(scope="module")
def with_ts(members):
    return refill(vdp, TSIT5, PID, 4096, True, members)


def test_every_member_equals_its_own_solve(members, with_ts):
    ref = own(vdp, TSIT5, PID, 4096, True, members)
    check(with_ts, ref, rtol=1e-9)
    steps = np.asarray(with_ts.num_steps)
    assert steps.max() > 5 * steps.min()  # heterogeneous: lockstep would waste steps
    assert with_ts.ts.shape == (64, 5) and np.all(with_ts.ts[:, 0] == 0)
    np.testing.assert_array_equal(with_ts.ts[:, 1:4], members[-1])


def test_without_ts_or_t0():
    members = vdp_members(64, with_ts=False)
    sol = refill(vdp, TSIT5, PID, 4096, False, members)
    check(sol, own(vdp, TSIT5, PID, 4096, False, members), rtol=1e-9)
    assert sol.ts.shape == (64, 1) and np.all(sol.ts == 10.0)


def test_equals_vmap_of_diffeqsolve(members, with_ts):
    check(with_ts, vmapped(vdp, TSIT5, PID, 4096, True, members), rtol=1e-9)


@pytest.mark.slow  # compile-heavy (~5-10 s); make test-slow
@pytest.mark.parametrize(
    "lanes, block, n, backward",
    [(100, 16, 21, 0), (1, 16, 21, 0), (8, 1, 21, 0), (5, 7, 21, 4)],
    ids=["lanes>=N", "lanes=1", "block=1", "N%lanes!=0,backward"],
)
def test_lanes_and_blocks(lanes, block, n, backward):
    members = vdp_members(n, t1=4.0, backward=backward)
    sol = refill(vdp, TSIT5, PID, 4096, True, members, lanes=lanes, block=block)
    ref = own(vdp, TSIT5, PID, 4096, True, members)
    check(sol, ref, rtol=0 if lanes == 1 else 1e-9)  # one lane: the scalar arithmetic


def test_max_steps_fails_only_the_stiff_members(members):
    sol = refill(vdp, TSIT5, PID, 300, True, members)
    check(sol, own(vdp, TSIT5, PID, 300, True, members), rtol=1e-9)
    failed = np.asarray(sol.result == diffrax.RESULTS.max_steps_reached)
    assert 0 < failed.sum() < 64 and failed[-1] and not failed[0]
    assert np.all(np.asarray(sol.num_steps)[failed] == 300)
    # diffrax saves where it stopped in the slot after the last save: never at t1.
    assert not np.any(np.asarray(sol.ts[failed]) == 10.0)


@pytest.mark.slow  # compile-heavy (~5-10 s); make test-slow
def test_blow_up_fails_only_its_member():
    n = 6
    a = jnp.array([0.01, 1.0, 0.05, 0.5, 0.02, 0.2])  # 1/a < 10: blows up before t1
    ts = jnp.tile(jnp.array([0.5, 3.0, 8.0]), (n, 1))
    members = (jnp.ones((n, 1)), jnp.zeros(n), jnp.full(n, 10.0), None, a, ts)
    sol = refill(blow_up, TSIT5, PID, 2000, False, members, lanes=2, block=4)
    ok = np.asarray(sol.result == diffrax.RESULTS.successful)
    # Near the singularity rounding is amplified without bound: compare the others.
    check(sol, own(blow_up, TSIT5, PID, 2000, False, members), rtol=1e-9, values=ok)
    # diffrax's code for a blow-up: the step size collapses until max_steps.
    blown = np.asarray(sol.result == diffrax.RESULTS.max_steps_reached)
    np.testing.assert_array_equal(ok, np.asarray(a) < 0.1)
    np.testing.assert_array_equal(blown, ~ok)
    exact = 1 / (1 - a[ok, None] * ts[ok])
    np.testing.assert_allclose(sol.ys[ok, :3, 0], exact, rtol=1e-4)


@pytest.mark.slow  # compile-heavy (~5-10 s); make test-slow
def test_float32():
    with jax.enable_x64(False):
        members = vdp_members(24, t1=4.0, dtype=jnp.float32)
        ctrl = diffrax.PIDController(rtol=1e-4, atol=1e-4)
        sol = refill(vdp, TSIT5, ctrl, 4096, True, members, lanes=4)
        assert sol.ys.dtype == jnp.float32 and sol.ts.dtype == jnp.float32
        check(sol, own(vdp, TSIT5, ctrl, 4096, True, members), rtol=1e-4)


@pytest.mark.slow  # compile-heavy (~5-10 s); make test-slow
def test_implicit_solver_carries_its_state():
    """Kvaerno5 on stiff members (mu up to 1000): state and Newton results carried."""
    n = 3
    mu = jnp.logspace(1, 3, n)
    members = (jnp.tile(jnp.array([2.0, 0.0]), (n, 1)), jnp.zeros(n), jnp.full(n, 1.0),
               jnp.full(n, 1e-3), mu, None)  # fmt: skip
    ctrl = diffrax.PIDController(rtol=1e-5, atol=1e-5)
    solver = diffrax.Kvaerno5()
    sol = refill(vdp, solver, ctrl, 2000, False, members, lanes=2, block=8)
    ref = own(vdp, solver, ctrl, 2000, False, members)
    check(sol, ref, rtol=1e-7)
    assert np.all(np.asarray(sol.result == diffrax.RESULTS.successful))


def test_bad_arguments():
    members = vdp_members(4, with_ts=False)
    with pytest.raises(ValueError, match="lanes"):
        refill(vdp, TSIT5, PID, 100, False, members, lanes=0)
    y0, t0, t1, dt0, mu, ts = members
    with pytest.raises(ValueError, match="leading member axis"):
        refill(vdp, TSIT5, PID, 100, False, (y0, t0, t1[:3], dt0, mu, ts))
