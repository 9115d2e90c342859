"""Fitting: recover parameters from observed data by differentiating through a model
(usually a rollout), and multiple shooting. Built on `engine`; knows no particular system."""

from ._fit import FitResult as FitResult, fit as fit
from ._identifiability import IdentifiabilityWarning as IdentifiabilityWarning
from ._shooting import TrajectoryModel as TrajectoryModel
