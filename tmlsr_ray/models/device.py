"""Where a model runs and in which number type (shared by every torch backend)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping, Tuple

import psutil
import torch

logger = logging.getLogger(__name__)
TORCH_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def select_device(preference: str) -> torch.device:
    if preference == "cuda" or (preference == "auto" and torch.cuda.is_available()):
        # Ray sets CUDA_VISIBLE_DEVICES to the replica's own GPU, so index 0 is ours.
        return torch.device("cuda", 0)
    return torch.device("cpu")


def select_dtype(preference: str, device: torch.device, held: Mapping[str, bool], network: str) -> torch.dtype:
    """The number type a network runs in. ``auto``: fp16 on a GPU where the network holds it,
    else bf16 where it holds that, else fp32; fp32 on a CPU (it matches the references there).
    fp16 stays the GPU default until bench/frames.py --dtype shows bf16 faster at the same
    quality. A half type the network does not hold is never used: it runs in fp32."""
    if preference == "auto":
        preference = next((d for d in ("fp16", "bf16") if held.get(d)), "fp32") if device.type == "cuda" else "fp32"
    if preference != "fp32" and not held.get(preference, False):
        logger.warning("%s does not hold %s; running it in fp32", network, preference)
        preference = "fp32"
    return TORCH_DTYPES[preference]


# What cuDNN, cuBLAS and the CUDA runtime say when an allocation of theirs fails: they raise a
# plain RuntimeError, where torch's own allocator raises OutOfMemoryError. cuDNN 9 renamed its
# status to CUDNN_STATUS_INTERNAL_ERROR_{HOST,DEVICE}_ALLOCATION_FAILED.
_OUT_OF_MEMORY_MESSAGES = ("out of memory", "CUDNN_STATUS_ALLOC_FAILED", "CUBLAS_STATUS_ALLOC_FAILED",
                           "_ALLOCATION_FAILED")


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether an error means the device ran out of memory (a smaller pass may still fit)."""
    return isinstance(exc, torch.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and any(m in str(exc) for m in _OUT_OF_MEMORY_MESSAGES))


def release_cached_device_memory() -> None:
    """Hands what torch's CUDA allocator keeps cached back to the device, after a run out of it."""
    if torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def total_memory_bytes(device: torch.device) -> int:
    """The memory of the device in all, a fixed fact of it (not what other work leaves free):
    a GPU's, or the host's (:func:`host_memory_bytes`)."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    return host_memory_bytes()


# Where a container's memory limit is read (cgroup v2, v1): inside one, psutil gives the host's.
CGROUP_MEMORY_LIMITS: Tuple[Path, ...] = (Path("/sys/fs/cgroup/memory.max"),
                                          Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"))


def host_memory_bytes() -> int:
    """The memory this process's host has in all: its total, or less where its container is
    limited (a pod of 8 GiB on a host of 256 GiB would size its passes to the host and be killed)."""
    total = psutil.virtual_memory().total
    for limit_file in CGROUP_MEMORY_LIMITS:
        try:
            limit = limit_file.read_text().strip()
        except OSError:
            continue
        if limit.isdigit():  # "max" (v2) or v1's huge number: no limit below the host's
            total = min(total, int(limit))
    return total
