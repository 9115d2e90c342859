"""The Wisdom-Holman map for near-Keplerian N-body systems, in Jacobi coordinates.

Contract (in addition to `AbstractFixedStepIntegrator`'s): the system has `masses` (`n`
masses, body 0 the dominant central one, > 0), a gravitational constant `G`, and an
`acceleration(t, q, v)` that is Newtonian gravity between those masses plus, at most, a
small force that depends on positions only (Plummer softening, an external field). That
is `ds.systems.NBody`; the engine needs only these names, no physics. The state is a
`PhaseState(q, v)` with `q`, `v` of shape `(n, d)`, in any inertial frame: each step
converts it to Jacobi coordinates and back, so input and output are the usual state.
"""

import dataclasses
import math
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from ..._trees import is_concrete
from ._base import AbstractFixedStepIntegrator

# Laguerre-Conway iterations of the universal Kepler equation after the starting guess,
# then one Newton step that carries the gradient (implicit differentiation). Measured on
# a grid of eccentricities, anomalies and steps (up to 3.7 periods): round-off in float64
# for e <= 0.9 and for hyperbolic orbits with e >= 1.5; not always for e >= 0.99 at
# steps comparable to the period (such orbits need steps short against the pericentre
# passage anyway).
_KEPLER_ITERATIONS = 5
# Steps longer than this fraction of an orbital period start from the mean-motion guess.
_LONG_STEP = 0.05
# Stumpff series: terms kept, and the most quarterings of z before summing (|z| <= 4^6
# then sums with |z| <= 1, where the first neglected term is below 1/23!).
_SERIES_TERMS = 10
_QUARTERINGS = 6


def _stumpff(z):
    """Stumpff's functions $c_0 \\ldots c_3$ of $z$: $c_k(z) = \\sum_j (-z)^j/(k+2j)!$.

    As WHFast does: $z$ is quartered until $|z| \\le 1$, the series summed, and the
    result brought back with $c_0(4z) = 2c_0^2 - 1$, $c_1(4z) = c_0 c_1$,
    $c_2(4z) = c_1^2/2$, $c_3(4z) = (c_2 + c_0 c_3)/4$. The number of quarterings is
    chosen per element by comparisons (no loop over data, no branch), and the whole is
    products and sums only: no circular or hyperbolic function, no division, no NaN in
    values or gradients, and XLA fuses it into its neighbours."""
    size = jnp.abs(z)
    quarter = [size > 4.0**i for i in range(_QUARTERINGS)]
    for q in quarter:
        z = jnp.where(q, 0.25 * z, z)
    c2 = jnp.full_like(z, 1.0 / math.factorial(2 * _SERIES_TERMS + 2))
    c3 = jnp.full_like(z, 1.0 / math.factorial(2 * _SERIES_TERMS + 3))
    for j in range(_SERIES_TERMS - 1, -1, -1):
        c2 = 1.0 / math.factorial(2 * j + 2) - z * c2
        c3 = 1.0 / math.factorial(2 * j + 3) - z * c3
    c0, c1 = 1.0 - z * c2, 1.0 - z * c3
    for q in reversed(quarter):
        c0, c1, c2, c3 = (
            jnp.where(q, 2.0 * c0 * c0 - 1.0, c0),
            jnp.where(q, c0 * c1, c1),
            jnp.where(q, 0.5 * c1 * c1, c2),
            jnp.where(q, 0.25 * (c2 + c0 * c3), c3),
        )
    return c0, c1, c2, c3


def _kepler_function(X, r0, eta0, zeta0, beta, dt):
    """The universal Kepler equation $F(X) = r_0 X + \\eta_0 G_2 + \\zeta_0 G_3 - t$, its
    first two derivatives ($F' = r$, the distance at $X$), and $G_1, G_2, G_3$,
    $G_k = X^k c_k(\\beta X^2)$."""
    c0, c1, c2, c3 = _stumpff(beta * X * X)
    X2 = X * X
    g1, g2, g3 = X * c1, X2 * c2, X2 * X * c3
    f = r0 * X + eta0 * g2 + zeta0 * g3 - dt
    fp = r0 + eta0 * g1 + zeta0 * g2
    fpp = eta0 * c0 + zeta0 * g1
    return f, fp, fpp, (g1, g2, g3)


