"""A fused ensemble step: many small ODE systems through an explicit Runge-Kutta method at
a fixed step, in one Pallas kernel (private).

**What it fuses, and why.** An ensemble of small systems (Lorenz: 3 states per member)
is normally `jax.vmap` of a `lax.scan` whose body is one Runge-Kutta step. Each step
then compiles to a few elementwise kernels, and every stage's state and slopes are read
from and written to GPU memory between them: for Tsit5 that is six vector-field
evaluations and the stage sums, each a round trip through memory, per step. Here one
kernel instance owns a block of members, loads their states and parameters once, keeps
them as values (registers) through a `lax.fori_loop` over all the steps, with the stages
unrolled in Python, and writes the final states once. Memory traffic falls from
O(steps x stages x state) to O(state) per member; the arithmetic is the same.

**Layout.** `y0` is `(M, s)`: M members, s components. It is padded along the members
(with copies of the last member, so padded lanes compute a valid system and never a
NaN) to a multiple of the block, transposed to `(s, M)`, and handed to the kernel as
`s` separate `(M,)` rows, a structure of arrays: a block of members is then contiguous
per component, and every block shape is one-dimensional and a power of two, as
Triton requires (a `(3, block)` block is not). Parameters `(M, p)` travel the
same way. The grid runs over member blocks, one kernel instance each.

**The tableau** is baked in as Python floats at trace time: zero coefficients are
skipped, stages the solution does not use are not computed (`_needed_stages`, as in
`ds.AbstractExplicitRK`), and the coefficients take the state's dtype, so float32 stays
float32 and float64 stays float64. The step is the same formula, in the same order, as
`AbstractExplicitRK.step`, so the kernel matches `ds.simulate` with `ds.Tsit5Fixed()`
(or `ds.RK4()`) to rounding; `t0`, `dt` and `n_steps` are static.

**Status.** Tested in Pallas interpret mode on the CPU only. Lowering for CUDA (to
Triton IR, float32 and float64) was checked from the CPU, but Triton has not compiled it
and it has not run on a GPU: its GPU speed is unmeasured in this session. The target to
measure: 2^23 Lorenz members, Tsit5, 1000 steps, float32, against the vmapped scan
(66.7 ms on an H200, see `ds.systems.Lorenz`).

**Example:**

```python
def lorenz_fn(t, y, p):
    (x, y_, z), (rho,) = y, p
    return (10.0 * (y_ - x), x * (rho - z) - y_, x * y_ - (8.0 / 3.0) * z)

rho = jnp.linspace(20.0, 30.0, 1000)[:, None]  # (M, 1): one parameter per member
y0 = jnp.tile(jnp.array([1.0, 0.0, 0.0]), (1000, 1))  # (M, 3)
final = fused_rk_final(lorenz_fn, y0, diffrax.Tsit5.tableau, 0.0, 0.01, 1000, params=rho)
```

or, from a system class: `lorenz_fn = system_fn_from(ds.systems.Lorenz, ("rho",))`.
"""

import functools
import math
import operator
from collections.abc import Callable, Sequence

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as pltriton

from ..engine.integrators._explicit_rk import _needed_stages


def _coefficients(tableau: diffrax.ButcherTableau):
    """`(a, b, c)` of the stages the solution needs, as Python floats: floats are weakly
    typed, so they take the state's dtype, and they are compared with zero at trace time."""
    n = _needed_stages(tableau)
    b = tuple(float(x) for x in np.asarray(tableau.b_sol)[:n])
    a = tuple(tuple(float(x) for x in np.asarray(tableau.a_lower[i - 1])) for i in range(1, n))
    c = tuple(float(x) for x in np.asarray(tableau.c)[: n - 1])
    return a, b, c


def _lincomb(y, dt, coeffs, ks):
    """`y + dt * sum_j coeffs[j] * ks[j]` per component, skipping zeros: the order of
    operations of `ds.AbstractExplicitRK` (`lincomb`), so the two agree to the last bits
    wherever the compiler does not reassociate."""
    terms = [(c, k) for c, k in zip(coeffs, ks, strict=True) if c != 0]
    return tuple(yi + dt * sum(c * k[i] for c, k in terms) for i, yi in enumerate(y))


def _rk_step(system_fn, a, b, c, t, y, p, dt):
    """One explicit Runge-Kutta step on a tuple of components, stages unrolled."""
    ks = [tuple(system_fn(t, y, p))]
    for ai, ci in zip(a, c, strict=True):
        ks.append(tuple(system_fn(t + ci * dt, _lincomb(y, dt, ai, ks), p)))
    return _lincomb(y, dt, b, ks)


def _kernel(*refs, system_fn, n_state, n_param, a, b, c, t0, dt, n_steps):
    """One block of members through all `n_steps` steps: load once, loop on values,
    store once."""
    y_refs = refs[:n_state]
    p_refs = refs[n_state : n_state + n_param]
    out_refs = refs[n_state + n_param :]
    y = tuple(r[...] for r in y_refs)
    p = tuple(r[...] for r in p_refs)  # constant over the steps: loaded once
    dtype = y[0].dtype

    def body(k, y):
        # t0 + k dt, as `simulate_fixed` computes it (not a running sum, which drifts).
        t = t0 + k.astype(dtype) * dt
        return _rk_step(system_fn, a, b, c, t, y, p, dt)

    y = jax.lax.fori_loop(0, n_steps, body, y)
    for r, v in zip(out_refs, y, strict=True):
        r[...] = v


