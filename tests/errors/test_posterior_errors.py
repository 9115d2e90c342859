"""ds.posterior refuses bad input up front, naming the argument and the fix, before
anything is compiled (none of these cases runs a sampler)."""

import jax
import numpy as np
import pytest

import diffsim as ds

from .helpers import assert_refused, case

X = np.linspace(0.0, 1.0, 8)
Y = 2.0 * X + 1.0
P0 = {"a": 1.0, "b": 0.0}
PRIOR = {"a": ds.HalfNormal(3.0), "b": ds.Normal(0.0, 2.0)}
KEY = jax.random.key(0)


def line(p):
    return p["a"] * X + p["b"]


def posterior(**kwargs):
    args = dict(prior=PRIOR, key=KEY, sigma=0.1)
    args.update(kwargs)
    return lambda: ds.posterior(
        args.pop("model", line), args.pop("params0", P0), args.pop("observed", Y), **args
    )


CASES = [
    case(posterior(model=3.0), TypeError, "model", "function", id="model-not-callable"),
    case(posterior(observed=None), ValueError, "observed", "required", id="no-observed"),
    case(posterior(prior=None), ValueError, "prior", "required", "ds.HalfNormal", id="no-prior"),
    case(posterior(key=0), TypeError, "key", "jax.random.key", id="key-int"),
    case(posterior(sigma=None), ValueError, "sigma=", "noise=", "neither", id="no-noise-model"),
    case(
        posterior(noise=ds.HalfNormal(1.0)),
        ValueError,
        "sigma=",
        "noise=",
        "both",
        id="sigma-and-noise",
    ),  # fmt: skip
    case(posterior(sigma=None, noise=0.1), TypeError, "noise", "ds.HalfNormal", id="noise-number"),
    case(
        posterior(sigma=None, noise=ds.Normal(0.0, 1.0)),
        ValueError,
        "noise",
        "positive",
        id="noise-negative-support",
    ),  # fmt: skip
    case(posterior(likelihood="normal"), TypeError, "likelihood", "GaussianNoise", id="likelihood"),
    case(posterior(start=P0), TypeError, "start", "FitResult", id="start-not-fit"),
    case(posterior(num_chains=0), ValueError, "num_chains", "positive int", id="chains-zero"),
    case(posterior(batch_size=0), ValueError, "batch_size", "positive int", id="batch-zero"),
    case(posterior(devices="gpu"), TypeError, "devices", "jax.devices()", id="devices-string"),
    case(posterior(num_warmup=10.5), ValueError, "num_warmup", id="warmup-float"),
    case(posterior(num_samples=-1), ValueError, "num_samples", id="samples-negative"),
    case(posterior(max_tree_depth=0), ValueError, "max_tree_depth", id="depth-zero"),
    case(posterior(target_accept=1.2), ValueError, "target_accept", "(0, 1)", id="accept-high"),
    case(posterior(dense_mass="yes"), TypeError, "dense_mass", id="dense-not-bool"),
    case(posterior(sigma=-1.0), ValueError, "sigma", "-1.0", id="sigma-negative"),
    case(posterior(observed=np.full(8, np.inf)), ValueError, "observed", "NaN", id="observed-inf"),
    case(posterior(observed=Y[:5]), ValueError, "observed", "(5,)", id="observed-shape"),
    case(
        posterior(prior=(ds.Normal(0.0, 1.0),)),
        ValueError,
        "prior",
        "where(params0)",
        id="prior-count",
    ),
    case(
        posterior(prior={"a": 1.0, "b": ds.Normal(0.0, 1.0)}),
        TypeError,
        "prior",
        "distribution",
        id="prior-number",
    ),  # fmt: skip
    case(
        posterior(params0={"a": -1.0, "b": 0.0}),
        ValueError,
        "params0",
        "a",
        "support",
        id="start-outside-prior-support",
    ),  # fmt: skip
    case(
        posterior(
            prior={"a": ds.Uniform(0.0, 1.0), "b": ds.Normal(0.0, 1.0)},
            params0={"a": 1.5, "b": 0.0},
        ),
        ValueError,
        "params0",
        "(0.0, 1.0)",
        id="start-outside-uniform",
    ),  # fmt: skip
    case(
        posterior(likelihood=ds.LogNormalNoise(), observed=Y - 2.0),
        ValueError,
        "observed",
        "positive",
        "GaussianNoise",
        id="lognormal-nonpositive-data",
    ),  # fmt: skip
    case(posterior(where=lambda p: p["c"]), ValueError, "where", "KeyError", id="where-fails"),
    case(
        posterior(where=lambda p: p["a"], bounds=(2.0, 0.0), prior=ds.HalfNormal(1.0)),
        ValueError,
        "bounds[0]",
        "lo < hi",
        id="bounds-inverted",
    ),  # fmt: skip
    case(lambda: ds.StudentTNoise(df=0.0), ValueError, "df", "positive", id="student-df"),
]


@pytest.mark.parametrize("call, exc, mentions", CASES)
def test_refused_before_sampling(call, exc, mentions):
    assert_refused(call, exc, *mentions)


def test_a_user_distribution_without_log_prob_is_refused_by_name():
    class Exponential(ds.AbstractDistribution):
        rate: float

        def from_unit(self, u):
            return -np.log1p(-u) / self.rate

    call = posterior(prior={"a": Exponential(1.0), "b": ds.Normal(0.0, 1.0)})
    assert_refused(call, NotImplementedError, "Exponential", "log_prob")
