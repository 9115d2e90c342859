"""A charged particle in given electric and magnetic fields (the Lorentz force)."""

from collections.abc import Callable

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from ._base import AbstractMechanicalSystem, PhaseState
from ._checks import check_finite, check_positive, check_shape
from ._util import as_float, cross3, safe_norm

Field = Float[ArrayLike, "... 3"] | Callable[..., Float[Array, "... 3"]]


def _evaluate(field, t, q):
    if callable(field):
        return field(t, q)
    return jnp.broadcast_to(as_float(field), q.shape)


class ChargedParticle(AbstractMechanicalSystem):
    """A non-relativistic point charge in prescribed fields (test particles: they feel the
    fields but do not change them):

    $$m \\ddot{\\mathbf x} = e\\,\\big(\\mathbf E(t, \\mathbf x) + \\dot{\\mathbf x} \\times
      \\mathbf B(t, \\mathbf x)\\big).$$

    In a uniform $\\mathbf B$ the particle gyrates at the cyclotron frequency
    $\\omega_c = |e| B / m$ on a circle of Larmor radius $r_L = m v_\\perp / (|e| B)$, and a
    uniform $\\mathbf E \\perp \\mathbf B$ adds the drift $\\mathbf v_d = \\mathbf E \\times
    \\mathbf B / B^2$, independent of charge and mass (e.g. Chen, *Introduction to Plasma
    Physics*, ch. 2). The magnetic force does no work: with a uniform $\\mathbf E$ the energy
    $\\tfrac12 m |\\mathbf v|^2 - e\\,\\mathbf E \\cdot \\mathbf x$ is conserved.

    Use `ds.Boris()`: it keeps $|v|$ exactly in magnetic fields and the drift exact
    (`gyroscopic_acceleration` supplies its split). `ds.RK4` is accurate but lets the
    energy drift slowly; `ds.Leapfrog` is only second order here and not symplectic.

    State: `PhaseState(q, v)` of shape `(..., 3)`; SI units (or any consistent ones).

    **Fields:**

    - `charge`: $e$ (C), any sign, default 1.
    - `mass`: $m$ (kg), > 0, default 1.
    - `electric_field`: $\\mathbf E$ (V/m): a uniform `(3,)` vector, or a callable
      `E(t, x) -> (..., 3)` (an `eqx.Module` for differentiable field parameters).
      Default zero.
    - `magnetic_field`: $\\mathbf B$ (T), the same way. Default $(0, 0, 1)$.

    **Example:**

    ```python
    ion = ds.systems.ChargedParticle(electric_field=jnp.array([0.1, 0.0, 0.0]))
    y0 = ds.PhaseState(q=jnp.zeros(3), v=jnp.array([0.0, 1.0, 0.1]))
    traj = ds.simulate(ion, y0, t1=100.0, dt=0.01, integrator=ds.Boris())
    ```
    """

    charge: Float[ArrayLike, "..."] = 1.0
    mass: Float[ArrayLike, "..."] = 1.0
    electric_field: Field = (0.0, 0.0, 0.0)
    magnetic_field: Field = (0.0, 0.0, 1.0)

    def __check_init__(self):
        check_finite("ChargedParticle", "charge", self.charge, "C")
        check_positive("ChargedParticle", "mass", self.mass, "kg")
        for name, unit in (("electric_field", "V/m"), ("magnetic_field", "T")):
            field = getattr(self, name)
            if callable(field):
                continue
            expected = f"a (3,) vector, (..., 3) vectors or a callable {name[0].upper()}(t, x)"
            check_shape("ChargedParticle", name, field, lambda s: s[-1:] == (3,), expected)
            check_finite("ChargedParticle", name, field, unit)

    def _ratio(self):
        return (jnp.asarray(self.charge) / jnp.asarray(self.mass))[..., None]

    def gyroscopic_acceleration(self, t, q: Float[Array, "... 3"]):
        """$(e \\mathbf E / m,\\ e \\mathbf B / m)$: the split `ds.Boris` needs,
        $\\ddot x = a + v \\times \\omega$."""
        ratio = self._ratio()
        return ratio * _evaluate(self.electric_field, t, q), ratio * _evaluate(
            self.magnetic_field, t, q
        )

    def acceleration(self, t, q: Float[Array, "... 3"], v) -> Float[Array, "... 3"]:
        a, omega = self.gyroscopic_acceleration(t, q)
        return a + cross3(v, omega)

    def energy(self, y: PhaseState) -> Float[Array, ""]:
        """$\\tfrac12 m |v|^2 - e \\mathbf E \\cdot \\mathbf x$ (J), conserved for a uniform
        $\\mathbf E$ and any static $\\mathbf B$; summed over leading axes."""
        if callable(self.electric_field):
            raise NotImplementedError(
                "ChargedParticle.energy needs a uniform electric field (a potential); this "
                "one is a callable."
            )
        E = as_float(self.electric_field)
        kinetic = 0.5 * self.mass * jnp.sum(y.v**2, -1)
        return jnp.sum(kinetic - self.charge * jnp.sum(E * y.q, -1))

    def cyclotron_frequency(self, t=0.0, q=None) -> Float[Array, "..."]:
        """$\\omega_c = |e| B / m$ (rad/s), with $B$ at `q` (default the origin)."""
        q = jnp.zeros(3) if q is None else q
        return jnp.abs(self.charge) * safe_norm(_evaluate(self.magnetic_field, t, q)) / self.mass

    def larmor_radius(self, y: PhaseState, t=0.0) -> Float[Array, "..."]:
        """$r_L = m v_\\perp / (|e| B)$ (m), $v_\\perp$ measured in the drift frame."""
        B = _evaluate(self.magnetic_field, t, y.q)
        b = B / safe_norm(B, keepdims=True)
        v = y.v - self.drift_velocity(t, y.q)
        v_perp = safe_norm(v - jnp.sum(v * b, -1, keepdims=True) * b)
        return self.mass * v_perp / (jnp.abs(self.charge) * safe_norm(B))

    def drift_velocity(self, t=0.0, q=None) -> Float[Array, "... 3"]:
        """$\\mathbf E \\times \\mathbf B / B^2$ (m/s), at `q` (default the origin)."""
        q = jnp.zeros(3) if q is None else q
        E, B = _evaluate(self.electric_field, t, q), _evaluate(self.magnetic_field, t, q)
        return cross3(E, B) / jnp.sum(B**2, -1, keepdims=True)
