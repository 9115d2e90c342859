"""The `diffsim` command.

```
diffsim --version                      print the version
diffsim list                           the scenarios, each with its one-line description
diffsim run NAME [--smoke] [--out DIR] [--set KEY=VALUE ...]
                                       run a scenario (figures and a summary under DIR)
diffsim run NAME --help                that scenario's settings and their defaults
diffsim bench [NAME] [--quick]         run a benchmark (default: rollout, gradients, fit)
```

Where scenarios come from: a scenario is any `NAME.py` whose name does not start with
`_` in the first of these folders that exists:

1. `scenarios/` next to the `diffsim/` package folder, in a source checkout (recognised
   by its `pyproject.toml`; `pip install -e .` or `PYTHONPATH=.`);
2. `diffsim/_scenarios/`, the copy of `scenarios/` that the wheel ships as package data
   (`pip install diffsim`).

`diffsim list` says which one it used. Benchmarks (`benchmarks/`) exist only in a source
checkout.

`run` and `bench` start the script as a subprocess with the same Python interpreter and
return its exit status; `--smoke`, `--out` and every `--set` are passed on to the scenario,
which checks them (`diffsim._scenario`: an unknown setting, a value of the wrong type or
out of its limit is a one-line error and exit status 2). `run` checks what it can before
starting the subprocess (which costs seconds of imports): that the scenario exists, that
every `--set` has the form KEY=VALUE, and that `--out` can be created and written.
Every user error, of the command itself (an unknown scenario or benchmark, no scenarios
folder, an unknown option) or of the scenario's settings, is one line on stderr and exit
status 2, never a traceback; a failure inside a scenario's work is not a user error and
keeps its traceback. The subprocess draws with matplotlib's `Agg` backend unless
`MPLBACKEND` is set: it only writes files.
"""

import argparse
import ast
import os
import subprocess
import sys
from pathlib import Path

from . import __version__
from ._scenario import OneLineParser, UsageError, output_folder, split_setting

_PACKAGE = Path(__file__).resolve().parent
_CHECKOUT = _PACKAGE.parent
# `make bench`'s set: the three that compare against a hand-written reference.
DEFAULT_BENCHMARKS = ("rollout", "gradients", "fit")


def scenarios_folder() -> tuple[Path, str]:
    """`(folder, where)`: the scenarios folder in use and `"source checkout"` or
    `"package data"`."""
    checkout = _CHECKOUT / "scenarios"
    if checkout.is_dir() and (_CHECKOUT / "pyproject.toml").is_file():
        return checkout, "source checkout"
    shipped = _PACKAGE / "_scenarios"
    if shipped.is_dir():
        return shipped, "package data"
    raise UsageError(
        f"no scenarios found: neither {checkout} (a source checkout) nor {shipped} (the "
        "wheel's package data) exists. Reinstall diffsim, or clone it and pip install -e ."
    )


def _scripts(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.glob("*.py")) if not p.stem.startswith("_")}


def _scenarios() -> dict[str, Path]:
    return _scripts(scenarios_folder()[0])


def _summary(path: Path) -> str:
    """The first line of the module docstring, read without importing the script."""
    try:
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    except (SyntaxError, UnicodeDecodeError, OSError):
        return "(could not read the docstring)"
    return doc.strip().splitlines()[0] if doc and doc.strip() else ""


def _pick(kind: str, name: str, available: dict[str, Path]) -> Path:
    name = name.removesuffix(".py")
    if name not in available:
        raise UsageError(
            f"unknown {kind} {name!r}; available: {', '.join(available) or 'none'}"
            + (" (see `diffsim list`)." if kind == "scenario" else ".")
        )
    return available[name]


def _call(command: list[str]) -> int:
    env = {**os.environ, "MPLBACKEND": os.environ.get("MPLBACKEND", "Agg")}
    try:
        return subprocess.run(command, check=False, env=env).returncode
    except KeyboardInterrupt:  # the child got the Ctrl-C too; no traceback from us
        return 130


