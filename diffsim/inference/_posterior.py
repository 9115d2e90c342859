"""`posterior`: Bayesian inference through the simulator: NUTS draws from the posterior
of a model's parameters given data, one call.

`posterior` reads as its phases: check the arguments and lay out what is sampled
(`_checks.py`, `_density.py`), start every chain near `ds.fit`'s optimum, run the chains
as an ensemble (`_chains.py` through `ds.ensemble`: one compiled program, the chains one
after another on a CPU and vmapped on an accelerator, sharded over devices), and
summarise (`Posterior`, `_result.py`), warning about what the diagnostics show.
"""

import functools
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..engine import trial_rollouts
from ..ensembles import AbstractDistribution, ensemble
from ..ensembles._checks import make_mesh
from ..fitting import FitResult, fit
from ..fitting._data import check_prediction, prepare_data
from ._chains import Settings, run_chain
from ._checks import check_arguments, check_inside, check_settings, warn_diagnostics
from ._density import Layout, Problem, layout, log_density, to_unconstrained
from ._likelihood import AbstractLikelihood, GaussianNoise
from ._result import Posterior, diagnostics


def posterior(
    model: Callable[[Any], Any],
    params0: Any,
    observed: Any,
    *,
    prior: Any,
    key: jax.Array,
    where: Callable[[Any], Any] | None = None,
    sigma: Any = None,
    noise: AbstractDistribution | None = None,
    likelihood: AbstractLikelihood = GaussianNoise(),
    bounds: Any = None,
    num_chains: int = 4,
    num_warmup: int = 1000,
    num_samples: int = 1000,
    dense_mass: bool = False,
    target_accept: float = 0.8,
    max_tree_depth: int = 10,
    start: FitResult | None = None,
    batch_size: int | None = None,
    devices: Any = None,
    warn: bool = True,
) -> Posterior:
    """Draw from the posterior of the parameters of `model` given `observed` data, by
    the No-U-Turn Sampler (NUTS) through the simulator:

    $$p(\\theta \\mid y) \\propto p(y \\mid m(\\theta), \\sigma)\\, p_0(\\theta)
      \\,[\\,p_0(\\sigma)\\,].$$

    **Arguments:**

    - `model`, `params0`, `observed`, `where`, `bounds`: as in `ds.fit`: `model(params)`
      predicts `observed` (NaN entries are missing data); `where` picks the sampled leaves
      of `params0` (default: every floating-point leaf); `bounds` one `(lo, hi)` per
      selected node. Sampling runs in an unconstrained space, $x = T(u)$ onto the bounds
      (default: the prior's support), with the Jacobian $|dT/du|$ in the density.
    - `prior`: the prior of the selected parameters: one distribution (`ds.Normal`,
      `ds.LogNormal`, `ds.HalfNormal`, `ds.Uniform`, `ds.LogUniform`, or your own
      `ds.AbstractDistribution` with `log_prob`) for all, or a pytree like
      `where(params0)` with one per parameter (applied elementwise to array leaves).
    - `key`: a `jax.random.key`; the draws are a deterministic function of it (for the
      same `batch_size` and devices: another batching rounds differently, and NUTS's
      trajectories amplify rounding, so the draws differ, not their distribution).
    - `sigma`: the known noise scale (a scalar or a pytree like `observed`); or `noise`:
      a prior on an unknown scalar noise scale, inferred with the parameters (its draws
      are `post.noise`). Exactly one of the two.
    - `likelihood`: the observation model: `ds.GaussianNoise()` (default),
      `ds.StudentTNoise(df)` (outliers), `ds.LogNormalNoise()` (multiplicative).
    - `num_chains`, `num_warmup`, `num_samples`: chains, and warmup and kept draws per
      chain.
    - `dense_mass`: adapt a dense mass matrix (correlated parameters; costs $n^2$).
      `target_accept`: the acceptance rate warmup aims at (raise it to 0.9-0.99 against
      divergences). `max_tree_depth`: NUTS's cap on trajectory doublings.
    - `start`: a `ds.FitResult` to start the chains from; default: `ds.fit` runs first.
      Chains start at the optimum jittered by one standard error in every direction.
    - `batch_size`, `devices`: as in `ds.ensemble`: how many chains run at once (per
      device), on which devices. Default: all of them on a GPU or TPU, one at a time on
      a CPU, where vmapped chains are slower than consecutive ones: NUTS under `vmap`
      runs in lockstep (every chain pays for the longest trajectory of the batch), and
      XLA's CPU loops over small batched arrays cost more than over scalars (4 pendulum
      chains: 9x slower vmapped, `benchmarks/posterior.py`).
    - `warn`: warn (`ds.SamplingWarning`, naming the parameters) when R-hat > 1.01, bulk
      or tail ESS < 100 per chain, or more than 0.5% of transitions diverged.

    A proposal at which the model's rollout blows up (a non-finite prediction) has
    density zero: NUTS rejects it (as a divergence), no error is raised.

    **Returns:** a `ds.Posterior`: `samples`, `noise`, diagnostics, `summary()`,
    `predict(...)`.

    `posterior` is a driver, like `ds.ensemble`: call it eagerly, not under `jit`/`vmap`
    (it checks its arguments on the host, fits, and warns). Its sampling program is
    compiled once per model and settings (15-40 s on a CPU for NUTS through a rollout)
    and reused by later calls with new data or keys.

    **Errors.** Bad arguments raise `TypeError`/`ValueError` naming the argument before
    anything is compiled; see `ds.fit` for `model`, `observed`, `where` and `bounds`.

    **Example:** a damped pendulum's length and damping with the noise inferred:

    ```python
    ts = jnp.linspace(0.0, 4.0, 41)

    def model(p):
        return ds.simulate(p, p.initial_state(1.0), t1=4.0, dt=0.02,
                           saveat=ds.SaveAt(ts=ts)).ys.q

    truth = ds.systems.Pendulum(length=1.2, damping=0.1)
    observed = model(truth) + 0.02 * jax.random.normal(jax.random.key(0), ts.shape)
    post = ds.posterior(model, ds.systems.Pendulum(length=1.0, damping=0.05), observed,
                        where=lambda p: (p.length, p.damping),
                        prior=(ds.LogNormal(0.0, 0.5), ds.HalfNormal(1.0)),
                        noise=ds.HalfNormal(0.1), num_warmup=300, num_samples=300,
                        key=jax.random.key(2))
    print(post.summary())  # length about 1.20, damping about 0.10, sigma about 0.02
    ```
    """
    check_arguments(model, observed, prior, key, sigma, noise, likelihood, start)
    settings = Settings(num_warmup, num_samples, dense_mass, target_accept, max_tree_depth)
    check_settings(settings, num_chains, batch_size)
    at_once = _chains_at_once(batch_size, devices)
    lay, priors = layout(params0, where, bounds, prior, noise)
    observed, sigma_tree = prepare_data(observed, sigma)
    likelihood.check(observed)
    check_prediction(model, params0, observed)
    leaves = jax.tree.leaves(params0)
    check_inside(lay, leaves)
    mask = jax.tree.map(lambda o: ~jnp.isnan(o), observed)
    problem = Problem(
        leaves=[jnp.asarray(x) if isinstance(x, float) else x for x in leaves],
        observed=jax.tree.map(lambda o, m: jnp.where(m, o, 0.0), observed, mask),
        mask=mask,
        sigma=None if noise is not None else sigma_tree,
        priors=tuple(priors),
        noise_prior=noise,
    )
    if start is None:
        fit_bounds = _fit_bounds(lay, where, bounds)
        start = fit(model, params0, observed, where=where, sigma=sigma, bounds=fit_bounds,
                    throw=False)  # fmt: skip
    u0 = _starts(lay, start, leaves, mask, jax.random.fold_in(key, 0), num_chains)
    keys = jax.random.split(jax.random.fold_in(key, 1), num_chains)
    # Every chain gets the data (shared values, but arguments: new data do not recompile).
    # A model holding arrays (a ds.TrajectoryModel's times) passes them the same way, so
    # that the program is cached on the rest of it.
    model_arrays, model_static = eqx.partition(model, eqx.is_array)
    batched = jax.tree.map(lambda x: _per_chain(x, num_chains), (problem, model_arrays))
    program = _program(model_static, likelihood, lay, settings)
    with trial_rollouts():
        res = ensemble(program, keys, u0, *batched, batch_size=at_once, devices=devices,
                       throw=False)  # fmt: skip
    return _result(res.values, lay, params0, where, start, warn)


