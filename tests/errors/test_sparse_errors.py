"""ds.sparse_regression and ds.Library refuse bad input up front, naming the argument and
the fix, before any fitting."""

import jax.numpy as jnp
import numpy as np
import pytest

import diffsim as ds

from .helpers import assert_refused, case

X = np.linspace(0.5, 2.0, 40)[:, None] * np.array([[1.0, 0.5]])
Y = X[:, 0] * X[:, 1]
LIB = ds.Library.polynomial(["x", "y"], degree=2)


def regression(**kwargs):
    args = dict(library=LIB, x=X, y=Y)
    args.update(kwargs)
    return lambda: ds.sparse_regression(args.pop("library"), args.pop("x"), args.pop("y"), **args)


def _with(array, value):
    out = np.array(array)
    out.flat[3] = value
    return out


VECTOR_TERM = ds.Library.terms({"x": lambda x: x[0], "xy": lambda x: x * 2.0})

CASES = [
    case(regression(library="poly"), TypeError, "library", "ds.Library", id="library-string"),
    case(regression(x=X[:, 0]), ValueError, "`x`", "2-d", "x[:, None]", id="x-1d"),
    case(regression(y=Y[:-1]), ValueError, "`y`", "(39,)", "40", id="y-rows"),
    case(regression(y=Y[:, None, None]), ValueError, "`y`", "(N, m)", id="y-3d"),
    case(regression(x=_with(X, np.nan)), ValueError, "`x`", "NaN", id="x-nan"),
    case(regression(x=_with(X, np.inf)), ValueError, "`x`", "inf", id="x-inf"),
    case(regression(y=_with(Y, np.nan)), ValueError, "`y`", "NaN", id="y-nan"),
    case(regression(x=X.astype(complex)), TypeError, "`x`", "real", id="x-complex"),
    case(
        regression(x=X[:5], y=Y[:5]),
        ValueError,
        "`x`",
        "5 samples",
        "6 terms",
        "at least 7",
        id="too-few-samples",
    ),  # fmt: skip
    case(regression(folds=1), ValueError, "`folds`", ">= 2", id="folds-1"),
    case(regression(folds=41), ValueError, "`folds`", "<= 40", id="folds-above-n"),
    case(regression(folds=2.5), ValueError, "`folds`", "int", id="folds-float"),
    case(regression(threshold=-0.1), ValueError, "`threshold`", "-0.1", ">= 0", id="threshold-neg"),
    case(regression(threshold=np.inf), ValueError, "`threshold`", id="threshold-inf"),
    case(regression(min_r2=0.0), ValueError, "`min_r2`", "(0, 1]", id="min-r2-zero"),
    case(regression(min_r2=1.5), ValueError, "`min_r2`", "(0, 1]", id="min-r2-high"),
    case(regression(max_terms=0), ValueError, "`max_terms`", ">= 1", id="max-terms-zero"),
    case(
        regression(output_names=["a", "b"]),
        ValueError,
        "`output_names`",
        "1 non-empty",
        id="output-names-length",
    ),  # fmt: skip
    case(regression(output_names="f"), TypeError, "`output_names`", "list", id="output-names-str"),
    case(
        regression(library=VECTOR_TERM),
        ValueError,
        "`library`",
        "'xy'",
        "(2,)",
        "scalar",
        id="term-not-scalar",
    ),  # fmt: skip
    case(
        regression(library=ds.Library.polynomial(["x", "y", "z"], 1)),
        ValueError,
        "`x`",
        "2 columns",
        "'z'",
        id="features-missing",
    ),  # fmt: skip
    case(
        regression(library=ds.Library.terms({"log(x-1)": lambda x: jnp.log(x[0] - 1.0)})),
        ValueError,
        "'log(x-1)'",
        "NaN or inf",
        "sample 0",
        id="term-nan",
    ),  # fmt: skip
    # The library itself.
    case(lambda: ds.Library.polynomial(["x"], 0), ValueError, "`degree`", ">= 1", id="degree-0"),
    case(lambda: ds.Library.polynomial(["x"], 2.0), ValueError, "`degree`", "int", id="degree-f"),
    case(lambda: ds.Library.polynomial([], 2), ValueError, "`features`", id="features-empty"),
    case(
        lambda: ds.Library.polynomial("xy", 2), TypeError, "`features`", "['x'", id="features-str"
    ),
    case(lambda: ds.Library.polynomial(["x", "x"], 2), ValueError, "repeats", id="features-dup"),
    case(
        lambda: ds.Library.terms({"f": 3.0}), TypeError, "'f'", "callable", id="term-not-callable"
    ),
    case(
        lambda: ds.Library.terms({"": jnp.sin}), TypeError, "`names`", "non-empty", id="name-empty"
    ),
    case(lambda: ds.Library.terms({}), ValueError, "`names`", "empty", id="library-empty"),
    case(lambda: ds.Library.terms([jnp.sin]), TypeError, "`mapping`", "dict", id="terms-list"),
    case(
        lambda: LIB + ds.Library.polynomial(["x"], 1),
        ValueError,
        "'1'",
        "'x'",
        "bias=False",
        id="add-duplicates",
    ),  # fmt: skip
]


@pytest.mark.parametrize("call, exc, mentions", CASES)
def test_refused(call, exc, mentions):
    assert_refused(call, exc, *mentions)


def test_calling_with_a_batch_is_refused():
    model = ds.sparse_regression(LIB, X, Y)
    assert_refused(lambda: model(jnp.asarray(X)), ValueError, "`x`", "(d,)", "jax.vmap")
