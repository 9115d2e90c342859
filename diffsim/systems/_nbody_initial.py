"""Ready-made initial conditions for `NBody`: the outer solar system and a Plummer sphere.

Each builder returns `(system, y0)`: an `NBody` whose fields are the masses and the
gravitational constant, and a `PhaseState` of shape `(n, 3)`. The arrays are ordinary
JAX arrays, so they can be perturbed, batched and differentiated like any others.
"""

import functools
import math

import jax
import jax.numpy as jnp
from jaxtyping import PRNGKeyArray

from ._base import PhaseState
from ._nbody import NBody

#: Bodies of `solar_system()`, in order.
SOLAR_SYSTEM_BODIES = ("Sun", "Jupiter", "Saturn", "Uranus", "Neptune", "Pluto")

# Hairer, Lubich & Wanner, Geometric Numerical Integration, 2nd ed. (Springer 2006),
# sec. I.2.4, Table 2.1 "Data for the outer solar system", as published: the Sun's mass
# includes the inner planets; positions and velocities are heliocentric (the Sun at rest
# at the origin).
_G_AU_DAY_MSUN = 2.95912208286e-4
_MASSES = (
    1.00000597682,
    0.000954786104043,
    0.000285583733151,
    0.0000437273164546,
    0.0000517759138449,
    1 / 1.3e8,
)
_POSITIONS = (
    (0.0, 0.0, 0.0),
    (-3.5023653, -3.8169847, -1.5507963),
    (9.0755314, -3.0458353, -1.6483708),
    (8.3101420, -16.2901086, -7.2521278),
    (11.4707666, -25.7294829, -10.8169456),
    (-15.5387357, -25.2225594, -3.1902382),
)
_VELOCITIES = (
    (0.0, 0.0, 0.0),
    (0.00565429, -0.00412490, -0.00190589),
    (0.00168318, 0.00483525, 0.00192462),
    (0.00354178, 0.00137102, 0.00055029),
    (0.00288930, 0.00114527, 0.00039677),
    (0.00276725, -0.00170702, -0.00136504),
)


def _to_barycentre(masses, y: PhaseState) -> PhaseState:
    w = masses[:, None] / jnp.sum(masses)
    return PhaseState(q=y.q - jnp.sum(w * y.q, axis=0), v=y.v - jnp.sum(w * y.v, axis=0))


def solar_system(*, barycentric: bool = False, dtype=None) -> tuple[NBody, PhaseState]:
    """The outer solar system of Hairer, Lubich & Wanner, *Geometric Numerical
    Integration* (2nd ed. 2006), sec. I.2.4, Table 2.1: the Sun (with the inner planets'
    mass), Jupiter, Saturn, Uranus, Neptune and Pluto (`SOLAR_SYSTEM_BODIES`).

    Units: astronomical units, days and solar masses, so $G = 2.95912208286 \\times
    10^{-4}$ AU^3 / (M_sun day^2). Jupiter's period is about 4333 days, Pluto's 90,000.

    **Arguments:**

    - `barycentric`: shift to the centre-of-mass frame (zero total momentum). By default
      the state is the book's: heliocentric, the Sun at rest at the origin, so the whole
      system drifts slowly.
    - `dtype`: the floating dtype of the arrays (default: JAX's default float).

    **Returns:** `(system, y0)`: an `NBody` with the six masses and `G`, and the
    `PhaseState` with `q`, `v` of shape `(6, 3)`.

    **Example:**

    ```python
    system, y0 = ds.systems.solar_system()
    traj = ds.simulate(system, y0, t1=200_000.0, dt=50.0, integrator=ds.Yoshida4(),
                       saveat=ds.SaveAt(every=20))
    ```
    """
    dtype = jnp.result_type(float) if dtype is None else dtype
    masses = jnp.asarray(_MASSES, dtype)
    y0 = PhaseState(q=jnp.asarray(_POSITIONS, dtype), v=jnp.asarray(_VELOCITIES, dtype))
    if barycentric:
        y0 = _to_barycentre(masses, y0)
    return NBody(masses=masses, G=jnp.asarray(_G_AU_DAY_MSUN, dtype)), y0


