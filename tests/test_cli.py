"""The `diffsim` command, run as a subprocess the way a user runs it."""

import os
import subprocess
import sys
from pathlib import Path

import diffsim

ROOT = Path(__file__).resolve().parent.parent


def _diffsim(*args, cwd):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "diffsim.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_version(tmp_path):
    out = _diffsim("--version", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"diffsim {diffsim.__version__}"


def test_list(tmp_path):
    out = _diffsim("list", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = {line.split()[0]: line for line in out.stdout.splitlines()}
    assert "pendulum_demo" in lines
    assert "Pendulum demo" in lines["pendulum_demo"]  # its docstring's first line


def test_run_pendulum_demo_smoke(tmp_path):
    out = _diffsim("run", "pendulum_demo", "--smoke", "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    for name in ["pendulum_trajectory.png", "pendulum_phase.png", "energy_drift.png"]:
        path = tmp_path / "out" / name
        assert path.stat().st_size > 1000, name
    assert "finite difference" in out.stdout


def test_unknown_scenario(tmp_path):
    out = _diffsim("run", "no_such_scenario", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stdout == ""
    (line,) = out.stderr.splitlines()
    assert "no_such_scenario" in line and "pendulum_demo" in line
