"""The classic fixed-step methods: Euler, RK4, semi-implicit Euler, leapfrog, Yoshida.

Each is our own code, one pure `step` (and, for the symplectic ones, `step_fsal`, which
carries the acceleration from one step to the next), built to sit in `lax.scan`. The
contract they meet is in `_base.py`.
"""

from typing import ClassVar

from ._base import (
    AbstractFixedStepIntegrator,
    axpy,
    lincomb,
    replace_qv,
)


class Euler(AbstractFixedStepIntegrator):
    """Explicit (forward) Euler, order 1.

    $$y_{n+1} = y_n + h f(t_n, y_n)$$

    For reference and teaching: it gains energy on oscillators. Prefer `RK4`, or a
    symplectic method for mechanics.

    **Example:**

    ```python
    osc = ds.systems.HarmonicOscillator(omega=1.0)
    y0 = osc.initial_state(1.0)
    traj = ds.simulate(osc, y0, t1=10.0, dt=0.1, integrator=ds.Euler())
    print(osc.energy(traj.ys) / osc.energy(y0))  # 2.70...: (1 + dt^2)^100, energy gained
    ```
    """

    order: ClassVar[int] = 1
    symplectic: ClassVar[bool] = False
    reversible: ClassVar[bool] = False
    mechanical: ClassVar[bool] = False
    stability_decay: ClassVar[float | None] = 2.0  # |1 + z| <= 1

    def step(self, system, t, y, dt):
        return axpy(dt, system.vector_field(t, y), y)


class RK4(AbstractFixedStepIntegrator):
    """The classical fourth-order Runge-Kutta method.

    $$k_1 = f(t, y),\\ k_2 = f(t + \\tfrac h2, y + \\tfrac h2 k_1),\\
      k_3 = f(t + \\tfrac h2, y + \\tfrac h2 k_2),\\ k_4 = f(t + h, y + h k_3)$$
    $$y_{n+1} = y_n + \\tfrac h6 (k_1 + 2k_2 + 2k_3 + k_4)$$

    Works on any system and any pytree state; four vector-field evaluations a step.

    **Example:**

    ```python
    decay = ds.ODESystem(lambda t, y, rate: -rate * y, 1.0)
    traj = ds.simulate(decay, jnp.array(1.0), t1=1.0, dt=0.1, integrator=ds.RK4())
    print(traj.ys)  # [0.3678798], against exp(-1) = 0.3678794
    ```
    """

    order: ClassVar[int] = 4
    symplectic: ClassVar[bool] = False
    reversible: ClassVar[bool] = False
    mechanical: ClassVar[bool] = False
    stability_decay: ClassVar[float | None] = 2.785  # real root of |R(z)| = 1
    stability_oscillation: ClassVar[float | None] = 2.828  # 2 sqrt(2)

    def step(self, system, t, y, dt):
        half = 0.5 * dt
        k1 = system.vector_field(t, y)
        k2 = system.vector_field(t + half, axpy(half, k1, y))
        k3 = system.vector_field(t + half, axpy(half, k2, y))
        k4 = system.vector_field(t + dt, axpy(dt, k3, y))
        return lincomb(y, dt, (1 / 6, 1 / 3, 1 / 3, 1 / 6), (k1, k2, k3, k4))


class SemiImplicitEuler(AbstractFixedStepIntegrator):
    """Symplectic (semi-implicit) Euler, order 1: kick then drift.

    $$v_{n+1} = v_n + h\\, a(t_n, q_n, v_n), \\qquad q_{n+1} = q_n + h\\, v_{n+1}$$

    Symplectic for velocity-independent forces, so energy errors stay bounded.

    **Example:**

    ```python
    osc = ds.systems.HarmonicOscillator(omega=1.0)
    y0 = osc.initial_state(1.0)
    traj = ds.simulate(osc, y0, t1=10.0, dt=0.1, integrator=ds.SemiImplicitEuler(),
                       saveat=ds.SaveAt(every=1))
    energy = jax.vmap(osc.energy)(traj.ys) / osc.energy(y0)
    print(energy.min(), energy.max())  # 0.952... 1.052...: it oscillates, it does not grow
    ```
    """

    order: ClassVar[int] = 1
    symplectic: ClassVar[bool] = True
    reversible: ClassVar[bool] = False
    mechanical: ClassVar[bool] = True
    stability_oscillation: ClassVar[float | None] = 2.0  # omega dt < 2

    def step(self, system, t, y, dt):
        v1 = axpy(dt, system.acceleration(t, y.q, y.v), y.v)
        return replace_qv(y, axpy(dt, v1, y.q), v1)


