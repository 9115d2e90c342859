"""`ds.posterior`'s argument checks (before anything is compiled: a `TypeError` or
`ValueError` naming the argument) and its warnings after sampling (`SamplingWarning`,
naming the parameters whose diagnostics fail)."""

import warnings

import jax
import numpy as np

from ..ensembles import AbstractDistribution
from ..fitting import FitResult
from ._likelihood import AbstractLikelihood

# Thresholds of the warnings (Vehtari et al. 2021; Stan's defaults).
RHAT_MAX = 1.01
ESS_PER_CHAIN_MIN = 100
DIVERGENT_FRACTION_MAX = 0.005


class SamplingWarning(UserWarning):
    """`ds.posterior`'s draws may not represent the posterior: R-hat above 1.01 (chains
    disagree), bulk or tail ESS below 100 per chain (too few effective draws), or
    divergent transitions (the sampler could not follow the posterior's curvature).
    The message names the parameters and says what to try.

    **Example:** treat it as an error in a pipeline:

    ```python
    import warnings
    warnings.simplefilter("error", ds.SamplingWarning)
    ```
    """


def _positive_int(name: str, value) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive int; got {value!r}.")


def check_arguments(model, observed, prior, key, sigma, noise, likelihood, start) -> None:
    if not callable(model):
        raise TypeError(f"model must be a function model(params) -> prediction; got {model!r}.")
    if observed is None:
        raise ValueError("observed is required: the data the posterior is conditioned on.")
    if prior is None:
        raise ValueError(
            "prior is required: a distribution per sampled parameter, e.g. "
            "prior=(ds.LogNormal(0.0, 0.5), ds.HalfNormal(1.0))."
        )
    if not (isinstance(key, jax.Array) and jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)):
        if not (hasattr(key, "shape") and np.shape(key) == (2,)):
            raise TypeError(f"key must be a jax.random.key(...); got {key!r:.80}.")
    if (sigma is None) == (noise is None):
        raise ValueError(
            "give exactly one of sigma= (the known noise scale) and noise= (a prior on an "
            "unknown one, e.g. noise=ds.HalfNormal(0.1)); got "
            + ("neither." if sigma is None else "both.")
        )
    if noise is not None:
        if not isinstance(noise, AbstractDistribution):
            raise TypeError(
                f"noise must be a ds distribution on the noise scale (e.g. ds.HalfNormal(0.1)); "
                f"got {noise!r:.80}."
            )
        lo = noise.support[0]
        if lo is None or lo < 0:
            raise ValueError(
                f"noise must be a distribution of positive values (ds.HalfNormal, "
                f"ds.LogNormal, ds.LogUniform); {type(noise).__name__} has support starting "
                f"at {lo}."
            )
    if not isinstance(likelihood, AbstractLikelihood):
        raise TypeError(
            "likelihood must be ds.GaussianNoise(), ds.StudentTNoise(df) or "
            f"ds.LogNormalNoise(); got {likelihood!r:.80}."
        )
    if start is not None and not isinstance(start, FitResult):
        raise TypeError(f"start must be a ds.FitResult (from ds.fit) or None; got {start!r:.80}.")


def check_settings(settings, num_chains, batch_size) -> None:
    _positive_int("num_chains", num_chains)
    if batch_size is not None:
        _positive_int("batch_size", batch_size)
    _positive_int("num_warmup", settings.num_warmup)
    _positive_int("num_samples", settings.num_samples)
    _positive_int("max_tree_depth", settings.max_tree_depth)
    if not isinstance(settings.dense_mass, bool):
        raise TypeError(f"dense_mass must be True or False; got {settings.dense_mass!r}.")
    target = settings.target_accept
    if not (isinstance(target, (int, float)) and 0 < target < 1):
        raise ValueError(f"target_accept must be in (0, 1), e.g. 0.8 or 0.95; got {target!r}.")


def check_inside(layout, leaves) -> None:
    """Every sampled value of `params0` strictly inside its support (bounds or prior)."""
    names = iter(layout.selection.names)
    for i, bound in zip(layout.selection.trainable, layout.bounds, strict=True):
        value = np.asarray(leaves[i], float)
        name = next(names) if value.size == 1 else next(names).split("[")[0]
        for _ in range(value.size - 1):
            next(names)
        if not (np.isfinite(value).all() and bound.contains(value)):
            raise ValueError(
                f"params0's {name} = {value.tolist()} is not strictly inside the support "
                f"({bound.lo}, {bound.hi}) of its prior or bounds; start inside it."
            )


def warn_diagnostics(post) -> None:
    """A `SamplingWarning` per failing diagnostic, naming the parameters."""
    names = np.asarray(post.names)
    rhat, bulk, tail = (np.asarray(x) for x in (post.rhat, post.ess_bulk, post.ess_tail))
    bad = names[~(rhat <= RHAT_MAX)]
    if bad.size:
        warnings.warn(
            f"R-hat > {RHAT_MAX} for {', '.join(bad)} (max {np.nanmax(rhat):.3f}): the chains "
            "disagree. Run longer (num_warmup, num_samples) or check for multiple modes.",
            SamplingWarning,
            stacklevel=4,
        )
    floor = ESS_PER_CHAIN_MIN * post.num_chains
    low = names[~((bulk >= floor) & (tail >= floor))]
    if low.size:
        warnings.warn(
            f"bulk or tail ESS below {floor} ({ESS_PER_CHAIN_MIN} per chain) for "
            f"{', '.join(low)} (min {np.nanmin(np.minimum(bulk, tail)):.0f}): too few "
            "effective draws for reliable quantiles. Draw more (num_samples).",
            SamplingWarning,
            stacklevel=4,
        )
    divergent = np.asarray(post.divergent)
    if divergent.mean() > DIVERGENT_FRACTION_MAX:
        warnings.warn(
            f"{int(divergent.sum())} of {divergent.size} transitions diverged: the posterior "
            "has regions the sampler cannot follow (or the rollout fails there). Raise "
            "target_accept (0.9-0.99), give tighter priors or bounds, or reparametrise.",
            SamplingWarning,
            stacklevel=4,
        )
