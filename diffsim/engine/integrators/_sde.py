"""Stochastic differential equations at a fixed step: Euler-Maruyama and BAOAB.

Contract: an SDE integrator is an `AbstractFixedStepIntegrator` (so `ds.simulate` runs it
with its scan loop, saving, adjoints and non-finite checks) that carries a PRNG `key`. A
*stochastic system* has a drift `vector_field(t, y)` and a diagonal noise amplitude
`diffusion(t, y)` (a pytree like `y`, or broadcasting against it):
$$dy = f(t, y)\\, dt + g(t, y) \\odot dW_t .$$

The Brownian increment of the step that starts at time `t` is drawn from the key folded
with the bits of `t` itself, so a path is a pure function of `(key, t0, dt)`: the same key
gives the same path, a checkpointed gradient recomputes the same noise, and members of an
ensemble with different keys are independent. Gradients are pathwise (the noise is
reparameterised, not differentiated).

A save time between grid points (`SaveAt(ts=...)`) is reached by a partial step that
reuses the noise of the step it falls in, scaled to its length: its distribution given
the last grid state is right, but it is not a Brownian bridge. Prefer `SaveAt(every=k)`.

The engine knows no physics: `BAOAB` asks the system, by duck typing, for
`conservative_acceleration(t, q, v)`, `friction` and `diffusion(t, y)` (as
`ds.systems.Langevin` provides).
"""

import dataclasses
from typing import ClassVar

import equinox as eqx
import jax
import jax.lax as lax
import jax.numpy as jnp
import numpy as np
from jaxtyping import PRNGKeyArray

from ._base import AbstractFixedStepIntegrator


def _time_key(key, t):
    """Fold the bit pattern of the time `t` into `key`: one independent key per step."""
    t = jnp.asarray(t)
    if t.dtype not in (jnp.float32, jnp.float64):
        t = t.astype(jnp.float32)
    bits = lax.bitcast_convert_type(t, jnp.uint32).reshape(-1)  # 1 word (f32) or 2 (f64)
    for i in range(bits.shape[0]):
        key = jax.random.fold_in(key, bits[i])
    return key


def _normal_like(key, tree):
    leaves, treedef = jax.tree.flatten(tree)
    keys = [key] if len(leaves) == 1 else jax.random.split(key, len(leaves))
    noise = [
        jax.random.normal(k, jnp.shape(x), jnp.result_type(x))
        for k, x in zip(keys, leaves, strict=True)
    ]
    return jax.tree.unflatten(treedef, noise)


def check_key(key, where: str) -> None:
    """`key` is one JAX PRNG key: a typed key of shape `()` (`jax.random.key`) or a raw
    uint32 key (`jax.random.PRNGKey`: `(2,)`, or `(4,)` for the rbg implementations).
    Traced keys are checked by their dtype and shape. `where` names the argument in the
    messages, e.g. `"EulerMaruyama(key=...)"`. Shared with `ds.sample`."""
    dtype, shape = getattr(key, "dtype", None), getattr(key, "shape", None)
    if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        if shape == ():
            return
        raise ValueError(
            f"{where} must be a single PRNG key; got a key array of shape {shape}. Pass one "
            "key (e.g. keys[0]), or map over keys with ds.ensemble."
        )
    if dtype == np.uint32 and shape in ((2,), (4,)):
        return
    got = f"{type(key).__name__}" + (f" of dtype {dtype} and shape {shape}" if dtype else "")
    raise TypeError(f"{where} must be a JAX PRNG key, e.g. jax.random.key(0); got {got}.")


def _require(system, name: str, what: str, hint: str) -> None:
    if getattr(system, what, None) is None:
        raise TypeError(
            f"integrator={name}() needs a stochastic system with `{what}`{hint}; got "
            f"{type(system).__name__}, which has none. For a deterministic system use a "
            "deterministic integrator such as ds.RK4()."
        )


class AbstractSDEIntegrator(AbstractFixedStepIntegrator):
    """A fixed-step SDE integrator: `step(system, t, y, dt)` draws its noise from `key`.

    `order` is the weak order (of expectations), the one that matters for ensemble
    statistics; strong (pathwise) orders are lower.

    **Example:** code that takes any integrator gives the stochastic ones a fresh key:

    ```python
    import equinox as eqx

    def with_key(integrator, key):
        if isinstance(integrator, ds.AbstractSDEIntegrator):
            return eqx.tree_at(lambda i: i.key, integrator, key)
        return integrator  # deterministic: nothing to draw

    ou = ds.systems.OrnsteinUhlenbeck(theta=1.0, sigma=0.5)
    integrator = ds.EulerMaruyama(key=jax.random.key(0))
    for seed in (1, 2):
        traj = ds.simulate(ou, jnp.array(1.0), t1=1.0, dt=0.01,
                           integrator=with_key(integrator, jax.random.key(seed)))
        print(traj.ys)  # a different path for each key
    print(with_key(ds.RK4(), jax.random.key(1)))  # RK4()
    ```
    """

    key: eqx.AbstractVar[PRNGKeyArray]

    def __check_init__(self):
        check_key(self.key, f"{type(self).__name__}(key=...)")


