"""The fitting scenarios, run as subprocesses the way a user runs them (their --smoke size)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run_smoke(script: str, out: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, str(ROOT / "scenarios" / script), "--smoke", "--out", str(out)],
        cwd=out,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _assert_png(path: Path) -> None:
    assert path.exists()
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 1000


def test_fit_pendulum_smoke(tmp_path):
    out = _run_smoke("fit_pendulum.py", tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "(converged)" in out.stdout
    _assert_png(tmp_path / "fit_pendulum.png")


@pytest.mark.slow  # a 20-spring fit: about 20 s on a 2-core CPU
def test_fit_spring_network_smoke(tmp_path):
    out = _run_smoke("fit_spring_network.py", tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Recovery ok" in out.stdout
    _assert_png(tmp_path / "fit_spring_network.png")
