import numpy as np
import pytest

from .helpers import RHOS, lorenz_run


@pytest.fixture(scope="module")
def loop():
    """The reference: a Python loop of simulate, one member at a time."""
    return np.stack([np.asarray(lorenz_run(rho).ys) for rho in RHOS])
