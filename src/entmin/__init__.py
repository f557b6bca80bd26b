"""entmin: entropy minimisation for test-time adaptation, accuracy estimation and training."""
from __future__ import annotations

from .objectives import AdaDEM, DEM, EM, MinEnt, MixEnt, cadf, dem, entropy, get_objective, gmc

__version__ = "0.1.0"
__all__ = ["AdaDEM", "DEM", "EM", "MinEnt", "MixEnt", "cadf", "dem", "entropy", "get_objective", "gmc",
           "__version__"]
