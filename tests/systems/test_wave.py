"""Wave1D: standing waves, d'Alembert's solution (second-order convergence), exact
semi-discrete energy conservation, gradients with respect to the wave-speed field."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import diffsim as ds
from diffsim.systems import Wave1D
from tests.helpers import central_difference, convergence_slope
from tests.systems.conformance import check_precisions, check_vmap_matches_loop


def test_standing_wave():
    # sin(k pi x / L) cos(omega t), omega = c k pi / L; semi-discretely
    # omega_h = (2 c / h) sin(k pi h / 2L) (e.g. Strang, Computational Science and
    # Engineering, sec. 6.4).
    c, L, n, k = 1.5, 2.0, 49, 3
    string = Wave1D(wave_speed=c, length=L)
    x, h = string.grid(n), float(string.spacing(n))
    mode = jnp.sin(k * math.pi * x / L)
    t1 = 1.0
    traj = ds.simulate(string, string.initial_state(mode), t1=t1, dt=1e-3, integrator=ds.Yoshida4())
    omega_h = 2 * c / h * math.sin(k * math.pi * h / (2 * L))
    np.testing.assert_allclose(traj.ys.q[-1], math.cos(omega_h * t1) * mode, atol=1e-11)
    omega = c * k * math.pi / L
    phase = omega * t1 * (k * math.pi * h / L) ** 2 / 24  # omega - omega_h, O(h^2)
    np.testing.assert_allclose(traj.ys.q[-1], math.cos(omega * t1) * mode, atol=1.1 * phase)
    assert phase > 1e-3


@pytest.mark.slow  # over 5 s; run with `make test-slow`
def test_dalembert_pulse_converges_at_second_order():
    # From rest, u = (f(x - ct) + f(x + ct)) / 2 on a periodic line (d'Alembert).
    def pulse(x):
        return np.exp(-((((x - 0.5 + 0.5) % 1.0 - 0.5) / 0.05) ** 2))

    t1, errors, hs = 0.3, [], []
    for n in (100, 200, 400):
        string = Wave1D(wave_speed=1.0, periodic=True)
        x, h = string.grid(n), float(string.spacing(n))
        steps = int(round(t1 / (0.25 * h)))  # Yoshida4 at c dt = h/4: time error negligible
        traj = ds.simulate(
            string,
            string.initial_state(jnp.asarray(pulse(x))),
            n_steps=steps,
            dt=t1 / steps,
            integrator=ds.Yoshida4(),
        )
        exact = 0.5 * (pulse(x - t1) + pulse(x + t1))
        errors.append(np.abs(traj.ys.q[-1] - exact).max())
        hs.append(h)
    assert errors[-1] < 2e-3
    assert abs(convergence_slope(hs, errors) - 2) < 0.3


def test_energy_conserved_with_variable_speed_and_fixed_ends():
    n = 60
    x = Wave1D().grid(n)
    string = Wave1D(wave_speed=1.0 + 0.5 * jnp.sin(3 * x), left=0.2, right=-0.1)
    y0 = string.initial_state(
        0.2 - 0.3 * x + jnp.exp(-100 * (x - 0.4) ** 2), 0.5 * jnp.sin(math.pi * x)
    )
    # Exact semi-discrete conservation: dE/dt = 0 along the vector field.
    _, rate = jax.jvp(string.energy, (y0,), (string.vector_field(0.0, y0),))
    assert abs(float(rate)) < 1e-10 * float(string.energy(y0))
    traj = ds.simulate(
        string, y0, t1=20.0, dt=2e-3, integrator=ds.Leapfrog(), saveat=ds.SaveAt(every=500)
    )
    energy = jax.vmap(string.energy)(traj.ys)
    # Leapfrog's energy error is a bounded O(dt^2) oscillation (5e-4 measured here).
    np.testing.assert_allclose(energy, string.energy(y0), rtol=1e-3)
    first, second = np.split(np.abs(energy / energy[0] - 1)[1:], 2)
    assert second.max() < 1.5 * first.max()  # no drift


def test_gradients_wrt_every_parameter():
    n = 6

    def loss(p):
        string = Wave1D(wave_speed=p[:n], length=p[n], left=p[n + 1], right=p[n + 2])
        y0 = string.initial_state(jnp.linspace(0.0, 1.0, n) ** 2, 0.1)
        ys = ds.simulate(string, y0, t1=0.3, dt=1e-2, integrator=ds.Leapfrog()).ys
        return jnp.sum(ys.q[-1] * jnp.arange(1.0, n + 1)) + jnp.sum(ys.v[-1])

    p = jnp.array([0.5, 0.7, 0.4, 0.9, 0.6, 0.8, 1.5, 0.3, -0.2])
    grad = jax.grad(loss)(p)
    assert np.all(grad != 0)
    np.testing.assert_allclose(grad, central_difference(jax.jit(loss), p), rtol=1e-6)


@pytest.mark.slow  # over 5 s; run with `make test-slow`
def test_jit_vmap_and_precisions():
    x = Wave1D().grid(20)
    y0 = Wave1D().initial_state(jnp.sin(math.pi * x))

    def make(c):
        return Wave1D(wave_speed=c)

    kw = dict(t1=0.5, dt=1e-2, integrator=ds.Leapfrog())
    check_vmap_matches_loop(make, jnp.array([0.5, 1.0, 1.5]), y0, **kw)
    check_precisions(make, jnp.asarray(1.0), y0, **kw)
