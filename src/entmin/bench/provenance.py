"""What a benchmark run really reads, as part of its key: the data's fingerprint, the corruption code and the
weights' sha256.

:func:`resolve` fills ``RunConfig.provenance`` from the files on this machine; the runner resolves every
configuration and refuses one whose recorded provenance differs from what it finds (a config resolved on
another machine, a weights file replaced in place, a test set in another order). Entries equal to the
built-in defaults are left out of the hash (:func:`significant_provenance`), so the stores written before
provenance existed keep their keys; anything else changes the key, and so is computed afresh.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ..data.corruptions import CORRUPTION_VERSION
from ..errors import DataError
from .config import RunConfig

__all__ = ["BUILTIN_PROVENANCE", "actual_provenance", "resolve", "significant_provenance"]

# The defaults the results of entmin 0.1 were computed from: Debian's dataset-fashion-mnist (fingerprint of
# its decoded test and train arrays), corruption code v1 with the procedural frost, the committed checkpoints.
BUILTIN_PROVENANCE = {
    "data": "e2efb7e7f0ea123bc576ce533c30a33bbf8716b9adeee502d6335dc78d70d94a",
    "corruptions": f"v{CORRUPTION_VERSION}-frost-procedural" if CORRUPTION_VERSION == 1 else "",
    "weights:cnn": "72f5d35c0c536263accd43a97e612b65d4f8d7c2d238acf369f7d5eb4e9f7b2d",
    "weights:vit": "a51208bee01083c6c1479f05a280823a83252f86bf93a027f763c106ea1554e8",
}


def significant_provenance(cfg: RunConfig) -> dict[str, str]:
    """The provenance entries of ``cfg`` that differ from the built-in defaults (what enters the hash)."""
    out = {}
    for key, value in cfg.provenance:
        default = BUILTIN_PROVENANCE.get(f"weights:{cfg.model}" if key == "weights" else key)
        if key in ("data", "corruptions") and cfg.dataset != "fmnist":   # the defaults are Debian's Fashion-MNIST
            default = None
        if value != default:
            out[key] = value
    return out


def actual_provenance(cfg: RunConfig, data_dir: str | Path | None = None, cache_dir: str | Path | None = None,
                      source: Any = None) -> tuple[tuple[str, str], ...]:
    """(key, value) pairs of what ``cfg`` would read on this machine (``source``: the run's DataSource, whose
    folder indexes are then reused by the run)."""
    from ..models.zoo import weights_fingerprint
    from .sources import DataSource

    source = source or DataSource(cfg.dataset, data_dir, cache_dir, cfg.class_list)
    prov = {"data": source.fingerprint(cfg)}
    if cfg.dataset in ("fmnist", "idx"):
        from ..data.corruptions import corruption_code

        prov["corruptions"] = corruption_code()
    weights = weights_fingerprint(cfg.model, cfg.weights)
    if weights is None:  # a built-in model's committed checkpoint: its recorded sha256 (verified on load)
        from ..models.checkpoints import CHECKPOINT_DIR, checkpoint_metadata

        weights = str(checkpoint_metadata(CHECKPOINT_DIR / f"fmnist_{cfg.model}.pt")["sha256"])
    prov["weights"] = weights
    return tuple(sorted(prov.items()))


def resolve(cfg: RunConfig, data_dir: str | Path | None = None, cache_dir: str | Path | None = None,
            source: Any = None) -> RunConfig:
    """``cfg`` with its provenance filled in from this machine; a config that already records a provenance
    must match it, or it is refused (its stored results were computed from something else)."""
    actual = actual_provenance(cfg, data_dir, cache_dir, source)
    if cfg.provenance:
        recorded, found = dict(cfg.provenance), dict(actual)
        diff = [k for k in sorted(set(recorded) | set(found)) if recorded.get(k) != found.get(k)]
        if diff:
            what = ", ".join(f"{k}: recorded {str(recorded.get(k))[:16]}..., found {str(found.get(k))[:16]}..."
                             for k in diff)
            raise DataError(f"configuration {cfg.label} ({cfg.model}, {cfg.dataset}) was resolved against "
                            f"other inputs than the ones here ({what}); re-resolve it to run on this data")
        return cfg
    return dataclasses.replace(cfg, provenance=actual)
