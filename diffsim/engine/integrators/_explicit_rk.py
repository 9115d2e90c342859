"""Fixed-step explicit Runge-Kutta methods driven by a Butcher tableau.

Contract: an `AbstractExplicitRK` is an `AbstractFixedStepIntegrator` (see `_base.py`)
whose one step is the explicit Runge-Kutta method of its class-level `tableau`, a
`diffrax.ButcherTableau`. The tableau is diffrax's own (we do not copy coefficients), so
`Tsit5Fixed` takes exactly the steps that `ds.Tsit5` (adaptive, diffrax) would take if its
step size were held constant. Stages that nothing uses are skipped, so an FSAL method such
as Tsitouras 5(4) costs six vector-field evaluations a step, not seven.
"""

from typing import ClassVar

import diffrax
import equinox as eqx
import numpy as np

from ._base import AbstractFixedStepIntegrator, lincomb


def _needed_stages(tableau: diffrax.ButcherTableau) -> int:
    """How many leading stages the solution needs: stage j is needed when `b_j != 0` or a
    needed later stage uses it. Trailing unused stages (the FSAL stage, the error
    estimator's extra stages) are then never evaluated."""
    b = np.asarray(tableau.b_sol)
    n = len(b)
    needed = [bool(b[j] != 0) for j in range(n)]
    for i in range(n - 1, 0, -1):
        if needed[i]:
            row = np.asarray(tableau.a_lower[i - 1])
            for j in range(i):
                needed[j] = needed[j] or bool(row[j] != 0)
    return max((j + 1 for j in range(n) if needed[j]), default=1)


class AbstractExplicitRK(AbstractFixedStepIntegrator):
    """An explicit Runge-Kutta method at a fixed step, from a Butcher tableau.

    With stages $k_1 = f(t, y)$ and
    $$k_i = f\\Big(t + c_i h,\\ y + h \\sum_{j<i} a_{ij} k_j\\Big), \\qquad
      y_{n+1} = y_n + h \\sum_i b_i k_i .$$

    Subclass it with a class-level `tableau` (a `diffrax.ButcherTableau`; its error
    estimate `b_error` is not used) and `order`. Works on any system and any pytree state.

    **Example:**

    ```python
    import diffrax
    import numpy as np

    class Heun(ds.AbstractExplicitRK):
        tableau = diffrax.ButcherTableau(
            c=np.array([1.0]), b_sol=np.array([0.5, 0.5]), b_error=np.zeros(2),
            a_lower=(np.array([1.0]),),
        )
        order = 2
    ```
    """

    tableau: eqx.AbstractClassVar[diffrax.ButcherTableau]
    symplectic: ClassVar[bool] = False
    reversible: ClassVar[bool] = False
    mechanical: ClassVar[bool] = False

    def step(self, system, t, y, dt):
        tableau = self.tableau
        n = _needed_stages(tableau)
        # Python floats, so that the coefficients take the state's dtype (float32 stays
        # float32) and zeros are skipped at trace time.
        b = tuple(float(x) for x in np.asarray(tableau.b_sol)[:n])
        ks = [system.vector_field(t, y)]
        for i in range(1, n):
            a = tuple(float(x) for x in np.asarray(tableau.a_lower[i - 1]))
            c = float(np.asarray(tableau.c)[i - 1])
            ks.append(system.vector_field(t + c * dt, lincomb(y, dt, a, ks)))
        return lincomb(y, dt, b, ks)


class Tsit5Fixed(AbstractExplicitRK):
    """Tsitouras' 5(4) method (Tsitouras 2011, "Runge-Kutta pairs of order 5(4) satisfying
    only the first column simplifying assumption", Comput. Math. Appl. 62) at a fixed step:
    fifth order, six vector-field evaluations a step.

    The same tableau as `ds.Tsit5` (adaptive, through diffrax), stepped by our own scan
    loop: for ensembles of small non-stiff systems (the Lorenz benchmark) where a step
    size chosen once for all members is good enough and a vmapped adaptive loop would
    make every member wait for the slowest.

    **Example:**

    ```python
    lorenz = ds.systems.Lorenz()
    y0 = jnp.array([1.0, 0.0, 0.0])
    traj = ds.simulate(lorenz, y0, t1=1.0, dt=1e-2, integrator=ds.Tsit5Fixed())
    print(traj.ys)  # [[-9.4084 -9.0962 28.5816]], as with dt=1e-3 to 5 digits
    ```
    """

    tableau: ClassVar[diffrax.ButcherTableau] = diffrax.Tsit5.tableau
    order: ClassVar[int] = 5
    stability_decay: ClassVar[float | None] = 3.506  # real root of |R(z)| = 1
