"""`trial_rollouts`: the mode in which a solver's trial points roll out (private).

Contract: inside `with trial_rollouts():`, every `simulate` behaves as if `throw=False`,
so a trial point whose rollout blows up is a rejected step for the solver rather than an
error; with `forward_jacobians=True`, fixed-step rollouts also use `ds.Direct()` and
adaptive ones `diffrax.ForwardMode()`, whatever adjoint the model asks for. The
engine knows nothing of the caller: `ds.fit` is one, any solver loop may be another.
"""

import contextlib
import contextvars

# Set while a solver traces its objective: rollouts then return non-finite values
# instead of raising.
_TRIAL_ROLLOUTS = contextvars.ContextVar("diffsim_trial_rollouts", default=False)


# Set while a least-squares solver traces its objective, whose Jacobians are forward
# mode (jax.linearize / jvp). Checkpointing serves reverse mode only: under linearize it
# makes every Jacobian re-run the rollout (measured 1.4x slower fits), and a custom-VJP
# adjoint (Reversible; diffrax's checkpointed and backsolve adjoints) has no forward mode
# at all. So fixed-step rollouts then use Direct, adaptive ones diffrax.ForwardMode.
_FORWARD_JACOBIANS = contextvars.ContextVar("diffsim_forward_jacobians", default=False)


@contextlib.contextmanager
def trial_rollouts(forward_jacobians: bool = False):
    """Within this context, `simulate` behaves as if `throw=False`; with
    `forward_jacobians`, rollouts also differentiate in forward mode whatever adjoint the
    model asks for (`ds.Direct()`, `diffrax.ForwardMode()`): its derivatives will be
    taken in forward mode only."""
    token = _TRIAL_ROLLOUTS.set(True)
    token_fwd = _FORWARD_JACOBIANS.set(forward_jacobians)
    try:
        yield
    finally:
        _FORWARD_JACOBIANS.reset(token_fwd)
        _TRIAL_ROLLOUTS.reset(token)


def in_trial() -> bool:
    """Whether rollouts are trial points (errors become results)."""
    return _TRIAL_ROLLOUTS.get()


def forward_jacobians() -> bool:
    """Whether rollouts will be differentiated in forward mode only."""
    return _FORWARD_JACOBIANS.get()
