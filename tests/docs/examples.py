"""Collect the runnable code of the documentation: the fenced ```python blocks of every
public name's docstring (and of its public methods) and of every page under docs/.

Conventions, stated for authors on docs/api/index.md:

- a docstring's blocks run in order in one namespace that starts with
  `jax`, `jnp` (`jax.numpy`), `np` (NumPy) and `ds` (`diffsim`) imported;
- a page's blocks run in order in one namespace (the same imports are there, but a page
  shows its own imports, as a reader copies from it);
- a block whose first line starts with `# not run:` is shown but not run; the rest of the
  line says why (a GPU, several hosts);
- examples run in JAX's default float32 unless they enable float64 themselves, and in a
  scratch working folder, so files they write go nowhere.
"""

import dataclasses
import inspect
import re
import textwrap
import types
from pathlib import Path

import diffsim
import diffsim.ml
import diffsim.plot
import diffsim.systems

ROOT = Path(__file__).resolve().parents[2]
PUBLIC_MODULES = (diffsim, diffsim.systems, diffsim.ml, diffsim.plot)
NOT_RUN = "# not run:"
# A fence opens with ```python (perhaps indented, as in a docstring's list item) and
# closes with ``` at the same indentation.
_FENCE = re.compile(r"^([ \t]*)```python[^\n]*\n(.*?)^\1```", re.M | re.S)


@dataclasses.dataclass(frozen=True)
class Example:
    """The runnable blocks of one docstring or one page, run in order."""

    name: str  # "diffsim.simulate", "diffsim.FitResult.summary", "docs/index.md"
    blocks: tuple[str, ...]


def code_blocks(text: str) -> tuple[str, ...]:
    """The ```python blocks of a markdown text, dedented, without `# not run:` ones."""
    blocks = (textwrap.dedent(body) for _, body in _FENCE.findall(text))
    return tuple(b for b in blocks if not b.lstrip().startswith(NOT_RUN))


def public_names() -> dict[str, object]:
    """`{"diffsim.X": X}` for every public non-module name of the public modules; an
    object exported twice (`ds.Pendulum` is `ds.systems.Pendulum`) is listed once, under
    its first module."""
    seen: dict[int, str] = {}
    names: dict[str, object] = {}
    for module in PUBLIC_MODULES:
        for attr in sorted(dir(module)):
            if attr.startswith("_"):
                continue
            obj = getattr(module, attr)
            if isinstance(obj, types.ModuleType) or id(obj) in seen:
                continue
            if not _is_ours(obj):
                continue
            seen[id(obj)] = attr
            names[f"{module.__name__}.{attr}"] = obj
    return names


def _is_ours(obj: object) -> bool:
    """Defined in diffsim (not a re-exported jax/equinox name); constants count."""
    module = getattr(obj, "__module__", None)
    if module is None or not (inspect.isclass(obj) or callable(obj)):
        return True  # a constant such as ds.systems.SOLAR_SYSTEM_BODIES
    return module.split(".")[0] == "diffsim"


def public_methods(cls: type) -> dict[str, object]:
    """The public methods and properties a class defines itself (not inherited ones, and
    not an Equinox module's fields, whose defaults may be functions)."""
    fields = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
    out = {}
    for attr, member in vars(cls).items():
        if attr.startswith("_") or attr in fields:
            continue
        if isinstance(member, (staticmethod, classmethod)):
            member = member.__func__
        if isinstance(member, property) or inspect.isfunction(member):
            out[attr] = member
    return out


def doc_of(obj: object) -> str:
    """The object's own docstring (a constant's doc is its module's entry, so none)."""
    if inspect.isclass(obj) or callable(obj) or isinstance(obj, property):
        return inspect.getdoc(obj) or ""
    return ""


def docstring_examples() -> list[Example]:
    """One `Example` per docstring that has runnable blocks: public names and the public
    methods of public classes."""
    examples = []
    for name, obj in public_names().items():
        blocks = code_blocks(doc_of(obj))
        if blocks:
            examples.append(Example(name, blocks))
        if inspect.isclass(obj):
            for attr, member in public_methods(obj).items():
                blocks = code_blocks(doc_of(member))
                if blocks:
                    examples.append(Example(f"{name}.{attr}", blocks))
    return examples


def page_examples() -> list[Example]:
    """One `Example` per page under docs/ that has runnable blocks."""
    pages = sorted((ROOT / "docs").rglob("*.md"))
    examples = []
    for page in pages:
        blocks = code_blocks(page.read_text(encoding="utf-8"))
        if blocks:
            examples.append(Example(str(page.relative_to(ROOT)), blocks))
    return examples
