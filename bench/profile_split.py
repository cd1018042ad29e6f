"""Where the model path's time goes, from a torch.profiler trace: device time by kind of work
(copies each way, convolutions, the network's elementwise kernels, conversions, the resize),
host time by kind (page-locking memory, host copies, waiting for the GPU), and how busy the GPU
was. Kernels are attributed through the ``tmlsr.*`` ranges the model path marks
(tmlsr_ray/models/transfer.py ``stage``), else by their names."""

from __future__ import annotations

import re
import time
from collections import defaultdict
from typing import Callable, Dict, Iterable, List, Optional, Tuple

from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

DEVICE_CATEGORIES = ("H2D copies", "D2H copies", "convolutions/GEMM", "network elementwise (activations, shuffle)",
                     "conversions/elementwise", "resize")
HOST_CATEGORIES = ("pinned alloc", "host copies", "host waits for the GPU")
CONVOLUTION = re.compile(r"conv|gemm|xmma|cutlass|cudnn|winograd|fft|implicit|wgmma|hmma|nchwToNhwc|nhwcToNchw", re.I)
HOST_ALLOC = {"cudaHostAlloc", "cudaMallocHost", "cudaHostRegister", "cudaFreeHost", "cudaHostUnregister"}
HOST_WAITS = {"cudaEventSynchronize", "cudaStreamSynchronize", "cudaDeviceSynchronize"}
HOST_COPY_STAGES = {"tmlsr.stage_in", "tmlsr.land"}


def profile_run(run: Callable[[], None], sync: Callable[[], None], cuda: bool) -> Tuple[profile, float]:
    """Profiles ``run()`` (finished by ``sync()``); returns the profiler and the wall seconds."""
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        start = time.perf_counter()
        run()
        sync()
        wall = time.perf_counter() - start
    return prof, wall


def time_split(prof: profile) -> Dict[str, float]:
    """Milliseconds per category (device categories may overlap each other and the host's)."""
    events = list(prof.events())
    totals: Dict[str, float] = defaultdict(float)
    # Each kernel and copy names the operator that launched it: a frontend (CPU) event's id.
    launchers = {e.id: e for e in events if e.device_type == DeviceType.CPU and e.linked_correlation_id == 0}
    # The profiler mirrors record_function ranges onto the device as user annotations: spans, not work.
    device = [e for e in events if e.device_type == DeviceType.CUDA and not getattr(e, "is_user_annotation", False)]
    for event in device:
        stage = _stage(launchers.get(event.linked_correlation_id))
        totals[_device_category(event.name, stage)] += event.time_range.elapsed_us() / 1000
    cpu = [e for e in events if e.device_type == DeviceType.CPU]
    allocs = [e for e in cpu if e.name in HOST_ALLOC]
    totals["pinned alloc"] = sum(e.time_range.elapsed_us() for e in allocs) / 1000
    totals["host waits for the GPU"] = sum(e.time_range.elapsed_us() for e in cpu if e.name in HOST_WAITS) / 1000
    totals["host copies"] = sum(_without(e, allocs) for e in cpu if e.name in HOST_COPY_STAGES) / 1000
    if not device:  # a CPU run: the network and the resize ran on the host
        for name in ("network", "resize"):
            totals[name] = sum(e.time_range.elapsed_us() for e in cpu if e.name == f"tmlsr.{name}") / 1000
    totals["GPU busy (union)"] = _union_ms(device)
    totals["GPU kernels busy (union)"] = _union_ms([e for e in device if not _is_copy(e.name)])
    return dict(totals)


def format_split(title: str, split: Dict[str, float], wall_s: float, frames: int) -> str:
    wall_ms = wall_s * 1000
    lines = [f"{title}: {frames} frames in {wall_ms:.1f} ms ({frames / wall_s:.2f} frames/s)",
             f"  {'category':44s} {'ms':>10s} {'ms/frame':>9s} {'% wall':>7s}"]
    order = DEVICE_CATEGORIES + ("network", "resize") + HOST_CATEGORIES + (
        "GPU busy (union)", "GPU kernels busy (union)")
    for name in dict.fromkeys(order):
        if name in split and (split[name] or name in HOST_CATEGORIES):
            value = split[name]
            lines.append(f"  {name:44s} {value:10.2f} {value / frames:9.3f} {100 * value / wall_ms:6.1f}%")
    return "\n".join(lines)


def kernel_table(prof: profile, rows: int = 30) -> str:
    averages = prof.key_averages()
    for key in ("self_device_time_total", "self_cuda_time_total", "self_cpu_time_total"):
        try:
            return averages.table(sort_by=key, row_limit=rows)
        except (AttributeError, KeyError, ValueError):
            continue
    return str(averages)


def _stage(event) -> Optional[str]:
    while event is not None:
        if event.name.startswith("tmlsr."):
            return event.name
        event = event.cpu_parent
    return None


def _device_category(name: str, stage: Optional[str]) -> str:
    if "HtoD" in name:
        return "H2D copies"
    if "DtoH" in name:
        return "D2H copies"
    if stage == "tmlsr.resize":
        return "resize"
    if CONVOLUTION.search(name):
        return "convolutions/GEMM"
    if stage == "tmlsr.network" or name.startswith("triton_"):
        return "network elementwise (activations, shuffle)"
    return "conversions/elementwise"


def _is_copy(name: str) -> bool:
    return name.startswith("Memcpy") or name.startswith("Memset")


def _without(event, allocs: Iterable) -> float:
    """The event's microseconds less the page-locking calls inside it."""
    start, end = event.time_range.start, event.time_range.end
    inside = sum(a.time_range.elapsed_us() for a in allocs
                 if a.thread == event.thread and start <= a.time_range.start and a.time_range.end <= end)
    return event.time_range.elapsed_us() - inside


def _union_ms(events: List) -> float:
    spans = sorted((e.time_range.start, e.time_range.end) for e in events)
    total, current_start, current_end = 0.0, None, None
    for start, end in spans:
        if current_end is None or start > current_end:
            if current_end is not None:
                total += current_end - current_start
            current_start, current_end = start, end
        else:
            current_end = max(current_end, end)
    if current_end is not None:
        total += current_end - current_start
    return total / 1000
