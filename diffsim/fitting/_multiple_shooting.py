"""`fit(..., shooting=k)`: the fit of the extended parameters (the physical parameters and
the $k$ segments' initial states) that multiple shooting is; the model and its residuals
are in `_shooting.py`.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._identifiability import quiet, warn_unidentifiable
from ._result import FitResult
from ._shooting import TrajectoryModel


def fit_shooting(
    fit, model, params0, observed, k, weight, *, where, sigma, prior, bounds, loss, **kwargs
):
    """`fit` on the extended parameters (params, segment states); see `shooting=`.

    `fit` is passed in (not imported) because `fit` calls this function.
    """
    if not isinstance(model, TrajectoryModel):
        raise TypeError(
            "shooting= needs model to be a ds.TrajectoryModel (it must know its segments)."
        )
    if loss is not None or observed is None:
        raise ValueError("shooting= fits observed data: pass observed=, not loss=.")
    states0 = model.segment_states(params0, k)
    if model.observes_state:
        # The state itself is observed: start each segment from the first observation in
        # it (Bock's initialisation), which is what lets shooting recover a chaotic record
        # from a poor first guess; a missing (NaN) value keeps the rollout's.
        first = model.first_observation_of_segments(k)[1:]
        states0 = jax.tree.map(
            lambda s, o: jnp.where(jnp.isnan(o[first]), s, o[first]), states0, observed
        )
    extended0 = (params0, states0)
    if where is None:
        physical_nodes = [eqx.filter(params0, eqx.is_inexact_array)]
        ext_where = lambda e: (eqx.filter(e[0], eqx.is_inexact_array), e[1])  # noqa: E731
        raise_if_none_where = True
    else:
        nodes = where(params0)
        is_tuple = isinstance(nodes, (tuple, list))
        physical_nodes = list(nodes) if is_tuple else [nodes]
        raise_if_none_where = False

        def ext_where(e):
            n = where(e[0])
            return (*n, e[1]) if is_tuple else (n, e[1])

    if raise_if_none_where:
        raise ValueError("shooting= needs where= to say which parameters to fit.")
    if bounds is not None and where is not None:
        bounds = (*bounds, None) if isinstance(where(params0), (tuple, list)) else (bounds, None)
    ext_model = model.shooting_model(k, weight)
    gaps0 = jax.eval_shape(ext_model, extended0)[1]
    ext_observed = (observed, jax.tree.map(lambda g: jnp.zeros(g.shape, g.dtype), gaps0))
    if sigma is not None:
        sigma = (sigma, jax.tree.map(lambda g: jnp.ones((), g.dtype), gaps0))
    ext_prior = None if prior is None else (lambda e: prior(e[0]))
    with quiet():  # warned below, with the physical parameters' names
        res = fit(
            ext_model,
            extended0,
            ext_observed,
            where=ext_where,
            sigma=sigma,
            prior=ext_prior,
            bounds=bounds,
            **kwargs,
        )
    p = sum(int(np.size(x)) for x in jax.tree.leaves(physical_nodes))
    names = tuple(n.removeprefix("[0].").removeprefix("[0]") or "params" for n in res.names[:p])
    if not isinstance(res.covariance, jax.core.Tracer):
        warn_unidentifiable(names, res.covariance[:p, :p], stacklevel=4)
    return FitResult(
        params=res.params[0],
        loss=res.loss,
        history=res.history,
        stderr=res.stderr[0],
        covariance=res.covariance[:p, :p],
        n_steps=res.n_steps,
        converged=res.converged,
        names=names,
        values=res.values[:p],
    )