def plummer(
    n: int,
    key: PRNGKeyArray,
    *,
    total_mass: float = 1.0,
    scale_radius: float = 1.0,
    G: float = 1.0,
    softening: float = 0.0,
    max_mass_fraction: float = 0.999,
    dtype=None,
) -> tuple[NBody, PhaseState]:
    """`n` equal masses sampled from Plummer's (1911) sphere in virial equilibrium, by the
    method of Aarseth, Henon & Wielen (1974), A&A 37, 183.

    Density $\\rho(r) \\propto (1 + r^2/a^2)^{-5/2}$, potential $\\Phi = -G M /
    \\sqrt{r^2 + a^2}$. Radii come from inverting the enclosed mass,
    $r = a\\,(X^{-2/3} - 1)^{-1/2}$ with $X$ uniform; speeds are $v = x\\, v_{esc}(r)$,
    $v_{esc} = \\sqrt{2}\\,(G M)^{1/2} (r^2 + a^2)^{-1/4}$, where the fraction $x$ has density
    $\\propto x^2 (1 - x^2)^{7/2}$. Instead of the original rejection loop, note that $x^2$
    is Beta(3/2, 9/2)-distributed, i.e. $x^2 = \\chi^2_3 / (\\chi^2_3 + \\chi^2_9)$: a ratio
    of sums of 3 and of 12 squared standard normals. Directions are isotropic. The sample
    is shifted to its centre of mass at rest.

    In equilibrium the virial theorem gives $2K + U = 0$, with
    $U = -\\tfrac{3\\pi}{32} G M^2 / a$ and $E = K + U = -\\tfrac{3\\pi}{64} G M^2/a$ for
    $n \\to \\infty$; a finite sample fluctuates by $O(n^{-1/2})$. Hénon's standard N-body
    units ($G = M = 1$, $E = -1/4$) have $a = 3\\pi/16$.

    **Arguments:**

    - `n`: the number of bodies.
    - `key`: a `jax.random` key.
    - `total_mass`, `scale_radius`, `G`: $M$, $a$ and $G$ (default 1 each).
    - `softening`: passed on to `NBody` (default 0).
    - `max_mass_fraction`: radii are drawn from the inner fraction of the mass (default
      0.999, i.e. $r < 38.7\\,a$), so no body lands at an absurd radius.
    - `dtype`: the floating dtype (default: JAX's default float).

    **Returns:** `(system, y0)`: an `NBody` of `n` masses `total_mass / n`, and the
    `PhaseState` of shape `(n, 3)`.

    **Example:**

    ```python
    system, y0 = ds.systems.plummer(64, jax.random.key(0))
    traj = ds.simulate(system, y0, t1=0.1, dt=1e-3, integrator=ds.Leapfrog())
    print(y0.q.shape)  # (64, 3)
    ```
    """
    dtype = jnp.result_type(float) if dtype is None else dtype
    masses, y0 = _plummer_sample(
        n, key, float(total_mass), float(scale_radius), float(G), float(max_mass_fraction), dtype
    )
    system = NBody(masses=masses, G=jnp.asarray(G, dtype), softening=jnp.asarray(softening, dtype))
    return system, y0


# One compiled sampler per (n, dtype): eagerly, the two dozen small array operations would
# each dispatch (and on first use compile) on their own.
@functools.partial(jax.jit, static_argnums=(0, 2, 3, 4, 5, 6))
def _plummer_sample(n, key, total_mass, scale_radius, G, max_mass_fraction, dtype):
    k_u, k_x = jax.random.split(key)
    u = jax.random.uniform(k_u, (n, 5), dtype)
    # X = 0 is a body at the centre: r = 0, which (X^{-2/3} - 1)^{-1/2} reaches as a limit.
    X = jnp.maximum(u[:, 0] * max_mass_fraction, jnp.finfo(dtype).tiny)
    r = scale_radius / jnp.sqrt(X ** (-2.0 / 3.0) - 1.0)
    chi2 = jnp.cumsum(jax.random.normal(k_x, (n, 12), dtype) ** 2, axis=-1)
    x = jnp.sqrt(chi2[:, 2] / chi2[:, 11])  # sqrt of Beta(3/2, 9/2), no rejection loop
    v_esc = math.sqrt(2.0 * G * total_mass) * (r**2 + scale_radius**2) ** -0.25

    def isotropic(cos_theta, phi):
        """Uniform on the sphere: cos(theta) uniform in [-1, 1] (Archimedes)."""
        cos_theta, phi = 2 * cos_theta - 1, 2 * math.pi * phi
        sin_theta = jnp.sqrt(1 - cos_theta**2)
        return jnp.stack([sin_theta * jnp.cos(phi), sin_theta * jnp.sin(phi), cos_theta], -1)

    masses = jnp.full((n,), total_mass / n, dtype)
    y0 = PhaseState(
        q=r[:, None] * isotropic(u[:, 1], u[:, 2]),
        v=(x * v_esc)[:, None] * isotropic(u[:, 3], u[:, 4]),
    )
    return masses, _to_barycentre(masses, y0)
