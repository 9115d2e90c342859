"""`Library`: the candidate terms of a sparse regression (`ds.sparse_regression`).

Contract: a `Library` is a tuple of named functions, each mapping ONE feature vector
$x \\in \\mathbb{R}^d$ to a scalar; `library(x)` stacks them into the row
$\\Theta(x) = (\\theta_1(x), \\dots, \\theta_p(x))$ and `library.evaluate(X)` vmaps that
over the rows of $X$. Everything is static (names and functions), so a `Library` is a
hashable constant inside `jit`; the monomials of `Library.polynomial` compare by value, so
two equal polynomial libraries do not recompile. Libraries concatenate with `+`.
"""

import dataclasses
import itertools
from collections.abc import Callable, Mapping, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float


@dataclasses.dataclass(frozen=True)
class _Monomial:
    """$\\prod_i x_i^{p_i}$ for the (index, power) pairs `powers`; `()` is the constant 1.
    A frozen dataclass, so equal monomials hash equal (no recompilation)."""

    powers: tuple[tuple[int, int], ...]

    def __call__(self, x):
        out = jnp.ones((), jnp.result_type(x))
        for i, p in self.powers:
            out = out * x[i] ** p
        return out


def _monomial_name(powers: tuple[tuple[int, int], ...], features: Sequence[str]) -> str:
    if not powers:
        return "1"
    return "*".join(features[i] if p == 1 else f"{features[i]}^{p}" for i, p in powers)


