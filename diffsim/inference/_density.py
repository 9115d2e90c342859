"""The log posterior density that `ds.posterior` samples, in unconstrained coordinates.

Contract: `layout(params0, where, bounds, prior, noise)` decides, before anything runs,
which leaves are sampled, the prior of each and the bijection $x = T(u)$ from the real
line onto its support (the user's `bounds`, else the prior's support), and whether the
noise scale is sampled too; `log_density(model, likelihood, layout, problem, u)` is

$$\\log p(u \\mid y) = \\log p(y \\mid T(u)) + \\log p_0(T(u))
  + \\log \\left|\\det \\frac{\\partial T}{\\partial u}\\right| + \\text{const},$$

with the sampled values flattened into one vector `u` (what NUTS moves in). A proposal
whose prediction is not finite (a rollout that blew up) has density zero: `-inf`.
"""

import dataclasses
import re
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..ensembles import AbstractDistribution
from ..fitting._selection import Bound, Selection, select

_OPEN = Bound(None, None)


def _is_dist(x) -> bool:
    return isinstance(x, AbstractDistribution)


class Problem(NamedTuple):
    """The arrays of one posterior (traced, so new data do not recompile)."""

    leaves: list  # params0's leaves
    observed: Any  # NaN entries filled with 0
    mask: Any  # where observed is not NaN
    sigma: Any  # the known noise scale, like observed; None when sampled
    priors: tuple  # one distribution per sampled leaf
    noise_prior: Any  # the prior of the noise scale, or None


@dataclasses.dataclass(frozen=True)
class Layout:
    """Which leaves of `params0` are sampled and how (static and hashable)."""

    treedef: Any
    selection: Selection
    bounds: tuple[Bound, ...]  # per sampled leaf
    shapes: tuple[tuple[int, ...], ...]
    dtypes: tuple[Any, ...]
    infer_noise: bool
    dtype: Any  # of the flat vector u: the widest float of the sampled leaves
    is_tuple: bool  # where(params0) is a tuple of parameters

    @property
    def names(self) -> tuple[str, ...]:
        """Column names: `length`, `damping`, `k[2]`; dict keys read as `amplitude`, not
        `['amplitude']`."""
        pretty = tuple(
            re.sub(r"\['([^']*)'\]", r".\1", n).lstrip(".") for n in self.selection.names
        )
        return pretty + (("sigma",) if self.infer_noise else ())

    @property
    def size(self) -> int:
        return sum(int(np.prod(s)) for s in self.shapes) + int(self.infer_noise)

    def split(self, u) -> list:
        """`u` as one array per sampled leaf (then the noise, a scalar, if sampled)."""
        parts, start = [], 0
        for shape in self.shapes:
            n = int(np.prod(shape))
            parts.append(u[start : start + n].reshape(shape))
            start += n
        return parts + ([u[start]] if self.infer_noise else [])

    def physical(self, u) -> list:
        """The sampled values in physical units (the noise scale last)."""
        parts = self.split(u)
        values = [b.to_physical(p) for b, p in zip(self.bounds, parts, strict=False)]
        return values + ([jax.nn.softplus(parts[-1])] if self.infer_noise else [])

    def log_jacobian(self, u):
        parts = self.split(u)
        total = sum(jnp.sum(b.log_jacobian(p)) for b, p in zip(self.bounds, parts, strict=False))
        return total + (jax.nn.log_sigmoid(parts[-1]) if self.infer_noise else 0.0)

    def rebuild(self, leaves, values):
        """`params0` (as its `leaves`) with the sampled leaves set to `values`."""
        new = list(leaves)
        for i, value, dtype in zip(self.selection.trainable, values, self.dtypes, strict=False):
            new[i] = jnp.asarray(value).astype(dtype)
        return jax.tree.unflatten(self.treedef, new)


