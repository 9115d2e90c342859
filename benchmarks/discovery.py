"""Missing-physics discovery: the scenarios' universal differential equations, timed and
judged against their targets, as one markdown table.

- `scenarios/missing_physics.py` (Lotka-Volterra, Rackauckas et al. 2020, read every 0.25
  on [0, 5] with 5% noise): training time of the hybrid (UDE) and the pure neural ODE,
  of the sparse regression path with the refit of every candidate law; the candidates
  and their BIC on the readings; the forecast error of each model over [0, 15] (RMS
  against the noise-free truth, relative to the truth's RMS); the recovered interaction
  coefficients against beta = 0.9 and gamma = 0.8. Targets: x*y alone in each equation,
  both coefficients within 10%, a forecast window at least 3x the training window, and
  the recovered model's forecast error below the hybrid's and the neural ODE's.
- `scenarios/hybrid_friction.py`: its training times, forecast errors and discovered
  coefficients, as its `run(config)` returns them. Targets: the hybrid's 20 s forecast
  error at most 1/3 of physics-only's and the neural ODE's; Coulomb friction and
  quadratic drag recovered with coefficients within 10% of 0.3 and 0.08.

Each scenario runs once at its full size (`--smoke`: its smoke size), in this process,
compilation included, so the times are those a user sees on a first run.

Run: `python benchmarks/discovery.py [--smoke]`. Importing this file runs nothing.
"""

import argparse
import importlib.util
import math
import os
import sys
import types
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"


def load_scenario(name: str):
    """The module `scenarios/NAME.py`, imported from its path (it is not a package)."""
    spec = importlib.util.spec_from_file_location(f"_scenario_{name}", SCENARIOS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def config_of(module, smoke: bool) -> types.SimpleNamespace:
    """The scenario's full-size settings, or its smoke size."""
    settings = dict(module.CONFIG)
    if smoke:
        settings.update(getattr(module, "SMOKE", {}))
    return types.SimpleNamespace(**settings)


def _number(x: float, digits: int = 4) -> str:
    return f"{x:.{digits}g}" if math.isfinite(x) else "diverged"


def missing_physics_rows(result: dict) -> list[tuple[str, str, str, str]]:
    """(quantity, value, target, verdict) rows from `missing_physics.run`."""
    seconds, errors = result["train_seconds"], result["forecast_error"]
    rows = [(f"training time, {name}", f"{s:.1f} s", "", "") for name, s in seconds.items()]
    for name, error in errors.items():
        rows.append((f"forecast error [0, {result['ts'][-1]:g}], {name}", _number(error), "", ""))
    for text, p, chi2, bic in result.get("candidates", []):
        value = f"BIC {bic:.1f}, chi^2 {chi2:.1f}, p {p}" if math.isfinite(bic) else "blew up"
        rows.append((f"candidate: {text}", value, "", ""))
    window = result["ts"][-1] / result["t_train"] if result.get("t_train") else math.nan
    rows.append(
        (
            "forecast window / training window",
            _number(window, 3),
            ">= 3",
            "PASS" if window >= 3 else "FAIL",
        )
    )
    rows.append(
        (
            "structure found",
            result["refitted"].replace("\n", "; ") if result["found"] else "no sparse law",
            "x*y alone in each equation",
            "PASS" if result["structure_ok"] else "FAIL",
        )
    )
    for name, (value, se, true) in result["coefficients"].items():
        ok = math.isfinite(value) and abs(value / true - 1) <= 0.10
        rows.append((name, f"{value:.4f} +- {se:.4f}", f"{true} +- 10%", "PASS" if ok else "FAIL"))
    recovered = errors.get("recovered", math.inf)
    others = min(errors.get("hybrid", math.inf), errors.get("neural ODE", math.inf))
    rows.append(
        (
            "recovered forecast",
            _number(recovered),
            f"< hybrid and neural ODE ({_number(others)})",
            "PASS" if recovered < others else "FAIL",
        )
    )
    return rows


def friction_verdicts(result: dict) -> list[tuple[str, str, str, str]]:
    """The issue's targets for `hybrid_friction.run`: the hybrid's 20 s forecast at most
    1/3 of physics-only's and the neural ODE's; Coulomb (mu = 0.3) and quadratic drag
    (k = 0.08) recovered within 10%."""
    errors, coef = result.get("forecast_rms", {}), result.get("coefficients", {})
    rows = []
    for other in ("physics", "neural ODE"):
        ratio = errors.get("hybrid", math.nan) / errors.get(other, math.nan)
        verdict = "PASS" if ratio <= 1 / 3 else "FAIL"
        rows.append((f"forecast RMS, hybrid / {other}", _number(ratio, 3), "<= 0.333", verdict))
    for name, true in (("mu", 0.3), ("k", 0.08)):
        value = coef.get(name, math.nan)
        ok = math.isfinite(value) and abs(value / true - 1) <= 0.10
        se = coef.get(f"{name}_stderr", math.nan)
        row = (f"discovered {name}", f"{value:.4f} +- {se:.4f}", f"{true} +- 10%")
        rows.append((*row, "PASS" if ok else "FAIL"))
    return rows


def generic_rows(result: dict) -> list[tuple[str, str, str, str]]:
    """Rows of every number (or dict of numbers) a scenario's `run` returns."""
    rows = []
    for key, value in result.items():
        if isinstance(value, dict):
            for name, x in value.items():
                if isinstance(x, (int, float)):
                    rows.append((f"{key}, {name}", f"{float(x):.4g}", "", ""))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            rows.append((key, f"{float(value):.4g}", "", ""))
    return rows


def table(title: str, rows) -> str:
    lines = [f"### {title}", "", "| quantity | value | target | |", "|---|---|---|---|"]
    lines += [f"| {' | '.join(row)} |" for row in rows]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="the scenarios' smoke sizes")
    args = parser.parse_args(argv)
    import equinox
    import optax
    from rollout import machine  # imports JAX: only when run

    print(machine(equinox, optax))
    print()
    module = load_scenario("missing_physics")
    result = module.run(config_of(module, args.smoke))
    print(table("missing_physics (Lotka-Volterra UDE)", missing_physics_rows(result)))
    friction = load_scenario("hybrid_friction")
    if callable(getattr(friction, "run", None)):
        print()
        other = friction.run(config_of(friction, args.smoke))
        rows = generic_rows(other) + friction_verdicts(other) if isinstance(other, dict) else []
        print(table("hybrid_friction", rows or [("run(config)", "returned no figures", "", "")]))
    else:
        print("\nhybrid_friction: no run(config) yet; skipped.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
