"""ds.sample, ds.grid, the designs and the distributions refuse bad input before drawing:
the exception type, a message naming the argument, short."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import diffsim as ds

from .helpers import assert_refused, case

KEY = jax.random.key(0)
LORENZ = ds.systems.Lorenz()
RHO = dict(where=lambda s: s.rho, dist=ds.Uniform(0.0, 21.0))
RHO_BETA = lambda s: (s.rho, s.beta)  # noqa: E731


def _sample(key=KEY, n=8, **kwargs):
    return ds.sample(key, LORENZ, n, **{**RHO, **kwargs})


CASES = [
    # The key and n.
    case(lambda: _sample(key=0), TypeError, "key", "jax.random.key", id="key-int"),
    case(lambda: _sample(key=jnp.zeros(2)), TypeError, "key", "float", id="key-floats"),
    case(lambda: _sample(key=jax.random.split(KEY, 3)), ValueError, "key", "(3,)", id="key-batch"),
    case(lambda: _sample(n=0), ValueError, "n must be a positive int", id="n-zero"),
    case(lambda: _sample(n=-3), ValueError, "n must be a positive int", id="n-negative"),
    case(lambda: _sample(n=2.5), TypeError, "n must be a positive int", id="n-float"),
    case(lambda: _sample(n=True), TypeError, "n must be a positive int", id="n-bool"),
    # where, dist, design.
    case(lambda: _sample(where="rho"), TypeError, "where", "function", id="where-str"),
    case(lambda: _sample(where=lambda s: s.rhoo), ValueError, "where", "rhoo", id="where-typo"),
    case(
        lambda: ds.sample(KEY, {"name": "x"}, 4, where=lambda t: t["name"], dist=ds.Uniform(0, 1)),
        TypeError,
        "where",
        "str",
        id="where-picks-str",
    ),
    case(lambda: _sample(where=RHO_BETA), ValueError, "dist", "2 field", id="dist-count"),
    case(lambda: _sample(dist=(0.0, 21.0)), TypeError, "dist", "distribution", id="dist-tuple"),
    case(
        lambda: _sample(dist=ds.Uniform(jnp.zeros(3), jnp.ones(3))),
        ValueError,
        "dist[0]",
        "(3,)",
        id="dist-shape",
    ),
    case(lambda: _sample(design="sobol"), TypeError, "design", id="design-str"),
    case(
        lambda: ds.sample(
            KEY,
            (jnp.ones(1025),),
            4,
            where=lambda t: t[0],
            dist=ds.Uniform(0, 1),
            design=ds.Sobol(),
        ),  # fmt: skip
        ValueError,
        "1024 dimensions",
        id="sobol-dims",
    ),
    case(lambda: ds.Sobol(scramble="yes"), TypeError, "scramble", id="sobol-scramble"),
    # Distributions.
    case(lambda: ds.Uniform(2.0, 1.0), ValueError, "low < high", id="uniform-order"),
    case(lambda: ds.Uniform(0.0, np.inf), ValueError, "finite", "high=inf", id="uniform-inf"),
    case(lambda: ds.Uniform("a", 1.0), TypeError, "Uniform(low=...)", id="uniform-str"),
    case(
        lambda: ds.Uniform(jnp.zeros(2), jnp.ones(3)),
        ValueError,
        "low and high",
        "broadcast",
        id="uniform-shapes",
    ),
    case(lambda: ds.LogUniform(0.0, 1.0), ValueError, "low > 0", id="loguniform-zero"),
    case(lambda: ds.Normal(0.0, 0.0), ValueError, "std", "positive", id="normal-std-zero"),
    case(lambda: ds.Normal(0.0, np.inf), ValueError, "std", "finite", id="normal-std-inf"),
    case(lambda: ds.Normal(np.nan, 1.0), ValueError, "mean", "finite", id="normal-mean-nan"),
    # Grids.
    case(
        lambda: ds.grid(LORENZ, where=RHO_BETA, values=(jnp.ones(2),)),
        ValueError,
        "values",
        "2 field",
        id="grid-count",
    ),
    case(
        lambda: ds.grid(LORENZ, where=RHO_BETA, values=jnp.ones((2, 3))),
        TypeError,
        "values",
        "tuple",
        id="grid-values-array",
    ),
    case(
        lambda: ds.grid(LORENZ, where=lambda s: s.rho, values=jnp.array([1.0, jnp.nan])),
        ValueError,
        "values[0]",
        "finite",
        id="grid-nan",
    ),
    case(
        lambda: ds.grid(LORENZ, where=lambda s: s.rho, values=["a", "b"]),
        TypeError,
        "values[0]",
        id="grid-str",
    ),
    case(
        lambda: ds.grid((jnp.ones(3),), where=lambda t: t[0], values=jnp.ones(2)),
        ValueError,
        "must be a scalar",
        id="grid-array-field",
    ),
    case(
        lambda: ds.grid(LORENZ, where=None, values=jnp.ones(2)), TypeError, "where", id="grid-where"
    ),
]


@pytest.mark.parametrize("call, exc, mentions", CASES)
def test_refused(call, exc, mentions):
    assert_refused(call, exc, *mentions)


@pytest.mark.parametrize(
    "kwargs, exc, mention",
    [
        (dict(where=RHO_BETA), ValueError, "2 field"),
        (dict(dist=ds.Uniform(jnp.zeros(3), jnp.ones(3))), ValueError, "dist[0]"),
    ],
    ids=["dist-count", "dist-shape"],
)
def test_refused_under_jit(kwargs, exc, mention):
    """Under jit the same checks run at trace time, with a traced key, with the same
    message."""
    assert_refused(lambda: jax.jit(lambda k: _sample(key=k, **kwargs))(KEY), exc, mention)


def test_traced_keys_and_legacy_keys_pass():
    batch = jax.jit(lambda k: _sample(key=k).rho)(KEY)
    assert batch.shape == (8,)
    assert _sample(key=jax.random.PRNGKey(0)).rho.shape == (8,)
    assert _sample(n=np.int64(4)).rho.shape == (4,)
