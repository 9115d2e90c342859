"""Whether a least-squares fit stopped at a minimum (private).

Contract: `stationary(residuals_of_z, z, forward)` says whether a Gauss-Newton step from
the solver's final point `z` (in the solver's own coordinates, where bounds are already
transformed away) would still lower the loss by more than a small fraction of it.

Levenberg-Marquardt stops when its steps and the change of the loss become small. When
its damping grows large far from a minimum (a narrow curved valley, a poorly scaled
start), its steps become small too, and it "converges" with the loss far above the
minimum: measured 8x SciPy's loss on a four-rate predator-prey model with bounds. At a
true minimum the gradient J^T r vanishes, and so does the reduction a Gauss-Newton step
predicts,

$$\\Delta = \\tfrac12 \\|r\\|^2 - \\tfrac12 \\min_\\delta \\|r + J \\delta\\|^2
         = \\tfrac12 \\|P_J r\\|^2,$$

(P_J the projection onto J's columns), whatever the model's curvature; near one it is of
second order. So `converged` also asks Delta <= 1e-3 of the loss (with a floor at the
rounding level of the residuals). In the solver's coordinates a parameter held at a
bound has a vanishing column (the bound transform's derivative), so a constrained
minimum passes.
"""

import jax
import jax.flatten_util as jfu
import jax.numpy as jnp

RELATIVE_GAIN = 1e-3


def predicted_gain(jac, r):
    """Delta above: the loss reduction a Gauss-Newton step predicts."""
    delta = jnp.linalg.lstsq(jac, -r)[0]
    return 0.5 * (jnp.sum(r**2) - jnp.sum((r + jac @ delta) ** 2))


def stationary(residuals_of_z, z, forward: bool):
    """Whether the Gauss-Newton step from `z` predicts no reduction worth having. A
    non-finite Jacobian (the model fails there) decides nothing: True."""
    flat_z, unravel = jfu.ravel_pytree(z)

    def flat_residuals(x):
        return jfu.ravel_pytree(residuals_of_z(unravel(x)))[0]

    jac = (jax.jacfwd if forward else jax.jacrev)(flat_residuals)(flat_z)
    r = flat_residuals(flat_z)
    gain = predicted_gain(jac, r)
    loss = 0.5 * jnp.sum(r**2)
    floor = 100 * jnp.finfo(r.dtype).eps * (loss + r.size)
    return jnp.where(jnp.isfinite(gain), gain <= RELATIVE_GAIN * loss + floor, True)


def not_converged(final_loss: float, steps: int, max_steps: int) -> str:
    """The message of a fit that did not converge: out of iterations, or stopped early
    where a Gauss-Newton step would still lower the loss."""
    if steps < max_steps:
        return (
            f"fit stopped after {steps} iterations at loss {final_loss:.6g}, short of a "
            "minimum: a Gauss-Newton step from there would still lower it (the solver's "
            "steps shrank far from the minimum). Start closer, give bounds, or try "
            "solver=optx.Dogleg(rtol, atol); throw=False returns the result."
        )
    return (
        f"fit did not converge in max_steps={max_steps} iterations (loss {final_loss:.6g})."
        " Increase max_steps, loosen rtol/atol, start closer, or pass throw=False and "
        "check res.converged."
    )