class Library(eqx.Module):
    """A library of candidate terms $\\theta_j(x)$ for `ds.sparse_regression`.

    **Fields** (static):

    - `names`: one name per term, as printed in expressions ("x*y", "tanh(v/0.05)").
    - `fns`: one function per term, `fn(x) -> scalar` for ONE feature vector `x` of
      shape `(d,)`.
    - `features`: the feature names a polynomial library was built on (`None` for custom
      terms); `ds.sparse_regression` then checks that `x` has that many columns.

    Build one with `Library.polynomial` or `Library.terms`, and join them with `+`.

    **Example:**

    ```python
    lib = ds.Library.polynomial(["v"], degree=3) + ds.Library.terms({
        "tanh(v/0.05)": lambda x: jnp.tanh(x[0] / 0.05),
        "v|v|": lambda x: x[0] * jnp.abs(x[0]),
    })
    print(lib.names)  # ('1', 'v', 'v^2', 'v^3', 'tanh(v/0.05)', 'v|v|')
    theta = lib.evaluate(jnp.linspace(-1.0, 1.0, 5)[:, None])  # shape (5, 6)
    ```
    """

    names: tuple[str, ...] = eqx.field(static=True, converter=tuple)
    fns: tuple[Callable[[Array], Array], ...] = eqx.field(static=True, converter=tuple)
    features: tuple[str, ...] | None = eqx.field(default=None, static=True)

    def __check_init__(self):
        if len(self.names) == 0:
            raise ValueError(
                "Library: `names` is empty; give at least one term, e.g. "
                "ds.Library.polynomial(['x'], degree=2)."
            )
        if len(self.names) != len(self.fns):
            raise ValueError(
                f"Library: `names` has {len(self.names)} entries but `fns` has "
                f"{len(self.fns)}; give one name per term."
            )
        for name, fn in zip(self.names, self.fns, strict=True):
            if not isinstance(name, str) or not name:
                raise TypeError(
                    f"Library: every entry of `names` must be a non-empty str; got {name!r}."
                )
            if not callable(fn):
                raise TypeError(
                    f"Library: the term {name!r} in `fns` must be a callable fn(x) -> "
                    f"scalar; got {type(fn).__name__}."
                )
        duplicates = sorted({n for n in self.names if self.names.count(n) > 1})
        if duplicates:
            raise ValueError(
                f"Library: duplicate term names {duplicates}; each term needs its own name "
                "(rename or drop one of them)."
            )

    @classmethod
    def polynomial(cls, features: Sequence[str], degree: int, bias: bool = True) -> "Library":
        """All monomials of the named features up to total degree `degree`.

        For features `["x", "y"]` and degree 2: "1", "x", "y", "x^2", "x*y", "y^2" (by
        degree, then in the order of `features`). `bias=False` drops the constant "1".

        **Example:**

        ```python
        lib = ds.Library.polynomial(["x", "y"], degree=3, bias=False)
        assert lib.names[-1] == "y^3" and len(lib.names) == 9
        ```
        """
        if isinstance(features, str) or not isinstance(features, Sequence):
            raise TypeError(
                f"Library.polynomial: `features` must be a list of names, e.g. ['x', 'y']; "
                f"got {features!r}."
            )
        features = tuple(features)
        if not features or not all(isinstance(f, str) and f for f in features):
            raise ValueError(
                f"Library.polynomial: `features` must be non-empty names, e.g. ['x', 'y']; "
                f"got {features!r}."
            )
        if len(set(features)) != len(features):
            raise ValueError(
                f"Library.polynomial: `features` {features!r} repeats a name; name each "
                "column of x once."
            )
        if isinstance(degree, bool) or not isinstance(degree, int) or degree < 1:
            raise ValueError(f"Library.polynomial: `degree` must be an int >= 1; got {degree!r}.")
        if not isinstance(bias, bool):
            raise TypeError(f"Library.polynomial: `bias` must be True or False; got {bias!r}.")
        monomials = [()] if bias else []
        for k in range(1, degree + 1):
            for combo in itertools.combinations_with_replacement(range(len(features)), k):
                monomials.append(tuple((i, combo.count(i)) for i in sorted(set(combo))))
        names = tuple(_monomial_name(m, features) for m in monomials)
        return cls(names, tuple(_Monomial(m) for m in monomials), features)

    @classmethod
    def terms(cls, mapping: Mapping[str, Callable[[Array], Array]]) -> "Library":
        """Named custom terms, `{name: fn}` with `fn(x) -> scalar` for one feature vector
        `x`: saturating or sign-like laws a polynomial cannot express.

        **Example:**

        ```python
        lib = ds.Library.terms({
            "sign(v)": lambda x: jnp.sign(x[0]),
            "tanh(v/0.5)": lambda x: jnp.tanh(x[0] / 0.5),
        })
        assert lib(jnp.array([2.0])).shape == (2,)
        ```
        """
        if not isinstance(mapping, Mapping):
            raise TypeError(
                "Library.terms: `mapping` must be a dict {name: fn(x) -> scalar}, e.g. "
                f"{{'sign(v)': lambda x: jnp.sign(x[0])}}; got {type(mapping).__name__}."
            )
        return cls(tuple(mapping), tuple(mapping.values()))

    def __add__(self, other: "Library") -> "Library":
        if not isinstance(other, Library):
            return NotImplemented
        clash = sorted(set(self.names) & set(other.names))
        if clash:
            raise ValueError(
                f"Library: both libraries have the terms {clash}; drop them from one side "
                "(e.g. build the second with bias=False) before adding."
            )
        features = self.features
        if features is None or (other.features is not None and len(other.features) > len(features)):
            features = other.features
        return Library(self.names + other.names, self.fns + other.fns, features)

    def __call__(self, x: Float[Array, " d"]) -> Float[Array, " n_terms"]:
        x = jnp.asarray(x)
        values = []
        for name, fn in zip(self.names, self.fns, strict=True):
            value = jnp.asarray(fn(x))
            if value.shape != ():
                raise ValueError(
                    f"Library: the term {name!r} returned shape {value.shape} for one "
                    f"feature vector of shape {x.shape}; each term must return a scalar."
                )
            values.append(value)
        return jnp.stack(values)

    def evaluate(self, X: Float[Array, "N d"]) -> Float[Array, "N n_terms"]:
        """The library matrix $\\Theta$, one row `library(x)` per row `x` of `X` (vmapped).

        **Example:**

        ```python
        lib = ds.Library.polynomial(["x"], degree=2)
        theta = lib.evaluate(jnp.array([[1.0], [2.0]]))  # [[1, 1, 1], [1, 2, 4]]
        ```
        """
        return jax.vmap(self)(jnp.asarray(X))
