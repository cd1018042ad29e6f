"""The device path every single-image network shares (Real-ESRGAN's, spandrel's): frames to the
device through reused pinned buffers on copy streams overlapping the model's own CUDA stream
(:mod:`~tmlsr_ray.models.transfer`), conversions and the resize there, passes sized to the free
memory, only the final size back over the bus. A backend supplies the network (``_forward``) and
what its batches may hold; a new single-image family subclasses :class:`FrameNetwork`."""

from __future__ import annotations

import contextlib
import functools
import logging
import math
from dataclasses import dataclass
from typing import Dict, Optional, Set, Tuple, Union

import numpy as np
import torch

from tmlsr_ray.models.base import TilingAdvice
from tmlsr_ray.models.device import (gpu_memory_bytes, host_memory_bytes, is_out_of_memory,
                                     release_cached_device_memory, select_device)
from tmlsr_ray.models.lanczos import Lanczos4
from tmlsr_ray.models.transfer import DirectPasses, StagedPasses, stage
from tmlsr_ray.models.yuv import Yuv420, Yuv420Frames, converts_like_swscale, rgb_to_yuv420, upright_rgb

logger = logging.getLogger(__name__)


# What one pass may take by the estimate: of the free GPU memory, or of the total (this replica's
# part) for a whole frame or a CPU's pass
PASS_SHARE = 0.5


# Bytes per output pixel a pass keeps in fp32 whatever the network's type: the network's output
# made float and the resized (or YUV) frame made from it, 3 channels each. Uncounted, a fp16
# SRVGGNetCompact x4 pass resized took 1.3 times its estimate (tests/models/test_frame_network.py
# measures every family).
FLOAT_OUTPUT_BYTES = 2 * 3 * 4


# On a CPU a pass's resident memory is more than its tensors' storage (frame_bytes): oneDNN's
# buffers, the allocator's arenas, the libraries a first pass sets up. Measured as what a fresh
# process's pass adds to its resident set (bench/pass_memory.py --resident, several sizes): a part
# whatever the size, then up to RESIDENT_PER_ESTIMATE times the estimate per pixel. Without them,
# ESRGAN, SPAN and OmniSR passes at 256x256 exceeded their estimates (ESRGAN 806 MiB against 624):
# on a small host, an out-of-memory kill.
CPU_PASS_FIXED_BYTES = 64 * 2**20
CPU_RESIDENT_PER_ESTIMATE = 2


def frame_bytes(height: int, width: int, scale: int, activations: int, element_bytes: int, num_feat: int = 64) -> int:
    """Device memory one frame takes in a pass, for a network keeping ``activations`` values
    alive per input pixel and feature channel."""
    per_output_pixel = 6 * element_bytes + FLOAT_OUTPUT_BYTES
    return (num_feat * activations * element_bytes + per_output_pixel * scale * scale) * height * width


@dataclass
class HalvedPass:
    """The pass of a frame size that ran out of device memory: the frames it takes now, the full
    passes that worked at that count, how many must before it doubles (on CUDA), and whether
    it was doubled and has not worked since."""
    frames: int
    wait: int
    passes_worked: int = 0
    grown: bool = False

    def halve(self, tried: int) -> int:
        """Half of ``tried`` frames from now on. A grown pass that ran out again waits twice as many
        passes before its next try: retried at a fixed interval, a count that always runs out
        (other work holding the card for good) cost an out-of-memory and a batch run again every
        interval while the model stayed loaded."""
        self.frames, self.passes_worked = tried // 2, 0
        if self.grown:
            self.grown, self.wait = False, 2 * self.wait
        return self.frames

    def worked(self, passes: int, first_wait: int) -> bool:
        """Counts ``passes`` that worked at :attr:`frames`; whether that made it double."""
        if passes and self.grown:  # it works: a later out-of-memory is another moment's load
            self.grown, self.wait = False, first_wait
        self.passes_worked += passes
        if self.passes_worked < self.wait:
            return False
        self.frames, self.passes_worked, self.grown = 2 * self.frames, 0, True
        return True


