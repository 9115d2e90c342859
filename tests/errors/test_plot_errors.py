"""diffsim.plot refuses bad input before drawing: the exception type, a message naming
the argument, short, and no figure left behind."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.figure import Figure

import diffsim as ds
import diffsim.plot as dsplot

from .helpers import assert_refused, case

# Made-up motion: the checks look at types and shapes, not at a simulation.
TS = np.linspace(0.0, 1.0, 6)
Q = np.cos(TS)
PENDULUM = ds.systems.Pendulum(length=1.0)


def _traj(ts=TS, ys=None):
    ys = ds.PhaseState(q=Q, v=-np.sin(TS)) if ys is None else ys
    return ds.Trajectory(ts=ts, ys=ys, result=ds.RESULTS.successful, stats={})


TRAJ = _traj()
BODIES = _traj(ys=np.zeros((6, 4, 3)) + TS[:, None, None])  # 4 bodies in 3-d
CLOTH, C0 = ds.systems.SpringMassNetwork.cloth(3, 3)
BIG_CLOTH, _ = ds.systems.SpringMassNetwork.cloth(4, 4)
_CLOTH_Q = np.asarray(C0.q)[None] + TS[:, None, None]
SPRINGS = _traj(ys=ds.PhaseState(q=_CLOTH_Q, v=0 * _CLOTH_Q))
BANDS = np.stack([Q - 0.2, Q, Q + 0.2])
MEAN, COV = np.array([1.0, 2.0]), np.array([[1.0, 0.1], [0.1, 2.0]])


def _full_figure():
    fig = Figure()  # not pyplot's: the before/after count of figures stays exact
    fig.add_subplot()
    return fig


CASES = [
    # Trajectories.
    case(
        lambda: dsplot.trajectory(np.zeros(3)), TypeError, "traj", "ds.Trajectory", id="traj-array"
    ),
    case(
        lambda: dsplot.trajectory(_traj(ts=np.zeros((2, 6)))),
        ValueError,
        "traj.ts",
        "Select one member",
        id="traj-batched",
    ),
    case(
        lambda: dsplot.trajectory(_traj(ts=np.zeros(0), ys=np.zeros(0))),
        ValueError,
        "traj is empty",
        id="traj-empty",
    ),
    case(
        lambda: dsplot.trajectory(TRAJ, component=5),
        ValueError,
        "component=5",
        id="component-range",
    ),
    case(
        lambda: dsplot.trajectory(TRAJ, component="theta"),
        TypeError,
        "component",
        id="component-name",
    ),
    case(lambda: dsplot.trajectory(TRAJ, ax="left"), TypeError, "ax", "Axes", id="ax-str"),
    case(lambda: dsplot.trajectory(TRAJ, label=3), TypeError, "label", id="label-int"),
    case(
        lambda: dsplot.phase_portrait(_traj(ys=Q)),
        TypeError,
        "PhaseState",
        id="phase-not-mechanical",
    ),
    # Energy drift.
    case(lambda: dsplot.energy_drift({}), TypeError, "trajectories", id="drift-empty"),
    case(
        lambda: dsplot.energy_drift({"RK4": TRAJ}),
        TypeError,
        "trajectories['RK4']",
        "pair",
        id="drift-no-pair",
    ),
    case(
        lambda: dsplot.energy_drift({"RK4": (PENDULUM, TRAJ), "bad": (object(), TRAJ)}),
        TypeError,
        "trajectories['bad']",
        "energy",
        id="drift-no-energy",
    ),
    # Ensemble bands.
    case(lambda: dsplot.ensemble_band(np.zeros((2, 6)), BANDS), ValueError, "ts", id="band-ts-2d"),
    case(
        lambda: dsplot.ensemble_band(TS, BANDS[:, :4]),
        ValueError,
        "bands",
        "(k, 6)",
        id="band-shape",
    ),
    case(
        lambda: dsplot.ensemble_band(TS, BANDS, q=(5, 50, 95)),
        ValueError,
        "q",
        "[0, 1]",
        id="band-q-percent",
    ),
    # Fits.
    case(
        lambda: dsplot.fit_residuals(TS, Q, Q[:4]),
        ValueError,
        "predicted",
        "observed",
        id="fit-shapes",
    ),
    case(
        lambda: dsplot.fit_residuals(TS, Q, Q, sigma=np.inf),
        ValueError,
        "sigma",
        id="fit-sigma-inf",
    ),
    case(
        lambda: dsplot.fit_residuals(TS, ["a"] * 6, Q), TypeError, "observed", id="fit-observed-str"
    ),
    case(
        lambda: dsplot.fit_residuals(TS, Q, Q, axes="top"), TypeError, "axes", "pair", id="fit-axes"
    ),
    case(
        lambda: dsplot.parameter_corner(MEAN, np.array([[1.0, 0.5], [0.1, 2.0]])),
        ValueError,
        "covariance",
        "symmetric",
        id="corner-asymmetric",
    ),
    case(
        lambda: dsplot.parameter_corner(MEAN, np.array([[1.0, 3.0], [3.0, 1.0]])),
        ValueError,
        "covariance",
        "semi-definite",
        id="corner-not-psd",
    ),
    case(
        lambda: dsplot.parameter_corner(MEAN, COV, truth=[1.0]),
        ValueError,
        "truth",
        id="corner-truth",
    ),
    case(
        lambda: dsplot.parameter_corner(MEAN, COV, names="ab"),
        TypeError,
        "names",
        id="corner-names-str",
    ),
    case(
        lambda: dsplot.parameter_corner({"L": 1.0}, COV), TypeError, "mean", id="corner-mean-dict"
    ),
    case(
        lambda: dsplot.parameter_corner(MEAN, COV, fig=_full_figure()),
        ValueError,
        "fig must be empty",
        id="corner-fig-used",
    ),
    # Animations.
    case(lambda: dsplot.animate_bodies(BODIES, frames=0), ValueError, "frames", id="bodies-frames"),
    case(lambda: dsplot.animate_bodies(BODIES, fps=0), ValueError, "fps", id="bodies-fps"),
    case(
        lambda: dsplot.animate_bodies(BODIES, plane=(0, 5)),
        ValueError,
        "plane",
        "0..2",
        id="bodies-plane",
    ),
    case(
        lambda: dsplot.animate_bodies(BODIES, sizes=[1, 2]), ValueError, "sizes", id="bodies-sizes"
    ),
    case(
        lambda: dsplot.animate_springs(PENDULUM, SPRINGS),
        TypeError,
        "network",
        id="springs-not-network",
    ),
    case(
        lambda: dsplot.animate_springs(BIG_CLOTH, SPRINGS),
        ValueError,
        "network.edges",
        "9 nodes",
        id="springs-wrong-network",
    ),
    case(
        lambda: dsplot.animate_pendulum(CLOTH, TRAJ),
        TypeError,
        "pendulum",
        id="pendulum-not-pendulum",
    ),
    case(
        lambda: dsplot.animate_pendulum(PENDULUM, TRAJ, trail=-1),
        ValueError,
        "trail",
        id="pendulum-trail",
    ),
]


@pytest.mark.parametrize("call, exc, mentions", CASES)
def test_refused_before_drawing(call, exc, mentions):
    before = plt.get_fignums()
    assert_refused(call, exc, *mentions)
    assert plt.get_fignums() == before, "a figure was made before the input was refused"


def test_good_input_still_draws(tmp_path):
    """The checks let the ordinary calls through (one of each kind of argument)."""
    fig = dsplot.trajectory(BODIES, component=(1, 0), label="x of body 1")
    dsplot.fit_residuals(TS, Q, Q, sigma=0.1, axes=np.array(plt.subplots(2, 1)[1]))
    dsplot.parameter_corner(MEAN, COV, truth=MEAN, names=("a", "b"), fig=Figure())
    anim = dsplot.animate_bodies(BODIES, frames=3, sizes=np.ones(4), plane=[0, 2])
    anim.save(tmp_path / "bodies.gif", writer="pillow", dpi=10)
    assert fig.axes
    plt.close("all")
