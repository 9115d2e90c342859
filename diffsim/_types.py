"""jaxtyping aliases shared by every module of diffsim."""

from typing import Any

from jaxtyping import Array, ArrayLike, Bool, Float, Int, PyTree

#: A scalar time, a step size: a Python float or a 0-d array.
RealScalarLike = float | int | Float[ArrayLike, ""]
#: A state: any pytree of floating arrays (an array, a tuple, a `PhaseState`, ...).
State = PyTree[Float[Array, "..."]]
#: Saved states: the same pytree with a leading `n_saved` axis on every leaf.
SavedStates = PyTree[Float[Array, "n_saved ..."]]
Args = Any

__all__ = [
    "Array",
    "ArrayLike",
    "Bool",
    "Float",
    "Int",
    "PyTree",
    "RealScalarLike",
    "State",
    "SavedStates",
    "Args",
]
