"""The Kepler problem: a body around a fixed centre of attraction, and orbital elements.

Contract: `Kepler` is the one-body central-force system $\\ddot q = -\\mu q / |q|^3$ (the
relative motion of any two gravitating bodies, with $\\mu = G (m_1 + m_2)$);
`OrbitalElements` converts between classical elliptic elements and Cartesian states, and
`solve_kepler` solves Kepler's equation. Everything is elementwise over leading axes and
differentiable: `solve_kepler` has an implicit-function derivative, so no gradient flows
through its Newton iterations.
"""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from ._base import AbstractMechanicalSystem, PhaseState
from ._checks import check_finite, check_interval, check_positive
from ._util import as_float, cross3, safe_norm

# Newton from Danby's starting value converges for every 0 <= e < 1 (Danby & Burkardt
# 1983, Celest. Mech. 31); 12 steps reach float64 round-off even for e = 0.99 near M = 0,
# where the first steps are slowest (checked in tests/systems/test_kepler.py).
_NEWTON_STEPS = 12


@jax.custom_jvp
def solve_kepler(
    mean_anomaly: Float[ArrayLike, "..."], eccentricity: Float[ArrayLike, "..."]
) -> Float[Array, "..."]:
    """The eccentric anomaly $E$ solving Kepler's equation $M = E - e \\sin E$ (rad) for
    $0 \\le e < 1$, elementwise. Derivatives come from the implicit function theorem,
    $\\partial E/\\partial M = 1/(1 - e\\cos E)$ and
    $\\partial E/\\partial e = \\sin E/(1 - e\\cos E)$, not from the iterations.

    **Example:**

    ```python
    E = ds.systems.solve_kepler(jnp.array([0.0, 1.0, 2.0]), 0.3)
    print(E - 0.3 * jnp.sin(E))  # [0. 1. 2.]: Kepler's equation holds
    # The implicit derivative, 1 / (1 - e cos E):
    print(jax.grad(ds.systems.solve_kepler)(1.0, 0.3))  # 1.0913...
    ```
    """
    M, e = jnp.broadcast_arrays(as_float(mean_anomaly), as_float(eccentricity))
    turns = jnp.round(M / (2 * math.pi))
    m = M - 2 * math.pi * turns  # in [-pi, pi], where the starting value is good
    E = m + 0.85 * e * jnp.sign(jnp.sin(m))  # Danby (1987)
    for _ in range(_NEWTON_STEPS):
        E = E - (E - e * jnp.sin(E) - m) / (1 - e * jnp.cos(E))
    return E + 2 * math.pi * turns


@solve_kepler.defjvp
def _solve_kepler_jvp(primals, tangents):
    M, e = primals
    dM, de = tangents
    E = solve_kepler(M, e)
    return E, (dM + jnp.sin(E) * de) / (1 - e * jnp.cos(E))


def _pad3(x):
    if x.shape[-1] == 3:
        return x
    if x.shape[-1] == 2:
        return jnp.concatenate([x, jnp.zeros_like(x[..., :1])], -1)
    raise ValueError(f"Orbits live in 2 or 3 dimensions; got vectors of length {x.shape[-1]}.")


