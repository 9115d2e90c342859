"""`flat_jit`: the program `eqx.filter_jit` would compile, with a cheaper eager call.

`eqx.filter_jit` partitions its arguments into arrays and the rest, and recombines its
result, on every call: for an ensemble returning a `Trajectory` that is ~0.3 ms of Python
on a CPU, a few % of a 10 ms run. `flat_jit(impl)` flattens the arguments once per call;
their non-array leaves, with the shapes and dtypes of the array leaves and the settings,
form a key; each key holds a `jax.jit` of the array leaves alone, whose output leaves are
put back into the result's tree structure recorded when it was traced. One key is one
trace, so the recorded structure always matches.

Semantics follow `eqx.filter_jit`: array leaves are traced, other leaves are static
(hashed; functions by identity), except Python floats in the arguments marked
`float_dynamic`, which become weakly typed 0-d arrays so that a new value does not
recompile. It is for concrete calls only: it answers `NOT_APPLICABLE` when a leaf is a
tracer (under an enclosing transformation use `eqx.filter_jit`, whose overhead is then
paid once per trace) or when a static leaf cannot be hashed.

**Example:**

```python
double = flat_jit(lambda tree, *, scale: jax.tree.map(lambda x: x * scale, tree),
                  float_dynamic=(False,))
double({"a": jnp.ones(3)}, scale=2)  # {"a": Array([2., 2., 2.])}
```
"""

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import equinox as eqx
import jax

NOT_APPLICABLE = object()


class _ArraySlot(NamedTuple):
    """An array leaf in the key: its shape and dtype (its value is an argument)."""

    shape: tuple[int, ...]
    dtype: Any
    weak_type: bool


class _FloatSlot:
    """A Python float traced as a weakly typed 0-d array."""


_FLOAT = _FloatSlot()


def _is_slot(k) -> bool:
    return k is _FLOAT or isinstance(k, _ArraySlot)


def flat_jit(
    impl: Callable[..., Any], *, float_dynamic: Sequence[bool], max_entries: int = 64
) -> Callable[..., Any]:
    """Compile `impl(*args, **settings)` per key of its static parts; see the module
    docstring. `float_dynamic[i]` says whether Python floats in `args[i]` are traced.
    Returns a function with `impl`'s signature that answers `impl`'s result or
    `NOT_APPLICABLE`. At most `max_entries` keys are kept (the oldest is dropped)."""
    cache: dict = {}

    def call(*args, **settings):
        key, dynamic, defs = [], [], []
        for arg, floats in zip(args, float_dynamic, strict=True):
            leaves, treedef = jax.tree_util.tree_flatten(arg)
            defs.append((treedef, len(leaves)))
            for x in leaves:
                if eqx.is_array(x):
                    if isinstance(x, jax.core.Tracer):
                        return NOT_APPLICABLE
                    dynamic.append(x)
                    key.append(_ArraySlot(x.shape, x.dtype, getattr(x, "weak_type", False)))
                elif floats and type(x) is float:
                    dynamic.append(x)
                    key.append(_FLOAT)
                else:
                    key.append(x)
        full_key = (tuple(defs), tuple(key), tuple(sorted(settings.items())))
        try:
            compiled = cache.get(full_key)
        except (TypeError, ValueError):  # an unhashable leaf, or one without a plain ==
            return NOT_APPLICABLE
        if compiled is None:
            if len(cache) >= max_entries:
                cache.pop(next(iter(cache)))
            compiled = cache[full_key] = _compile(impl, defs, key, settings)
        return compiled(dynamic)

    call.cache = cache  # for tests
    return call


def _compile(impl, defs, key, settings):
    out: dict[str, Any] = {}

    def flat(*dynamic):
        values = iter(dynamic)
        leaves = [next(values) if _is_slot(k) else k for k in key]
        args, start = [], 0
        for treedef, size in defs:
            args.append(jax.tree_util.tree_unflatten(treedef, leaves[start : start + size]))
            start += size
        result = impl(*args, **settings)
        result_leaves, out["treedef"] = jax.tree_util.tree_flatten(result)
        # Non-array leaves of the result come back as they were at trace time.
        out["static"] = [None if eqx.is_array(x) else (x,) for x in result_leaves]
        return [x for x in result_leaves if eqx.is_array(x)]

    flat.__name__ = flat.__qualname__ = getattr(impl, "__name__", "flat_jit")  # in logs
    jitted = jax.jit(flat)

    def run(dynamic):
        arrays = iter(jitted(*dynamic))
        leaves = [next(arrays) if s is None else s[0] for s in out["static"]]
        return jax.tree_util.tree_unflatten(out["treedef"], leaves)

    return run
