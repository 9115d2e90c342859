"""Matplotlib figures and animations of `ds.Trajectory` objects, ensembles and fits.

Contract: every figure function draws on `ax` (a `matplotlib.axes.Axes`) when given one,
or on a new figure otherwise, and returns the `matplotlib.figure.Figure` it drew on;
nothing is shown or saved (call `fig.savefig(path)`). `fit_residuals` draws two panels and
so takes a pair, `axes=(top, bottom)`; `parameter_corner` and the `posterior_*` figures of
a `ds.Posterior` (trace, rank, corner) draw grids and take `fig`.
The `animate_*` functions return a `matplotlib.animation.FuncAnimation`; save it as a GIF
with `anim.save("x.gif", writer="pillow", fps=...)` (Pillow ships with matplotlib).
Trajectories must be unbatched: `traj.ts` is 1-d. Values are copied to NumPy, so this
module never runs inside `jit`/`vmap`/`grad`.

Functions: `trajectory`, `phase_portrait`, `energy_drift`, `ensemble_band`,
`fit_residuals`, `parameter_corner`, `posterior_trace`, `posterior_rank`,
`posterior_corner`, `posterior_predictive`, `animate_bodies`, `animate_springs`,
`animate_pendulum`.

Importing this module leaves matplotlib's backend alone: new figures are made with
`matplotlib.pyplot`, so they use whatever backend the user chose (`matplotlib.use`,
`MPLBACKEND`, a notebook's inline backend) or, if none was chosen, matplotlib's own
default, which is the headless `Agg` on a machine without a display. `plt.show()` shows
them; close figures you no longer need (`plt.close(fig)`).

Every function checks its arguments before drawing anything: the wrong kind of object is
a `TypeError` and a wrong shape or value a `ValueError`, whose message names the argument.

```python
import diffsim as ds
import diffsim.plot

traj = ds.simulate(pendulum, y0, t1=10.0, dt=0.01, saveat=ds.SaveAt(every=10))
ds.plot.trajectory(traj, label="RK4").savefig("angle.png")
```
"""

from ._animations import (
    animate_bodies as animate_bodies,
    animate_pendulum as animate_pendulum,
    animate_springs as animate_springs,
)
from ._fits import fit_residuals as fit_residuals, parameter_corner as parameter_corner
from ._posterior import (
    posterior_corner as posterior_corner,
    posterior_predictive as posterior_predictive,
    posterior_rank as posterior_rank,
    posterior_trace as posterior_trace,
)
from ._trajectories import (
    energy_drift as energy_drift,
    ensemble_band as ensemble_band,
    phase_portrait as phase_portrait,
    trajectory as trajectory,
)

__all__ = [
    "trajectory",
    "phase_portrait",
    "energy_drift",
    "ensemble_band",
    "fit_residuals",
    "parameter_corner",
    "posterior_trace",
    "posterior_rank",
    "posterior_corner",
    "posterior_predictive",
    "animate_bodies",
    "animate_springs",
    "animate_pendulum",
]
