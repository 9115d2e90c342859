"""The `diffsim` command.

```
diffsim --version                    print the version
diffsim list                         list the scenarios, with the first line of each docstring
diffsim run NAME [--smoke] [--out DIR]   run scenarios/NAME.py with this Python
```

Scenarios are found in the `scenarios/` folder of the source checkout, next to the
`diffsim/` package folder, so these commands need a clone (installed with
`pip install -e .`); a wheel does not contain them yet (a later change ships them as
package data). A scenario is any `scenarios/NAME.py` whose name does not start with `_`.

`run` starts the scenario as a subprocess with the same Python interpreter and returns
its exit status. Errors (an unknown scenario, no scenarios folder) are one line on
stderr and exit status 2.
"""

import argparse
import ast
import subprocess
import sys
from pathlib import Path

from . import __version__

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"


class _CLIError(Exception):
    """A user error: printed as one line, exit status 2."""


def _scenarios() -> dict[str, Path]:
    if not SCENARIOS.is_dir():
        raise _CLIError(
            f"no scenarios folder at {SCENARIOS}; scenarios ship with the source checkout "
            "(git clone, then pip install -e .)."
        )
    return {p.stem: p for p in sorted(SCENARIOS.glob("*.py")) if not p.stem.startswith("_")}


def _summary(path: Path) -> str:
    """The first line of the module docstring, read without importing the scenario."""
    try:
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    except (SyntaxError, UnicodeDecodeError, OSError):
        return "(could not read the docstring)"
    return doc.strip().splitlines()[0] if doc and doc.strip() else ""


def _list(args: argparse.Namespace) -> int:
    scenarios = _scenarios()
    width = max((len(name) for name in scenarios), default=0)
    for name, path in scenarios.items():
        print(f"{name:<{width}}  {_summary(path)}")
    return 0


def _run(args: argparse.Namespace) -> int:
    scenarios = _scenarios()
    name = args.name.removesuffix(".py")
    if name not in scenarios:
        raise _CLIError(
            f"unknown scenario {args.name!r}; available: {', '.join(scenarios) or 'none'} "
            "(see `diffsim list`)."
        )
    command = [sys.executable, str(scenarios[name])]
    if args.smoke:
        command.append("--smoke")
    if args.out is not None:
        command += ["--out", args.out]
    try:
        return subprocess.run(command, check=False).returncode
    except KeyboardInterrupt:  # the scenario got the Ctrl-C too; no traceback from us
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="diffsim", description="Differentiable physics simulation on JAX."
    )
    parser.add_argument("--version", action="version", version=f"diffsim {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    listing = commands.add_parser("list", help="list the scenarios")
    listing.set_defaults(func=_list)
    run = commands.add_parser("run", help="run a scenario")
    run.add_argument("name", metavar="NAME", help="a scenario, as shown by `diffsim list`")
    run.add_argument("--smoke", action="store_true", help="the scenario's small size")
    run.add_argument("--out", metavar="DIR", help="output folder (the scenario's default: out)")
    run.set_defaults(func=_run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the `diffsim` command with `argv` (default `sys.argv[1:]`); return the exit status.

    **Example:**

    ```python
    from diffsim.cli import main
    main(["run", "pendulum_demo", "--smoke", "--out", "/tmp/demo"])  # 0 on success
    ```
    """
    args = _parser().parse_args(argv)
    try:
        return args.func(args)
    except _CLIError as e:
        print(f"diffsim: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
