"""The engine's conformance cells: integrators, adjoints, save modes, autodiff modes, and
the rule saying which combinations are unsupported by design (and why).

Tested by `test_engine_matrix.py`; rendered into docs/conformance.md by `table.py`.
"""

import diffrax
import jax.numpy as jnp

import diffsim as ds

FIXED = [
    ds.Euler(),
    ds.SemiImplicitEuler(),
    ds.Leapfrog(),
    ds.Yoshida4(),
    ds.RK4(),
    ds.Tsit5Fixed(),
]
ADAPTIVE = [
    ds.Tsit5(rtol=1e-10, atol=1e-10),
    ds.Dopri8(rtol=1e-10, atol=1e-10),
    ds.Kvaerno5(rtol=1e-10, atol=1e-10),
    ds.Diffrax(diffrax.Bosh3(), diffrax.PIDController(rtol=1e-10, atol=1e-10)),
]
ADJOINTS = [ds.Direct(), ds.Checkpointed(), ds.Reversible(), ds.Backsolve()]
SAVES = {
    "t1": lambda: ds.SaveAt(t1=True),
    "t0t1": lambda: ds.SaveAt(t0=True, t1=True),
    "every": lambda: ds.SaveAt(every=7),
    "ts": lambda: ds.SaveAt(ts=jnp.array([0.0, 0.13, 0.5, 0.77, 1.0])),
    "fn": lambda: ds.SaveAt(ts=jnp.array([0.3, 1.0]), fn=lambda t, y: y.q * y.v),
    # The loss reads traj.evaluate at DENSE_TIMES (test_engine_matrix.py).
    "dense": lambda: ds.SaveAt(dense=True),
}
DENSE_TIMES = jnp.array([0.05, 0.4, 0.77, 1.0])
MODES = ("reverse", "forward")


def name(x):
    return type(x).__name__


def unsupported(integrator, adjoint, save: str, mode: str) -> tuple[str, str] | None:
    """The reason a cell is unsupported by design, and a word its error must contain."""
    adaptive = not isinstance(integrator, ds.AbstractFixedStepIntegrator)
    if isinstance(adjoint, ds.Reversible):
        if adaptive:
            return "Reversible is for fixed-step reversible integrators", "Reversible"
        if not integrator.reversible:
            return "Reversible needs a time-reversible integrator", "Reversible"
        if save == "dense":
            return "dense output keeps every state, which Reversible rebuilds", "Reversible"
        if mode == "forward":
            return "Reversible is a custom VJP: reverse mode only", "Reversible"
    if isinstance(adjoint, ds.Backsolve):
        if not adaptive:
            return "Backsolve is the continuous adjoint of adaptive solves", "Backsolve"
        if save == "fn":
            return "Backsolve needs the states, not fn of them", "Backsolve"
        if save == "dense":
            return "diffrax's Backsolve cannot differentiate dense output", "Backsolve"
    if adaptive and save == "every":
        return "SaveAt(every=k) counts fixed steps", "every"
    if adaptive and mode == "forward" and not isinstance(adjoint, ds.Direct):
        return "diffrax's checkpointed and backsolve adjoints are reverse mode only", "Direct"
    return None


def unsupported_with_events(integrator, adjoint, save: str, mode: str) -> tuple[str, str] | None:
    """As `unsupported`, for a rollout with `events=` (`test_event_matrix.py`)."""
    adaptive = not isinstance(integrator, ds.AbstractFixedStepIntegrator)
    if isinstance(adjoint, ds.Reversible):
        return "an event's reset is not time-reversible", "Reversible"
    if isinstance(adjoint, ds.Backsolve):
        return "the continuous adjoint does not see the segments between events", "Backsolve"
    if adaptive and save == "dense":
        return "dense output with events needs a fixed-step integrator", "dense"
    return unsupported(integrator, adjoint, save, mode)
