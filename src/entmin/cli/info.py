"""`entmin info`: versions, device, data location, committed checkpoints, which optional extras work here."""
from __future__ import annotations

import json

import typer

from .common import handle_errors

__all__ = ["extras_status", "register"]

EXTRAS = ("optuna", "ray", "timm", "torchvision", "imagecorruptions", "stable-baselines3", "minigrid",
          "open_clip_torch")
_MODULES = {"stable-baselines3": "stable_baselines3", "open_clip_torch": "open_clip"}


def extras_status() -> dict[str, str | None]:
    """Version of each optional package, None if absent, or "broken: <reason>" if installed but not importable
    here (checked by importing it, not by reading its metadata; imagecorruptions is only used for its frost
    photos, so finding those is what counts)."""
    import importlib
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for pkg in EXTRAS:
        try:
            v = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
            continue
        if pkg == "imagecorruptions":
            from ..data.corruptions import frost_source

            out[pkg] = v if frost_source() != "procedural" else f"{v} (frost photos not used)"
            continue
        try:
            module = _MODULES.get(pkg, pkg)
            if pkg in ("timm", "torchvision", "open_clip_torch"):   # all three import torchvision: the shim
                from ..models.zoo import import_vision_library

                import_vision_library(module)
            else:
                importlib.import_module(module)
            out[pkg] = v
        except Exception as e:
            out[pkg] = f"broken: {str(e).splitlines()[0][:160]}"
    return out


def register(app: typer.Typer) -> None:
    @app.command()
    @handle_errors
    def info() -> None:
        """Versions, device, data location, committed checkpoints and the optional extras that work here."""
        import torch

        from .. import __version__
        from ..data.cache import default_cache_dir
        from ..data.corruptions import corruption_code
        from ..models.checkpoints import CHECKPOINT_DIR

        d = {"entmin": __version__, "torch": torch.__version__, "cuda": torch.cuda.is_available()}
        try:
            from ..data.fashion_mnist import find_data_dir

            d["fashion_mnist"] = str(find_data_dir())
        except FileNotFoundError as e:
            d["fashion_mnist"] = f"missing: {e}"
        d["cache"] = str(default_cache_dir())
        d["corruption_code"] = corruption_code()
        d["checkpoints"] = {p.name: _headline(json.loads(p.read_text())) for p in sorted(CHECKPOINT_DIR.glob("*.json"))}
        d["optional"] = extras_status()
        print(json.dumps(d, indent=2))


def _headline(meta: dict) -> str | float | None:
    """A checkpoint's clean score, whatever its task calls it (accuracy, mIoU, zero-shot accuracy)."""
    for key, name in (("clean_test_accuracy", None), ("clean_test_miou", "mIoU"),
                      ("zero_shot_clean_accuracy", "zero-shot accuracy")):
        if key in meta:
            return meta[key] if name is None else f"{name} {meta[key]:.4f}"
    return None

