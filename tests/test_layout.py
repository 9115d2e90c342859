"""The folders are the architecture: the import rules between them, no import cycles,
and modules and functions a reader takes in at once. Read from the source (AST), so a
rule broken anywhere, even inside a function, fails here."""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "diffsim"

# Who may import whom, by top-level part of the package. `engine` is the core: it knows
# no physics and no use. `systems` is the physics: it knows no engine and no use. The
# uses sit on both; `plot` and `cli` on top of everything.
USES = ("fitting", "ensembles", "ml", "inference")
FORBIDDEN = {
    "kernels": {"systems", "plot", "cli", *USES},  # compiled code: no physics, no use
    "engine": {"systems", "kernels", "plot", "cli", *USES},
    "systems": {"engine", "plot", "cli", *USES},
    **{use: {"plot", "cli"} for use in USES},
}

MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80  # code lines, the docstring not counted


def _module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, pathlib.Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str, path: pathlib.Path, known: set[str]) -> set[str]:
    """The diffsim modules that `name` imports (anywhere in its body)."""
    is_package = path.name == "__init__.py"
    base = name.split(".") if is_package else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                root = base[: len(base) - node.level + 1]
                module = ".".join(root + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # `from pkg import sub` imports the submodule when there is one; the package
            # counts only when a name is not a submodule (it is read from its __init__).
            subs = [f"{module}.{a.name}" for a in node.names]
            targets = [sub for sub in subs if sub in known]
            if len(targets) < len(subs):
                targets.append(module)
        else:
            continue
        found.update(t for t in targets if t in known)
    found.discard(name)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1].removeprefix("_") if len(parts) > 1 else ""


def test_the_graph_is_read():
    graph = _graph()
    # A sanity check that the reader resolves relative imports: the known edges exist.
    assert "diffsim.engine._rollout" in graph["diffsim.engine"]
    assert "diffsim.engine" in graph["diffsim.fitting._shooting"]
    assert any(m.startswith("diffsim.systems") for m in graph["diffsim.plot._animations"])


@pytest.mark.parametrize("part", sorted(FORBIDDEN))
def test_import_rules(part):
    graph = _graph()
    broken = [
        f"{module} imports {target}"
        for module, targets in graph.items()
        if _part(module) == part
        for target in sorted(targets)
        if _part(target) in FORBIDDEN[part]
    ]
    assert not broken, "\n".join(broken)


def test_no_import_cycles():
    graph = _graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycle = stack[stack.index(target) :] + [target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def _code_lines(node: ast.FunctionDef) -> int:
    lines = node.end_lineno - node.lineno + 1
    first = node.body[0]
    if isinstance(first, ast.Expr) and isinstance(getattr(first, "value", None), ast.Constant):
        if isinstance(first.value.value, str):
            lines -= first.end_lineno - first.lineno + 1
    return lines


def test_modules_and_functions_are_short():
    too_long = []
    for name, path in _modules().items():
        tree = ast.parse(path.read_text())
        n = len(path.read_text().splitlines())
        doc = ast.get_docstring(tree) or ""
        # A longer module says why in its docstring ("Longer than ...").
        if n > MAX_MODULE_LINES and "Longer than" not in doc:
            too_long.append(f"{name}: {n} lines")
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if _code_lines(node) > MAX_FUNCTION_LINES:
                    too_long.append(f"{name}.{node.name}: {_code_lines(node)} code lines")
    assert not too_long, "\n".join(too_long)


def test_every_module_states_its_contract():
    missing = [
        name
        for name, path in _modules().items()
        if not ast.get_docstring(ast.parse(path.read_text()))
    ]
    assert not missing, missing
