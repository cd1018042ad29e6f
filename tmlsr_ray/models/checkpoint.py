"""Reading a checkpoint's tensors, as data only (shared by every torch backend; no Ray here).

``torch.load(weights_only=True)`` never runs pickled code, and safetensors holds none. What either
says about a file it refuses is library advice (PyTorch's suggests loading it with
``weights_only=False``, which this service never does); the error names what the file is instead.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from tmlsr_ray.models.base import ModelError, file_suffix

_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def load_checkpoint(path: Path, what: str = "model file") -> Any:
    """The file's contents: a dict of tensors (safetensors), or whatever data ``torch.load`` reads
    with weights only (a state dict, or one nested under ``params_ema`` and the like)."""
    try:
        if file_suffix(path) == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch and safetensors raise many types for a broken file
        raise ModelError(f"cannot read {what} {path.name}: {unreadable_reason(exc)}") from exc


def unreadable_reason(exc: Exception) -> str:
    message = str(exc)
    if "Weights only load failed" in message:
        named = _GLOBAL.search(message)
        if named:
            return (f"it holds Python objects ({named.group(1)}), not only tensors; they are never loaded, "
                    f"since loading them could run code: save the network's state_dict instead")
        return "not a PyTorch checkpoint of tensors (an unknown or damaged pickle)"
    if "central directory" in message or "zip archive" in message or isinstance(exc, (EOFError, OSError)):
        return f"truncated or not a PyTorch checkpoint ({_first_line(message)})"
    if "safetensors" in type(exc).__module__ or "header" in message.lower():
        return f"not a safetensors file, or a damaged one ({_first_line(message)})"
    return f"not a PyTorch checkpoint ({type(exc).__name__}: {_first_line(message)})"


def _first_line(message: str, limit: int = 120) -> str:
    line = message.strip().splitlines()[0] if message.strip() else "no detail"
    return line if len(line) <= limit else line[: limit - 1] + "…"