def _static(t0, dt, n_steps):
    """`t0`, `dt`, `n_steps` as Python numbers: they are baked into the kernel."""
    try:
        return float(t0), float(dt), operator.index(n_steps)
    except (TypeError, jax.errors.ConcretizationTypeError) as error:
        raise TypeError(
            "fused_rk_final: `t0`, `dt` and `n_steps` must be concrete Python or NumPy "
            f"numbers (they are compiled into the kernel); got {t0!r}, {dt!r}, {n_steps!r}."
        ) from error


def _check(y0, params, block):
    if y0.ndim != 2 or 0 in y0.shape:
        raise ValueError(
            f"fused_rk_final: `y0` must be (members, state), both non-zero; got {y0.shape}."
        )
    if params.ndim != 2 or params.shape[0] != y0.shape[0]:
        raise ValueError(
            "fused_rk_final: `params` must be (members, n_params) with the members of "
            f"`y0` ({y0.shape[0]}); got {params.shape}."
        )
    if block < 1 or block & (block - 1):
        # Triton lowers only power-of-two block shapes.
        raise ValueError(
            f"fused_rk_final: `members_per_block` must be a power of two; got {block}."
        )


def fused_rk_final(
    system_fn: Callable,
    y0: jax.Array,
    tableau: diffrax.ButcherTableau,
    t0: float,
    dt: float,
    n_steps: int,
    *,
    params: jax.Array | None = None,
    members_per_block: int = 128,
    interpret: bool = False,
) -> jax.Array:
    """The final states of M independent members after `n_steps` explicit Runge-Kutta
    steps of `dt` from `t0`, in one fused Pallas kernel (see the module docstring).

    **Arguments:**

    - `system_fn`: `system_fn(t, y, p) -> dy`, with `y` a tuple of `s` arrays `(block,)`
      (one per component), `p` a tuple of the `n_params` parameter arrays `(block,)`
      (empty without `params`), `t` a scalar; returns a tuple of `s` arrays `(block,)`.
      Elementwise `jnp` operations only: it is traced inside the kernel.
    - `y0`: `(M, s)` initial states, float32 or float64 (the kernel's dtype).
    - `tableau`: a `diffrax.ButcherTableau` (`diffrax.Tsit5.tableau`,
      `ds.Tsit5Fixed.tableau`); its `b_error` is not used.
    - `t0`, `dt`, `n_steps`: concrete numbers, compiled in.
    - `params`: `(M, n_params)` per-member parameters, or `None`.
    - `members_per_block`: members per kernel instance, a power of two.
    - `interpret`: run the kernel in Pallas interpret mode (CPU tests).

    **Returns:** the `(M, s)` final states, in `y0`'s dtype.
    """
    t0, dt, n_steps = _static(t0, dt, n_steps)
    y0 = jnp.asarray(y0)
    if not jnp.issubdtype(y0.dtype, jnp.floating):
        y0 = y0.astype(jnp.result_type(float))
    dtype = y0.dtype
    params = jnp.zeros((y0.shape[0], 0), dtype) if params is None else jnp.asarray(params)
    params = params.astype(dtype)
    _check(y0, params, members_per_block)
    m, n_state = y0.shape
    n_param = params.shape[1]
    block = members_per_block
    m_pad = math.ceil(m / block) * block

    def rows(x):
        # Pad with the last member (a valid system, so no NaN in padded lanes), then one
        # contiguous row per component.
        x = jnp.pad(x, ((0, m_pad - m), (0, 0)), mode="edge")
        return tuple(x.T)

    a, b, c = _coefficients(tableau)
    kernel = functools.partial(
        _kernel, system_fn=system_fn, n_state=n_state, n_param=n_param,
        a=a, b=b, c=c, t0=t0, dt=dt, n_steps=n_steps,
    )  # fmt: skip
    spec = pl.BlockSpec((block,), lambda i: (i,))
    outs = pl.pallas_call(
        kernel,
        out_shape=tuple(jax.ShapeDtypeStruct((m_pad,), dtype) for _ in range(n_state)),
        grid=(m_pad // block,),
        in_specs=[spec] * (n_state + n_param),
        out_specs=tuple(spec for _ in range(n_state)),
        # Triton, not JAX's default Mosaic GPU backend: Mosaic GPU moves blocks by TMA,
        # which refuses float64 ("unsupported TMA dtype f64" when lowering).
        compiler_params=pltriton.CompilerParams(),
        interpret=interpret,
    )(*rows(y0), *rows(params))
    return jnp.stack(outs, axis=1)[:m]


def system_fn_from(system_cls: type, param_names: Sequence[str], **fixed) -> Callable:
    """A `system_fn` for `fused_rk_final` from a diffsim system class whose vector field
    takes a tuple state and broadcasts its parameters elementwise (`ds.systems.Lorenz`).

    `param_names` name the fields that vary by member, in the column order of `params`;
    `fixed` gives the others (Python numbers, baked in). The system is rebuilt from
    traced block arrays inside the kernel, where its construction checks pass unchecked
    (they check only concrete values).

    **Example:**

    ```python
    lorenz_fn = system_fn_from(ds.systems.Lorenz, ("rho",), sigma=10.0)
    ```
    """
    names = tuple(param_names)

    def system_fn(t, y, p):
        system = system_cls(**dict(zip(names, p, strict=True)), **fixed)
        return tuple(system.vector_field(t, tuple(y)))

    return system_fn