def _chains_at_once(batch_size: int | None, devices) -> int | None:
    """`batch_size`, or by default 1 on a CPU and all chains on an accelerator (see
    `posterior`'s docstring for why)."""
    if batch_size is not None:
        return batch_size
    mesh = make_mesh(devices)
    platform = jax.default_backend() if mesh is None else mesh.devices.flat[0].platform
    return 1 if platform == "cpu" else None


def _per_chain(x, n: int):
    """`x` repeated for `n` chains; strongly typed, so that a Python float and a NumPy
    scalar in a prior give the same compiled program."""
    if isinstance(x, float) or hasattr(x, "dtype"):
        a = jnp.asarray(x)
        return jnp.broadcast_to(a.astype(a.dtype), (n,) + a.shape)
    return x


def _program(model_static, likelihood, lay: Layout, settings: Settings):
    """The per-chain function for `ds.ensemble`, built once per model (without its
    arrays) and settings: the ensemble's compiled program is cached by the function's
    identity."""
    try:
        return _cached_program(model_static, likelihood, lay, settings)
    except TypeError:  # something unhashable in the model: built anew, compiled anew
        return _cached_program.__wrapped__(model_static, likelihood, lay, settings)


@functools.lru_cache(maxsize=32)
def _cached_program(model_static, likelihood, lay: Layout, settings: Settings):
    def chain(key, u0, problem, model_arrays):
        model = eqx.combine(model_arrays, model_static)

        def density(u):
            return log_density(model, likelihood, lay, problem, u)[0]

        draws = run_chain(density, settings, key, u0)

        def log_lik(u):
            return log_density(model, likelihood, lay, problem, u)[1]

        return draws, jax.lax.map(log_lik, draws.position, batch_size=64)

    return chain