class FrameNetwork:
    """A loaded network on a device; implements :class:`~tmlsr_ray.models.base.SuperResolutionModel`.

    Subclasses call :meth:`_place` once, set ``name``, ``scale``, ``architecture``, ``compiled``,
    ``_activations`` and ``_num_feat``, and implement ``_forward``."""

    name: str
    scale: int
    architecture: str
    compiled: bool = False
    tiling: TilingAdvice = TilingAdvice.SUPPORTED  # how it takes tiles: see base.SuperResolutionModel
    _activations: int
    _num_feat: int = 64
    # Input pixels one GPU pass aims at: enough to fill the GPU (a 720p frame already does), few
    # enough that a batch splits into passes whose copies overlap each other's compute.
    pass_pixels: int = 2_000_000
    # Passes that work at a size's halved pass before the larger one is tried again on CUDA: the
    # out-of-memory may have come from a moment's load by other work on the card.
    passes_before_retry: int = 32

    def _place(self, device: str, dtype: torch.dtype, replicas_per_host: int = 1, gpu_share: float = 1.0) -> None:
        self._device = select_device(device)
        self._replicas_per_host = replicas_per_host
        self._gpu_share = gpu_share
        self.device = str(self._device)
        self._dtype = dtype
        self.dtype = str(dtype).removeprefix("torch.")
        self.half = dtype != torch.float32
        cuda = self._device.type == "cuda"
        # One CUDA stream per model: copies and kernels of this replica do not serialise with
        # other work on the device.
        self._cuda_stream = torch.cuda.Stream(self._device) if cuda else None
        self.passes = StagedPasses(self._device) if cuda else DirectPasses()
        self._resize = Lanczos4()
        self._halved: Dict[Tuple[int, int], HalvedPass] = {}  # (height, width) → its pass since one ran out
        self._sizes_tiled: Set[Tuple[int, int]] = set()  # (height, width) tiled against its advice
        if cuda:
            # A video's frames keep one shape, so cuDNN's one-off search for the fastest
            # convolution per shape pays for itself within the first batches.
            torch.backends.cudnn.benchmark = True
            if dtype == torch.float32:
                # fp32 is asked for as the reference: cuDNN would run its convolutions in TF32
                # (a 10-bit mantissa, no better than fp16) by default.
                torch.backends.cudnn.allow_tf32 = False

    def upscale(self, frames: np.ndarray) -> np.ndarray:
        return self._in_passes(np.ascontiguousarray(frames), frames.shape[1:3], self._float_pass, np.float32)

    def upscale_samples(self, frames: Union[np.ndarray, Yuv420Frames], target: Optional[Tuple[int, int]] = None,
                        yuv: Optional[Yuv420] = None) -> np.ndarray:
        """Integer RGB frames (N, H, W, 3), uint8 or uint16, to integer frames at ×scale, rounded
        as ``round(upscale(frames / top) * top)``, then resized to ``target`` = (width, height)
        where it runs when one is given (OpenCV's Lanczos-4 in torch), so only the final size
        crosses the bus. On a GPU the conversions run there: a quarter of the bytes cross the bus
        and the CPU does no per-pixel float work. Frames may come as the decoder's 4:2:0 planes
        (:class:`Yuv420Frames`), made RGB where the model runs. With ``yuv`` (and an even final
        size), the result is the encoder's 4:2:0 planes (N, H'·3/2, W') instead, as swscale would
        make them."""
        planar = frames if isinstance(frames, Yuv420Frames) else None
        host, size, sixteen_bit = _host_samples(frames)
        top = 65535.0 if sixteen_bit else 255.0
        width, height = target or (size[1] * self.scale, size[0] * self.scale)
        if yuv is not None and not converts_like_swscale(yuv, sixteen_bit, width, height):
            yuv = None  # RGB back: the encoder's swscale converts it
        out_dtype = np.dtype(np.uint16 if sixteen_bit else np.uint8) if yuv is None else \
            np.dtype(np.uint8 if yuv.bits == 8 else np.uint16)
        return self._in_passes(host, size, lambda batch: self._samples_pass(batch, top, target, yuv, planar),
                               out_dtype)

    def _in_passes(self, host: np.ndarray, size: Tuple[int, int], compute, out_dtype) -> np.ndarray:
        """``compute`` over the frames in passes of :meth:`frames_per_pass`; a pass out of device
        memory is run again with half the frames, and that size keeps the smaller passes (on CUDA
        until :meth:`_count_passes_at_cap` lifts them)."""
        per_pass = self.frames_per_pass(*size)
        while True:
            try:
                with torch.inference_mode(), self._stream_context():
                    out = self.passes.run(host, per_pass, compute, out_dtype)
                self._count_passes_at_cap(size, per_pass, len(host) // per_pass)  # the full ones
                return out
            except RuntimeError as exc:
                tried = min(per_pass, len(host))
                if tried <= 1 or not is_out_of_memory(exc):
                    raise
                # The activation estimate was short, or other work held the card: fewer frames per
                # pass for this size from now on (on CUDA until enough of them worked).
                per_pass = self._halved.setdefault(size, HalvedPass(tried, self.passes_before_retry)).halve(tried)
                logger.warning("%s: out of device memory at %s frames of %sx%s per pass; now %s",
                               self.name, tried, size[1], size[0], per_pass)
            # Out of the except block: its traceback would keep the failed pass's tensors alive.
            release_cached_device_memory()

    def _count_passes_at_cap(self, size: Tuple[int, int], per_pass: int, passes: int) -> None:
        """Counts ``passes`` that worked with ``size``'s capped frame count; on CUDA, after :attr:`passes_before_retry`
        of them (twice as many after each grown pass that ran out again) the cap doubles, back to
        the pass that ran out (which halves it again if it still does). Never on a CPU: there how
        many frames share a pass changes a transformer's pixels."""
        halved = self._halved.get(size)
        if self._device.type != "cuda" or halved is None or halved.frames != per_pass:
            return
        done = halved.passes_worked + passes
        if not halved.worked(passes, self.passes_before_retry):
            return
        self._pass_cap_lifted(*size)
        logger.info("%s: %s passes of %s frames of %sx%s worked; trying %s again", self.name, done, per_pass,
                    size[1], size[0], halved.frames)

    def _pass_cap_lifted(self, height: int, width: int) -> None:
        """What a backend does when frames of this size may take larger passes again."""

    def frames_per_pass(self, height: int, width: int) -> int:
        """How many frames of this size one forward pass may take: within half of the memory
        where the network runs (:meth:`_room_bytes`) by the architecture's activation estimate,
        and no more than a pass that ran out of memory; on CUDA also about ``pass_pixels`` input
        pixels."""
        halved = self._halved.get((height, width))
        cap = halved.frames if halved else 1 << 30
        per_frame = self._pass_bytes(height, width, 1) - self._pass_bytes(height, width, 0)
        fit = max(1, int((self._room_bytes() * PASS_SHARE - self._pass_bytes(height, width, 0)) // per_frame))
        if self._device.type != "cuda":
            return min(fit, cap)
        return max(1, min(fit, cap, self.pass_pixels // (height * width)))

    def fits_whole(self, height: int, width: int) -> bool:
        """Whether a frame of this size runs whole on the device, by the activation estimate
        (there, tiles would send float copies over the bus and resize on the host). On a CPU,
        no: the tiling settings decide there, which keeps the reference semantics."""
        return self._device.type == "cuda" and self.fits_in_memory(height, width)

    def fits_in_memory(self, height: int, width: int) -> bool:
        """Whether a frame of this size runs whole where the network runs, by the activation
        estimate against the device's total memory: whole or tiled changes the pixels, so the
        choice must not follow what other work leaves free at the moment (a run whole that then
        meets a full device is tiled by its caller)."""
        return self._pass_bytes(height, width, 1) <= self._total_bytes * PASS_SHARE

    def _pass_bytes(self, height: int, width: int, frames: int) -> int:
        """Memory a pass of ``frames`` frames of this size takes where the network runs, by the
        activation estimate: on a CPU, its resident memory (:data:`CPU_RESIDENT_PER_ESTIMATE`)."""
        one_frame = frame_bytes(height, width, self.scale, self._activations, self._dtype.itemsize, self._num_feat)
        if self._device.type == "cuda":
            return frames * one_frame
        return CPU_PASS_FIXED_BYTES + frames * math.ceil(one_frame * CPU_RESIDENT_PER_ESTIMATE)

    def was_tiled_at(self, height: int, width: int) -> bool:
        """Whether frames of this size were tiled against the model's advice (``tiling``
        discouraged) on this loaded model, which says so once per size."""
        return (height, width) in self._sizes_tiled

    def record_tiled_at(self, height: int, width: int) -> None:
        self._sizes_tiled.add((height, width))

    @functools.cached_property
    def _total_bytes(self) -> int:
        """The device's total memory, read once per loaded model: psutil and the cgroup files
        were read at every batch, and a container resized in place is seen at the model's next
        load. On a CPU this replica's share of the host's: replicas sharing a host each sized
        their passes to half of all of it (three took 1.5 times the host). On a GPU the part of
        the card this replica holds: two replicas on one card each ran whole what fits all of it,
        and ran out of memory (then tiled) whenever both did at once."""
        if self._device.type == "cuda":
            return int(gpu_memory_bytes(self._device) * self._gpu_share)
        return host_memory_bytes() // self._replicas_per_host

    def _room_bytes(self) -> int:
        """The memory passes are sized to: on CUDA the free memory, counting what torch's
        allocator keeps cached for reuse as free. On a CPU the host's total memory (this
        replica's share), not what is available at the moment: there whether a frame runs whole
        and how many frames share a pass change its pixels (a tiled SwinIR's seams; a
        transformer's batched products round by batch), so a busy host must not give another
        output than an idle one."""
        if self._device.type != "cuda":
            return self._total_bytes
        free, _ = torch.cuda.mem_get_info(self._device)
        return free + torch.cuda.memory_reserved(self._device) - torch.cuda.memory_allocated(self._device)

    def _float_pass(self, batch: torch.Tensor) -> torch.Tensor:
        """(n, H, W, 3) floats in [0, 1] → (n, H·s, W·s, 3) floats clamped to [0, 1]."""
        out = self._network(self._network_input(batch, 1.0))
        # A copy even in fp32: a CUDA-graph network's output is overwritten by its next pass,
        # which runs while this result is still being copied off the device. channels_last
        # output is NHWC in memory, so the permute is free.
        return out.to(torch.float32, copy=True).clamp_(0, 1).permute(0, 2, 3, 1)

    def _samples_pass(self, batch: torch.Tensor, top: float, target: Optional[Tuple[int, int]],
                      yuv: Optional[Yuv420] = None, planar: Optional[Yuv420Frames] = None) -> torch.Tensor:
        """(n, H, W, 3) integer samples, or planes of ``planar``'s layout → (n, H', W', 3) integer
        samples at ×scale or ``target``, or the (n, H'·3/2, W') planes of ``yuv``."""
        out = self._network(self._network_input(batch, top, planar)).float().clamp_(0, 1).mul_(top).round_()
        if target is not None and (out.shape[3], out.shape[2]) != tuple(target):
            with stage("resize"):
                out = self._resize(out, target).clamp_(0, top).round_()
        if yuv is not None:
            with stage("yuv"):
                return rgb_to_yuv420(out, top, yuv)
        return out.to(torch.int32 if top > 255 else torch.uint8).permute(0, 2, 3, 1)

    def _network_input(self, batch: torch.Tensor, top: float, planar: Optional[Yuv420Frames] = None) -> torch.Tensor:
        if planar is not None:
            with stage("rgb"):
                return upright_rgb(batch, planar).div_(top).to(self._dtype)
        batch = batch.permute(0, 3, 1, 2)
        if top == 1.0:
            return batch.to(self._dtype)
        # Scale in fp32 first: 16-bit samples overflow fp16 (its largest value is 65504).
        return batch.float().div_(top).to(self._dtype)

    def _network(self, batch: torch.Tensor) -> torch.Tensor:
        with stage("network"):
            return self._forward(batch)

    def _forward(self, batch: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) on the device → (N, 3, H·s, W·s)."""
        raise NotImplementedError

    def _stream_context(self):
        if self._cuda_stream is None:
            return contextlib.nullcontext()
        # The weights were moved (and converted) on the default stream: this stream waits for
        # that work, not just the host, before its first kernel reads them.
        self._cuda_stream.wait_stream(torch.cuda.default_stream(self._device))
        return torch.cuda.stream(self._cuda_stream)


def _host_samples(frames: Union[np.ndarray, Yuv420Frames]) -> Tuple[np.ndarray, Tuple[int, int], bool]:
    """(what crosses to the device, the frames' (height, width) upright, whether 16-bit)."""
    if isinstance(frames, Yuv420Frames):
        return np.ascontiguousarray(frames.planes), frames.size, False
    if frames.dtype == np.uint16:  # torch has no uint16 arithmetic on every device; int32 carries 0..65535
        return frames.astype(np.int32), frames.shape[1:3], True
    return np.ascontiguousarray(frames), frames.shape[1:3], False
