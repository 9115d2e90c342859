"""Pytree predicates and conversions shared by `simulate` and the uses built on it
(private).

Contract: nothing here traces or compiles; each function inspects or rebuilds a pytree
on the host.
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
