"""Simulators inside ML models: training steps for Equinox models that contain a
simulator. The neural systems themselves (`HybridSystem`, `HybridODE`, `Policy`) are
systems and live in `systems`. Missing-physics discovery: `sparse_regression` finds the
few terms of a `Library` that explain a learned correction, as a `SparseModel` that can
replace the network."""

from ._library import Library as Library
from ._sparse import sparse_path as sparse_path, sparse_regression as sparse_regression
from ._sparse_model import SparseModel as SparseModel
from ._training import TrainStep as TrainStep, make_train_step as make_train_step