def _solve_kepler(r0, eta0, zeta0, beta, mu, dt):
    """The universal anomaly $X$ at time `dt` (per body), by a fixed number of
    Laguerre-Conway steps (Conway 1986, n = 5), which converge from any start on
    elliptic orbits. No gradient flows through them (see `_kepler_drift`)."""
    r0, eta0, zeta0, beta, mu, dt = jax.lax.stop_gradient((r0, eta0, zeta0, beta, mu, dt))
    bound = beta > 0
    beta_b = jnp.where(bound, beta, 1.0)
    inv_period = jnp.where(bound, beta_b * jnp.sqrt(beta_b) / (2 * jnp.pi * mu), 0.0)
    taylor = dt / r0 * (1.0 - 0.5 * dt * eta0 / (r0 * r0))
    # Unbound, a long step's Taylor guess overshoots exponentially: cap it at the
    # hyperbolic anomaly change of a body starting at pericentre with e ~ 1.
    beta_u = jnp.where(bound, 1.0, -beta)
    sqrt_u = jnp.sqrt(beta_u)
    cap = jnp.arcsinh(jnp.abs(dt) * beta_u * sqrt_u / mu) / sqrt_u
    taylor = jnp.where(bound, taylor, jnp.sign(dt) * jnp.minimum(jnp.abs(taylor), cap))
    X = jnp.where(jnp.abs(dt) * inv_period > _LONG_STEP, beta * dt / mu, taylor)

    def laguerre(_, X):
        f, fp, fpp, _ = _kepler_function(X, r0, eta0, zeta0, beta, dt)
        return X - 5.0 * f / (fp + jnp.sqrt(jnp.abs(16.0 * fp * fp - 20.0 * f * fpp)))

    return jax.lax.fori_loop(0, _KEPLER_ITERATIONS, laguerre, X)


def _kepler_drift(x, v, mu, dt):
    """Advance relative positions `x` and velocities `v` (`(k, d)`) on Kepler orbits of
    gravitational parameters `mu` (`(k,)`) by `dt`, in universal variables (Danby 1988;
    Wisdom & Hernandez 2015) with Gauss's f and g functions. Bound orbits first drop
    whole periods from `dt` (the flow is periodic, so the gradient stays exact)."""
    r0 = jnp.sqrt(jnp.sum(x * x, axis=-1))
    eta0 = jnp.sum(x * v, axis=-1)
    beta = 2.0 * mu / r0 - jnp.sum(v * v, axis=-1)
    zeta0 = mu - beta * r0

    bound = beta > 0
    beta_b = jnp.where(bound, beta, 1.0)
    period = 2 * jnp.pi * mu / (beta_b * jnp.sqrt(beta_b))
    periods = jnp.where(bound, jnp.round(jax.lax.stop_gradient(dt / period)), 0.0)
    # Where no period is dropped `period` may be huge (near-parabolic): not multiplied.
    dt = dt - jnp.where(periods != 0, periods * jnp.where(periods != 0, period, 0.0), 0.0)

    # The root without its gradient, then a Newton step from it: dX = -dF / F', the
    # implicit derivative, at the cost of one evaluation (and a last digit of accuracy).
    X = _solve_kepler(r0, eta0, zeta0, beta, mu, dt)
    f, fp, _, _ = _kepler_function(X, r0, eta0, zeta0, beta, dt)
    X = jax.lax.stop_gradient(X) - f / fp
    _, r, _, (g1, g2, g3) = _kepler_function(X, r0, eta0, zeta0, beta, dt)

    # Increments rather than f and g themselves, so that short steps keep their digits.
    df = (-mu * g2 / r0)[:, None]
    g = (dt - mu * g3)[:, None]
    dfdot = (-mu * g1 / (r0 * r))[:, None]
    dgdot = (-mu * g2 / r)[:, None]
    return x + df * x + g * v, v + dfdot * x + dgdot * v


def _jacobi_matrices(m):
    """`(A, B)`: `A @ x` gives Jacobi coordinates (row 0 the centre of mass, row i >= 1
    body i relative to the centre of mass of bodies 0 .. i-1), `B = A^{-1}`. The same
    maps take velocities and accelerations. With $M_i = m_0 + \\ldots + m_i$,
    $A_{ik} = \\delta_{ik} - [k < i]\\, m_k / M_{i-1}$ and
    $B_{ik} = [k = 0] + \\delta_{ik} - [1 \\le k,\\ i \\le k]\\, m_k / M_k$ for k >= 1."""
    n = m.shape[0]
    i, k = jnp.arange(n)[:, None], jnp.arange(n)[None, :]
    M = jnp.cumsum(m)
    eye = (i == k).astype(m.dtype)
    inner = jnp.where(i[:, 0] == 0, M[-1], M - m)[:, None]  # M_{i-1}; row 0: the total
    A = jnp.where(i == 0, m / M[-1], eye - jnp.where(k < i, m / inner, 0.0))
    B = jnp.where(k == 0, 1.0, eye - jnp.where(k >= i, m / M, 0.0))
    return A, B, M


