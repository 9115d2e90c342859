"""The command line shared by every scenario: `--smoke`, `--out DIR`, `--set key=value`.

A scenario declares its settings once, as a dict of defaults (the full size) and a dict of
smoke overrides (the small size CI runs), and calls `scenario_args`:

```python
CONFIG = dict(n_members=10_000, t1=10.0, rho_max=21.0, seed=0)
SMOKE = dict(n_members=100)
LIMITS = dict(rho_max=POSITIVE)  # only what the rules below do not already say

def main(argv=None):
    config, out = scenario_args(__doc__, CONFIG, SMOKE, argv, name="my_scenario",
                                limits=LIMITS)
    ...  # config.n_members, config.t1, config.seed; write figures under `out`
```

`--set key=value` (repeatable) overrides a setting after `--smoke`; the value is parsed
as the type of the default (int, float, bool, str) and must then satisfy the setting's
limit, the first of:

1. the scenario's own `limits={key: Limit(...)}`;
2. `CONVENTIONS`, the limits of names that mean the same in every scenario (`dt`, `t1`,
   `noise`, `seed`, ...);
3. the default's kind: a positive int default asks for a positive int, a finite float
   default for a finite float.

`--out` is created and checked writable before the scenario does any work. Every user
error (a malformed `--set`, an unknown key, a value of the wrong type or out of its
limit, an `--out` that cannot be written, an unknown option) is one line on stderr and
exit status 2, never a traceback; `diffsim run` (diffsim/cli.py) uses the same checks.
"""

import argparse
import dataclasses
import io
import math
import sys
import tempfile
import tokenize
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class UsageError(Exception):
    """A user error on the command line: printed as one line, exit status 2."""


class OneLineParser(argparse.ArgumentParser):
    """`argparse.ArgumentParser` whose usage errors are one line (argparse's own print the
    whole usage first); `--help` is unchanged."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


@dataclasses.dataclass(frozen=True)
class Limit:
    """The values a numeric setting accepts: finite, at least `low` (above it when
    `strict`) and at most `high`."""

    low: float = -math.inf
    high: float = math.inf
    strict: bool = False

    def __contains__(self, value: float) -> bool:
        try:
            value = float(value)
        except OverflowError:  # an int beyond any float
            return False
        above = value > self.low if self.strict else value >= self.low
        return math.isfinite(value) and above and value <= self.high

    def __str__(self) -> str:
        low, high = _number(self.low), _number(self.high)
        if math.isfinite(self.low) and math.isfinite(self.high) and not self.strict:
            return f"in [{low}, {high}]"
        parts = [f"{'>' if self.strict else '>='} {low}"] if self.low > -math.inf else []
        parts += [f"<= {high}"] if self.high < math.inf else []
        return " and ".join(parts)


def _number(x: float) -> str:
    return str(int(x)) if math.isfinite(x) and x == int(x) else f"{x:g}"


POSITIVE = Limit(0, strict=True)
NON_NEGATIVE = Limit(0)
FRACTION = Limit(0, 1)
FINITE = Limit()

# Names that mean the same in every scenario. `noise` is a standard deviation the fits
# divide by (their `sigma`), so zero is refused too.
CONVENTIONS: dict[str, Limit] = {
    "dt": POSITIVE,
    "t1": POSITIVE,
    "noise": POSITIVE,
    "length": POSITIVE,
    "damping": NON_NEGATIVE,
    "softening": NON_NEGATIVE,
    "learning_rate": POSITIVE,
    "seed": Limit(0, 2**31 - 1),  # NumPy and JAX (without x64) both take these
}


def _fail(name: str, message: str) -> NoReturn:
    print(f"{name}: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def split_setting(item: str) -> tuple[str, str]:
    """`"key=value"` -> `("key", "value")`, or a `UsageError`."""
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise UsageError(f"--set {_short(item)!r}: expected KEY=VALUE, e.g. --set seed=1")
    return key.strip(), text.strip()


def _short(text: str, n: int = 40) -> str:
    """A user's text as echoed in a message: one line, at most `n` characters."""
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 3] + "..."


def _convert(key: str, text: str, default: Any) -> Any:
    kind = type(default)
    if kind is bool:
        if text.lower() in _TRUE | _FALSE:
            return text.lower() in _TRUE
        raise UsageError(f"--set {key}={_short(text)}: expected true or false")
    if kind is str:
        return text
    if kind not in (int, float):
        raise UsageError(f"--set {key}: this setting ({kind.__name__}) cannot be set here")
    try:
        return kind(text)
    except ValueError:
        raise UsageError(
            f"--set {key}={_short(text)}: expected {kind.__name__} (the default is {default!r})"
        ) from None


def _limit(key: str, default: Any, limits: Mapping[str, Limit]) -> Limit | None:
    if isinstance(default, bool) or not isinstance(default, (int, float)):
        return None
    if key in limits:
        return limits[key]
    if key in CONVENTIONS:
        return CONVENTIONS[key]
    if isinstance(default, int):
        return POSITIVE if default > 0 else None
    return FINITE if math.isfinite(default) else None


