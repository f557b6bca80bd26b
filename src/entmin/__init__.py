"""entmin: entropy minimisation for test-time adaptation, accuracy estimation and training."""
from __future__ import annotations

from .objectives import DEM, EM, AdaDEM, MinEnt, MixEnt, cadf, dem, entropy, get_objective, gmc

__version__ = "0.1.0"
__all__ = [
           "DEM",
           "EM",
           "AdaDEM",
           "MinEnt",
           "MixEnt",
           "__version__",
           "cadf",
           "dem",
           "entropy",
           "get_objective",
           "gmc",
]
