"""Inference: posteriors of a model's parameters given data, by NUTS through the
simulator. Built on `engine`, `fitting` (the start, the parameter selection) and
`ensembles` (chains as an ensemble, the distributions); knows no particular system."""

from ._checks import SamplingWarning as SamplingWarning
from ._likelihood import (
    AbstractLikelihood as AbstractLikelihood,
    GaussianNoise as GaussianNoise,
    LogNormalNoise as LogNormalNoise,
    StudentTNoise as StudentTNoise,
)
from ._posterior import posterior as posterior
from ._result import Posterior as Posterior
