"""A damped pendulum observed at 120 times: the model most fit tests recover."""

import jax
import jax.numpy as jnp

import diffsim as ds

TS = jnp.linspace(0.0, 6.0, 120)
TRUE = ds.systems.Pendulum(length=1.3, damping=0.2)


def pendulum_model(p):
    traj = ds.simulate(p, p.initial_state(1.0), t1=6.0, dt=0.02, saveat=ds.SaveAt(ts=TS))
    return traj.ys.q


def noisy(key, sigma=0.02):
    return pendulum_model(TRUE) + sigma * jax.random.normal(key, TS.shape)
