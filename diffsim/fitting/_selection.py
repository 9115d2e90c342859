"""Which leaves `ds.fit` trains, and the bijections that keep bounded ones in bounds.

Contract: `select(params, where, bounds)` returns a `Selection`: the indices of the
trainable leaves of `params`, one `Bound` per selected node (an elementwise bijection
from the real line onto `(lo, hi)`), and the leaves' names for summaries. Raises a
`ValueError`/`TypeError` naming `where` or `bounds` when they do not fit `params`.
"""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np


def _softplus_inv(x):
    return jnp.log(jnp.expm1(x))


@dataclasses.dataclass(frozen=True)
class Bound:
    """An elementwise bijection R -> (lo, hi) (either side may be open). A frozen
    dataclass, not a module: it is a static, hashable part of the compiled program."""

    lo: float | None
    hi: float | None

    def to_physical(self, u):
        if self.lo is None and self.hi is None:
            return u
        if self.hi is None:
            return self.lo + jax.nn.softplus(u)
        if self.lo is None:
            return self.hi - jax.nn.softplus(u)
        return self.lo + (self.hi - self.lo) * jax.nn.sigmoid(u)

    def to_unconstrained(self, x):
        if self.lo is None and self.hi is None:
            return x
        if self.hi is None:
            return _softplus_inv(x - self.lo)
        if self.lo is None:
            return _softplus_inv(self.hi - x)
        z = (x - self.lo) / (self.hi - self.lo)
        return jnp.log(z) - jnp.log1p(-z)

    def log_jacobian(self, u):
        """$\\log |d x / d u|$ of `to_physical` at `u`, elementwise: the change of
        variables a density sampled in the unconstrained space needs."""
        if self.lo is None and self.hi is None:
            return jnp.zeros_like(u)
        if self.lo is None or self.hi is None:
            return jax.nn.log_sigmoid(u)  # d softplus(u) / du = sigmoid(u)
        return np.log(self.hi - self.lo) + jax.nn.log_sigmoid(u) + jax.nn.log_sigmoid(-u)

    def contains(self, x) -> bool:
        x = np.asarray(x)
        ok = np.ones(x.shape, bool)
        if self.lo is not None:
            ok &= x > self.lo
        if self.hi is not None:
            ok &= x < self.hi
        return bool(ok.all())


def parse_bounds(bounds, n_nodes, is_tuple, where):
    """One `Bound` per top-level node of `where(params)`."""
    if bounds is None:
        return tuple(Bound(None, None) for _ in range(n_nodes))
    if where is None:
        raise ValueError("bounds= needs where=: bounds are given per selected parameter.")
    if is_tuple:
        if not isinstance(bounds, (tuple, list)) or len(bounds) != n_nodes:
            raise ValueError(
                f"bounds must be a tuple with one (lo, hi) or None per parameter selected by "
                f"where ({n_nodes} of them); got {bounds!r}."
            )
        spec = list(bounds)
    else:
        spec = [bounds]
    out = []
    for i, b in enumerate(spec):
        if b is None:
            out.append(Bound(None, None))
            continue
        if not (isinstance(b, (tuple, list)) and len(b) == 2):
            raise ValueError(f"bounds[{i}] must be (lo, hi) with None for an open side; got {b!r}.")
        try:
            lo, hi = (None if v is None else float(v) for v in b)
        except (TypeError, ValueError):
            raise TypeError(
                f"bounds[{i}] = {b!r} must hold numbers (or None for an open side)."
            ) from None
        if any(v is not None and not np.isfinite(v) for v in (lo, hi)):
            raise ValueError(f"bounds[{i}] = {b!r} must be finite; use None for an open side.")
        if lo is not None and hi is not None and not lo < hi:
            raise ValueError(f"bounds[{i}] = {b!r} needs lo < hi; swap them.")
        out.append(Bound(lo, hi))
    return tuple(out)


class _Marker:
    def __init__(self, index):
        self.index = index


@dataclasses.dataclass(frozen=True)
class Selection:
    """Which leaves of `params` are fitted, with their bounds: a static, hashable
    description, so that a new `where` lambda with the same meaning does not recompile
    the fit."""

    node_of_leaf: tuple[int | None, ...]
    bounds: tuple[Bound, ...]
    names: tuple[str, ...]

    @property
    def trainable(self) -> tuple[int, ...]:
        return tuple(i for i, node in enumerate(self.node_of_leaf) if node is not None)


def _is_float_leaf(x) -> bool:
    """A fittable leaf: a floating-point array, or a Python float (which the compiled call
    traces as a 0-d array)."""
    return type(x) is float or eqx.is_inexact_array(x)


def select(params, where, bounds) -> Selection:
    is_marker = lambda x: isinstance(x, _Marker)  # noqa: E731
    if where is None:
        tagged = jax.tree.map(lambda x: _Marker(0) if _is_float_leaf(x) else x, params)
        node_bounds = parse_bounds(bounds, 1, False, None)
    else:
        try:
            nodes = where(params)
        except Exception as e:
            raise ValueError(
                f"where(params0) failed: {type(e).__name__}: {str(e)[:200]}. where must return "
                "parts of params0, e.g. where=lambda p: (p.length, p.damping)."
            ) from e
        is_tuple = isinstance(nodes, (tuple, list))
        node_list = list(nodes) if is_tuple else [nodes]
        tags = [jax.tree.map(lambda _, i=i: _Marker(i), node) for i, node in enumerate(node_list)]
        tagged = eqx.tree_at(where, params, tuple(tags) if is_tuple else tags[0])
        node_bounds = parse_bounds(bounds, len(node_list), is_tuple, where)
    flat = jax.tree_util.tree_flatten_with_path(tagged, is_leaf=is_marker)[0]
    leaves = jax.tree.leaves(params)
    node_of_leaf, names = [], []
    for (path, tag), leaf in zip(flat, leaves, strict=True):
        if not is_marker(tag):
            node_of_leaf.append(None)
            continue
        if not _is_float_leaf(leaf):
            raise ValueError(
                f"where selected {jax.tree_util.keystr(path)}, which is not a floating-point "
                f"array ({type(leaf).__name__}); only floating-point parameters can be fitted."
            )
        node_of_leaf.append(tag.index)
        name = jax.tree_util.keystr(path).lstrip(".") or "params"
        size = int(np.size(leaf))
        names.extend([name] if size == 1 else [f"{name}[{i}]" for i in range(size)])
    if not names and where is not None:
        raise ValueError(
            "where selected no floating-point leaves of params0: nothing to fit. Return the "
            "parameters to fit, e.g. where=lambda p: (p.length, p.damping)."
        )
    if not names:
        raise ValueError(
            "Nothing to fit: params0 has no floating-point leaves; give params0 with float "
            "values (1.0, not 1) or say which to fit with where=."
        )
    return Selection(tuple(node_of_leaf), node_bounds, tuple(names))
