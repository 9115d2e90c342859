"""Adjoints: how reverse-mode gradients flow through a rollout.

An adjoint decides how the loop of `n` identical steps is laid out, which sets the memory
that reverse mode needs. Forward values are the same whichever adjoint is chosen.

Contract: `loop(body, carry, n) -> carry` applies `body` `n` times (`n` static);
`to_diffrax()` gives the matching diffrax adjoint for adaptive integrators.
"""

import abc
import math
from collections.abc import Callable
from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.lax as lax


def _scan(body, carry, n):
    if n == 0:
        return carry
    carry, _ = lax.scan(lambda c, _: (body(c), None), carry, None, length=n)
    return carry


class AbstractAdjoint(eqx.Module):
    """Anything accepted as `simulate(..., adjoint=...)`."""

    @abc.abstractmethod
    def loop(self, body: Callable[[Any], Any], carry: Any, n: int) -> Any:
        """Apply `body` to `carry` `n` times."""

    @abc.abstractmethod
    def to_diffrax(self) -> diffrax.AbstractAdjoint:
        """The diffrax adjoint used with adaptive integrators."""


class Direct(AbstractAdjoint):
    """Plain reverse mode through one `lax.scan`: stores every step's residuals.

    Memory $O(n)$, no recomputation: the fastest gradient while it fits in memory, and the
    reference the other adjoints are tested against. Also supports forward mode
    (`jax.jvp`, `jax.jacfwd`). With adaptive integrators it maps to
    `diffrax.DirectAdjoint`.
    """

    def loop(self, body, carry, n):
        return _scan(body, carry, n)

    def to_diffrax(self):
        return diffrax.DirectAdjoint()


class Checkpointed(AbstractAdjoint):
    """Checkpointed reverse mode: $O(\\sqrt n)$ memory for one extra forward pass.

    The `n` steps run as an outer `lax.scan` over segments of `every` steps, each segment a
    `jax.checkpoint`-ed inner scan (Griewank and Walther, *Evaluating Derivatives*, 2008,
    ch. 12). Reverse mode stores the state at each segment boundary and recomputes one
    segment at a time, so it holds about `n / every + every` states; `every=None` picks
    $\\lceil\\sqrt n\\rceil$, which minimises that. With adaptive integrators it maps to
    `diffrax.RecursiveCheckpointAdjoint`.

    **Arguments:**

    - `every`: the segment length in steps (a positive int), or `None`.
    """

    every: int | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        if self.every is not None and (not isinstance(self.every, int) or self.every < 1):
            raise ValueError(f"Checkpointed(every=...) must be a positive int; got {self.every!r}.")

    def segment_length(self, n: int) -> int:
        if self.every is not None:
            return min(self.every, max(n, 1))
        return max(1, math.isqrt(max(n - 1, 0)) + 1)

    def loop(self, body, carry, n):
        if n == 0:
            return carry
        s = self.segment_length(n)
        n_seg, rem = divmod(n, s)
        # prevent_cse=False: inside a scan CSE cannot merge the recomputation anyway,
        # and the CSE barrier would slow the forward pass.
        segment = jax.checkpoint(lambda c: _scan(body, c, s), prevent_cse=False)
        carry = _scan(segment, carry, n_seg)
        if rem:
            carry = jax.checkpoint(lambda c: _scan(body, c, rem), prevent_cse=False)(carry)
        return carry

    def to_diffrax(self):
        return diffrax.RecursiveCheckpointAdjoint(checkpoints=self.every)
