"""Compiled kernels behind the physics: all-pairs gravity on the CPU (C++ through
`jax.ffi`) and the GPU (Pallas), and a fused GPU ensemble step.

Contract: this part knows no physics and no use; `systems` call `gravity_pair_sum`, which
composes with every JAX transformation and picks a kernel per backend when XLA compiles
(see `_primitives.py`). Nothing here is public API: the public face is `NBody` and
`pair_sum`, which are as fast as these kernels make them.
"""

from ._primitives import gravity_pair_sum as gravity_pair_sum
