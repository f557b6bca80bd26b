"""Built-in models and committed source checkpoints."""
from .checkpoints import load_checkpoint, load_source_model, save_checkpoint, sha256_of
from .small import MODEL_NAMES, SmallCNN, SmallViT, build_model

__all__ = ["MODEL_NAMES", "SmallCNN", "SmallViT", "build_model", "load_checkpoint", "load_source_model",
           "save_checkpoint", "sha256_of"]
