"""Adjoints: how reverse-mode gradients flow through a rollout.

An adjoint decides how the loop of `n` identical steps is laid out and differentiated,
which sets the memory that reverse mode needs. Forward values are identical whichever
adjoint is chosen.

Contract: `loop(body, params, carry, n, inverse=None) -> carry` applies
`carry = body(params, carry)` `n` times (`n` static). Everything that gradients must reach
is in `params` (the system, `t0`, `dt`) or `carry` (the state): a custom VJP cannot see
values a function closes over. `inverse(params, carry)` undoes one `body` (time-reversible
integrators only); `Reversible` needs it. `to_diffrax()` gives the matching diffrax adjoint
for adaptive integrators.

| adjoint          | fixed-step memory        | extra cost (fwd+bwd)       | adaptive (diffrax)          |
|------------------|--------------------------|----------------------------|-----------------------------|
| `Direct`         | O(n)                     | none                       | `DirectAdjoint`             |
| `Checkpointed`   | O(L n^(1/L)), L = levels | ~L-1 extra forward passes  | `RecursiveCheckpointAdjoint`|
| `Reversible`     | O(n / checkpoint_every)  | one backward step a step   | refused                     |
| `Backsolve`      | refused                  | -                          | `BacksolveAdjoint`          |
"""

import abc
import contextlib
import math
from collections.abc import Callable
from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.lax as lax
import jax.numpy as jnp

from .._custom_vjp import perturbed_only


@contextlib.contextmanager
def reverse_mode_only(adjoint: str, fix: str):
    """Turns JAX's error for forward-mode autodiff of a custom VJP (raised while tracing
    `jax.jvp`, `jax.jacfwd`, `jax.linearize` through one) into a message that names the
    adjoint and the fix."""
    try:
        yield
    except TypeError as e:
        if "forward-mode" not in str(e) or "custom_vjp" not in str(e):
            raise
        raise TypeError(
            f"adjoint={adjoint} has reverse mode only (it is a custom VJP), so this rollout "
            f"cannot be differentiated by jax.jvp, jax.jacfwd or jax.linearize. {fix}"
        ) from None


def _scan(body, carry, n):
    if n == 0:
        return carry
    carry, _ = lax.scan(lambda c, _: (body(c), None), carry, None, length=n)
    return carry


class AbstractAdjoint(eqx.Module):
    """Anything accepted as `simulate(..., adjoint=...)`.

    A subclass lays out the loop of a fixed-step rollout (`loop`, whose contract the
    module docstring states) and names the diffrax adjoint for adaptive ones
    (`to_diffrax`). Forward values do not depend on it; only how reverse mode stores or
    recomputes them.

    **Example:** an adjoint that stores one state a step and recomputes the inside of
    each step (the stages of `ds.RK4`) in the backward pass:

    ```python
    import diffrax

    class CheckpointEachStep(ds.AbstractAdjoint):
        def loop(self, body, params, carry, n, inverse=None):
            step = jax.checkpoint(lambda c: body(params, c))
            carry, _ = jax.lax.scan(lambda c, _: (step(c), None), carry, length=n)
            return carry

        def to_diffrax(self):
            return diffrax.DirectAdjoint()

    def final_angle(length):
        pendulum = ds.systems.Pendulum(length=length)
        traj = ds.simulate(pendulum, pendulum.initial_state(0.5), t1=1.0, dt=0.01,
                           adjoint=CheckpointEachStep())
        return traj.ys.q[-1]

    print(jax.grad(final_angle)(1.0))  # 0.04450..., as with ds.Direct()
    ```
    """

    @abc.abstractmethod
    def loop(
        self,
        body: Callable[[Any, Any], Any],
        params: Any,
        carry: Any,
        n: int,
        inverse: Callable[[Any, Any], Any] | None = None,
    ) -> Any:
        """Apply `carry = body(params, carry)` `n` times."""

    @abc.abstractmethod
    def to_diffrax(self) -> diffrax.AbstractAdjoint:
        """The diffrax adjoint used with adaptive integrators."""


