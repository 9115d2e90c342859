"""diffsim.plot: each function returns the figure it drew on, with the expected lines."""

import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import pytest

import diffsim as ds
import diffsim.plot as dsplot

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _pendulum_traj(integrator=None, damping=0.0, t1=2.0):
    pendulum = ds.systems.Pendulum(length=1.0, damping=damping)
    traj = ds.simulate(
        pendulum,
        pendulum.initial_state(1.0),
        t1=t1,
        dt=0.05,
        integrator=integrator or ds.RK4(),
        saveat=ds.SaveAt(every=2),
    )
    return pendulum, traj


def _oscillators_traj():
    osc = ds.systems.HarmonicOscillator(omega=jnp.array([1.0, 2.0]))
    y0 = osc.initial_state(jnp.array([1.0, 0.5]))
    return ds.simulate(osc, y0, t1=1.0, dt=0.05, saveat=ds.SaveAt(every=2))


def _legend_texts(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_trajectory_scalar_state():
    _, traj = _pendulum_traj()
    fig = dsplot.trajectory(traj, label="RK4")
    assert isinstance(fig, plt.Figure)
    (ax,) = fig.axes
    (line,) = ax.get_lines()
    np.testing.assert_allclose(line.get_xdata(), traj.ts)
    np.testing.assert_allclose(line.get_ydata(), traj.ys.q)
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("t", "q")
    assert _legend_texts(ax) == ["RK4"]


def test_trajectory_overlays_on_given_axes():
    _, traj = _pendulum_traj()
    _, damped = _pendulum_traj(damping=0.5)
    fig = dsplot.trajectory(traj, label="undamped")
    ax = fig.axes[0]
    ax.set_ylabel("angle (rad)")
    assert dsplot.trajectory(damped, ax=ax, label="damped") is fig
    assert len(fig.axes) == 1
    assert len(ax.get_lines()) == 2
    assert _legend_texts(ax) == ["undamped", "damped"]
    assert ax.get_ylabel() == "angle (rad)"  # the caller's label is kept


def test_trajectory_components():
    traj = _oscillators_traj()
    ax = dsplot.trajectory(traj).axes[0]
    assert [line.get_label() for line in ax.get_lines()] == ["q[0]", "q[1]"]

    ax = dsplot.trajectory(traj, component=1).axes[0]
    (line,) = ax.get_lines()
    assert line.get_label() == "q[1]"
    np.testing.assert_allclose(line.get_ydata(), traj.ys.q[:, 1])


def test_trajectory_array_state_and_tuple_component():
    traj = ds.simulate(
        ds.systems.Lorenz(), jnp.array([1.0, 0.0, 0.0]), t1=0.2, dt=0.01, saveat=ds.SaveAt(every=5)
    )
    assert len(dsplot.trajectory(traj).axes[0].get_lines()) == 3
    nbody_like = ds.Trajectory(
        ts=traj.ts, ys=jnp.zeros((len(traj.ts), 2, 3)), result=traj.result, stats=traj.stats
    )
    (line,) = dsplot.trajectory(nbody_like, component=(1, 2)).axes[0].get_lines()
    assert line.get_label() == "y[1, 2]"


def test_trajectory_of_saved_function():
    pendulum = ds.systems.Pendulum(length=1.0)
    traj = ds.simulate(
        pendulum,
        pendulum.initial_state(1.0),
        t1=1.0,
        dt=0.05,
        saveat=ds.SaveAt(every=2, fn=lambda t, y: pendulum.energy(y)),
    )
    (line,) = dsplot.trajectory(traj, label="energy").axes[0].get_lines()
    np.testing.assert_allclose(line.get_ydata(), traj.ys)


def test_trajectory_errors():
    _, traj = _pendulum_traj()
    batched = jax.tree.map(lambda x: jnp.stack([x, x]), traj)
    with pytest.raises(ValueError, match="Select one member"):
        dsplot.trajectory(batched)
    pytree = ds.Trajectory(
        ts=traj.ts, ys=(traj.ys.q, traj.ys.v), result=traj.result, stats=traj.stats
    )
    with pytest.raises(TypeError, match="SaveAt"):
        dsplot.trajectory(pytree)
    with pytest.raises(ValueError, match="component=3"):
        dsplot.trajectory(_oscillators_traj(), component=3)
    with pytest.raises(TypeError, match="ds.Trajectory"):
        dsplot.trajectory(np.zeros(3))


def test_phase_portrait():
    _, traj = _pendulum_traj(damping=0.5)
    fig = dsplot.phase_portrait(traj)
    (ax,) = fig.axes
    (line,) = ax.get_lines()
    np.testing.assert_allclose(line.get_xdata(), traj.ys.q)
    np.testing.assert_allclose(line.get_ydata(), traj.ys.v)
    assert len(ax.collections) == 1  # the start marker
    assert ax.get_legend() is None
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("q", "v")

    ax = dsplot.phase_portrait(_oscillators_traj(), label="x").axes[0]
    assert [line.get_label() for line in ax.get_lines()] == ["x[0]", "x[1]"]


def test_phase_portrait_errors():
    lorenz = ds.simulate(ds.systems.Lorenz(), jnp.ones(3), t1=0.1, dt=0.01)
    with pytest.raises(TypeError, match="PhaseState"):
        dsplot.phase_portrait(lorenz)
    _, traj = _pendulum_traj()
    grid = ds.Trajectory(
        ts=traj.ts,
        ys=ds.PhaseState(q=jnp.zeros((len(traj.ts), 2, 2)), v=jnp.zeros((len(traj.ts), 2, 2))),
        result=traj.result,
        stats=traj.stats,
    )
    with pytest.raises(ValueError, match="scalar or 1-d q"):
        dsplot.phase_portrait(grid)


def test_energy_drift():
    runs = {
        name: _pendulum_traj(integrator, t1=5.0)
        for name, integrator in [("Euler", ds.Euler()), ("Leapfrog", ds.Leapfrog())]
    }
    fig = dsplot.energy_drift(runs)
    (ax,) = fig.axes
    assert ax.get_yscale() == "log"
    assert _legend_texts(ax) == ["Euler", "Leapfrog"]
    euler, leapfrog = ax.get_lines()
    assert np.isnan(euler.get_ydata()[0])  # zero drift at t0 cannot sit on a log scale
    drift_euler = np.nanmax(euler.get_ydata())
    drift_leapfrog = np.nanmax(leapfrog.get_ydata())
    assert drift_euler > 10 * drift_leapfrog > 0


def test_energy_drift_errors():
    pendulum, traj = _pendulum_traj()
    at_rest = ds.simulate(pendulum, pendulum.initial_state(0.0), t1=1.0, dt=0.05)
    with pytest.raises(ValueError, match="initial energy is 0"):
        dsplot.energy_drift({"rest": (pendulum, at_rest)})
    with pytest.raises(TypeError, match="non-empty dict"):
        dsplot.energy_drift({})
    with pytest.raises(TypeError, match="pair"):
        dsplot.energy_drift({"RK4": traj})


def test_saved_png_is_not_empty(tmp_path):
    pendulum, traj = _pendulum_traj()
    paths = []
    for name, fig in [
        ("trajectory", dsplot.trajectory(traj)),
        ("phase", dsplot.phase_portrait(traj)),
        ("drift", dsplot.energy_drift({"RK4": (pendulum, traj)})),
        ("fit", dsplot.fit_residuals(traj.ts, traj.ys.q + 0.01, traj.ys.q, sigma=0.01)),
    ]:
        paths.append(tmp_path / f"{name}.png")
        fig.savefig(paths[-1])
    for path in paths:
        data = path.read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 1000


def test_import_keeps_the_users_backend():
    """Importing diffsim.plot chooses no backend: the user's choice stands, and with none
    chosen on a machine without a display matplotlib's own default (Agg) draws."""
    env = {k: v for k, v in os.environ.items() if k not in ("MPLBACKEND", "DISPLAY")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    chosen = "import matplotlib; matplotlib.use('svg'); import diffsim.plot; "
    chosen += "print(matplotlib.get_backend())"
    default = "import diffsim.plot, matplotlib, matplotlib.pyplot as plt; plt.figure(); "
    default += "print(matplotlib.get_backend())"
    for code, backend in [(chosen, "svg"), (default, "agg")]:
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        assert out.stdout.strip().lower() == backend


def test_fit_residuals():
    ts = np.linspace(0.0, 1.0, 20)
    predicted = np.sin(ts)
    observed = predicted + 0.01 * np.cos(7 * ts)
    observed[3] = np.nan  # missing data, as ds.fit takes it
    fig = dsplot.fit_residuals(ts, observed, predicted, sigma=0.01)
    top, bottom = fig.axes
    (line,) = top.get_lines()
    np.testing.assert_allclose(line.get_xdata(), ts)
    np.testing.assert_allclose(line.get_ydata(), predicted)
    data, residuals = top.collections[0], bottom.collections[0]
    np.testing.assert_allclose(data.get_offsets().data[:, 1], observed)
    np.testing.assert_allclose(residuals.get_offsets().data[:, 1], observed - predicted)
    assert residuals.get_offsets().mask[3].all()  # the NaN point is not drawn
    assert len(bottom.patches) == 1  # the +-sigma band
    assert _legend_texts(top) == ["fit", "data"]
    assert (bottom.get_xlabel(), bottom.get_ylabel()) == ("t", "data - fit")

    # A second fit overlaid on the same panels; two series at once.
    assert dsplot.fit_residuals(ts, observed, predicted + 0.1, axes=fig.axes, label="start") is fig
    assert len(top.get_lines()) == 2
    two = np.stack([observed, 2 * observed], axis=1)
    fig2 = dsplot.fit_residuals(ts, two, np.stack([predicted, 2 * predicted], axis=1))
    assert [ln.get_label() for ln in fig2.axes[0].get_lines()] == ["fit[0]", "fit[1]"]
    assert len(fig2.axes[1].patches) == 0


def test_fit_residuals_errors():
    ts = np.linspace(0.0, 1.0, 5)
    with pytest.raises(ValueError, match="must match"):
        dsplot.fit_residuals(ts, np.zeros(5), np.zeros(4))
    with pytest.raises(ValueError, match="leading time axis"):
        dsplot.fit_residuals(ts, np.zeros(6), np.zeros(6))
    with pytest.raises(ValueError, match="sigma must be positive"):
        dsplot.fit_residuals(ts, np.zeros(5), np.zeros(5), sigma=0.0)
    with pytest.raises(TypeError, match="pair"):
        dsplot.fit_residuals(ts, np.zeros(5), np.zeros(5), axes=plt.gca())


def test_ensemble_band():
    ts = np.linspace(0.0, 1.0, 11)
    q = (0.05, 0.25, 0.5, 0.75, 0.95)
    bands = np.stack([ts * k for k in (-2.0, -1.0, 0.0, 1.0, 2.0)])
    fig = dsplot.ensemble_band(ts, bands, q=q, label="median")
    (ax,) = fig.axes
    assert len(ax.collections) == 2  # two shaded bands
    (line,) = ax.get_lines()
    np.testing.assert_allclose(line.get_ydata(), bands[2])
    assert _legend_texts(ax) == ["5-95%", "25-75%", "median"]
    # The shape ds.Quantiles gives for a scalar output per time, and an even count.
    fig = dsplot.ensemble_band(ts, bands[[0, 4], :, None])
    assert len(fig.axes[0].collections) == 1 and not fig.axes[0].get_lines()
    with pytest.raises(ValueError, match="increasing order"):
        dsplot.ensemble_band(ts, bands[::-1])
    with pytest.raises(ValueError, match=r"shape \(k, 11\)"):
        dsplot.ensemble_band(ts, bands[:, :5])
    with pytest.raises(ValueError, match="levels in q"):
        dsplot.ensemble_band(ts, bands, q=(0.1, 0.9))


def test_ensemble_band_of_quantiles_reducer():
    pendulums = ds.systems.Pendulum(length=jnp.linspace(0.9, 1.1, 32))

    def member(p):
        saveat = ds.SaveAt(every=4, fn=lambda t, y: y.q)
        return ds.simulate(p, p.initial_state(1.0), t1=1.0, dt=0.05, saveat=saveat).ys

    q = (0.1, 0.5, 0.9)
    res = ds.ensemble(member, pendulums, reduce=ds.Quantiles(q=q, low=-1.1, high=1.1, bins=200))
    ts = np.linspace(0.0, 1.0, res.values.shape[1])
    fig = dsplot.ensemble_band(ts, res.values, q=q)
    assert _legend_texts(fig.axes[0]) == ["10-90%", "median"]


def test_parameter_corner():
    mean = np.array([1.0, 0.2, 5.0])
    cov = np.diag([0.01, 0.001, 0.5]) + 0.002 * (1 - np.eye(3))
    samples = np.random.default_rng(0).multivariate_normal(mean, cov, 500)
    fig = dsplot.parameter_corner(mean, cov, samples=samples, names=["L", "c", "g"], truth=mean)
    assert len(fig.axes) == 6  # the lower triangle of a 3 x 3 grid, diagonal included
    labels = [(ax.get_xlabel(), ax.get_ylabel()) for ax in fig.axes]
    assert labels == [("", ""), ("", "c"), ("", ""), ("L", "g"), ("c", ""), ("g", "")]
    diagonal, pair = fig.axes[0], fig.axes[1]
    assert diagonal.patches  # the histogram
    (density,) = [ln for ln in diagonal.get_lines() if len(ln.get_xdata()) > 2]
    assert abs(density.get_xdata()[np.argmax(density.get_ydata())] - 1.0) < 0.01
    assert len([ln for ln in pair.get_lines() if len(ln.get_xdata()) == 100]) == 2  # ellipses

    class FakeFit:  # what parameter_corner reads from a ds.FitResult
        values = mean[:2]
        covariance = cov[:2, :2]
        names = ("length", "damping")

    fig = dsplot.parameter_corner(FakeFit())
    assert len(fig.axes) == 3 and fig.axes[1].get_ylabel() == "damping"
    with pytest.raises(ValueError, match="covariance, samples, or both"):
        dsplot.parameter_corner(mean)
    with pytest.raises(ValueError, match=r"expected \(3, 3\)"):
        dsplot.parameter_corner(mean, cov[:2, :2])


def test_parameter_corner_legend_names_the_sigma_ellipses():
    mean = np.array([1.0, 0.2, 5.0])
    cov = np.diag([0.01, 0.001, 0.5]) + 0.002 * (1 - np.eye(3))
    samples = np.random.default_rng(0).multivariate_normal(mean, cov, 500)
    fig = dsplot.parameter_corner(mean, cov, samples=samples, truth=mean)
    (legend,) = fig.legends  # one legend for the grid, not one per panel
    assert [t.get_text() for t in legend.get_texts()] == [
        "samples",
        "mean",
        "1σ ellipse (39%)",
        "2σ ellipse (86%)",
        "truth",
    ]
    assert all(ax.get_legend() is None for ax in fig.axes)
    # The entries are the drawn ellipses themselves: radius 1 solid, radius 2 dashed.
    pair = fig.axes[1]
    one, two = [ln for ln in pair.get_lines() if not ln.get_label().startswith("_")][:2]
    assert (one.get_label(), one.get_linestyle()) == ("1σ ellipse (39%)", "-")
    assert (two.get_label(), two.get_linestyle()) == ("2σ ellipse (86%)", "--")
    spread = np.ptp(two.get_xdata()) / np.ptp(one.get_xdata())
    assert abs(spread - 2.0) < 1e-9
    # It sits in the empty upper triangle: right of the top-left panel, at its top.
    fig.canvas.draw()
    box = legend.get_window_extent()
    top_left = fig.axes[0].get_window_extent()
    assert box.x0 > top_left.x1 and box.y1 <= top_left.y1 + 1

    # Only what is drawn is named; one parameter has its legend in its only panel.
    fig = dsplot.parameter_corner(mean[:2], cov[:2, :2])
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [
        "mean",
        "1σ ellipse (39%)",
        "2σ ellipse (86%)",
    ]
    fig = dsplot.parameter_corner(mean[:1], samples=samples[:, :1], truth=mean[:1])
    assert not fig.legends
    assert _legend_texts(fig.axes[0]) == ["samples", "truth"]


def test_axis_labels_are_never_empty():
    """Every panel a figure function makes names its quantities (a caller replaces the
    generic names with units); a top panel sharing its time axis needs no x label."""
    pendulum, traj = _pendulum_traj()
    ts = np.asarray(traj.ts)
    figures = {
        "trajectory": dsplot.trajectory(traj),
        "phase_portrait": dsplot.phase_portrait(traj),
        "energy_drift": dsplot.energy_drift({"RK4": (pendulum, traj)}),
        "ensemble_band": dsplot.ensemble_band(ts, np.stack([ts - 1, ts, ts + 1])),
    }
    for name, fig in figures.items():
        (ax,) = fig.axes
        assert ax.get_xlabel() and ax.get_ylabel(), name
    top, bottom = dsplot.fit_residuals(ts, np.asarray(traj.ys.q), np.asarray(traj.ys.q)).axes
    assert top.get_ylabel() and bottom.get_xlabel() and bottom.get_ylabel()
    mean, cov = np.array([1.0, 0.2]), np.diag([0.01, 0.001])
    fig = dsplot.parameter_corner(mean, cov, names=["L (m)", "c (1/s)"])
    bottom_row = [ax for ax in fig.axes if ax.get_subplotspec().is_last_row()]
    assert [ax.get_xlabel() for ax in bottom_row] == ["L (m)", "c (1/s)"]
    first_column = [ax for ax in fig.axes[1:] if ax.get_subplotspec().is_first_col()]
    assert [ax.get_ylabel() for ax in first_column] == ["c (1/s)"]


def test_animations_save_gifs(tmp_path):
    from matplotlib.animation import FuncAnimation

    pendulum, traj = _pendulum_traj(damping=0.3)
    # Made-up motion: drawing needs positions of the right shape, not a simulation.
    ts = np.linspace(0.0, 1.0, 5)
    wiggle = 0.1 * np.sin(7.0 * ts)[:, None, None]
    cloth, c0 = ds.systems.SpringMassNetwork.cloth(3, 3)
    q = np.asarray(c0.q)[None] + wiggle * np.ones((1, 9, 3))
    springs = ds.Trajectory(ts=ts, ys=ds.PhaseState(q=q, v=0 * q), result=traj.result, stats={})
    positions = np.random.default_rng(0).normal(size=(1, 5, 3)) + wiggle
    bodies = ds.Trajectory(ts=ts, ys=positions, result=traj.result, stats={})
    for name, anim in [
        ("pendulum", dsplot.animate_pendulum(pendulum, traj, frames=4)),
        ("bodies", dsplot.animate_bodies(bodies, frames=4)),
        ("springs", dsplot.animate_springs(cloth, springs, frames=3)),
    ]:
        assert isinstance(anim, FuncAnimation)
        (ax,) = anim._fig.axes
        assert ax.get_aspect() == 1.0
        path = tmp_path / f"{name}.gif"
        anim.save(path, writer="pillow", dpi=30)
        data = path.read_bytes()
        assert data.startswith(b"GIF8") and len(data) > 500, name
    anim = dsplot.animate_springs(cloth, springs)
    (ax,) = anim._fig.axes
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("q[0]", "q[2]")  # a cloth's side view
    assert len(ax.collections[0].get_segments()) == cloth.edges.shape[0]
    anim.save(tmp_path / "all_frames.gif", writer="pillow", dpi=20)  # 5 frames, not 100
    with pytest.raises(ValueError, match=r"\(n_saved, n, d\)"):
        dsplot.animate_bodies(traj)
