"""Where a model runs and in which number type (shared by every torch backend)."""

from __future__ import annotations

import logging
from pathlib import Path, PurePosixPath
from typing import Iterator, List, Mapping, Optional

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


def gpu_memory_bytes(device: torch.device) -> int:
    """A GPU's memory in all, a fixed fact of the card (not what other work leaves free)."""
    return torch.cuda.get_device_properties(device).total_memory


def host_memory_bytes(root: Path = Path("/")) -> int:
    """The memory this process's host has in all: its total, or less where a cgroup of the
    process limits it (a pod of 8 GiB on a host of 256 GiB would size its passes to the host and
    be killed). ``root``: where /proc and /sys are read."""
    limits = (_cgroup_limit(path) for path in _cgroup_limit_files(root))
    return min([psutil.virtual_memory().total, *(limit for limit in limits if limit is not None)])


def _cgroup_limit_files(root: Path) -> List[Path]:
    """The memory limit files of this process's own cgroup and of each above it, cgroup v2's
    then v1's: the mount's root holds the limit only inside a container's cgroup namespace, not
    for a systemd unit or a container seeing the host's hierarchy."""
    mount = root / "sys" / "fs" / "cgroup"
    own_v2 = own_v1 = "/"
    for hierarchy, controllers, path in _own_cgroups(root):
        if hierarchy == "0" and not controllers:
            own_v2 = path
        elif "memory" in controllers.split(","):
            own_v1 = path
    return ([mount / folder / "memory.max" for folder in _self_and_above(own_v2)]
            + [mount / "memory" / folder / "memory.limit_in_bytes" for folder in _self_and_above(own_v1)])


def _own_cgroups(root: Path) -> Iterator[List[str]]:
    """(hierarchy, controllers, path) per line of /proc/self/cgroup; none where it is unread."""
    try:
        lines = (root / "proc" / "self" / "cgroup").read_text().splitlines()
    except OSError:
        return iter(())
    return (line.split(":", 2) for line in lines if line.count(":") >= 2)


def _self_and_above(cgroup: str) -> List[str]:
    """``/a/b`` → ``a/b``, ``a``, ``.``: the cgroup's folder and its ancestors' under the mount."""
    own = PurePosixPath("/", cgroup).relative_to("/")
    return [str(own), *(str(parent) for parent in own.parents)] if str(own) != "." else ["."]


def _cgroup_limit(limit_file: Path) -> Optional[int]:
    """A limit file's bytes (v1's "no limit" is a number past any host's memory); None for v2's
    "max" or no file."""
    try:
        limit = limit_file.read_text().strip()
    except OSError:
        return None
    return int(limit) if limit.isdigit() else None
