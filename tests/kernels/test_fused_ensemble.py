"""The fused Runge-Kutta ensemble kernel, in Pallas interpret mode on the CPU: it must
take the same steps as diffsim's own fixed-step rollout, member by member."""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import diffsim as ds
from diffsim.kernels._fused_ensemble import fused_rk_final, system_fn_from

# ds.RK4 is hand-written, not a tableau: the classical one, for the kernel.
RK4_TABLEAU = diffrax.ButcherTableau(
    c=np.array([0.5, 0.5, 1.0]),
    b_sol=np.array([1 / 6, 1 / 3, 1 / 3, 1 / 6]),
    b_error=np.zeros(4),
    a_lower=(np.array([0.5]), np.array([0.0, 0.5]), np.array([0.0, 0.0, 1.0])),
)
METHODS = {
    "tsit5": (ds.Tsit5Fixed(), ds.Tsit5Fixed.tableau),
    "rk4": (ds.RK4(), RK4_TABLEAU),
}
M, BLOCK, N_STEPS, DT = 37, 16, 50, 0.01  # 37: not a multiple of the block
lorenz_fn = system_fn_from(ds.systems.Lorenz, ("rho",))


def _lorenz_members(dtype):
    rho = jnp.linspace(15.0, 30.0, M, dtype=dtype)
    y0 = jnp.stack(
        [jnp.linspace(1.0, 2.0, M), jnp.linspace(-1.0, 1.0, M), jnp.full(M, 20.0)], axis=1
    ).astype(dtype)
    return rho, y0


def _diffsim_final(integrator, rho, y0):
    """Each member through `ds.simulate` (tuple state), vmapped: the reference."""

    def one(r, y):
        traj = ds.simulate(
            ds.systems.Lorenz(rho=r), tuple(y), n_steps=N_STEPS, dt=DT, integrator=integrator
        )
        return jnp.stack([c[-1] for c in traj.ys])

    return jax.vmap(one)(rho, y0)


@pytest.mark.parametrize("method", METHODS)
def test_lorenz_float64_matches_simulate(method):
    integrator, tableau = METHODS[method]
    rho, y0 = _lorenz_members(jnp.float64)
    fused = fused_rk_final(
        lorenz_fn, y0, tableau, 0.0, DT, N_STEPS,
        params=rho[:, None], members_per_block=BLOCK, interpret=True,
    )  # fmt: skip
    assert fused.shape == (M, 3) and fused.dtype == jnp.float64
    np.testing.assert_allclose(fused, _diffsim_final(integrator, rho, y0), rtol=1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_lorenz_float32_matches_simulate(method):
    integrator, tableau = METHODS[method]
    with jax.enable_x64(False):  # else float times would promote diffsim's state
        rho, y0 = _lorenz_members(jnp.float32)
        fused = fused_rk_final(
            lorenz_fn, y0, tableau, 0.0, DT, N_STEPS,
            params=rho[:, None], members_per_block=BLOCK, interpret=True,
        )  # fmt: skip
        reference = _diffsim_final(integrator, rho, y0)
    assert fused.dtype == jnp.float32
    np.testing.assert_allclose(fused, reference, rtol=1e-4)


def _decay_fn(t, y, p):
    return tuple(-p[0] * yi for yi in y)


def _stability_function(tableau, z):
    """R(z) = 1 + z b^T (I - z A)^{-1} 1: one step of the method on y' = lambda y."""
    b = np.asarray(tableau.b_sol)
    a = np.zeros((len(b), len(b)))
    for i, row in enumerate(tableau.a_lower, start=1):
        a[i, :i] = row
    return 1 + z * b @ np.linalg.solve(np.eye(len(b)) - z * a, np.ones(len(b)))


def test_linear_decay_rk4_closed_form():
    k = np.linspace(0.1, 20.0, M)
    y0 = np.stack([np.ones(M), np.linspace(-3.0, 3.0, M)], axis=1)
    fused = fused_rk_final(
        _decay_fn, jnp.asarray(y0), RK4_TABLEAU, 0.0, DT, N_STEPS,
        params=jnp.asarray(k)[:, None], members_per_block=BLOCK, interpret=True,
    )  # fmt: skip
    hk = DT * k
    amplification = 1 - hk + hk**2 / 2 - hk**3 / 6 + hk**4 / 24
    np.testing.assert_allclose(fused, (amplification**N_STEPS)[:, None] * y0, rtol=1e-13)


def test_linear_decay_tsit5_stability_function():
    """All of Tsit5's coefficients enter R(z); the unused FSAL stage does not."""
    k = np.linspace(0.1, 20.0, M)
    y0 = np.ones((M, 1))
    fused = fused_rk_final(
        _decay_fn, jnp.asarray(y0), ds.Tsit5Fixed.tableau, 0.0, DT, N_STEPS,
        params=jnp.asarray(k)[:, None], members_per_block=BLOCK, interpret=True,
    )  # fmt: skip
    expected = np.array([_stability_function(ds.Tsit5Fixed.tableau, -DT * ki) for ki in k])
    np.testing.assert_allclose(fused[:, 0], expected**N_STEPS, rtol=1e-12)


def test_time_dependent_matches_simulate():
    """A forced system from t0 = 1.5, so the stage times count, with fewer members than
    one block; the same `fn(t, y, p)` serves `ds.ODESystem` as the reference."""

    def forced(t, y, p):
        return (p[0] * jnp.cos(t) - y[0], jnp.sin(3.0 * t) * y[0])

    m = 5
    amp = jnp.linspace(0.5, 2.0, m)
    y0 = jnp.stack([jnp.linspace(0.0, 1.0, m), jnp.zeros(m)], axis=1)
    fused = fused_rk_final(
        forced, y0, ds.Tsit5Fixed.tableau, 1.5, 0.05, 20,
        params=amp[:, None], members_per_block=BLOCK, interpret=True,
    )  # fmt: skip

    def one(a, y):
        system = ds.ODESystem(forced, (a,))
        traj = ds.simulate(
            system, tuple(y), t0=1.5, n_steps=20, dt=0.05, integrator=ds.Tsit5Fixed()
        )
        return jnp.stack([c[-1] for c in traj.ys])

    np.testing.assert_allclose(fused, jax.vmap(one)(amp, y0), rtol=1e-12)


def test_without_params_and_bad_arguments():
    y0 = jnp.ones((3, 2))
    fused = fused_rk_final(
        lambda t, y, p: tuple(-yi for yi in y), y0, RK4_TABLEAU, 0.0, 0.1, 10,
        members_per_block=4, interpret=True,
    )  # fmt: skip
    np.testing.assert_allclose(fused, np.exp(-1.0) * np.ones((3, 2)), rtol=1e-5)
    with pytest.raises(ValueError, match="power of two"):
        fused_rk_final(_decay_fn, y0, RK4_TABLEAU, 0.0, 0.1, 10, members_per_block=12)
    with pytest.raises(ValueError, match="members"):
        fused_rk_final(_decay_fn, y0, RK4_TABLEAU, 0.0, 0.1, 10, params=jnp.ones((4, 1)))
    with pytest.raises(TypeError, match="concrete"):
        jax.jit(lambda dt: fused_rk_final(_decay_fn, y0, RK4_TABLEAU, 0.0, dt, 10))(0.1)