class Direct(AbstractAdjoint):
    """Plain reverse mode through one `lax.scan`: stores every step's residuals.

    Memory $O(n)$, no recomputation: the fastest gradient while it fits in memory, and the
    reference the other adjoints are tested against. Supports forward mode too
    (`jax.jvp`, `jax.jacfwd`, Hessian-vector products). With adaptive integrators it maps
    to `diffrax.DirectAdjoint`.

    **Example:**

    ```python
    def final_angle(length):
        pendulum = ds.systems.Pendulum(length=length)
        traj = ds.simulate(pendulum, pendulum.initial_state(0.5), t1=1.0, dt=0.01,
                           adjoint=ds.Direct())
        return traj.ys.q[-1]

    print(jax.grad(final_angle)(1.0))  # 0.04450...
    print(jax.jacfwd(final_angle)(1.0))  # 0.04450...: the same, in forward mode
    ```
    """

    def loop(self, body, params, carry, n, inverse=None):
        return _scan(lambda c: body(params, c), carry, n)

    def to_diffrax(self):
        return diffrax.DirectAdjoint()


def _nested(body, carry, n, levels, every):
    """`n` steps as `levels` nested scans, each level `jax.checkpoint`-ed."""
    if levels == 1 or n <= 1:
        return _scan(body, carry, n)
    s = every if every is not None else math.ceil(n ** ((levels - 1) / levels))
    s = min(max(s, 1), n)
    n_seg, rem = divmod(n, s)
    # prevent_cse=False: inside a scan CSE cannot merge the recomputation anyway, and
    # the barrier would slow the forward pass.
    segment = jax.checkpoint(lambda c: _nested(body, c, s, levels - 1, None), prevent_cse=False)
    carry = _scan(segment, carry, n_seg)
    if rem:
        tail = jax.checkpoint(lambda c: _nested(body, c, rem, levels - 1, None), prevent_cse=False)
        carry = tail(carry)
    return carry


class Checkpointed(AbstractAdjoint):
    """Checkpointed reverse mode: $O(\\sqrt n)$ memory for one extra forward pass.

    The `n` steps run as an outer `lax.scan` over segments of `every` steps, each segment
    a `jax.checkpoint`-ed inner scan (Griewank and Walther, *Evaluating Derivatives*, 2nd
    ed., 2008, ch. 12). Reverse mode stores the state at each segment boundary and
    recomputes one segment at a time, holding about `n / every + every` states;
    `every=None` picks $\\lceil\\sqrt n\\rceil$, which minimises that. The nesting exists
    only where the loop is differentiated (a custom JVP rule): an undifferentiated
    rollout is one flat scan, as fast as `Direct`.

    `levels=L > 2` nests the scheme: about $L n^{1/L}$ states for $L - 1$ extra forward
    passes, for rollouts so long that $\\sqrt n$ states do not fit (a 10^8-step
    gradient of a large state). With adaptive integrators this maps to
    `diffrax.RecursiveCheckpointAdjoint` (binomial checkpointing), which has reverse mode
    only: use `ds.Direct()` for `jax.jvp`/`jax.jacfwd` of an adaptive solve.

    Forward mode (`jax.jvp`, `jax.jacfwd`, `jax.linearize`, an optimistix solver's
    Jacobians) through a fixed-step rollout costs what it costs with `Direct`. Rollouts
    with `SaveAt(ts=...)` or `SaveAt(every=k)` whose states number at most 2^20 elements
    in all run as one flat scan, as with `Direct`: at that size memory is not at stake,
    and the checkpointed alternative carries a save buffer through every step.

    **Arguments:**

    - `every`: the outer segment length in steps (a positive int), or `None`.
    - `levels`: the nesting depth, at least 2 (default 2).

    **Example:** 1000 steps, of which reverse mode stores about 10 + 100 states:

    ```python
    def final_angle(length):
        pendulum = ds.systems.Pendulum(length=length)
        traj = ds.simulate(pendulum, pendulum.initial_state(0.5), t1=1.0, dt=1e-3,
                           adjoint=ds.Checkpointed(every=10))
        return traj.ys.q[-1]

    print(jax.grad(final_angle)(1.0))  # 0.04450...
    ```
    """

    every: int | None = eqx.field(static=True, default=None)
    levels: int = eqx.field(static=True, default=2)

    def __check_init__(self):
        if self.every is not None and (not isinstance(self.every, int) or self.every < 1):
            raise ValueError(f"Checkpointed(every=...) must be a positive int; got {self.every!r}.")
        if not isinstance(self.levels, int) or self.levels < 2:
            raise ValueError(f"Checkpointed(levels=...) must be an int >= 2; got {self.levels!r}.")

    def loop(self, body, params, carry, n, inverse=None):
        if n <= 1:
            return _scan(lambda c: body(params, c), carry, n)
        levels, every = self.levels, self.every

        # Undifferentiated, the steps run as one flat scan: the nesting only serves
        # reverse mode, and on a GPU each entry into an inner loop costs ~20 us, which
        # a launch-bound ensemble (1000 steps of ~8 us) would feel. Differentiated, the
        # JVP rule runs the nested, checkpointed loop, which JAX linearises and
        # transposes as before.
        # A custom JVP cannot close over traced values (an SDE integrator's noise, a
        # user's closure), so the body's closed-over arrays become explicit leaves.
        body = eqx.filter_closure_convert(body, params, carry)

        @eqx.filter_custom_jvp
        def run(body, params, carry):
            return _scan(lambda c: body(params, c), carry, n)

        @run.def_jvp
        def run_jvp(primals, tangents):
            def nested(body, params, carry):
                return _nested(lambda c: body(params, c), carry, n, levels, every)

            return eqx.filter_jvp(nested, primals, tangents)

        return run(body, params, carry)

    def to_diffrax(self):
        return diffrax.RecursiveCheckpointAdjoint(checkpoints=self.every)


