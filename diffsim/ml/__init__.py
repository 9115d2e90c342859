"""Simulators inside ML models: training steps for Equinox models that contain a
simulator. The neural systems themselves (`HybridSystem`, `HybridODE`, `Policy`) are
systems and live in `systems`."""

from ._training import TrainStep as TrainStep, make_train_step as make_train_step