def _matmul(A, x):
    return jnp.matmul(A, x, precision=jax.lax.Precision.HIGHEST)


def _kepler_acceleration(xj, mu, planet):
    """Minus the Kepler part of each Jacobi body's acceleration, $+\\mu_i x'_i/|x'_i|^3$;
    zero on row 0 (the centre of mass), which `planet` masks."""
    inv = jax.lax.rsqrt(jnp.sum(xj * xj, axis=-1, keepdims=True))
    return jnp.where(planet, mu[:, None] * xj * (inv * inv * inv), 0.0)


def _parameters(system, q):
    """The masses and G, checked (at trace time) and cast to the state's dtype."""
    name = type(system).__name__
    masses, G = getattr(system, "masses", None), getattr(system, "G", None)
    if masses is None or G is None:
        raise TypeError(
            "integrator=ds.WisdomHolman() is for gravitational N-body systems with a "
            f"dominant central body (ds.systems.NBody): it needs fields `masses` and `G`, "
            f"which {name} lacks. Use integrator=ds.Yoshida4() for other mechanical systems."
        )
    if is_concrete(masses) and not np.asarray(masses).reshape(-1)[:1].item() > 0:
        raise ValueError(
            f"integrator=ds.WisdomHolman() needs a central body 0 of positive mass; got "
            f"{name}.masses[0] = {np.asarray(masses).reshape(-1)[0]}."
        )
    masses = jnp.asarray(masses, q.dtype)
    if masses.ndim != 1 or q.ndim != 2 or q.shape[0] != masses.shape[0] or q.shape[0] < 2:
        raise ValueError(
            f"integrator=ds.WisdomHolman() needs y0.q of shape (n, d) with n >= 2 bodies, one "
            f"per mass; got y0.q of shape {q.shape} for {name}.masses of shape "
            f"{masses.shape}."
        )
    return masses, jnp.asarray(G, q.dtype)


