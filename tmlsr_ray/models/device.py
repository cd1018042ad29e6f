"""Where a model runs (shared by every torch backend)."""

from __future__ import annotations

import torch


def select_device(preference: str) -> torch.device:
    if preference == "cuda" or (preference == "auto" and torch.cuda.is_available()):
        # Ray sets CUDA_VISIBLE_DEVICES to the replica's own GPU, so index 0 is ours.
        return torch.device("cuda", 0)
    return torch.device("cpu")
