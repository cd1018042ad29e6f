"""Model files: name checks, discovery, loading by file type, and an LRU cache of loaded models."""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Callable, List, Optional

from tmlsr_ray.models.base import ModelError, SuperResolutionModel

MODEL_SUFFIXES = (".pth", ".gguf")


class ModelNameError(ValueError):
    """A model name that is not a plain file name, or names no file in the weights directory."""


def available_models(weights_dir: Path) -> List[str]:
    if not weights_dir.is_dir():
        return []
    return sorted(p.name for p in weights_dir.iterdir() if p.suffix in MODEL_SUFFIXES and p.is_file())


def resolve_model_path(weights_dir: Path, name: str) -> Path:
    """The file a model name stands for; refuses anything but a plain name of an existing file."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\x00" in name:
        raise ModelNameError(f"model must be a plain file name in the weights directory, got {name!r}")
    path = weights_dir / name
    if path.resolve().parent != weights_dir.resolve():
        raise ModelNameError(f"model must be a plain file name in the weights directory, got {name!r}")
    if not path.is_file():
        listing = ", ".join(available_models(weights_dir)) or "none"
        raise ModelNameError(f"model file {name!r} not found in the weights directory; available: {listing}")
    return path


def is_seedvr2(name: str) -> bool:
    return "seedvr2" in name.lower()


def load_model(path: Path, device: str = "auto", half: Optional[bool] = None,
               compile: bool = False) -> SuperResolutionModel:
    if path.suffix == ".pth":
        from tmlsr_ray.models.realesrgan import RealESRGANModel

        return RealESRGANModel(path, device=device, half=half, compile=compile)
    raise ModelError(f"no backend for model file {path.name} (supported here: .pth Real-ESRGAN models)")


class ModelCache:
    """Keeps the last ``capacity`` models used; loads each at most once at a time."""

    def __init__(self, capacity: int, loader: Callable[[Path], SuperResolutionModel]):
        self._capacity = capacity
        self._loader = loader
        self._models: "OrderedDict[Path, SuperResolutionModel]" = OrderedDict()
        self._lock = threading.Lock()

    def get(self, path: Path) -> SuperResolutionModel:
        with self._lock:
            model = self._models.get(path)
            if model is None:
                model = self._loader(path)
                self._models[path] = model
                while len(self._models) > self._capacity:
                    self._models.popitem(last=False)
            self._models.move_to_end(path)
            return model
