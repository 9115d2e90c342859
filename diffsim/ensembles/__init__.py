"""Ensembles: one simulation mapped over many members, with streaming statistics and
sampling designs. Built on `engine`; knows no particular system."""

from ._distributions import (
    AbstractDistribution as AbstractDistribution,
    HalfNormal as HalfNormal,
    LogNormal as LogNormal,
    LogUniform as LogUniform,
    Normal as Normal,
    Uniform as Uniform,
)
from ._ensemble import ensemble as ensemble
from ._histogram import (
    Histogram as Histogram,
    HistogramStats as HistogramStats,
    Quantiles as Quantiles,
)
from ._reducers import (
    AbstractReducer as AbstractReducer,
    Count as Count,
    CountStats as CountStats,
    MinMax as MinMax,
    MinMaxStats as MinMaxStats,
    Moments as Moments,
    MomentStats as MomentStats,
)
from ._refill_batch import Refill as Refill
from ._result import (
    MAX_REPORTED_FAILURES as MAX_REPORTED_FAILURES,
    EnsembleResult as EnsembleResult,
)
from ._sampling import (
    AbstractDesign as AbstractDesign,
    LatinHypercube as LatinHypercube,
    MonteCarlo as MonteCarlo,
    Sobol as Sobol,
    grid as grid,
    sample as sample,
)