def _leaf_priors(prior, nodes, is_tuple: bool, node_of_leaf) -> list:
    """One distribution per sampled leaf: `prior` is one distribution for all, or a
    pytree like `where(params0)` with a distribution per node or per leaf."""
    if _is_dist(prior):
        return [prior for node in node_of_leaf if node is not None]
    node_list = list(nodes) if is_tuple else [nodes]
    prior_list = list(prior) if is_tuple and isinstance(prior, (tuple, list)) else [prior]
    if len(prior_list) != len(node_list):
        raise ValueError(
            f"prior must be a ds distribution or a pytree like where(params0) with one per "
            f"parameter ({len(node_list)} of them); got {_short(prior)}."
        )
    per_node = []
    for p, node in zip(prior_list, node_list, strict=True):
        if _is_dist(p):
            per_node.append([p] * len(jax.tree.leaves(node)))
            continue
        dists = jax.tree.leaves(p, is_leaf=_is_dist)
        if not all(_is_dist(d) for d in dists):
            raise TypeError(
                f"prior must hold ds distributions (ds.Normal, ds.HalfNormal, ds.Uniform, ...) "
                f"where the parameters are; got {_short(p)}."
            )
        if jax.tree.structure(p, is_leaf=_is_dist) != jax.tree.structure(node):
            raise ValueError(
                f"prior must be one ds distribution or a pytree like where(params0) with one "
                f"per parameter; got {_short(p)} for {_short(jax.tree.structure(node))}."
            )
        per_node.append(dists)
    taken = [0] * len(node_list)
    out = []
    for node in node_of_leaf:
        if node is not None:
            out.append(per_node[node][taken[node]])
            taken[node] += 1
    return out


def layout(params0, where, bounds, prior, noise) -> tuple[Layout, list]:
    """The static layout and the per-leaf priors; `ValueError`/`TypeError` naming
    `where`, `bounds`, `prior` or `params0` when they do not fit."""
    selection = select(params0, where, bounds)
    leaves, treedef = jax.tree.flatten(params0)
    nodes = where(params0) if where is not None else params0
    is_tuple = where is not None and isinstance(nodes, (tuple, list))
    if where is None and not _is_dist(prior):
        nodes, is_tuple = params0, False
    priors = _leaf_priors(prior, nodes, is_tuple, selection.node_of_leaf)
    leaf_bounds = []
    for i, dist in zip(selection.trainable, priors, strict=True):
        given = selection.bounds[selection.node_of_leaf[i]]
        leaf_bounds.append(given if given != _OPEN else Bound(*dist.support))
    shapes = tuple(tuple(np.shape(leaves[i])) for i in selection.trainable)
    dtypes = tuple(jnp.result_type(leaves[i]) for i in selection.trainable)
    dtype = jnp.result_type(*dtypes, float)
    out = Layout(
        treedef, selection, tuple(leaf_bounds), shapes, dtypes, noise is not None, dtype, is_tuple
    )
    return out, priors


def log_density(model, likelihood, layout: Layout, problem: Problem, u):
    """The log posterior density at `u` (`-inf` where not finite) and the log-likelihood
    of the data there."""
    values = layout.physical(u)
    theta = values[: len(layout.shapes)]
    log_prior = sum(
        jnp.sum(d.log_prob(x.astype(layout.dtype)))
        for d, x in zip(problem.priors, theta, strict=True)
    )
    sigma = problem.sigma
    if layout.infer_noise:
        scale = values[-1]
        log_prior = log_prior + problem.noise_prior.log_prob(scale)
        sigma = jax.tree.map(lambda o: scale.astype(o.dtype), problem.observed)
    params = layout.rebuild(problem.leaves, theta)
    predicted = model(params)
    log_lik = likelihood.log_prob(problem.observed, predicted, sigma, problem.mask)
    total = log_lik + log_prior + layout.log_jacobian(u)
    return jnp.where(jnp.isfinite(total), total, -jnp.inf), log_lik


def to_unconstrained(layout: Layout, values) -> jax.Array:
    """The flat `u` of physical `values` (one per sampled leaf, then the noise scale)."""
    parts = [
        b.to_unconstrained(jnp.asarray(v, layout.dtype)).reshape(-1)
        for b, v in zip(layout.bounds, values, strict=False)
    ]
    if layout.infer_noise:
        s = jnp.asarray(values[-1], layout.dtype)
        parts.append(jnp.log(jnp.expm1(s)).reshape(1))
    return jnp.concatenate(parts)


def _short(x, limit: int = 100) -> str:
    text = repr(x)
    return text if len(text) <= limit else text[: limit - 3] + "..."