class Reversible(AbstractAdjoint):
    """Reverse mode by reconstruction: $O(1)$ memory in the number of steps.

    For time-reversible integrators (`ds.Leapfrog`, `ds.Yoshida4`) one step backwards,
    $y_k = \\Phi_{-h}(y_{k+1})$, undoes one step forwards. The backward pass walks from
    the final state to the first, rebuilding each $y_k$ this way and applying the VJP of
    the step there, so nothing is stored per step (a custom VJP,
    `eqx.filter_custom_vjp`). Cost: about one extra step per step compared with `Direct`.

    **Accuracy.** Reconstruction is exact in exact arithmetic; in floating point each
    backward step adds round-off, which a chaotic system amplifies at its Lyapunov rate.
    `checkpoint_every=k` stores every `k`-th state and rebuilds only within segments of
    `k` steps, so errors cannot grow for longer than `k` steps, at $O(n/k)$ memory.
    Measured, relative to `Direct` (max-norm of the gradient; tests/engine/test_adjoints.py
    asserts the float64 rows):

    | problem                                   | float64, none | float64, k=100 | float32, none | float32, k=100 |
    |-------------------------------------------|---------------|----------------|---------------|----------------|
    | Kepler orbit, Leapfrog, 10^5 steps        | 5e-11         |                |               |                |
    | Pythagorean 3-body (chaotic), 10^4 steps  | 3e-10         | 2e-13          | 0.24          | 1.3e-6         |
    | 256 pendulums, Leapfrog, 10^5 steps       |               |                | 1.2e-4        |                |

    So in float32 on a chaotic system, always set `checkpoint_every`.

    Needs an acceleration independent of velocity (no damping or drag): only then is a
    backward step the inverse of a forward one. This is checked at run time at the
    initial state.

    **Arguments:**

    - `checkpoint_every`: store every `k`-th state (a positive int), or `None` for none.

    **Example:**

    ```python
    def final_angle(length):
        pendulum = ds.systems.Pendulum(length=length)
        traj = ds.simulate(pendulum, pendulum.initial_state(0.5), t1=1.0, dt=1e-3,
                           integrator=ds.Leapfrog(),
                           adjoint=ds.Reversible(checkpoint_every=100))
        return traj.ys.q[-1]

    print(jax.grad(final_angle)(1.0))  # 0.04450...
    ```
    """

    checkpoint_every: int | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        k = self.checkpoint_every
        if k is not None and (not isinstance(k, int) or k < 1):
            raise ValueError(f"Reversible(checkpoint_every=...) must be a positive int; got {k!r}.")

    def loop(self, body, params, carry, n, inverse=None):
        if inverse is None:
            raise TypeError("Reversible() needs the inverse of the step (a reversible integrator).")
        if n == 0:
            return carry
        # Integer leaves (the step counter) may arrive marked as perturbed from an
        # enclosing scan's linearisation; their tangent is zero, so say so explicitly.
        vjp_arg = jax.tree.map(
            lambda x: x if not eqx.is_array(x) or eqx.is_inexact_array(x) else lax.stop_gradient(x),
            (params, carry),
        )
        return _reversible_loop(vjp_arg, body, inverse, n, self.checkpoint_every)

    def to_diffrax(self):
        raise ValueError(
            "Reversible() is for the fixed-step reversible integrators ds.Leapfrog() and "
            "ds.Yoshida4(); for adaptive integrators use ds.Checkpointed(), ds.Direct() or "
            "ds.Backsolve()."
        )