def _fit_bounds(lay: Layout, where, bounds):
    """The bounds `ds.fit` starts with: the user's, else per node the prior's support
    where every leaf of the node has the same one."""
    if bounds is not None or where is None:
        return bounds
    selection = lay.selection
    nodes = max(n for n in selection.node_of_leaf if n is not None) + 1
    per_node: list = [set() for _ in range(nodes)]
    for i, b in zip(selection.trainable, lay.bounds, strict=True):
        per_node[selection.node_of_leaf[i]].add((b.lo, b.hi))
    spec = [next(iter(s)) if len(s) == 1 else None for s in per_node]
    spec = [None if b == (None, None) else b for b in spec]
    return tuple(spec) if lay.is_tuple else spec[0]


def _starts(lay: Layout, start: FitResult, leaves, mask, key, num_chains: int):
    """Each chain's start: the fit's optimum in the unconstrained space, moved by one
    standard error (delta method) times a standard normal in every direction; where the
    optimum is outside the support or not finite, `params0` instead."""
    fitted = jax.tree.leaves(start.params)
    errors = jax.tree.leaves(start.stderr)
    values = [fitted[i] for i in lay.selection.trainable]
    initial = [leaves[i] for i in lay.selection.trainable]
    spread = [np.asarray(errors[i], float).reshape(-1) for i in lay.selection.trainable]
    if lay.infer_noise:
        n = sum(int(np.sum(np.asarray(m))) for m in jax.tree.leaves(mask))
        scale = float(np.sqrt(2 * float(start.loss) / max(n - len(start.values), 1)))
        scale = scale if np.isfinite(scale) and scale > 0 else 1.0
        values.append(scale)
        initial.append(scale)
        spread.append(np.asarray([0.1 * scale]))
    u_fit, u_init = to_unconstrained(lay, values), to_unconstrained(lay, initial)
    u_hat = jnp.where(jnp.isfinite(u_fit), u_fit, u_init)
    # dx = |dT/du| du: one standard error in x is stderr / |dT/du| in u.
    physical_spread = jnp.asarray(np.concatenate(spread), lay.dtype)
    dxdu = jnp.exp(_flat_log_jacobian(lay, u_hat))
    u_spread = physical_spread / dxdu
    u_spread = jnp.where(jnp.isfinite(u_spread) & (u_spread > 0), u_spread, 0.1)
    z = jax.random.normal(key, (num_chains, lay.size), lay.dtype)
    return u_hat + jnp.minimum(u_spread, 1.0) * z


def _flat_log_jacobian(lay: Layout, u):
    """$\\log |dx_i/du_i|$ of every entry of `u` (the transform is elementwise)."""
    parts = lay.split(u)
    logs = [b.log_jacobian(p).reshape(-1) for b, p in zip(lay.bounds, parts, strict=False)]
    if lay.infer_noise:
        logs.append(jax.nn.log_sigmoid(parts[-1]).reshape(1))
    return jnp.concatenate(logs)


def _result(values, lay: Layout, params0, where, start, warn: bool) -> Posterior:
    draws, log_lik = values
    physical, theta = _physical(lay, draws.position)
    samples = _samples(lay, params0, where, theta)
    rhat, ess_bulk, ess_tail = diagnostics(physical)
    post = Posterior(
        samples=samples,
        noise=physical[..., -1] if lay.infer_noise else None,
        draws=physical,
        names=lay.names,
        log_likelihood=log_lik,
        log_density=draws.log_density,
        divergent=draws.divergent,
        tree_depth=draws.tree_depth,
        acceptance=draws.acceptance,
        step_size=draws.step_size,
        rhat=rhat,
        ess_bulk=ess_bulk,
        ess_tail=ess_tail,
        fit=start,
        params0=params0,
        where=where,
    )
    if warn:
        warn_diagnostics(post)
    return post


@functools.partial(jax.jit, static_argnums=0)
def _physical(lay: Layout, position):
    """The draws in physical units: flat `(C, D, n)`, and per sampled leaf."""
    per_draw = jax.vmap(jax.vmap(lay.physical))(position)
    flat = jnp.concatenate([x.reshape(x.shape[:2] + (-1,)) for x in per_draw], axis=-1)
    return flat, per_draw[: len(lay.shapes)]


def _samples(lay: Layout, params0, where, theta):
    """The draws as a pytree like `where(params0)`, leading axes (chains, draws)."""
    leaves = list(jax.tree.leaves(params0))
    for i, value in zip(lay.selection.trainable, theta, strict=True):
        leaves[i] = value
    full = jax.tree.unflatten(lay.treedef, leaves)
    return where(full) if where is not None else full
