"""Test-time prompt tuning (TPT, Shu et al. 2022) for CLIP-style models with a pluggable entropy objective
(dem_spec.md section 5): the entropy of the confidence-selected, view-averaged prediction is replaced by any
entmin objective on the log of the averaged probabilities."""
from __future__ import annotations

from .clip import CLIPLike, OpenCLIP
from .prompt import PromptLearner
from .tpt import TPT, confident_views, random_resized_crops

__all__ = ["TPT", "CLIPLike", "OpenCLIP", "PromptLearner", "confident_views", "random_resized_crops"]
