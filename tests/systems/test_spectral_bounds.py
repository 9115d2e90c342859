"""`spectral_bounds` of the field systems against the eigenvalues of the Jacobian: every
bound holds, and it is tight (within 10%) on these grids, so the engine's stability hint
built on it is neither wrong nor vacuous."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from diffsim.systems import Burgers1D, Heat1D, Heat2D, Pendulum, Wave1D

_X96 = np.linspace(0.0, 1.0, 96)
_SMOOTH = 1.0 + 0.5 * np.sin(2 * math.pi * _X96)  # a field varying by a factor of 3
_ROWS = 1.0 + 0.3 * np.cos(np.arange(12)[:, None] / 3.0) * np.ones((12, 16))


def _wave_state(n):
    return Wave1D().initial_state(jnp.linspace(0.0, 1.0, n))


CASES = [
    pytest.param(Heat1D(diffusivity=0.3, length=2.0), jnp.ones(64), id="heat1d-dirichlet"),
    pytest.param(Heat1D(diffusivity=0.3, periodic=True), jnp.ones(64), id="heat1d-periodic"),
    pytest.param(Heat1D(diffusivity=_SMOOTH), jnp.ones(96), id="heat1d-field"),
    pytest.param(Heat1D(diffusivity=_SMOOTH, periodic=True), jnp.ones(96), id="heat1d-field-per"),
    pytest.param(
        Heat2D(diffusivity=0.2, length_y=2.0),
        jnp.ones((12, 16)),
        id="heat2d-dirichlet",
        marks=pytest.mark.slow,  # 8 s; the 1-d heat cases check the same bound
    ),
    pytest.param(Heat2D(diffusivity=_ROWS, periodic=True), jnp.ones((12, 16)), id="heat2d-field"),
    pytest.param(Wave1D(wave_speed=2.0), _wave_state(64), id="wave-dirichlet"),
    pytest.param(Wave1D(wave_speed=2.0, periodic=True), _wave_state(64), id="wave-periodic"),
    pytest.param(Wave1D(wave_speed=_SMOOTH), _wave_state(96), id="wave-field"),
]


def _spectrum(system, y):
    """Eigenvalues of the Jacobian of the (first-order) vector field at `y`."""
    flat, unravel = ravel_pytree(y)
    field = lambda z: ravel_pytree(system.vector_field(0.0, unravel(z)))[0]  # noqa: E731
    return np.linalg.eigvals(np.asarray(jax.jacfwd(field)(flat)))


@pytest.mark.parametrize("system, y", CASES)
def test_bounds_hold_and_are_tight(system, y):
    decay, oscillation = system.spectral_bounds(y)
    eig = _spectrum(system, y)
    scale = max(decay, oscillation)
    # Round-off of a dense eigensolver, relative to the largest eigenvalue; the periodic
    # wave's zero mode is a 2x2 Jordan block, whose computed eigenvalues spread by about
    # sqrt(eps) of the scale.
    atol = 1e-6 * scale
    assert np.max(np.abs(eig.real)) <= decay + atol
    assert np.max(np.abs(eig.imag)) <= oscillation + atol
    assert np.all(eig.real <= atol)  # diffusion and waves never grow
    tight = np.max(np.abs(eig.real)) if decay else np.max(np.abs(eig.imag))
    assert tight >= 0.9 * scale


def test_closed_forms_for_constant_coefficients():
    D, c, n = 0.5, 2.0, 9  # Dirichlet: h = L / (n + 1) = 0.1
    assert Heat1D(diffusivity=D).spectral_bounds(jnp.zeros(n)) == pytest.approx((4 * D / 0.01, 0))
    assert Heat1D(diffusivity=D, periodic=True).spectral_bounds(jnp.zeros(10)) == pytest.approx(
        (4 * D / 0.01, 0)
    )
    two_d = Heat2D(diffusivity=D, length_y=2.0).spectral_bounds(jnp.zeros((n, n)))
    assert two_d == pytest.approx((4 * D / 0.01 + 4 * D / 0.04, 0))
    string = Wave1D(wave_speed=c)
    assert string.spectral_bounds(string.initial_state(jnp.zeros(n))) == pytest.approx((0, 40.0))
    # Only the shape of the state is read: a ShapeDtypeStruct will do.
    shape_only = jax.ShapeDtypeStruct((n,), jnp.float64)
    assert Heat1D(diffusivity=D).spectral_bounds(shape_only) == pytest.approx((200.0, 0))


def test_traced_parameters_give_none_and_traced_states_do_not_matter():
    u = jnp.zeros(9)

    @jax.jit
    def traced_diffusivity(D):
        assert Heat1D(diffusivity=D).spectral_bounds(u) is None
        assert Heat2D(length_x=D).spectral_bounds(jnp.zeros((3, 3))) is None
        assert Wave1D(wave_speed=D).spectral_bounds(Wave1D().initial_state(u)) is None
        return D

    traced_diffusivity(1.0)

    @jax.jit
    def traced_state(u):
        bounds = Heat1D(diffusivity=2.0).spectral_bounds(u)
        assert bounds == pytest.approx((800.0, 0))
        return u

    traced_state(u)


def test_systems_without_a_certain_bound_give_none():
    # Burgers' Jacobian depends on the state (the advection), so no bound holds for a
    # whole run; the default is None.
    assert Burgers1D().spectral_bounds(jnp.ones(16)) is None
    pendulum = Pendulum(length=1.0)
    assert pendulum.spectral_bounds(pendulum.initial_state(0.1)) is None
