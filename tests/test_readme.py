"""The README's example code runs as written, so it cannot go stale.

Every ```python block runs, in order, in one namespace (as a reader would paste them). A
sketch that is not meant to run on its own (it uses data the reader brings) starts with a
`# not run:` line saying why, the convention of the docs site (tests/docs/examples.py).
"""

from pathlib import Path

import matplotlib.pyplot as plt

from .docs.examples import code_blocks

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_examples_run(capsys):
    blocks = code_blocks(README.read_text(encoding="utf-8"))
    assert blocks, "README.md has no runnable ```python block"
    namespace: dict = {}
    for i, code in enumerate(blocks):
        exec(compile(code, f"README.md python block {i + 1}", "exec"), namespace)
    plt.close("all")
    assert capsys.readouterr().out  # the examples print their results
