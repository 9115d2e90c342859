"""Shared members for the ensemble tests: a Lorenz rollout swept over rho."""

import jax.numpy as jnp

import diffsim as ds

Y0 = jnp.array([1.0, 0.0, 0.0])
RHOS = jnp.linspace(0.0, 21.0, 11)


def lorenz_run(rho):
    """One member: a Lorenz rollout, 100 RK4 steps, 11 saved states."""
    system = ds.systems.Lorenz(rho=rho)
    return ds.simulate(system, Y0, t1=1.0, dt=1e-2, saveat=ds.SaveAt(every=10), throw=False)