class OrbitalElements(eqx.Module):
    """Classical elements of an elliptic Kepler orbit ($0 \\le e < 1$), any leading shape.

    The state follows from Kepler's equation $M = E - e\\sin E$: in the orbital plane,
    $x = a(\\cos E - e)$, $y = a\\sqrt{1-e^2}\\sin E$, $r = a(1 - e\\cos E)$,
    $\\dot x = -\\sqrt{\\mu a}\\sin E / r$, $\\dot y = \\sqrt{\\mu a (1-e^2)}\\cos E / r$, rotated
    by $R_z(\\Omega) R_x(i) R_z(\\omega)$. The mean anomaly advances uniformly,
    $M(t) = M_0 + n t$ with $n = \\sqrt{\\mu / a^3}$ (Kepler's third law). See Murray &
    Dermott, *Solar System Dynamics* (1999), ch. 2.

    Circular ($e = 0$) and equatorial ($i = 0$) orbits have undefined $\\omega$ or
    $\\Omega$; `from_state` then sets $\\Omega = 0$ and measures $\\omega$ from the x axis
    ($e = 0$: $\\omega = 0$ and $M$ is the angle from the node), so the round trip is
    still exact, though derivatives with respect to the undefined angles are not
    meaningful there.

    **Fields** (lengths and times in any consistent units, angles in rad):

    - `semi_major_axis`: $a$, > 0.
    - `eccentricity`: $e \\in [0, 1)$, default 0.
    - `inclination`: $i$, default 0.
    - `ascending_node`: longitude of the ascending node $\\Omega$, default 0.
    - `argument_of_periapsis`: $\\omega$, default 0.
    - `mean_anomaly`: $M$ at the epoch, default 0 (at periapsis).

    **Example:**

    ```python
    mu = 2.959122e-4  # the Sun's G M in AU^3/day^2
    earth = ds.systems.OrbitalElements(semi_major_axis=1.0, eccentricity=0.0167)
    y0 = earth.to_state(mu)  # AU, AU/day
    print(earth.period(mu))  # 365.25...: days
    print(ds.systems.OrbitalElements.from_state(y0, mu).eccentricity)  # 0.0167
    ```
    """

    semi_major_axis: Float[ArrayLike, "..."]
    eccentricity: Float[ArrayLike, "..."] = 0.0
    inclination: Float[ArrayLike, "..."] = 0.0
    ascending_node: Float[ArrayLike, "..."] = 0.0
    argument_of_periapsis: Float[ArrayLike, "..."] = 0.0
    mean_anomaly: Float[ArrayLike, "..."] = 0.0

    def __check_init__(self):
        bound = "Only bound (elliptic) orbits have these elements."
        check_positive("OrbitalElements", "semi_major_axis", self.semi_major_axis, "", bound)
        e = self.eccentricity
        check_interval("OrbitalElements", "eccentricity", e, 0.0, 1.0, closed=False, hint=bound)
        for name in ("inclination", "ascending_node", "argument_of_periapsis", "mean_anomaly"):
            check_finite("OrbitalElements", name, getattr(self, name), "rad")

    def mean_motion(self, mu) -> Float[Array, "..."]:
        """$n = \\sqrt{\\mu / a^3}$ (rad per unit time)."""
        return jnp.sqrt(mu / jnp.asarray(self.semi_major_axis) ** 3)

    def period(self, mu) -> Float[Array, "..."]:
        """$T = 2\\pi \\sqrt{a^3 / \\mu}$."""
        return 2 * math.pi / self.mean_motion(mu)

    def propagate(self, t, mu) -> "OrbitalElements":
        """The elements a time `t` later: only the mean anomaly changes."""
        return eqx.tree_at(
            lambda el: el.mean_anomaly, self, self.mean_anomaly + self.mean_motion(mu) * t
        )

    def to_state(self, mu, dim: int = 3) -> PhaseState:
        """The Cartesian `PhaseState` (shape `(..., dim)`) of a body with these elements
        around a centre with gravitational parameter `mu` (= G M). `dim=2` drops the z
        axis, which is exact only for `inclination = 0`."""
        a, e, i, node, peri, M = jnp.broadcast_arrays(
            *map(
                as_float,
                (
                    self.semi_major_axis,
                    self.eccentricity,
                    self.inclination,
                    self.ascending_node,
                    self.argument_of_periapsis,
                    self.mean_anomaly,
                ),
            )
        )
        E = solve_kepler(M, e)
        cE, sE = jnp.cos(E), jnp.sin(E)
        b = jnp.sqrt(1 - e**2)
        r = a * (1 - e * cE)
        x, y = a * (cE - e), a * b * sE
        speed = jnp.sqrt(mu * a) / r
        vx, vy = -speed * sE, speed * b * cE
        cO, sO, cw, sw, ci, si = (
            jnp.cos(node),
            jnp.sin(node),
            jnp.cos(peri),
            jnp.sin(peri),
            jnp.cos(i),
            jnp.sin(i),
        )
        P = jnp.stack([cO * cw - sO * sw * ci, sO * cw + cO * sw * ci, sw * si], -1)
        Q = jnp.stack([-cO * sw - sO * cw * ci, -sO * sw + cO * cw * ci, cw * si], -1)
        q = x[..., None] * P + y[..., None] * Q
        v = vx[..., None] * P + vy[..., None] * Q
        if dim not in (2, 3):
            raise ValueError(f"dim must be 2 or 3; got {dim}.")
        return PhaseState(q=q[..., :dim], v=v[..., :dim])

    @classmethod
    def from_state(cls, y: PhaseState, mu) -> "OrbitalElements":
        """The elements of the bound orbit through state `y` (2-d or 3-d) around a centre
        with gravitational parameter `mu`. Needs negative energy ($e < 1$)."""
        q, v = _pad3(as_float(y.q)), _pad3(as_float(y.v))
        r = safe_norm(q)
        h = cross3(q, v)
        h_norm = safe_norm(h)
        a = 1 / (2 / r - jnp.sum(v**2, -1) / mu)
        e_vec = cross3(v, h) / jnp.asarray(mu)[..., None] - q / r[..., None]
        e = safe_norm(e_vec)
        h_xy = safe_norm(h[..., :2])
        inclination = jnp.arctan2(h_xy, h[..., 2])
        tilted = h_xy > 0
        # Double where: atan2(0, -0) would give pi on equatorial orbits; Omega = 0 there.
        node = jnp.where(
            tilted,
            jnp.arctan2(jnp.where(tilted, h[..., 0], 0.0), jnp.where(tilted, -h[..., 1], 1.0)),
            0.0,
        )
        n_hat = jnp.stack([jnp.cos(node), jnp.sin(node), jnp.zeros_like(node)], -1)
        m_hat = cross3(h / h_norm[..., None], n_hat)  # in the plane, 90 deg ahead of n_hat
        peri = jnp.arctan2(jnp.sum(e_vec * m_hat, -1), jnp.sum(e_vec * n_hat, -1))
        latitude = jnp.arctan2(jnp.sum(q * m_hat, -1), jnp.sum(q * n_hat, -1))
        nu = latitude - peri  # true anomaly
        E = 2 * jnp.arctan2(jnp.sqrt(1 - e) * jnp.sin(nu / 2), jnp.sqrt(1 + e) * jnp.cos(nu / 2))
        return cls(
            semi_major_axis=a,
            eccentricity=e,
            inclination=inclination,
            ascending_node=node,
            argument_of_periapsis=peri,
            mean_anomaly=E - e * jnp.sin(E),
        )