class Backsolve(AbstractAdjoint):
    """The continuous adjoint method for adaptive integrators (`diffrax.BacksolveAdjoint`):
    solves the adjoint ODE backwards in time, $O(1)$ memory, gradients accurate to the
    solver tolerance rather than exact (Chen et al. 2018, "Neural ODEs").

    Fixed-step integrators refuse it: use `ds.Reversible()` for the same memory with exact
    gradients.

    **Example:**

    ```python
    def final(rate):
        decay = ds.ODESystem(lambda t, y, rate: -rate * y, rate)
        traj = ds.simulate(decay, jnp.array(1.0), t1=1.0, integrator=ds.Tsit5(),
                           adjoint=ds.Backsolve())
        return traj.ys[-1]

    print(jax.grad(final)(1.0))  # -0.36788: d/dk exp(-k t) = -t exp(-k t)
    ```
    """

    def loop(self, body, params, carry, n, inverse=None):
        raise ValueError(
            "Backsolve() is the continuous adjoint of adaptive integrators (ds.Tsit5(), "
            "ds.Dopri8(), ds.Kvaerno5()). For fixed-step integrators use ds.Reversible() "
            "(O(1) memory, exact) or ds.Checkpointed()."
        )

    def to_diffrax(self):
        return diffrax.BacksolveAdjoint()


def _float_part(tree):
    return eqx.filter(tree, eqx.is_inexact_array)


def _zeros_where_none(grad, like):
    """Cotangents with `None` for symbolic zeros become explicit zeros (`like` has None
    where a leaf is not differentiable, and those stay None)."""
    return jax.tree.map(
        lambda g, x: None if x is None else (jnp.zeros_like(x) if g is None else g),
        grad,
        like,
        is_leaf=lambda g: g is None,
    )


@eqx.filter_custom_vjp
def _reversible_loop(vjp_arg, body, inverse, n, every):
    params, carry = vjp_arg
    return _scan(lambda c: body(params, c), carry, n)


@_reversible_loop.def_fwd
def _reversible_loop_fwd(perturbed, vjp_arg, body, inverse, n, every):
    params, carry = vjp_arg
    if every is None or every >= n:
        final = _scan(lambda c: body(params, c), carry, n)
        return final, (final, None)
    n_seg = n // every

    def segment(c, _):
        c = _scan(lambda c: body(params, c), c, every)
        return c, c  # the state at the segment's end: where its reconstruction starts

    carry, checkpoints = lax.scan(segment, carry, None, length=n_seg)
    final = _scan(lambda c: body(params, c), carry, n - n_seg * every)
    return final, (final, checkpoints)


@_reversible_loop.def_bwd
def _reversible_loop_bwd(residuals, grad_final, perturbed, vjp_arg, body, inverse, n, every):
    params, carry0 = vjp_arg
    final, checkpoints = residuals
    grad_carry = _zeros_where_none(grad_final, _float_part(final))
    grad_params = jax.tree.map(jnp.zeros_like, _float_part(params))

    def back_one(state, _):
        c, g_c, g_p = state
        prev = inverse(params, c)
        _, vjp = eqx.filter_vjp(body, params, prev)
        g_p_step, g_prev = vjp(g_c)
        g_p = jax.tree.map(jnp.add, g_p, _zeros_where_none(g_p_step, g_p))
        return (prev, _zeros_where_none(g_prev, g_c), g_p), None

    def back(start, g_c, g_p, length):
        if length == 0:
            return g_c, g_p
        (_, g_c, g_p), _ = lax.scan(back_one, (start, g_c, g_p), None, length=length)
        return g_c, g_p

    if checkpoints is None:
        grad_carry, grad_params = back(final, grad_carry, grad_params, n)
    else:
        n_seg = n // every
        grad_carry, grad_params = back(final, grad_carry, grad_params, n - n_seg * every)

        def back_segment(state, checkpoint):
            g_c, g_p = state
            return back(checkpoint, g_c, g_p, every), None

        (grad_carry, grad_params), _ = lax.scan(
            back_segment, (grad_carry, grad_params), checkpoints, reverse=True
        )
    grads = (grad_params, grad_carry)
    return perturbed_only(grads, perturbed)
