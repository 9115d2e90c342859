"""Why a fit failed, named after the fact (private).

While the solver runs, every rollout inside the model is a trial (`trial_rollouts`): a
failing simulation returns non-finite values instead of raising, and the solver's step
control rejects the point. So when an eager fit ends badly, the compiled program only says
"non-finite" or "not converged". These functions run the model again, once, outside trial
mode, at the point that failed, so that the real cause is raised: the `SimulationError`
subclass of the simulation inside the model (`MaxStepsError`, `NonFiniteStateError`, ...)
with the fit's context in front, or a `ValueError` naming the model, `prior` or `loss`
output that is non-finite. They run only on the failure path: a successful fit pays
nothing.

Contract: `explain_start` always raises; `explain_stop` raises the simulation's failure
when there is one at the point reached or at the solver's next trial point, else returns.
"""

import jax
import numpy as np

from ..engine import SimulationError

_SIMULATION_HINT = "(max_steps=, dt, the integrator: those of the model's ds.simulate call.)"


def explain_start(model, params0, observed, loss, prior):
    """The objective is non-finite at `params0`: raise why."""
    what = "the model's prediction at params0 is non-finite"
    prediction = _run(model, params0, f"{what}: the simulation inside the model failed")
    if observed is not None:
        _check_finite_prediction(prediction, observed)
    if prior is not None and not _finite(prior(params0)):
        raise ValueError(
            "ds.fit: prior(params0) is non-finite; the prior's residuals must be finite "
            "at the start. Check the prior or start elsewhere."
        )
    if loss is not None:
        raise ValueError(
            "ds.fit: loss(model(params0)) is non-finite; start from params0 where the "
            "loss is finite, or check the loss function."
        )
    raise ValueError(
        "ds.fit: the least-squares objective overflows at params0 (residuals too large "
        "for the float type); start closer to the data or rescale observed and sigma."
    )


_AT_POINT = (
    "the objective became non-finite after {} iterations: the simulation inside the "
    "model failed at the point the fit reached"
)
_AT_NEXT = (
    "did not converge in {} iterations; the simulation inside the model fails at the "
    "solver's next trial point (bounds= can keep it where the model simulates)"
)


def explain_stop(model, params, params_next, loss_finite: bool, steps: int) -> None:
    """A fit that did not converge: raise if the simulation inside the model fails where
    the fit stopped (when the loss there is non-finite) or at the solver's next trial.
    Any other error of the model at those points is not the fit's failure (the model ran
    there while tracing): the caller's "did not converge" stands."""
    probes = [(params, _AT_POINT)] if not loss_finite else []
    for point, context in [*probes, (params_next, _AT_NEXT)]:
        try:
            _run(model, point, context.format(steps))
        except SimulationError:
            raise
        except Exception:  # not the fit's failure: see the docstring
            continue


def _run(model, params, context: str):
    """`model(params)` outside trial mode, its simulation's failure raised in context."""
    try:
        return model(params)
    except SimulationError as error:
        # The simulation's own failure without its pointer to simulate's throw=False,
        # which is not the fit's.
        details = " ".join(part for part in (error.location, error.hint) if part)
        raise type(error)(
            f"ds.fit: {context}:\n{error.headline}", details, _SIMULATION_HINT
        ) from error


def _check_finite_prediction(prediction, observed) -> None:
    paths = jax.tree_util.tree_flatten_with_path(observed)[0]
    for (path, ob), pr in zip(paths, jax.tree.leaves(prediction), strict=True):
        pr, ob = np.asarray(pr), np.asarray(ob)
        bad = ~np.isfinite(pr) & ~np.isnan(ob)
        if bad.any():
            index = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(
                f"ds.fit: model(params0) is {pr[index]} at index {index} of "
                f"observed{jax.tree_util.keystr(path)}; start from params0 where the model "
                "is finite (check the parameters' signs and units)."
            )


def _finite(tree) -> bool:
    return all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(tree))