def setting_value(
    key: str, text: str, default: Any, limits: Mapping[str, Limit] | None = None
) -> Any:
    """The value of `--set key=text`: parsed as the type of `default`, then checked against
    the setting's limit (see the module docstring); a `UsageError` otherwise."""
    value = _convert(key, text, default)
    limit = _limit(key, default, limits or {})
    if limit is not None and value not in limit:
        kind = "an int" if isinstance(default, int) else "a finite number"
        raise UsageError(
            f"--set {key}={_short(text)}: expected {' '.join(filter(None, (kind, str(limit))))} "
            f"(the default is {default!r})"
        )
    return value


def output_folder(text: str) -> Path:
    """`--out`: create the folder and check that a file can be written in it, before any
    work; a `UsageError` naming the reason otherwise."""
    out = Path(text)
    for folder in (out, *out.parents):
        if folder.exists():
            if not folder.is_dir():
                raise UsageError(f"--out {_short(text)}: {folder} is a file, not a folder")
            break
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as e:
        raise UsageError(
            f"--out {_short(text)}: cannot write there ({e.strerror or type(e).__name__}); "
            "choose a writable folder"
        ) from None
    return out


def setting_notes(source: str) -> dict[str, str]:
    """`{key: note}` from a scenario's source: the comment at the end of each line of its
    `CONFIG = dict(...)` that sets a key (`length=1.3,  # m, the true length`), so the
    settings' meanings and units are written once, where they are set. `run NAME --help`
    shows them; tests/test_cli.py checks that every setting of every scenario has one."""
    notes: dict[str, str] = {}
    depth, inside, key, previous = 0, False, None, ""
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    for tok in tokens:
        if not inside:
            inside = tok.type == tokenize.NAME and tok.string == "CONFIG" and tok.start[1] == 0
            continue
        if tok.type == tokenize.OP and tok.string in "([{":
            depth += 1
        elif tok.type == tokenize.OP and tok.string in ")]}":
            depth -= 1
            if depth == 0:
                break
        elif tok.type == tokenize.OP and tok.string == "=" and depth == 1:
            key = previous
        elif tok.type == tokenize.COMMENT and key is not None:
            notes[key] = tok.string.lstrip("#").strip()
            key = None
        elif tok.type == tokenize.NL:
            key = None  # a comment on a later line belongs to no key
        previous = tok.string if tok.type == tokenize.NAME else previous
    return notes


def _settings_help(defaults: dict[str, Any], notes: Mapping[str, str]) -> str:
    width = max(len(f"{k}={v!r}") for k, v in defaults.items())
    lines = [f"  {f'{k}={v!r}':<{width}}  {notes.get(k, '')}".rstrip() for k, v in defaults.items()]
    return "settings (--set KEY=VALUE), with their defaults:\n" + "\n".join(lines)


def _parser(
    doc: str | None,
    defaults: dict[str, Any],
    name: str,
    default_out: str,
    notes: Mapping[str, str],
):
    first_line = (doc or "").strip().splitlines()[0] if (doc or "").strip() else None
    parser = OneLineParser(
        prog=name,
        description=first_line,
        epilog=_settings_help(defaults, notes) if defaults else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--smoke", action="store_true", help="the small size that CI runs")
    parser.add_argument("--out", default=default_out, metavar="DIR", help="output folder")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a setting (repeatable); the settings are listed below",
    )
    return parser


def _caller_notes() -> dict[str, str]:
    """The setting notes of the scenario that called `scenario_args` (two frames up)."""
    frame = sys._getframe(2)
    path = frame.f_globals.get("__file__")
    try:
        return setting_notes(Path(path).read_text(encoding="utf-8")) if path else {}
    except (OSError, UnicodeDecodeError, SyntaxError, tokenize.TokenError):
        return {}


def scenario_args(
    doc: str | None,
    defaults: dict[str, Any],
    smoke: dict[str, Any] | None = None,
    argv: list[str] | None = None,
    *,
    name: str = "scenario",
    default_out: str = "out",
    limits: Mapping[str, Limit] | None = None,
) -> tuple[types.SimpleNamespace, Path]:
    """Parse a scenario's command line into `(config, out)`.

    `config` has one attribute per key of `defaults`: the default, replaced by `smoke[key]`
    under `--smoke`, then by any `--set key=value` (checked against `limits[key]`, else
    the conventions and the default's kind; see the module docstring). `out` is the output
    folder, created and checked writable. A user error exits with status 2 and one line on
    stderr.
    """
    smoke, limits = smoke or {}, dict(limits or {})
    unknown = (set(smoke) | set(limits)) - set(defaults)
    if unknown:  # a programming error in the scenario, not a user error
        raise ValueError(f"smoke settings or limits {sorted(unknown)} are not in the defaults")
    args = _parser(doc, defaults, name, default_out, _caller_notes()).parse_args(argv)
    config = dict(defaults)
    if args.smoke:
        config.update(smoke)
    try:
        for item in args.set:
            key, text = split_setting(item)
            if key not in defaults:
                raise UsageError(
                    f"--set {_short(key)}: unknown setting; known: {', '.join(defaults)}"
                )
            config[key] = setting_value(key, text, defaults[key], limits)
        out = output_folder(args.out)
    except UsageError as e:
        _fail(name, str(e))
    return types.SimpleNamespace(**config), out


def save_figure(fig: Any, path: Path, *, dpi: int = 110) -> Path:
    """Write a scenario's figure to `path` and close it (a scenario draws several, and an
    open figure keeps its memory); returns `path`. The dpi keeps the PNGs shown in
    scenarios/README.md small."""
    import matplotlib.pyplot as plt  # only the scenarios need matplotlib here

    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
