"""Label-free accuracy estimation: Weighted Flips and the AC / DoC / ATC / COT baselines."""
from .baselines import BASELINES, COT, AverageConfidence, AverageThresholdedConfidence, DifferenceOfConfidences
from .flips import FlipsConfig, PolynomialMap, flip_statistics, measure_flips

# The paper's maps for torchvision ResNet-50 on ImageNet (RDumb, 1000-image probe, 990 steps), in percent.
# Provenance: oripress/EntropyEnigma main.py @04ac3973 and the ICML'24 paper (App. B); wf_mixent_spec.md A4.
IMAGENET_RESNET50_PRESETS = {
    "weighted_quadratic": {"coefficients": [3.55553868e-4, -0.321445023, 75.6618580], "statistic": "weighted_flips"},
    "unweighted_linear": {"coefficients": [-0.10318, 83.552], "statistic": "flips"},
    "unweighted_quadratic": {"coefficients": [-1.0117e-5, -0.095941, 82.576], "statistic": "flips"},
}


def imagenet_preset(name: str = "weighted_quadratic") -> PolynomialMap:
    p = IMAGENET_RESNET50_PRESETS[name]
    return PolynomialMap(len(p["coefficients"]) - 1, p["coefficients"], scale=0.01)


__all__ = [
    "BASELINES",
    "COT",
    "IMAGENET_RESNET50_PRESETS",
    "AverageConfidence",
    "AverageThresholdedConfidence",
    "DifferenceOfConfidences",
    "FlipsConfig",
    "PolynomialMap",
    "flip_statistics",
    "imagenet_preset",
    "measure_flips",
]
