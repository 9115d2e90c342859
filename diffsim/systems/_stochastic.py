"""Stochastic systems: the Ornstein-Uhlenbeck process and Langevin dynamics.

A stochastic system is a system (drift `vector_field(t, y)`) with a diagonal noise
amplitude `diffusion(t, y)`, shaped like the state:
$$dy = f(t, y)\\, dt + g(t, y) \\odot dW_t .$$
Integrate one with an SDE integrator (`ds.EulerMaruyama(key=...)`, `ds.BAOAB(key=...)`);
the fields are parameters like any system's, so gradients and ensembles work the same.
"""

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from ._base import AbstractMechanicalSystem, AbstractSystem, PhaseState
from ._checks import check_finite, check_nonnegative, check_positive


class OrnsteinUhlenbeck(AbstractSystem):
    """The Ornstein-Uhlenbeck process (Uhlenbeck and Ornstein 1930), mean-reverting noise:
    $$dX = \\theta (\\mu - X)\\, dt + \\sigma\\, dW .$$

    Gaussian, with mean $\\mu + (x_0 - \\mu) e^{-\\theta t}$ and variance
    $\\frac{\\sigma^2}{2\\theta}(1 - e^{-2\\theta t})$ from a fixed $x_0$; stationary variance
    $\\sigma^2 / (2\\theta)$. Any array state (each element an independent process).

    **Fields:** `theta` (rate, > 0), `sigma` (noise amplitude, >= 0), `mu` (long-run
    mean); each broadcasts against the state.

    **Example:**

    ```python
    ou = ds.systems.OrnsteinUhlenbeck(theta=2.0, sigma=0.3)
    traj = ds.simulate(ou, jnp.zeros(()), t1=5.0, dt=1e-2,
                       integrator=ds.EulerMaruyama(key=jax.random.key(0)))
    ```
    """

    theta: Float[ArrayLike, "..."]
    sigma: Float[ArrayLike, "..."]
    mu: Float[ArrayLike, "..."] = 0.0

    def __check_init__(self):
        check_positive("OrnsteinUhlenbeck", "theta", self.theta, "1/time")
        check_nonnegative("OrnsteinUhlenbeck", "sigma", self.sigma)
        check_finite("OrnsteinUhlenbeck", "mu", self.mu)

    def vector_field(self, t, y: Float[Array, "..."]) -> Float[Array, "..."]:
        return self.theta * (self.mu - y)

    def diffusion(self, t, y: Float[Array, "..."]) -> Float[Array, "..."]:
        """The noise amplitude $\\sigma$, shaped like `y`."""
        return jnp.broadcast_to(jnp.asarray(self.sigma, y.dtype), jnp.shape(y))

    def mean(self, t, y0):
        """The exact mean at time `t` (from 0) starting at `y0`."""
        return self.mu + (y0 - self.mu) * jnp.exp(-self.theta * t)

    def variance(self, t):
        """The exact variance at time `t` (from 0) starting at a fixed state."""
        return self.sigma**2 / (2 * self.theta) * -jnp.expm1(-2 * self.theta * t)

    @property
    def stationary_variance(self):
        """$\\sigma^2 / (2\\theta)$."""
        return self.sigma**2 / (2 * self.theta)


class Langevin(AbstractMechanicalSystem):
    """Underdamped Langevin dynamics: a mechanical system in a heat bath at temperature
    `kT`, with friction $\\gamma$ and the matching noise (fluctuation-dissipation):
    $$dq = v\\, dt, \\qquad dv = a(t, q, v)\\, dt - \\gamma v\\, dt
      + \\sqrt{2 \\gamma k_B T / m}\\; dW .$$

    Samples the Boltzmann distribution $\\propto e^{-E/k_B T}$ of the wrapped system: the
    velocities have variance $k_B T / m$; for `HarmonicOscillator(omega)` the positions
    have variance $k_B T / (m \\omega^2)$. Integrate with `ds.BAOAB(key=...)` (or
    `ds.EulerMaruyama(key=...)`).

    **Fields:**

    - `system`: the conservative mechanical system (any with `acceleration(t, q, v)`).
    - `friction`: $\\gamma$ (1/time, >= 0), broadcasting against `v`.
    - `kT`: the temperature in energy units, >= 0.
    - `mass`: the mass the wrapped system's acceleration is per (1 for unit-mass systems
      such as `HarmonicOscillator` and `Pendulum`), > 0; it sets the noise amplitude.

    **Example:**

    ```python
    bath = ds.systems.Langevin(ds.systems.HarmonicOscillator(omega=2.0), friction=1.0, kT=0.5)
    y0 = bath.system.initial_state(jnp.zeros(1000))  # 1000 independent oscillators
    traj = ds.simulate(bath, y0, t1=5.0, dt=0.05, integrator=ds.BAOAB(key=jax.random.key(0)))
    print(traj.ys.q.var())  # about 0.125: kT / omega^2
    ```
    """

    system: AbstractMechanicalSystem
    friction: Float[ArrayLike, "..."]
    kT: Float[ArrayLike, "..."]
    mass: Float[ArrayLike, "..."] = 1.0

    def __check_init__(self):
        if not callable(getattr(self.system, "acceleration", None)):
            raise TypeError(
                "Langevin: `system` must be a mechanical system with acceleration(t, q, v) "
                f"(a ds.AbstractMechanicalSystem); got {type(self.system).__name__}."
            )
        check_nonnegative("Langevin", "friction", self.friction, "1/time")
        check_nonnegative("Langevin", "kT", self.kT, "energy")
        check_positive("Langevin", "mass", self.mass)

    def conservative_acceleration(self, t, q, v):
        """The wrapped system's acceleration, without friction or noise (BAOAB's kicks)."""
        return self.system.acceleration(t, q, v)

    def acceleration(self, t, q, v):
        a = self.system.acceleration(t, q, v)
        return jax.tree.map(lambda a, v: a - self.friction * v, a, v)

    def diffusion(self, t, y: PhaseState) -> PhaseState:
        """The noise amplitude, shaped like `y`: zero on `q`, and
        $\\sqrt{2 \\gamma k_B T / m}$ on `v`."""
        amplitude = jnp.sqrt(2 * self.friction * self.kT / self.mass)
        return PhaseState(
            q=jax.tree.map(jnp.zeros_like, y.q),
            v=jax.tree.map(
                lambda v: jnp.broadcast_to(amplitude, jnp.shape(v)).astype(v.dtype), y.v
            ),
        )

    def energy(self, y: PhaseState):
        return self.system.energy(y)
