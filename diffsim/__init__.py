"""diffsim: differentiable physics simulation on JAX.

```python
import diffsim as ds
pendulum = ds.systems.Pendulum(length=1.0)
traj = ds.simulate(pendulum, pendulum.initial_state(1.0), t1=10.0, dt=0.01)
```

The public names are listed once, in `__init__.pyi`, and loaded on first use
(SPEC 1, `lazy_loader.attach_stub`): `import diffsim` does not import JAX, so the
`diffsim` command answers `--version`, `--help` and `list` at once, while `ds.simulate`
and the rest import what they need when first touched. Set `EAGER_IMPORT=1` to load
everything at import time (an import error then shows at once).
"""

import lazy_loader as _lazy

from ._version import __version__ as __version__

__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)
