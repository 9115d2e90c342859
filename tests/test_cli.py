"""The `diffsim` command and every scenario, run as subprocesses the way a user runs them.

Each scenario runs once at its --smoke size (CI runs them all); a new `scenarios/NAME.py`
is picked up without editing this file.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import diffsim
import diffsim.cli as cli

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = sorted(p.stem for p in (ROOT / "scenarios").glob("*.py") if not p.stem.startswith("_"))

# What each scenario must print or write, beyond exit status 0 and a non-empty figure.
EXPECTED_OUTPUT = {
    "pendulum_demo": (
        "Forecast:",
        ["pendulum_demo.png", "pendulum_demo_corner.png", "pendulum_demo_summary.json"],
    ),
    "fit_pendulum": ("(converged)", ["fit_pendulum.png"]),
    "fit_spring_network": ("Recovery ok", ["fit_spring_network.png"]),
    "fit_heat_source": ("relative RMS error", ["fit_heat_source.png"]),
    "fit_nbody": ("Recovery ok", ["fit_nbody.png", "fit_nbody_summary.json"]),
    "solar_system": (
        "max |dE|/|E0|",
        ["solar_system_energy.png", "solar_system_orbits.png", "solar_system_summary.json"],
    ),
    "nbody_cluster": (
        "virial ratio",
        ["nbody_cluster.gif", "nbody_cluster.png", "nbody_cluster_summary.json"],
    ),
    "lorenz_ensemble": ("0 failed", ["lorenz_ensemble.png", "lorenz_ensemble_summary.json"]),
    "posterior_sir": (
        "90% interval of the peak height",
        ["posterior_sir_corner.png", "posterior_sir_forecast.png"],
    ),
    "posterior_pendulum_ridge": (
        "Posterior of g/L",
        ["posterior_pendulum_ridge_corner.png", "posterior_pendulum_ridge_trace.png"],
    ),
    "missing_physics": ("Forecast error over", ["missing_physics_forecast.png"]),
}


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


def test_list(tmp_path):
    out = _diffsim("list", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    table, _, footer = out.stdout.partition("\n\n")
    lines = {line.split()[0]: line for line in table.splitlines()}
    assert sorted(lines) == SCENARIOS
    assert "Pendulum demo" in lines["pendulum_demo"]  # its docstring's first line
    assert f"{len(SCENARIOS)} scenarios from {ROOT / 'scenarios'} (source checkout)" in footer


# Smoke runs too long for `make test` (run by `make test-slow`): compile-bound, so a
# smaller size does not help.
SLOW = {
    "fit_spring_network": "a 20-spring fit, about 20 s on a 2-core CPU",
    "fit_nbody": "a 9-parameter N-body fit, about 18 s of CPU on a 2-core CPU",
    "hybrid_friction": "trains three models, selects and refits a law, about 47 s of CPU",
    "cartpole_swingup": "trains a controller, about 26 s",
    "fit_heat_source": "an implicit-solver fit, about 13 s",
    "infer_parameters": "trains an inference network, about 13 s",
    "landing_point": "optimises a launch through a terminal event, about 11 s",
    "solar_system": "three integrators over the outer planets, about 12 s",
    "nbody_cluster": "a 64-body cluster with an energy check, about 7 s",
    "posterior_sir": "compiles NUTS, the fit and the forecast ensembles, about 40 s of CPU",
    "posterior_pendulum_ridge": "compiles NUTS and the fit, about 30 s of CPU",
    "missing_physics": "compiles two training steps and a sparse regression path, about 20 s",
    "bouncing_ball": "event rollouts and a gradient, about 14-17 s (its system's tests cover it)",
    "pendulum_demo": "a fit, a posterior and a forecast ensemble, about 12-17 s (make demo runs it)",
    "fit_pendulum": "a fit, about 11 s (the CLI error tests run it through a subprocess)",
}


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in SCENARIOS]
)
def test_run_smoke(name, tmp_path):
    out = _diffsim("run", name, "--smoke", "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    figures = [p for p in (tmp_path / "out").iterdir() if p.suffix in (".png", ".gif")]
    assert figures, f"{name} wrote no figure"
    for path in figures:
        data = path.read_bytes()
        assert data[:4] in (b"\x89PNG", b"GIF8") and len(data) > 1000, path.name
    text, files = EXPECTED_OUTPUT.get(name, ("", []))
    assert text in out.stdout
    # Named after the scenario: two scenarios run into one --out never overwrite each other.
    written = [p.name for p in (tmp_path / "out").iterdir()]
    assert all(f.startswith(name) for f in written), written
    for file in files:
        assert (tmp_path / "out" / file).stat().st_size > 0, file
    if name == "pendulum_demo":
        summary = json.loads((tmp_path / "out" / "pendulum_demo_summary.json").read_text())
        assert summary["n_members"] == 256 and set(summary["fit"]) == {"length", "damping"}


def test_unknown_scenario(tmp_path):
    out = _diffsim("run", "no_such_scenario", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stdout == ""
    (line,) = out.stderr.splitlines()
    assert "no_such_scenario" in line and "pendulum_demo" in line


def test_bad_set_values(tmp_path):
    """Passed on to the scenario, which rejects them in one line before any work."""
    out = _diffsim(
        "run", "pendulum_demo", "--out", str(tmp_path), "--set", "n_members=many", cwd=tmp_path
    )
    assert out.returncode == 2, out.stdout + out.stderr
    (line,) = out.stderr.splitlines()
    assert line.startswith("pendulum_demo: error: --set n_members=many: expected int")
    assert not list(tmp_path.glob("*.png"))


# In-process: argparse and the scenario lookup, no JAX work.


def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"diffsim {diffsim.__version__}"
    for argv in (["--help"], ["run", "--help"], ["bench", "--help"], ["list", "--help"]):
        with pytest.raises(SystemExit) as e:
            cli.main(argv)
        assert e.value.code == 0
        assert "usage: diffsim" in capsys.readouterr().out


def test_errors_are_one_line(capsys):
    assert cli.main(["run"]) == 2
    assert cli.main(["bench", "no_such_benchmark"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all(line.startswith("diffsim: error: ") for line in err)
    assert "rollout" in err[1]


def test_scenarios_from_package_data(tmp_path, monkeypatch, capsys):
    """An installed wheel has no checkout next to the package: diffsim/_scenarios is used."""
    package = tmp_path / "site-packages" / "diffsim"
    (package / "_scenarios").mkdir(parents=True)
    (package / "_scenarios" / "demo.py").write_text('"""A shipped demo."""\n')
    (package / "_scenarios" / "_private.py").write_text("")
    monkeypatch.setattr(cli, "_PACKAGE", package)
    monkeypatch.setattr(cli, "_CHECKOUT", package.parent)
    assert cli.scenarios_folder() == (package / "_scenarios", "package data")
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["demo", "A", "shipped", "demo."]
    assert "(package data)" in out
    assert cli.main(["bench"]) == 2  # benchmarks are not shipped
    assert "source checkout" in capsys.readouterr().err


def test_the_command_does_not_import_jax():
    """`diffsim --version`, `--help` and `list` answer without importing JAX (diffsim's
    names load lazily), so they take a fraction of a second, not seconds."""
    code = (
        "import sys; from diffsim import cli\n"
        "for argv in (['--version'], ['--help'], ['run', '--help']):\n"
        "    try: cli.main(argv)\n"
        "    except SystemExit: pass\n"
        "cli.main(['list'])\n"
        "assert 'jax' not in sys.modules, sorted(m for m in sys.modules if 'jax' in m)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "pendulum_demo" in out.stdout
    # `python -m diffsim` is the same command.
    out = subprocess.run(
        [sys.executable, "-m", "diffsim", "--version"], capture_output=True, text=True
    )
    assert out.stdout.strip() == f"diffsim {diffsim.__version__}"


def test_plot_loads_matplotlib_on_first_use():
    """`ds.plot` works after `import diffsim` alone, and only then imports matplotlib."""
    code = (
        "import sys; import diffsim as ds\n"
        "assert 'matplotlib' not in sys.modules\n"
        "assert callable(ds.plot.trajectory) and callable(ds.ml.make_train_step)\n"
        "assert 'matplotlib' in sys.modules\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_lazy_names_are_the_public_api():
    """The lazily loaded names are what `dir(ds)` lists, each resolves, and an unknown
    name is an AttributeError naming it."""
    names = set(dir(diffsim))
    assert {"simulate", "ensemble", "fit", "systems", "SaveAt", "__version__"} <= names
    for name in diffsim.__all__:
        assert getattr(diffsim, name) is not None
    with pytest.raises(AttributeError, match="simulat"):
        diffsim.simulat  # noqa: B018


def _config_keys(path: Path) -> list[str]:
    """The keys of a scenario's `CONFIG = dict(...)`, read without running it."""
    import ast

    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "CONFIG":
            return [k.arg for k in node.value.keywords]
    raise AssertionError(f"{path.name} has no CONFIG = dict(...)")


@pytest.mark.parametrize("name", SCENARIOS)
def test_every_setting_says_what_it_means(name):
    """`diffsim run NAME --help` shows each setting's meaning and unit, written as the
    comment on the line that sets it in CONFIG."""
    from diffsim._scenario import setting_notes

    path = ROOT / "scenarios" / f"{name}.py"
    notes = setting_notes(path.read_text(encoding="utf-8"))
    missing = [key for key in _config_keys(path) if len(notes.get(key, "")) < 3]
    assert not missing, f"{name}: settings without a `# meaning, unit` comment: {missing}"


def test_scenario_help_lists_meanings(tmp_path):
    out = _diffsim("run", "pendulum_demo", "--help", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    settings = out.stdout.split("settings (--set KEY=VALUE)")[1]
    line = next(ln for ln in settings.splitlines() if ln.strip().startswith("length=1.3"))
    assert "[m]" in line or " m" in line, line
