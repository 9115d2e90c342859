"""The `diffsim` command and the scenarios' settings: every user error is one line on
stderr and exit status 2, never a traceback, and names the problem.

Most cases run in-process, `diffsim.cli.main(...)` or a scenario's own `main(...)` (what
`diffsim run` starts as a subprocess, which parses its settings before any work); a few
go through the real subprocess, the path a user takes (each costs seconds of imports).
"""

import functools
import importlib.util
import tempfile
from pathlib import Path

import jax
import matplotlib
import pytest

import diffsim.cli as cli

from ..test_cli import _diffsim

ROOT = Path(__file__).resolve().parents[2]


@functools.cache
def _scenario(name):
    """A scenario script as a module (not run: its `main` is called by the test)."""
    spec = importlib.util.spec_from_file_location(
        f"_scenario_{name}", ROOT / "scenarios" / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def _global_state():
    """Scenario modules select x64 and the Agg backend when imported: put both back."""
    x64, backend = jax.config.jax_enable_x64, matplotlib.get_backend()
    yield
    jax.config.update("jax_enable_x64", x64)
    if matplotlib.get_backend() != backend:
        matplotlib.use(backend)


def _refused(capsys, run, *mentions):
    """Run `run()`; assert exit status 2 and one line on stderr mentioning `mentions`."""
    try:
        status = run()
    except SystemExit as e:
        status = e.code
    err = capsys.readouterr().err
    assert status == 2, err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    for word in mentions:
        assert word in lines[0], f"{word!r} not in {lines[0]!r}"
    return lines[0]


@pytest.fixture
def a_file(tmp_path):
    path = tmp_path / "somefile.txt"
    path.write_text("not a folder")
    return path


def _cli(*argv):
    return lambda tmp, a_file: cli.main([a.format(tmp=tmp, file=a_file) for a in argv])


def _script(name, *argv):
    def run(tmp, a_file):
        argv_ = [a.format(tmp=tmp, file=a_file) for a in argv]
        if "--out" not in argv_:
            argv_ += ["--out", str(tmp / "out")]
        return _scenario(name).main(["--smoke", *argv_])

    return run


CASES = [
    # The command itself (diffsim.cli, in-process).
    (_cli("run"), ("diffsim: error:", "scenario NAME"), "run-no-name"),
    (_cli("run", "no_such_scenario"), ("no_such_scenario", "pendulum_demo"), "run-unknown"),
    (_cli("bench", "no_such_benchmark"), ("no_such_benchmark", "rollout"), "bench-unknown"),
    (_cli("frobnicate"), ("diffsim: error:", "frobnicate"), "unknown-command"),
    (_cli("run", "pendulum_demo", "--bogus"), ("--bogus",), "unknown-option"),
    (_cli("list", "extra"), ("extra",), "list-extra"),
    (_cli("run", "pendulum_demo", "--set", "noise"), ("--set 'noise'", "KEY=VALUE"), "set-no-eq"),
    (_cli("run", "pendulum_demo", "--set", "=3"), ("KEY=VALUE",), "set-no-key"),
    (_cli("run", "pendulum_demo", "--out", "{file}/sub"), ("--out", "is a file"), "out-under-file"),
    (_cli("run", "pendulum_demo", "--out", "{file}"), ("--out", "is a file"), "out-is-file"),
    # The settings (the scenario's main, in-process: what the subprocess runs first).
    (_script("fit_pendulum", "--set", "n_readings=-5"), ("n_readings=-5", "int > 0"), "int-neg"),
    (_script("fit_pendulum", "--set", "n_readings=0"), ("n_readings=0", "int > 0"), "int-zero"),
    (_script("fit_pendulum", "--set", "n_readings=1.5"), ("n_readings=1.5", "int"), "int-float"),
    (_script("fit_pendulum", "--set", "noise=nan"), ("noise=nan", "finite number > 0"), "nan"),
    (_script("fit_pendulum", "--set", "noise=0"), ("noise=0", "> 0"), "noise-zero"),
    (_script("fit_pendulum", "--set", "noise=abc"), ("noise=abc", "float"), "float-text"),
    (_script("fit_pendulum", "--set", "angle0=inf"), ("angle0=inf", "finite"), "float-inf"),
    (_script("fit_pendulum", "--set", "length=-1.3"), ("length=-1.3", "> 0"), "length-neg"),
    (_script("fit_pendulum", "--set", "seed=-1"), ("seed=-1", "in [0, "), "seed-neg"),
    (_script("fit_pendulum", "--set", "progress=maybe"), ("progress", "true or false"), "bool"),
    (_script("fit_pendulum", "--set", "colour=red"), ("colour", "unknown", "noise"), "unknown-key"),
    (_script("fit_pendulum", "--set", "noise"), ("KEY=VALUE",), "script-set-no-eq"),
    (_script("fit_pendulum", "--out", "{file}/sub"), ("--out", "is a file"), "script-out"),
    (_script("fit_pendulum", "--bogus"), ("fit_pendulum: error:", "--bogus"), "script-option"),
    (_script("lorenz_ensemble", "--set", "dt=0"), ("dt=0", "> 0"), "dt-zero"),
    (_script("lorenz_ensemble", "--set", "batch_size=-1"), ("batch_size", "int > 0"), "batch"),
    (_script("solar_system", "--set", "t1=-5"), ("t1=-5", "> 0"), "t1-neg"),
    (_script("solar_system", "--set", "integrators=Verlet"), ("integrators", "Verlet"), "names"),
    (_script("cartpole_swingup", "--set", "target=1.5"), ("target=1.5", "in [0, 1]"), "limits"),
    (_script("cartpole_swingup", "--set", "hold=-1"), ("hold=-1", "> 0"), "limits-hold"),
    (
        _script("cartpole_swingup", "--set", "window=0.15"),
        ("whole number", "windows"),
        "cross-window",
    ),
    (
        _script("pendulum_demo", "--set", "t_observed=30"),
        ("t_observed < t_forecast",),
        "cross-setting",
    ),
]


@pytest.mark.parametrize("run, mentions", [pytest.param(r, m, id=i) for r, m, i in CASES])
def test_one_line_and_status_2(run, mentions, tmp_path, a_file, capsys):
    _refused(capsys, lambda: run(tmp_path, a_file), *mentions)
    assert not list(tmp_path.glob("out/*")), "the scenario wrote output before refusing"


def _unwritable_folder(tmp_path):
    """A folder that cannot be written: read-only for a normal user; /sys for root."""
    folder = tmp_path / "read_only"
    folder.mkdir()
    folder.chmod(0o500)
    for candidate in (folder, Path("/sys")):
        try:
            with tempfile.TemporaryFile(dir=candidate):
                pass
        except OSError:
            return candidate
    pytest.skip("no unwritable folder here")


def test_unwritable_out(tmp_path, capsys):
    folder = _unwritable_folder(tmp_path)
    for run in (
        lambda: cli.main(["run", "pendulum_demo", "--out", str(folder / "sub")]),
        lambda: cli.main(["run", "pendulum_demo", "--out", str(folder)]),
    ):
        _refused(capsys, run, "--out", "cannot write there")


def test_settings_are_checked_by_limits():
    """The rules in one place: the scenario's limits, then the conventions, then the
    default's kind."""
    from diffsim._scenario import FRACTION, UsageError, setting_value

    assert setting_value("n", "3", 10) == 3
    assert setting_value("seed", "0", 1) == 0  # a convention beats "positive int default"
    assert setting_value("offset", "-2", 0) == -2  # a zero default: any int
    assert setting_value("x", "-1.5", 2.0) == -1.5  # a float default: finite only
    assert setting_value("target", "1", 0.9, {"target": FRACTION}) == 1.0
    with pytest.raises(UsageError, match=r"in \[0, 1\]"):
        setting_value("target", "1.5", 0.9, {"target": FRACTION})
    with pytest.raises(UsageError, match="int > 0"):
        setting_value("n", "9" * 400, 10)  # no float holds it, still refused in one line


# Through the real subprocess, as a user runs them (the examples of issue 15).


@pytest.mark.parametrize(
    "name, setting, mention",
    [
        ("fit_pendulum", "n_readings=-5", "n_readings=-5: expected an int > 0"),
        pytest.param(
            "fit_pendulum",
            "noise=nan",
            "noise=nan: expected a finite number > 0",
            marks=pytest.mark.slow,  # ~10 s each; the in-process cases cover the rest
        ),
    ],
    ids=["n_readings-negative", "noise-nan"],
)
def test_through_the_subprocess(name, setting, mention, tmp_path):
    out = _diffsim("run", name, "--out", str(tmp_path / "out"), "--set", setting, cwd=tmp_path)
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stdout == ""
    (line,) = out.stderr.splitlines()
    assert line.startswith(f"{name}: error: --set {mention}")
    assert not list((tmp_path / "out").iterdir())
