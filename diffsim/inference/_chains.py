"""One NUTS chain, warmup and sampling, as a pure function of a key and a start: what
`ds.posterior` runs for every chain through `ds.ensemble` (vmapped, chunked, sharded).

Warmup is blackjax's window adaptation (Stan's schedule: a fast interval adapting the
step size by dual averaging, slow windows of doubling length estimating the inverse mass
matrix, diagonal or dense, and a final fast interval), then `num_samples` NUTS
transitions with the adapted step size and mass matrix. Each chain adapts its own.
"""

from typing import NamedTuple

import blackjax
import jax
import jax.numpy as jnp


class Settings(NamedTuple):
    """The sampler's static settings (hashable)."""

    num_warmup: int
    num_samples: int
    dense_mass: bool
    target_accept: float
    max_tree_depth: int


class Draws(NamedTuple):
    """One chain's output: per draw, then the adapted step size."""

    position: jax.Array  # (D, n) unconstrained
    log_density: jax.Array  # (D,)
    divergent: jax.Array  # (D,) bool
    tree_depth: jax.Array  # (D,) int
    acceptance: jax.Array  # (D,)
    step_size: jax.Array  # ()


def run_chain(log_density, settings: Settings, key, u0) -> Draws:
    """Warm up from `u0`, then draw `settings.num_samples` NUTS transitions."""
    warm_key, sample_key = jax.random.split(key)
    warmup = blackjax.window_adaptation(
        blackjax.nuts,
        log_density,
        is_mass_matrix_diagonal=not settings.dense_mass,
        target_acceptance_rate=settings.target_accept,
        max_num_doublings=settings.max_tree_depth,
    )
    (state, tuned), _ = warmup.run(warm_key, u0, num_steps=settings.num_warmup)
    nuts = blackjax.nuts(
        log_density,
        step_size=tuned["step_size"],
        inverse_mass_matrix=tuned["inverse_mass_matrix"],
        max_num_doublings=settings.max_tree_depth,
    )

    def transition(state, key):
        state, info = nuts.step(key, state)
        return state, (
            state.position,
            state.logdensity,
            info.is_divergent,
            jnp.asarray(info.num_trajectory_expansions, jnp.int32),
            info.acceptance_rate,
        )

    keys = jax.random.split(sample_key, settings.num_samples)
    _, out = jax.lax.scan(transition, state, keys)
    return Draws(*out, step_size=jnp.asarray(tuned["step_size"]))
