"""A text progress bar on stderr, driven from inside compiled code by `jax.debug.callback`.

Contract: `ProgressBar` is host-side state (a label, a start time, the last fraction
drawn); compiled code reports a fraction done in `[0, 1]` through `bar.callback(frac)`,
which stages one `jax.debug.callback` and returns nothing. Reports may arrive out of order
(unordered callbacks) or more often than is useful: the bar only moves forward and redraws
at most every `min_interval` seconds, so reporting costs one host call per report and
nothing else. When progress is off, do not call `bar.callback` at all: then nothing is
staged and the compiled code is exactly what it would have been without a bar.

`saveat_fn(fn, bar, t0, t1)` wraps a `ds.SaveAt(fn=...)` function so that a long rollout
reports its progress at every save point (coarse granularity: `SaveAt(every=k)`).

```python
from diffsim._progress import ProgressBar, saveat_fn

bar = ProgressBar("solar system")
save = ds.SaveAt(every=100, fn=saveat_fn(lambda t, y: y, bar, t0=0.0, t1=t1))
traj = ds.simulate(system, y0, t1=t1, dt=dt, saveat=save)
bar.close()
```
"""

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

import jax


class ProgressBar:
    """`label [##########..........]  50%  1.2 s` on one line of `stream` (default stderr).

    **Arguments:**

    - `label`: what is running.
    - `stream`: where to draw (default `sys.stderr`, looked up at each draw).
    - `enabled`: `None` (default) draws only when the stream is a terminal; `True` always;
      `False` never (the bar still counts, so `close()` is harmless).
    - `width`: the number of cells in the bar.
    - `min_interval`: the shortest time between two redraws, in seconds.
    """

    def __init__(
        self,
        label: str,
        *,
        stream: TextIO | None = None,
        enabled: bool | None = None,
        width: int = 30,
        min_interval: float = 0.1,
    ):
        self.label = label
        self._stream = stream
        self._enabled = enabled
        self.width = width
        self.min_interval = min_interval
        self.done = 0.0
        self._start = time.perf_counter()
        self._last_draw = -float("inf")
        self._drawn = False

    @property
    def stream(self) -> TextIO:
        return sys.stderr if self._stream is None else self._stream

    @property
    def enabled(self) -> bool:
        if self._enabled is not None:
            return self._enabled
        isatty = getattr(self.stream, "isatty", None)
        return bool(isatty and isatty())

    def update(self, fraction: Any) -> None:
        """Host side: record `fraction` done (ignored if behind) and redraw if due."""
        fraction = min(max(float(fraction), 0.0), 1.0)
        if fraction <= self.done and self._drawn:
            return
        self.done = max(self.done, fraction)
        now = time.perf_counter()
        if now - self._last_draw >= self.min_interval or self.done >= 1.0:
            self._draw(now)

    def callback(self, fraction: Any) -> None:
        """Inside `jit`/`scan`: report `fraction` done (a traced scalar) to the host."""
        jax.debug.callback(self.update, fraction)

    def close(self) -> None:
        """Draw the final state and end the line."""
        if self._drawn or self.enabled:
            self._draw(time.perf_counter())
            print(file=self.stream, flush=True)
        self._drawn = False

    def _draw(self, now: float) -> None:
        self._last_draw = now
        if not self.enabled:
            return
        cells = round(self.done * self.width)
        bar = "#" * cells + "." * (self.width - cells)
        line = f"\r{self.label} [{bar}] {100 * self.done:3.0f}%  {now - self._start:.1f} s"
        print(line, end="", file=self.stream, flush=True)
        self._drawn = True


def saveat_fn(
    fn: Callable[[Any, Any], Any], bar: ProgressBar, *, t0: float, t1: float
) -> Callable[[Any, Any], Any]:
    """Wrap a `SaveAt(fn=...)` function so that each save reports `(t - t0) / (t1 - t0)`.

    **Arguments:**

    - `fn`: `fn(t, y) -> saved value` (`lambda t, y: y` to save whole states).
    - `bar`: the `ProgressBar` to drive.
    - `t0`, `t1`: the rollout's time span.

    **Returns:** `fn` with the report added; it saves exactly what `fn` saves.

    **Example:**

    ```python
    bar = ProgressBar("rollout")
    energy = saveat_fn(lambda t, y: system.energy(y), bar, t0=0.0, t1=1e5)
    traj = ds.simulate(system, y0, t1=1e5, dt=10.0, saveat=ds.SaveAt(every=100, fn=energy))
    bar.close()
    ```
    """
    span = float(t1) - float(t0)
    if not span > 0:
        raise ValueError(f"saveat_fn needs t1 > t0; got t0={t0!r}, t1={t1!r}.")

    def wrapped(t, y):
        bar.callback((t - t0) / span)
        return fn(t, y)

    return wrapped
