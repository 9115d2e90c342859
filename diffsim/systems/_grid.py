"""Finite-volume helpers for the method-of-lines field systems (private).

Grids are uniform. On a Dirichlet grid of `n` unknowns over `[0, L]` the nodes are
$x_i = i h$, $i = 1..n$, $h = L / (n + 1)$, and the boundary values sit at $x_0 = 0$ and
$x_{n+1} = L$; on a periodic grid they are $x_i = i h$, $i = 0..n-1$, $h = L / n$.
Second-order operators are written in flux form with coefficients averaged onto cell
faces, so they are conservative and, for symmetric coefficients, self-adjoint (which is
what makes the discrete wave energy exactly conserved).

`node_rates` bounds the spectrum of these operators for the systems' `spectral_bounds`,
in NumPy on concrete parameters, so it works inside a trace too.
"""

import equinox as eqx
import jax
import jax.lax as lax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from .._trees import is_concrete
from ._checks import check_positive
from ._util import as_float


def spacing(n: int, length, periodic: bool):
    return length / n if periodic else length / (n + 1)


def nodes(n: int, length, periodic: bool) -> Array:
    h = spacing(n, length, periodic)
    start = 0 if periodic else 1
    return (jnp.arange(n) + start) * h


class AbstractGrid1D(eqx.Module):
    """The uniform 1-D grid shared by `Heat1D`, `Wave1D` and `Burgers1D`: each declares
    the fields `length` (m) and `periodic` (static) and gets `spacing` and `grid`."""

    length: eqx.AbstractVar[Float[ArrayLike, ""]]
    periodic: eqx.AbstractVar[bool]

    def __check_init__(self):
        check_positive(type(self).__name__, "length", self.length, "m")

    def spacing(self, n: int) -> Float[Array, ""]:
        """The node spacing $h$ for `n` nodes."""
        return spacing(n, as_float(self.length), self.periodic)

    def grid(self, n: int) -> Float[Array, " n"]:
        """The `n` node positions $x_i$ (m)."""
        return nodes(n, as_float(self.length), self.periodic)


def _slice(x, start, stop, axis):
    return lax.slice_in_dim(x, start, stop, axis=axis)


def pad(u: Array, axis: int, periodic: bool, low=0.0, high=0.0) -> Array:
    """`u` with one ghost node on each side along `axis`: wrapped (periodic) or the
    Dirichlet boundary values `low`, `high`."""
    axis = axis % u.ndim
    n = u.shape[axis]
    if periodic:
        return jnp.concatenate([_slice(u, n - 1, n, axis), u, _slice(u, 0, 1, axis)], axis=axis)
    shape = list(u.shape)
    shape[axis] = 1
    lo = jnp.broadcast_to(jnp.asarray(low, u.dtype), shape)
    hi = jnp.broadcast_to(jnp.asarray(high, u.dtype), shape)
    return jnp.concatenate([lo, u, hi], axis=axis)


def face_values(coeff: Array, axis: int, periodic: bool) -> Array:
    """A node coefficient averaged onto the `n + 1` faces along `axis` (for periodic
    grids the first and last are the same face); at a Dirichlet boundary face the
    adjacent node's value is used."""
    axis = axis % coeff.ndim
    n = coeff.shape[axis]
    if periodic:
        ext = pad(coeff, axis, True)
    else:
        ext = jnp.concatenate(
            [_slice(coeff, 0, 1, axis), coeff, _slice(coeff, n - 1, n, axis)], axis=axis
        )
    return 0.5 * (_slice(ext, 0, n + 1, axis) + _slice(ext, 1, n + 2, axis))


def face_gradients(u: Array, h, axis: int, periodic: bool, low=0.0, high=0.0) -> Array:
    """$(u_{i+1} - u_i) / h$ on the `n + 1` faces along `axis` (for periodic grids the
    first and last are the same face)."""
    ue = pad(u, axis, periodic, low, high)
    axis = axis % u.ndim
    n = u.shape[axis]
    return (_slice(ue, 1, n + 2, axis) - _slice(ue, 0, n + 1, axis)) / h


def diffuse(u: Array, coeff: Array, h, axis: int, periodic: bool, low=0.0, high=0.0) -> Array:
    """$\\partial_x (a\\, \\partial_x u)$ along `axis`, second order: face fluxes
    $a_{i+1/2} (u_{i+1} - u_i) / h$ differenced over each cell."""
    axis = axis % u.ndim
    n = u.shape[axis]
    coeff = face_values(jnp.broadcast_to(coeff, u.shape), axis, periodic)
    flux = coeff * face_gradients(u, h, axis, periodic, low, high)
    return (_slice(flux, 1, n + 1, axis) - _slice(flux, 0, n, axis)) / h


def node_rates(
    coeff, length, shape: tuple[int, ...], axis: int, periodic: bool, *, squared: bool = False
):
    """$(a_{i-1/2} + a_{i+1/2}) / h^2$ at every node of a grid of `shape` along `axis`,
    with face values as in `face_values` (NumPy) of $a$ = `coeff` (or its square), or
    None when `coeff` or `length` is traced or `coeff` does not broadcast to `shape`.

    This is the Gershgorin radius of row $i$ of the operator `diffuse` linearises to, and
    minus its diagonal, so every eigenvalue $\\mu$ of the operator has
    $|\\mu| \\le 2 \\max_i (a_{i-1/2} + a_{i+1/2}) / h^2$. A batched `length` gives the
    smallest spacing, so the bound stays an upper bound for every member."""
    if not all(is_concrete(x) for x in jax.tree.leaves((coeff, length))):
        return None
    try:
        a = np.broadcast_to(np.asarray(coeff, float) ** (2 if squared else 1), shape)
    except ValueError:
        return None
    n = shape[axis]
    h = float(np.min(np.asarray(length, float))) / (n if periodic else n + 1)
    a = np.moveaxis(a, axis, -1)
    ends = (a[..., -1:], a[..., :1]) if periodic else (a[..., :1], a[..., -1:])
    ext = np.concatenate([ends[0], a, ends[1]], axis=-1)
    faces = 0.5 * (ext[..., :-1] + ext[..., 1:])
    return np.moveaxis((faces[..., :-1] + faces[..., 1:]) / h**2, -1, axis)
