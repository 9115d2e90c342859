"""Pytree predicates, conversions and leafwise operations shared by `simulate` and the
uses built on it (private).

Contract: `is_concrete*` and `floats_to_arrays` inspect or rebuild a pytree on the host
and trace nothing; `tree_where` and `all_finite` are array operations (traceable).
"""

import jax
import jax.numpy as jnp


def is_concrete(x) -> bool:
    """Whether `x` is a value rather than a tracer of an enclosing transformation."""
    return not isinstance(x, jax.core.Tracer)


def is_concrete_tree(tree) -> bool:
    """Whether no leaf of `tree` is a tracer (the call is made outside any transformation)."""
    return all(is_concrete(leaf) for leaf in jax.tree.leaves(tree))


def floats_to_arrays(tree):
    """Python floats become weakly typed 0-d arrays (same dtype promotion), so a new value
    of a parameter does not recompile. Ints and bools may be shapes or switches: kept.

    Only for a call made outside any transformation: inside one (a member of
    `ds.ensemble`, a user's `jax.jit`), the enclosing trace is compiled once anyway, and a
    Python float left as a literal lets XLA fold it into the step (measured 7% of a
    vmapped Lorenz ensemble on a CPU)."""
    return jax.tree.map(lambda x: jnp.asarray(x) if type(x) is float else x, tree)


def tree_where(condition, a, b):
    """`jnp.where(condition, a, b)` leaf by leaf over two pytrees of the same structure."""
    return jax.tree.map(lambda x, y: jnp.where(condition, x, y), a, b)


def all_finite(tree) -> jax.Array:
    """Whether every element of every leaf of `tree` is finite (a scalar bool)."""
    leaves = [jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(tree)]
    return jnp.stack(leaves).all() if len(leaves) > 1 else leaves[0]