def _list(args: argparse.Namespace) -> int:
    folder, where = scenarios_folder()
    scenarios = _scripts(folder)
    width = max((len(name) for name in scenarios), default=0)
    for name, path in scenarios.items():
        print(f"{name:<{width}}  {_summary(path)}")
    print(f"\n{len(scenarios)} scenarios from {folder} ({where}); run one with `diffsim run NAME`.")
    return 0


def _run(args: argparse.Namespace) -> int:
    if args.name is None:
        if args.help:
            _parser().parse_args(["run", "--help-run"])
        raise UsageError("run needs a scenario NAME; see `diffsim list`.")
    command = [sys.executable, str(_pick("scenario", args.name, _scenarios()))]
    if args.help:
        return _call(command + ["--help"])
    for item in args.set:
        split_setting(item)  # the form only: the scenario knows its keys and limits
    if args.out is not None:
        output_folder(args.out)
    if args.smoke:
        command.append("--smoke")
    if args.out is not None:
        command += ["--out", args.out]
    for item in args.set:
        command += ["--set", item]
    return _call(command)


def _bench(args: argparse.Namespace) -> int:
    folder = _CHECKOUT / "benchmarks"
    if not (folder.is_dir() and (_CHECKOUT / "pyproject.toml").is_file()):
        raise UsageError(
            "benchmarks ship with the source checkout only: git clone the repository, "
            "pip install -e ., then run `diffsim bench` there."
        )
    available = _scripts(folder)
    names = [args.name] if args.name else list(DEFAULT_BENCHMARKS)
    paths = [_pick("benchmark", name, available) for name in names]
    for path in paths:
        if len(paths) > 1:
            print(f"== {path.stem}: {_summary(path)}", flush=True)
        status = _call([sys.executable, str(path)] + (["--quick"] if args.quick else []))
        if status != 0:
            return status
    return 0


_EPILOG = """\
examples:
  diffsim list
  diffsim run pendulum_demo                      # the flagship demo, figures under out/
  diffsim run pendulum_demo --smoke --out /tmp/demo
  diffsim run lorenz_ensemble --set n_members=100000
  diffsim run pendulum_demo --help               # a scenario's settings
  diffsim bench rollout --quick
"""


def _parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="diffsim",
        description="Differentiable physics simulation on JAX: run the scenarios and "
        "benchmarks that come with diffsim.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"diffsim {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    listing = commands.add_parser(
        "list",
        help="list the scenarios with one-line descriptions",
        description="List the scenarios, each with the first line of its docstring, and "
        "the folder they were found in.",
    )
    listing.set_defaults(func=_list)

    run = commands.add_parser(
        "run",
        help="run a scenario",
        description="Run a scenario as a subprocess: it writes its figures (PNG, GIF) and "
        "a summary under --out and prints a short report. `diffsim run NAME --help` "
        "lists that scenario's settings, which --set changes.",
        add_help=False,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  diffsim run pendulum_demo --smoke --out /tmp/demo\n"
        "  diffsim run pendulum_demo --set noise=0.2 --set n_members=100000\n",
    )
    run.add_argument("name", metavar="NAME", nargs="?", help="a scenario, see `diffsim list`")
    run.add_argument(
        "-h", "--help", action="store_true", help="this help, or with NAME the scenario's own"
    )
    run.add_argument("--help-run", action="help", help=argparse.SUPPRESS)
    run.add_argument("--smoke", action="store_true", help="the scenario's small size (CI's)")
    run.add_argument("--out", metavar="DIR", help="output folder (default: out)")
    run.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change a setting (repeatable); `diffsim run NAME --help` lists them",
    )
    run.set_defaults(func=_run)

    bench = commands.add_parser(
        "bench",
        help="run a benchmark (source checkout only)",
        description="Run benchmarks/NAME.py, or without NAME the standard set "
        f"({', '.join(DEFAULT_BENCHMARKS)}), the same as `make bench`. Each prints its "
        "timings against a reference implementation run in the same process.",
    )
    bench.add_argument("name", metavar="NAME", nargs="?", help="a file in benchmarks/")
    bench.add_argument("--quick", action="store_true", help="fewer repeats and sizes")
    bench.set_defaults(func=_bench)
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
    except UsageError as e:
        print(f"diffsim: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
