"""`ds.ensemble(..., schedule="fused")`: fixed-step explicit Runge-Kutta members through
the fused Pallas kernel (here in Pallas' interpreter, on the CPU) equal the vmapped
rollout, failures included; what cannot be fused is refused with the reason, or left to
vmap under "auto"."""

import jax.numpy as jnp
import numpy as np
import pytest

import diffsim as ds

RHOS = jnp.linspace(5.0, 30.0, 37)  # not a multiple of the kernel's block


def _lorenz(integrator, n=40, **saveat):
    def final(rho):
        system = ds.systems.Lorenz(rho=rho)
        y0 = (1.0, 0.5, 0.0)
        save = ds.SaveAt(**saveat) if saveat else ds.SaveAt(t1=True)
        return ds.simulate(system, y0, t1=n * 0.01, dt=0.01, integrator=integrator, saveat=save).ys

    return final


@pytest.mark.parametrize(
    "integrator",
    [ds.Tsit5Fixed(), pytest.param(ds.RK4(), marks=pytest.mark.slow)],
    ids=["Tsit5Fixed", "RK4"],
)
def test_fused_equals_vmap(integrator):
    fn = _lorenz(integrator)
    fused = ds.ensemble(fn, RHOS, schedule="fused").values
    plain = ds.ensemble(fn, RHOS, schedule="vmap").values
    for a, b in zip(fused, plain, strict=True):
        assert a.shape == b.shape == (37, 1)
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_fused_saves_the_initial_state_too():
    fn = _lorenz(ds.RK4(), n=10, t0=True, t1=True)
    fused = ds.ensemble(fn, RHOS[:5], schedule="fused").values
    plain = ds.ensemble(fn, RHOS[:5], schedule="vmap").values
    for a, b in zip(fused, plain, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_a_failed_member_is_reported_with_its_step():
    def blow_up(k):
        # dy/dt = k y^2 from y = 1 reaches infinity at t = 1/k: members with k > 2.5 fail
        # within the 0.4 time units.
        system = ds.ODESystem(lambda t, y, k: (k * y[0] ** 2,), k)
        return ds.simulate(system, (1.0,), t1=0.4, dt=0.01, integrator=ds.RK4()).ys

    ks = jnp.array([0.5, 1.0, 10.0, 2.0, 50.0])
    fused = ds.ensemble(blow_up, ks, schedule="fused", throw=False)
    plain = ds.ensemble(blow_up, ks, schedule="vmap", throw=False)
    assert list(np.flatnonzero(fused.failed)) == list(np.flatnonzero(plain.failed)) == [2, 4]
    np.testing.assert_array_equal(fused.failed_indices, plain.failed_indices)
    np.testing.assert_array_equal(fused.failed_steps, plain.failed_steps)
    ok = np.array([0, 1, 3])
    np.testing.assert_allclose(fused.values[0][ok], plain.values[0][ok], rtol=1e-12)
    with pytest.raises(ds.NonFiniteStateError, match="member 2"):
        ds.ensemble(blow_up, ks, schedule="fused")


def _adaptive(rho):
    return ds.simulate(
        ds.systems.Lorenz(rho=rho), (1.0, 0.5, 0.0), t1=0.1, integrator=ds.Tsit5()
    ).ys


def _array_state(rho):
    y0 = jnp.array([1.0, 0.5, 0.0])
    return ds.simulate(ds.systems.Lorenz(rho=rho), y0, t1=0.1, dt=0.01, integrator=ds.RK4()).ys


@pytest.mark.parametrize(
    "fn, reason",
    [
        (_adaptive, "fixed-step ds.simulate 0 times"),
        pytest.param(_array_state, "one number per member", marks=pytest.mark.slow),
        pytest.param(
            _lorenz(ds.RK4(), ts=jnp.array([0.1, 0.2])), "saves more than", marks=pytest.mark.slow
        ),
    ],
    ids=["adaptive", "array-state", "save-times"],
)
def test_what_cannot_be_fused_is_refused_or_left_to_vmap(fn, reason):
    with pytest.raises(ValueError, match=reason):
        ds.ensemble(fn, RHOS[:4], schedule="fused")
    auto = ds.ensemble(fn, RHOS[:4], schedule="auto").values  # vmap on the CPU
    plain = ds.ensemble(fn, RHOS[:4], schedule="vmap").values
    for a, b in zip(np.atleast_1d(auto), np.atleast_1d(plain), strict=True):
        np.testing.assert_allclose(a, b)


def test_other_integrators_are_refused_by_name():
    def semi_implicit(k):
        system = ds.ODESystem(lambda t, y, k: (-k * y[0],), k)
        return ds.simulate(system, (1.0,), t1=0.1, dt=0.01, integrator=ds.Euler()).ys

    with pytest.raises(ValueError, match="Euler is not an explicit Runge-Kutta"):
        ds.ensemble(semi_implicit, RHOS[:4], schedule="fused")