class WisdomHolman(AbstractFixedStepIntegrator):
    """The Wisdom-Holman symplectic map (Wisdom & Holman 1991, AJ 102, 1528) for planets
    around a dominant central body, in Jacobi coordinates as in WHFast (Rein & Tamayo
    2015, MNRAS 452, 376).

    The Hamiltonian of `n` bodies, in Jacobi coordinates $x'_i$ (body $i$ relative to
    the centre of mass of bodies $0 \\ldots i-1$; row 0 is the centre of mass), splits as

    $$H = \\underbrace{\\sum_{i \\ge 1} \\Big(\\frac{|p'_i|^2}{2 m'_i} - \\frac{G m_i M_{i-1}}
      {|x'_i|}\\Big) + \\frac{|P|^2}{2M}}_{H_K:\\ \\text{Kepler orbits, solved exactly}}
      + \\underbrace{\\sum_{i \\ge 1} \\frac{G m_i M_{i-1}}{|x'_i|} - \\sum_{i<j}
      \\frac{G m_i m_j}{|q_j - q_i|}}_{H_I:\\ \\text{positions only}}$$

    with $M_i = m_0 + \\ldots + m_i$ and $m'_i = m_i M_{i-1}/M_i$. One step is
    kick-drift-kick,

    $$e^{\\frac h2 \\hat H_I}\\, e^{h \\hat H_K}\\, e^{\\frac h2 \\hat H_I}:$$

    a half kick $v'_i \\mathrel{+}= \\frac h2 \\big(a'_i + G M_i x'_i/|x'_i|^3\\big)$, where
    $a'$ is the system's own acceleration in Jacobi coordinates (so softening and other
    position-dependent forces land in $H_I$), then each $x'_i$ moves for $h$ on its
    Kepler orbit about a mass $M_i$ (the centre of mass moves uniformly), then a half
    kick. The drift solves the universal Kepler equation
    $r_0 X + \\eta_0 G_2(X) + \\zeta_0 G_3(X) = h$ with Stumpff functions (any
    eccentricity, hyperbolic orbits too) by a fixed number of Laguerre-Conway
    iterations, no loop over data, and is differentiated implicitly.

    Symplectic and time-reversible (`ds.Reversible()` applies), order 2 in $h$, but the
    error is $O(\\varepsilon h^2)$, with $\\varepsilon$ the planet-to-star mass ratio
    ($10^{-3}$ for the solar system). On the outer solar system at a step of 100 days
    (a 43rd of Jupiter's period) its position error over 10 years is 1.4 times
    `ds.Yoshida4`'s at 10 days (which takes 30 times the force evaluations) and a tenth
    of `ds.Yoshida4`'s at 20 days. Two bodies are exact for any
    step (up to round-off). One force evaluation a step in `ds.simulate` (the end-of-step
    force is carried to the next step) plus one Kepler solve per planet.

    **Why Jacobi coordinates:** they make the two-body problem exact and keep $H_I$
    small for hierarchical systems (the solar system), where they are the most accurate
    (Rein & Tamayo 2015); democratic heliocentric coordinates add a "jump" term that is
    not small for two bodies. Order the bodies outward: body 0 the star, then the
    planets by semi-major axis. Close encounters between planets (where $H_I$ is not
    small) need a smaller step or a hybrid method.

    **State:** `PhaseState(q, v)` of shape `(n, d)` (any `d`; 2 and 3 tested) in any
    inertial frame, barycentric or heliocentric: every step converts to Jacobi
    coordinates and back. **System:** `ds.systems.NBody` (or anything with `masses`, `G`
    and a Newtonian `acceleration`, see the module docstring). Softening does not break
    the splitting (it enters $H_I$) but the step is accurate only while the softening
    length is much smaller than the planets' distances from the star. Velocity-dependent
    forces are not allowed.

    **Example:**

    ```python
    system, y0 = ds.systems.solar_system(barycentric=True)
    energy0 = system.energy(y0)
    traj = ds.simulate(system, y0, t1=10_000.0, dt=100.0, integrator=ds.WisdomHolman())
    print(abs(system.energy(jax.tree.map(lambda x: x[-1], traj.ys)) / energy0 - 1))
    # 6.7e-06 in float32 (its round-off); 4.7e-08 in float64
    ```
    """

    order: ClassVar[int] = 2
    symplectic: ClassVar[bool] = True
    reversible: ClassVar[bool] = True
    mechanical: ClassVar[bool] = True

    def check_system(self, system, y0):
        """Refuse, before anything runs, a system without `masses` and `G`, a state that
        does not hold one `(d,)` row per mass, and (when concrete) a massless body 0."""
        _parameters(system, jnp.asarray(y0.q))

    def step(self, system, t, y, dt):
        a0 = system.acceleration(t, y.q, y.v)
        return self.step_fsal(system, t, y, a0, dt)[0]

    def step_fsal(self, system, t, y, a0, dt):
        """`step` given the system's acceleration at the start, returning the one at the
        end too: one force evaluation a step. A step of `-dt` from `(y1, a1)` returns
        `(y0, a0)` up to round-off."""
        m, G = _parameters(system, y.q)
        A, B, M = _jacobi_matrices(m)
        mu = G * M
        d = y.q.shape[1]
        half = 0.5 * dt
        # Row 0 (the centre of mass) moves uniformly; it gets a harmless orbit in the
        # Kepler solve (the double-where trick: its origin must not reach a 1/r).
        planet = (jnp.arange(m.shape[0]) > 0)[:, None]
        xj, vj, aj = jnp.split(_matmul(A, jnp.concatenate([y.q, y.v, a0], axis=1)), 3, axis=1)
        xk = jnp.where(planet, xj, 1.0)
        vj = vj + half * (aj + _kepler_acceleration(xk, mu, planet))
        xk, vk = _kepler_drift(xk, jnp.where(planet, vj, 0.0), mu, dt)
        xj = jnp.where(planet, xk, xj + dt * vj)
        vj = jnp.where(planet, vk, vj)
        kick = _kepler_acceleration(xk, mu, planet)
        back = _matmul(B, jnp.concatenate([xj, vj, kick], axis=1))
        q1, v_half, kick = back[:, :d], back[:, d : 2 * d], back[:, 2 * d :]
        a1 = system.acceleration(t + dt, q1, v_half)
        return dataclasses.replace(y, q=q1, v=v_half + half * (a1 + kick)), a1
