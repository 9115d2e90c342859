"""Install diffsim with the lowest versions pyproject.toml declares, in its own venv.

`make test-min` runs this, then the smoke tests (tests/test_smoke_min.py) in that venv.
Each `name>=X` of pyproject.toml's `[project] dependencies` is installed as `name==X`, so the floors a
user reads are the versions that were tested; `jax[...]` extras and markers are not used.

    python tests/min_versions.py --venv .venv-min
"""

import argparse
import importlib.metadata
import re
import subprocess
import sys
import venv
from pathlib import Path

from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
_FLOOR = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*>=\s*([^,;\s]+)\s*$")


def floors(distribution: str = "diffsim-jax") -> list[str]:
    """`["jax==0.7.2", ...]`: every dependency pinned at its declared floor, read from the
    installed (editable) package's metadata, which pip wrote from pyproject.toml."""
    requires = importlib.metadata.requires(distribution) or []
    deps = [d for d in requires if "extra ==" not in d]
    pins = []
    for dep in deps:
        match = _FLOOR.match(dep)
        if match is None:
            raise SystemExit(f"min_versions: {dep!r} has no plain `>=` floor to test")
        pins.append(f"{match[1]}=={match[2]}")
    return pins


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", default=".venv-min", help="the venv to create or update")
    args = parser.parse_args()
    target = ROOT / args.venv
    python = target / "bin" / "python"
    if not python.exists():
        venv.create(target, with_pip=True)
    pins = floors()
    print("installing the declared floors:", " ".join(pins), flush=True)
    pip = [str(python), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, *pins, "pytest>=7"], check=True)
    # The package itself on top, without letting pip move any pinned version.
    subprocess.run([*pip, "--no-deps", "--force-reinstall", str(ROOT)], check=True)
    versions = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=freeze"], check=True, capture_output=True
    ).stdout.decode()
    wanted = {p.split("==")[0].lower().replace("_", "-"): p for p in pins}
    installed = {
        line.split("==")[0].lower().replace("_", "-"): line for line in versions.splitlines()
    }
    wrong = [
        f"{installed.get(k)} (wanted {p})"
        for k, p in wanted.items()
        if k not in installed or Version(installed[k].split("==")[1]) != Version(p.split("==")[1])
    ]
    if wrong:
        raise SystemExit(f"min_versions: not at the floor: {wrong}")
    print("installed at the floors:", ", ".join(wanted[k] for k in wanted), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
