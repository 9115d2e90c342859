"""Compiled kernels behind the physics: all-pairs gravity on the CPU (C++ through
`jax.ffi`) and the GPU (Pallas), switched Lennard-Jones over all pairs or a neighbour list
on the CPU, and a fused GPU ensemble step.

Contract: this part knows no system and no use; `systems` call `gravity_pair_sum` and
`lennard_jones_pair_sum`, which compose with every JAX transformation and pick a kernel
per backend when XLA compiles (see `_primitives.py`, `_lennard_jones.py`, `_rules.py`).
Nothing here is public API: the public face is `NBody`, `LennardJones` and `pair_sum`,
which are as fast as these kernels make them.
"""

from ._lennard_jones import lennard_jones_pair_sum as lennard_jones_pair_sum
from ._primitives import gravity_pair_sum as gravity_pair_sum