class EulerMaruyama(AbstractSDEIntegrator):
    """Euler-Maruyama: weak order 1, strong order 1/2, for any stochastic system.

    $$y_{n+1} = y_n + h\\, f(t_n, y_n) + g(t_n, y_n) \\odot \\sqrt{h}\\, \\xi_n, \\qquad
      \\xi_n \\sim \\mathcal N(0, I)$$

    (Kloeden and Platen 1992, *Numerical Solution of Stochastic Differential Equations*,
    ch. 9.) On the Ornstein-Uhlenbeck process it has stationary variance
    $\\sigma^2 / (\\theta (2 - \\theta h))$, a relative bias of $\\theta h / 2$.

    **Arguments:**

    - `key`: a JAX PRNG key; the path is a pure function of it.

    **Example:**

    ```python
    ou = ds.systems.OrnsteinUhlenbeck(theta=1.0, sigma=0.5)
    traj = ds.simulate(ou, jnp.zeros(()), t1=5.0, dt=1e-2,
                       integrator=ds.EulerMaruyama(key=jax.random.key(0)))
    ```
    """

    key: PRNGKeyArray
    order: ClassVar[int] = 1
    symplectic: ClassVar[bool] = False
    reversible: ClassVar[bool] = False
    mechanical: ClassVar[bool] = False

    def step(self, system, t, y, dt):
        _require(system, "EulerMaruyama", "diffusion", " (the noise amplitude g(t, y))")
        f = system.vector_field(t, y)
        g = system.diffusion(t, y)
        xi = _normal_like(_time_key(self.key, t), y)
        root = jnp.sqrt(dt)
        return jax.tree.map(lambda y, f, g, xi: y + dt * f + g * (root * xi), y, f, g, xi)


class BAOAB(AbstractSDEIntegrator):
    """BAOAB splitting for underdamped Langevin dynamics (Leimkuhler and Matthews 2013,
    "Rational construction of stochastic numerical methods for molecular sampling",
    AMRX 2013(1)): weak order 2, and the most accurate configurational sampling of the
    simple splittings (exact for the harmonic oscillator's positions).

    For $dq = v\\,dt$, $dv = a(q)\\,dt - \\gamma v\\,dt + g\\,dW$ a step of $h$ is a half kick
    (B), a half drift (A), the exact Ornstein-Uhlenbeck solve of the friction and noise (O),
    a half drift and a half kick:
    $$v \\leftarrow e^{-\\gamma h} v + g \\sqrt{\\frac{1 - e^{-2\\gamma h}}{2\\gamma}}\\, \\xi$$
    (which tends to $g \\sqrt h\\, \\xi$ as $\\gamma \\to 0$). Two force evaluations a step.

    Needs a system with `conservative_acceleration(t, q, v)` (the force without friction),
    `friction` ($\\gamma$) and `diffusion(t, y)` whose `v` part is $g$, such as
    `ds.systems.Langevin`, and a `ds.PhaseState`.

    **Arguments:**

    - `key`: a JAX PRNG key; the path is a pure function of it.

    **Example:**

    ```python
    bath = ds.systems.Langevin(ds.systems.HarmonicOscillator(omega=2.0), friction=1.0, kT=0.5)
    y0 = ds.PhaseState(q=jnp.array(1.0), v=jnp.array(0.0))
    traj = ds.simulate(bath, y0, t1=10.0, dt=0.05, integrator=ds.BAOAB(key=jax.random.key(0)))
    ```
    """

    key: PRNGKeyArray
    order: ClassVar[int] = 2
    symplectic: ClassVar[bool] = False
    reversible: ClassVar[bool] = False
    mechanical: ClassVar[bool] = True

    def step(self, system, t, y, dt):
        hint = " (Langevin dynamics, e.g. ds.systems.Langevin)"
        for what in ("conservative_acceleration", "friction", "diffusion"):
            _require(system, "BAOAB", what, hint)
        half = 0.5 * dt

        def kick(v, q, time):
            a = system.conservative_acceleration(time, q, v)
            return jax.tree.map(lambda v, a: v + half * a, v, a)

        def drift(q, v):
            return jax.tree.map(lambda q, v: q + half * v, q, v)

        v = kick(y.v, y.q, t)
        q = drift(y.q, v)
        g = system.diffusion(t + half, dataclasses.replace(y, q=q, v=v)).v
        xi = _normal_like(_time_key(self.key, t), v)

        def ou(v, g, xi):
            gamma = jnp.asarray(system.friction, v.dtype)
            gh = gamma * dt
            # Variance of the exact OU step, g^2 (1 - e^{-2 gamma h}) / (2 gamma); its
            # gamma -> 0 limit g^2 h where gamma vanishes (double where for the gradient).
            safe = jnp.where(gh > 0, gamma, 1)
            var = jnp.where(gh > 0, -jnp.expm1(-2 * safe * dt) / (2 * safe), dt) * g * g
            return jnp.exp(-gh) * v + jnp.sqrt(var) * xi

        v = jax.tree.map(ou, v, g, xi)
        q = drift(q, v)
        v = kick(v, q, t + dt)
        return dataclasses.replace(y, q=q, v=v)
