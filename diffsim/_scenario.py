"""The command line shared by every scenario: `--smoke`, `--out DIR`, `--set key=value`.

A scenario declares its settings once, as a dict of defaults (the full size) and a dict of
smoke overrides (the small size CI runs), and calls `scenario_args`:

```python
CONFIG = dict(n_members=10_000, t1=10.0, seed=0)
SMOKE = dict(n_members=100)

def main(argv=None):
    config, out = scenario_args(__doc__, CONFIG, SMOKE, argv, name="my_scenario")
    ...  # config.n_members, config.t1, config.seed; write figures under `out`
```

`--set key=value` (repeatable) overrides a setting after `--smoke`; the value is parsed
as the type of the default (int, float, bool, str). An unknown key or a value of the wrong
type is a one-line error on stderr and exit status 2, never a traceback.
"""

import argparse
import sys
import types
from pathlib import Path
from typing import Any

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _fail(name: str, message: str) -> None:
    print(f"{name}: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def _convert(name: str, key: str, text: str, default: Any) -> Any:
    kind = type(default)
    if kind is bool:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        _fail(name, f"--set {key}={text}: expected true or false")
    try:
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
    except ValueError:
        _fail(name, f"--set {key}={text}: expected {kind.__name__} (the default is {default!r})")
    if kind is str:
        return text
    _fail(name, f"--set {key}: this setting ({kind.__name__}) cannot be set from the command line")


def scenario_args(
    doc: str | None,
    defaults: dict[str, Any],
    smoke: dict[str, Any] | None = None,
    argv: list[str] | None = None,
    *,
    name: str = "scenario",
    default_out: str = "out",
) -> tuple[types.SimpleNamespace, Path]:
    """Parse a scenario's command line into `(config, out)`.

    `config` has one attribute per key of `defaults`: the default, replaced by `smoke[key]`
    under `--smoke`, then by any `--set key=value`. `out` is the output folder (created).
    """
    smoke = smoke or {}
    unknown = set(smoke) - set(defaults)
    if unknown:  # a programming error in the scenario, not a user error
        raise ValueError(f"smoke settings {sorted(unknown)} are not in the defaults")
    first_line = (doc or "").strip().splitlines()[0] if (doc or "").strip() else None
    parser = argparse.ArgumentParser(prog=name, description=first_line)
    parser.add_argument("--smoke", action="store_true", help="the small size that CI runs")
    parser.add_argument("--out", default=default_out, metavar="DIR", help="output folder")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a setting; settings and defaults: "
        + ", ".join(f"{k}={v!r}" for k, v in defaults.items()),
    )
    args = parser.parse_args(argv)
    config = dict(defaults)
    if args.smoke:
        config.update(smoke)
    for item in args.set:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            _fail(name, f"--set {item!r}: expected KEY=VALUE")
        if key not in defaults:
            _fail(name, f"--set {key}: unknown setting; known: {', '.join(defaults)}")
        config[key] = _convert(name, key, text.strip(), defaults[key])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    return types.SimpleNamespace(**config), out


def save_figure(fig: Any, path: Path, *, dpi: int = 110) -> Path:
    """Write a scenario's figure to `path` and close it (a scenario draws several, and an
    open figure keeps its memory); returns `path`. The dpi keeps the PNGs shown in
    scenarios/README.md small."""
    import matplotlib.pyplot as plt  # only the scenarios need matplotlib here

    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
