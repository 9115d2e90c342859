"""The wheel a user installs: built from this checkout, it carries the package, the
scenarios and the license, not the README's pictures, under the distribution name
`diffsim-jax`; installed into a fresh venv outside the repository it runs `diffsim list`
and a scenario (slow). The fresh venv borrows the dependencies of the running one through
a `.pth` line (so nothing is downloaded) but not its editable diffsim, so what runs is
the wheel's copy."""

import os
import site
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

import diffsim

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation"]
        + ["--wheel-dir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (path,) = out.glob("*.whl")
    return path


def test_wheel_contents(wheel):
    assert wheel.name.startswith(f"diffsim_jax-{diffsim.__version__}-")
    names = zipfile.ZipFile(wheel).namelist()
    assert "diffsim/__init__.py" in names and "diffsim/__init__.pyi" in names
    assert "diffsim/_scenarios/pendulum_demo.py" in names
    assert not [n for n in names if n.endswith((".png", ".gif"))], "README pictures shipped"
    assert any(n.endswith("licenses/LICENSE") for n in names)
    meta = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert "Name: diffsim-jax" in meta and "License-Expression: Apache-2.0" in meta
    assert "Project-URL: Documentation" in meta
    size = sum(i.file_size for i in zipfile.ZipFile(wheel).infolist())
    assert size < 2_000_000, f"the wheel unpacks to {size} bytes"  # code only, no data


@pytest.mark.slow
def test_wheel_in_a_fresh_venv_runs_a_scenario(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    purelib = Path(
        sysconfig.get_path("purelib", vars={"base": str(env_dir), "platbase": str(env_dir)})
    )
    target = tmp_path / "installed"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target"]
        + [str(target), str(wheel)],
        check=True,
        timeout=300,
    )
    # The wheel first, then this venv's dependencies; .pth files of the latter (the
    # editable diffsim among them) are not processed, so only the wheel's diffsim exists.
    (purelib / "deps.pth").write_text(f"{target}\n{site.getsitepackages()[0]}\n")
    python = env_dir / "bin" / "python"
    command = [str(python), "-m", "diffsim"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = subprocess.run(
        [str(python), "-c", "import diffsim; print(diffsim.__file__)"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert where.stdout.startswith(str(target)), where.stdout
    listed = subprocess.run(
        command + ["list"], cwd=tmp_path, env=env, capture_output=True, text=True, check=True
    )
    assert "pendulum_demo" in listed.stdout and "(package data)" in listed.stdout
    out = tmp_path / "out"
    run = subprocess.run(
        command + ["run", "fit_pendulum", "--smoke", "--out", str(out)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert (out / "fit_pendulum.png").stat().st_size > 0
