"""The Boris integrator for gyroscopic forces (charged particles in magnetic fields).

Contract (in addition to `AbstractFixedStepIntegrator`'s): the system must have
`acceleration(t, q, v)` and also `gyroscopic_acceleration(t, q) -> (a, omega)`, two arrays
shaped like `q` with 3 components on the last axis, such that

$$\\ddot q = a(t, q) + \\dot q \\times \\omega(t, q).$$

That is the Lorentz force ($a = (e/m) E$, $\\omega = (e/m) B$) but equally a Coriolis
force in a rotating frame ($\\omega = -2\\Omega$). The engine needs only this split, no
physics. The state is a `PhaseState(q, v)`.
"""

import dataclasses
from typing import ClassVar

import jax.numpy as jnp

from ._base import AbstractFixedStepIntegrator


def _cross(a, b):
    return jnp.stack(
        [
            a[..., 1] * b[..., 2] - a[..., 2] * b[..., 1],
            a[..., 2] * b[..., 0] - a[..., 0] * b[..., 2],
            a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0],
        ],
        axis=-1,
    )


def _boris_kick(v, a, omega, tau):
    """Boris (1970): half kick, exact-norm rotation, half kick, over a time `tau`.

    The rotation solves $(v^+ - v^-)/\\tau = \\tfrac12 (v^+ + v^-) \\times \\omega$ (the
    implicit midpoint rule, a Cayley transform) explicitly, so $|v^+| = |v^-|$ exactly."""
    v_minus = v + 0.5 * tau * a
    t = 0.5 * tau * omega
    s = 2 * t / (1 + jnp.sum(t**2, axis=-1, keepdims=True))
    v_prime = v_minus + _cross(v_minus, t)
    v_plus = v_minus + _cross(v_prime, s)
    return v_plus + 0.5 * tau * a


class Boris(AbstractFixedStepIntegrator):
    """The Boris pusher (Boris 1970, "Relativistic plasma simulation: optimization of a
    hybrid code"; analysed by Qin et al. 2013, Phys. Plasmas 20, 084503), in a
    synchronised, symmetric form for $\\ddot q = a(t, q) + \\dot q \\times \\omega(t, q)$:

    $$v_a = \\mathcal B_{h/2}(v_n; q_n), \\quad q_{n+1} = q_n + h\\, v_a, \\quad
      v_{n+1} = \\mathcal B_{h/2}(v_a; q_{n+1}),$$

    where $\\mathcal B_\\tau$ is Boris' kick-rotate-kick over a time $\\tau$ with the fields
    at the given position. Second order, time-reversible and volume-preserving (not
    symplectic; Qin et al.). In a pure magnetic field $|v|$ is conserved exactly, the
    orbit is a circle of radius $|v_\\perp|/|\\omega|$ with an $O(h^2)$ phase error, and in
    crossed uniform fields the $E \\times B$ drift velocity is exact. Two field evaluations
    a step. `ds.Leapfrog`'s velocity predictor handles the magnetic force only to second
    order and lets $|v|$ drift.

    The system must provide `gyroscopic_acceleration(t, q) -> (a, omega)` (see the module
    docstring), with 3 components on the last axis; e.g. `ds.systems.ChargedParticle`.

    **Example:**

    ```python
    ion = ds.systems.ChargedParticle(magnetic_field=jnp.array([0.0, 0.0, 2.0]))
    y0 = ds.PhaseState(q=jnp.zeros(3), v=jnp.array([1.0, 0.0, 0.1]))
    traj = ds.simulate(ion, y0, t1=10.0, dt=0.1, integrator=ds.Boris())
    print(jnp.linalg.norm(traj.ys.v[-1]))  # 1.004988: |v0| = 1.004988, kept to round-off
    ```
    """

    order: ClassVar[int] = 2
    symplectic: ClassVar[bool] = False
    # Exactly reversible, but the Reversible adjoint refuses velocity-dependent forces.
    reversible: ClassVar[bool] = False
    mechanical: ClassVar[bool] = True

    def step(self, system, t, y, dt):
        split = getattr(system, "gyroscopic_acceleration", None)
        if not callable(split):
            raise TypeError(
                "integrator=ds.Boris() needs a system with gyroscopic_acceleration(t, q) -> "
                f"(a, omega) (acceleration a + v x omega); {type(system).__name__} has none. "
                "Use ds.RK4() or ds.Leapfrog() for other systems."
            )
        half = 0.5 * dt
        q, v = y.q, y.v
        if q.shape[-1] != 3:
            raise ValueError(f"ds.Boris() needs 3-d positions; got shape {q.shape}.")
        a0, w0 = split(t, q)
        v_a = _boris_kick(v, a0, w0, half)
        q1 = q + dt * v_a
        a1, w1 = split(t + dt, q1)
        v1 = _boris_kick(v_a, a1, w1, half)
        return dataclasses.replace(y, q=q1, v=v1)