class Leapfrog(AbstractFixedStepIntegrator):
    """Velocity Verlet (kick-drift-kick leapfrog), order 2, symplectic and time-reversible.

    $$v_{1/2} = v_n + \\tfrac h2 a(t_n, q_n, v_n), \\quad q_{n+1} = q_n + h v_{1/2}, \\quad
      v_{n+1} = v_{1/2} + \\tfrac h2 a(t_{n+1}, q_{n+1}, \\tilde v)$$

    with $\\tilde v = v_n + h\\, a(t_n, q_n, v_n)$, an explicit predictor of $v_{n+1}$ that
    costs nothing extra. When $a$ does not depend on $v$ this is exactly velocity Verlet
    (Verlet 1967; Swope et al. 1982): symplectic, time-reversible, energy error bounded for
    exponentially long times. With a velocity-dependent force (damping) the predictor keeps
    the method second order, though it is then neither symplectic nor reversible (no
    method with explicit damping is).

    Two force evaluations a step; one in `ds.simulate` when the acceleration cannot
    depend on the velocity (`step_fsal`: the end-of-step force is the next step's
    start-of-step force, carried in the loop).

    **Example:**

    ```python
    pendulum = ds.systems.Pendulum(length=1.0)
    y0 = pendulum.initial_state(1.0)
    traj = ds.simulate(pendulum, y0, t1=100.0, dt=0.01, integrator=ds.Leapfrog(),
                       saveat=ds.SaveAt(every=100))
    energy = jax.vmap(pendulum.energy)(traj.ys)
    print(jnp.max(jnp.abs(energy / pendulum.energy(y0) - 1)))  # 2.3e-04: no drift
    ```
    """

    order: ClassVar[int] = 2
    symplectic: ClassVar[bool] = True
    reversible: ClassVar[bool] = True
    mechanical: ClassVar[bool] = True
    stability_oscillation: ClassVar[float | None] = 2.0  # omega dt < 2

    def step(self, system, t, y, dt):
        a0 = system.acceleration(t, y.q, y.v)
        v_half = axpy(0.5 * dt, a0, y.v)
        q1 = axpy(dt, v_half, y.q)
        v_pred = axpy(dt, a0, y.v)
        v1 = axpy(0.5 * dt, system.acceleration(t + dt, q1, v_pred), v_half)
        return replace_qv(y, q1, v1)

    def step_fsal(self, system, t, y, a0, dt):
        """`step` given the acceleration at the start, returning the one at the end too:
        one force evaluation a step instead of two. Only for an acceleration that does
        not depend on the velocity (see `ignores_velocity`), which is then evaluated at
        any velocity. A step of `-dt` from `(y1, a1)` returns `(y0, a0)` exactly in exact
        arithmetic, as `step` does."""
        v_half = axpy(0.5 * dt, a0, y.v)
        q1 = axpy(dt, v_half, y.q)
        a1 = system.acceleration(t + dt, q1, v_half)
        return replace_qv(y, q1, axpy(0.5 * dt, a1, v_half)), a1


# Yoshida (1990) "Construction of higher order symplectic integrators", Phys. Lett. A 150.
_CBRT2 = 2.0 ** (1.0 / 3.0)
_YOSHIDA_W1 = 1.0 / (2.0 - _CBRT2)
_YOSHIDA_W0 = -_CBRT2 / (2.0 - _CBRT2)


class Yoshida4(AbstractFixedStepIntegrator):
    """Yoshida's fourth-order symplectic, time-reversible integrator.

    The triple-jump composition of `Leapfrog` steps of lengths $w_1 h, w_0 h, w_1 h$ with
    $w_1 = 1/(2 - 2^{1/3})$, $w_0 = -2^{1/3}/(2 - 2^{1/3})$ (Yoshida 1990). Symmetric
    composition lifts a symmetric second-order method to order 4, so this holds for
    velocity-independent forces; with velocity-dependent ones (damping) the base step is
    not symmetric and the triple jump gains one order instead of two: order 3 (measured in
    the tests).

    Six force evaluations a step; three in `ds.simulate` when the acceleration cannot
    depend on the velocity (`step_fsal`).

    **Example:**

    ```python
    osc = ds.systems.HarmonicOscillator(omega=1.0)
    y0 = osc.initial_state(1.0)
    exact = osc.solution(1.0, y0).q
    for integrator in (ds.Leapfrog(), ds.Yoshida4()):
        traj = ds.simulate(osc, y0, t1=1.0, dt=0.1, integrator=integrator)
        print(abs(traj.ys.q[-1] - exact))  # 3.5e-04 (Leapfrog), then 5.7e-06 (Yoshida4)
    ```
    """

    order: ClassVar[int] = 4
    symplectic: ClassVar[bool] = True
    reversible: ClassVar[bool] = True
    mechanical: ClassVar[bool] = True
    stability_oscillation: ClassVar[float | None] = 1.573

    def step(self, system, t, y, dt):
        leapfrog = Leapfrog()
        h1 = _YOSHIDA_W1 * dt
        h0 = _YOSHIDA_W0 * dt
        y = leapfrog.step(system, t, y, h1)
        y = leapfrog.step(system, t + h1, y, h0)
        return leapfrog.step(system, t + h1 + h0, y, h1)

    def step_fsal(self, system, t, y, a0, dt):
        """`step` carrying the acceleration between the three substeps and across steps:
        three force evaluations a step instead of six (see `Leapfrog.step_fsal`)."""
        leapfrog = Leapfrog()
        h1 = _YOSHIDA_W1 * dt
        h0 = _YOSHIDA_W0 * dt
        y, a = leapfrog.step_fsal(system, t, y, a0, h1)
        y, a = leapfrog.step_fsal(system, t + h1, y, a, h0)
        return leapfrog.step_fsal(system, t + h1 + h0, y, a, h1)
