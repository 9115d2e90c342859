"""Every example in the documentation runs: the docstring examples of every public name
and the code on every docs/ page (collected by tests/docs/examples.py, which states the
conventions). Each public name must have an example and each public method a docstring,
so the reference cannot go stale or thin."""

import inspect

import jax
import matplotlib
import pytest

from .examples import (
    Example,
    code_blocks,
    doc_of,
    docstring_examples,
    page_examples,
    public_methods,
    public_names,
)

matplotlib.use("Agg")  # examples only write figures


def _namespace() -> dict:
    import jax.numpy as jnp
    import numpy as np

    import diffsim as ds

    return {"__name__": "__example__", "jax": jax, "jnp": jnp, "np": np, "ds": ds}


def _run(example: Example, tmp_path, monkeypatch) -> None:
    """Run the blocks in order, in float32 and a scratch folder; a failure names the
    block."""
    import matplotlib.pyplot as plt

    monkeypatch.chdir(tmp_path)
    x64 = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", False)
    namespace = _namespace()
    try:
        for i, block in enumerate(example.blocks):
            code = compile(block, f"<{example.name}, block {i + 1}>", "exec")
            exec(code, namespace)
    finally:
        jax.config.update("jax_enable_x64", x64)
        plt.close("all")


# Examples too long for `make test` (run by `make test-slow`), each with why it can wait.
SLOW = {
    "diffsim.plot.animate_springs": "writes a GIF frame by frame, ~13 s; tests/test_plot.py animates",
    "diffsim.plot.animate_pendulum": "writes a GIF frame by frame, ~11 s; tests/test_plot.py animates",
    "diffsim.plot.animate_bodies": "writes a GIF frame by frame, ~6 s; tests/test_plot.py animates",
    "docs/guides/ml.md": "trains a hybrid model and a controller, ~13 s",
    "docs/howto/events-and-contact.md": "compiles event rollouts and their gradients, ~35 s",
    "docs/guides/posteriors.md": "compiles NUTS through a rollout, draws three posteriors, 1-3 min",
    # NUTS programs (window adaptation + sampling, vmapped over chains) compile for 15-40 s
    # each; tests/inference/test_posterior.py samples the same API in make test.
    "diffsim.SparseModel": "compiles a ds.fit of a hybrid system, ~15 s; tests/ml/test_sparse.py refits one",
    "diffsim.posterior": "compiles NUTS through a pendulum rollout, ~40 s",
    "diffsim.Posterior": "compiles a NUTS program, ~20 s",
    "diffsim.Posterior.predict": "compiles a NUTS program, ~20 s",
    "diffsim.plot.posterior_trace": "compiles a NUTS program, ~20 s; tests/test_plot_posterior.py plots",
    "diffsim.plot.posterior_rank": "compiles a NUTS program, ~20 s; tests/test_plot_posterior.py plots",
    "diffsim.plot.posterior_corner": "compiles a NUTS program, ~20 s; tests/test_plot_posterior.py plots",
    "diffsim.plot.posterior_predictive": "compiles a NUTS program, ~20 s; tests/test_plot_posterior.py plots",
}


def _marked(examples: list[Example]) -> list:
    return [
        pytest.param(e, id=e.name, marks=pytest.mark.slow)
        if e.name in SLOW
        else pytest.param(e, id=e.name)
        for e in examples
    ]


def test_slow_examples_exist():
    names = {e.name for e in docstring_examples() + page_examples()}
    assert set(SLOW) <= names, set(SLOW) - names


@pytest.mark.parametrize("example", _marked(docstring_examples()))
def test_docstring_example_runs(example, tmp_path, monkeypatch):
    _run(example, tmp_path, monkeypatch)


@pytest.mark.parametrize("example", _marked(page_examples()))
def test_page_example_runs(example, tmp_path, monkeypatch):
    _run(example, tmp_path, monkeypatch)


def test_every_public_name_has_an_example():
    missing = [
        name
        for name, obj in public_names().items()
        if (inspect.isclass(obj) or callable(obj)) and not code_blocks(doc_of(obj))
    ]
    assert not missing, f"public names without a runnable ```python example: {missing}"


def test_every_public_method_has_a_docstring():
    missing = [
        f"{name}.{attr}"
        for name, obj in public_names().items()
        if inspect.isclass(obj)
        for attr, member in public_methods(obj).items()
        if not doc_of(member).strip()
    ]
    assert not missing, f"public methods without a docstring: {missing}"