class Kepler(AbstractMechanicalSystem):
    """A test body around a fixed centre of attraction (the reduced two-body problem):

    $$\\ddot{\\mathbf q} = -\\mu \\frac{\\mathbf q}{|\\mathbf q|^3}, \\qquad
      \\mu = G (m_1 + m_2).$$

    Invariants (per unit mass): the energy $E = \\tfrac12 |\\mathbf v|^2 - \\mu/|\\mathbf q|
    = -\\mu / 2a$, the angular momentum $\\mathbf h = \\mathbf q \\times \\mathbf v$ and the
    Laplace-Runge-Lenz (eccentricity) vector
    $\\mathbf e = \\mathbf v \\times \\mathbf h / \\mu - \\mathbf q / |\\mathbf q|$. Bound
    orbits are ellipses with period $2\\pi\\sqrt{a^3/\\mu}$; `solution` gives the exact state
    at any time through `OrbitalElements`.

    State: `PhaseState(q, v)` with shape `(..., 2)` or `(..., 3)`; leading axes are
    independent orbits and broadcast against `mu`. Any consistent units (e.g. AU, days
    and $\\mu$ in AU^3/day^2). The force is singular at $q = 0$ (collision).

    **Fields:** `mu`, the gravitational parameter $G M$, > 0, default 1.

    **Example:**

    ```python
    kepler = ds.systems.Kepler(mu=1.0)
    y0 = kepler.initial_state(semi_major_axis=1.0, eccentricity=0.5, dim=2)
    traj = ds.simulate(kepler, y0, n_steps=1000, dt=2 * jnp.pi / 1000,
                       integrator=ds.Yoshida4())  # one period
    ```
    """

    mu: Float[ArrayLike, "..."] = 1.0

    def __check_init__(self):
        check_positive("Kepler", "mu", self.mu, "", "It is G (m1 + m2), of an attracting centre.")

    def acceleration(self, t, q: Float[Array, "... d"], v) -> Float[Array, "... d"]:
        r2 = jnp.sum(q**2, axis=-1, keepdims=True)
        return -jnp.asarray(self.mu)[..., None] * q * r2**-1.5

    def energy(self, y: PhaseState) -> Float[Array, ""]:
        """Specific orbital energy $\\tfrac12 |v|^2 - \\mu/|q|$, summed over leading axes."""
        return jnp.sum(0.5 * jnp.sum(y.v**2, -1) - self.mu / safe_norm(y.q))

    def angular_momentum(self, y: PhaseState) -> Float[Array, "... 3"]:
        """Specific angular momentum $q \\times v$ (a 3-vector; along z for 2-d states)."""
        return cross3(_pad3(y.q), _pad3(y.v))

    def eccentricity_vector(self, y: PhaseState) -> Float[Array, "... 3"]:
        """The Laplace-Runge-Lenz vector divided by $\\mu$: points to periapsis, length $e$."""
        q, v = _pad3(y.q), _pad3(y.v)
        mu = jnp.asarray(self.mu)[..., None]
        return cross3(v, cross3(q, v)) / mu - q / safe_norm(q, keepdims=True)

    def elements(self, y: PhaseState) -> OrbitalElements:
        """`OrbitalElements.from_state(y, mu)`."""
        return OrbitalElements.from_state(y, self.mu)

    def solution(self, t, y0: PhaseState) -> PhaseState:
        """The exact state at time `t` (from 0) on the bound orbit through `y0`."""
        elements = self.elements(y0).propagate(t, self.mu)
        return elements.to_state(self.mu, dim=y0.q.shape[-1])

    def initial_state(
        self,
        semi_major_axis,
        eccentricity=0.0,
        inclination=0.0,
        ascending_node=0.0,
        argument_of_periapsis=0.0,
        mean_anomaly=0.0,
        dim: int = 3,
    ) -> PhaseState:
        """The state from classical orbital elements (see `OrbitalElements`)."""
        elements = OrbitalElements(
            semi_major_axis,
            eccentricity,
            inclination,
            ascending_node,
            argument_of_periapsis,
            mean_anomaly,
        )
        return elements.to_state(self.mu, dim=dim)
