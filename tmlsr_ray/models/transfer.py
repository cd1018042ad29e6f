"""How a batch of frames crosses to the device, through the network, and back, in passes.

On a CPU the passes simply run one after the other (:class:`DirectPasses`). On a GPU
(:class:`StagedPasses`) every copy goes through page-locked host buffers kept for reuse
(:class:`PinnedPool`: locking pages costs more than the copy through them, and only page-locked
memory lets a copy run asynchronously), on copy streams of its own, ordered by CUDA events: the
upload of pass k+1 and the download of pass k-1 run while pass k computes, and the host copy of
a finished pass into the output runs while the GPU works on the next one.
"""

from __future__ import annotations

from typing import Callable, List, Optional, Tuple

import numpy as np
import torch

Compute = Callable[[torch.Tensor], torch.Tensor]  # (n, H, W, C) samples → (n, H', W', C) results, same device
Key = Tuple[Tuple[int, ...], torch.dtype]


def stage(name: str):
    """Names a step in profiler traces (bench/frames.py --profile groups the time by these)."""
    return torch.profiler.record_function(f"tmlsr.{name}")


def pass_slices(count: int, per_pass: int) -> List[slice]:
    return [slice(start, min(start + per_pass, count)) for start in range(0, count, per_pass)]


class PinnedPool:
    """Host buffers by (shape, dtype), handed out again once given back. A buffer given back
    with the event of the copy still reading it is handed out only after that copy ends. Free
    buffers beyond ``max_bytes`` are released, least recently given back first: into torch's own
    cache of page-locked memory, which hands them out again for sizes that round up to the same
    power of two and never returns them to the system: a replica's page-locked memory stays at
    the peak it reached (``torch.cuda.host_memory_stats()`` shows it)."""

    def __init__(self, pin: bool = True, max_bytes: int = 2 << 30):
        self._pin = pin
        self._max_bytes = max_bytes
        self._free: List[Tuple[Key, torch.Tensor, object]] = []  # oldest first
        self._free_bytes = 0
        self.allocated = 0  # buffers made so far: stays flat while shapes repeat

    def take(self, shape, dtype: torch.dtype) -> torch.Tensor:
        key = (tuple(shape), dtype)
        for index, (held, buffer, ready) in enumerate(self._free):
            if held == key:
                del self._free[index]
                self._free_bytes -= _nbytes(buffer)
                if ready is not None:
                    ready.synchronize()
                return buffer
        self.allocated += 1
        return torch.empty(key[0], dtype=dtype, pin_memory=self._pin)

    def give(self, buffer: torch.Tensor, ready=None) -> None:
        """``ready``: an event after which nothing reads the buffer any more (None: already so)."""
        self._free.append(((tuple(buffer.shape), buffer.dtype), buffer, ready))
        self._free_bytes += _nbytes(buffer)
        while self._free_bytes > self._max_bytes:
            _, dropped, ready = self._free.pop(0)
            if ready is not None:
                ready.synchronize()
            self._free_bytes -= _nbytes(dropped)

    @property
    def free_bytes(self) -> int:
        return self._free_bytes


class DirectPasses:
    """The CPU path: each pass computes on the host arrays in place of a copy."""

    def run(self, host: np.ndarray, per_pass: int, compute: Compute, out_dtype) -> np.ndarray:
        pieces = [compute(torch.from_numpy(host[part])) for part in pass_slices(len(host), per_pass)]
        out = pieces[0] if len(pieces) == 1 else torch.cat(pieces)
        return out.numpy().astype(out_dtype, copy=False)


class StagedPasses:
    """Passes overlapped through pinned staging buffers (see the module's docstring). Runs on a
    CPU too, without streams or page-locking, which is how the tests check its bookkeeping."""

    def __init__(self, device: torch.device, pool: Optional[PinnedPool] = None):
        cuda = device.type == "cuda"
        self._device = device
        self._cuda = cuda
        self.pool = pool or PinnedPool(pin=cuda)
        self._upload_stream = torch.cuda.Stream(device) if cuda else None
        self._download_stream = torch.cuda.Stream(device) if cuda else None

    def run(self, host: np.ndarray, per_pass: int, compute: Compute, out_dtype) -> np.ndarray:
        parts = pass_slices(len(host), per_pass)
        output, landing = None, None
        upload = self._upload(host[parts[0]])
        for index, part in enumerate(parts):
            batch, uploaded = upload
            # The next pass crosses while this one computes.
            upload = self._upload(host[parts[index + 1]]) if index + 1 < len(parts) else None
            result, computed = self._compute(batch, uploaded, compute)
            if output is None:
                output = np.empty((len(host), *result.shape[1:]), out_dtype)
            downloaded = self._download(result, computed)
            del batch, result  # their device memory goes back once the streams are done with it
            if landing is not None:
                self._land(output[landing[0]], *landing[1])  # the host copies while this pass computes
            landing = (part, downloaded)
        self._land(output[landing[0]], *landing[1])
        return output

    def _upload(self, frames: np.ndarray):
        staging = self.pool.take(frames.shape, _torch_dtype(frames.dtype))
        with stage("stage_in"):
            staging.copy_(torch.from_numpy(frames))
        with torch.cuda.stream(self._upload_stream):
            batch = staging.to(self._device, non_blocking=True, copy=True)
            uploaded = _record(self._upload_stream)
        self.pool.give(staging, uploaded)
        return batch, uploaded

    def _compute(self, batch: torch.Tensor, uploaded, compute: Compute):
        stream = torch.cuda.current_stream(self._device) if self._cuda else None
        if stream is not None:
            stream.wait_event(uploaded)
            batch.record_stream(stream)  # allocated on the upload stream, freed after this one uses it
        result = compute(batch).contiguous()
        return result, _record(stream)

    def _download(self, result: torch.Tensor, computed):
        staging = self.pool.take(result.shape, result.dtype)
        with torch.cuda.stream(self._download_stream):
            if self._download_stream is not None:
                self._download_stream.wait_event(computed)
                result.record_stream(self._download_stream)
            staging.copy_(result, non_blocking=True)
            copied = _record(self._download_stream)
        return staging, copied

    def _land(self, out: np.ndarray, staging: torch.Tensor, copied) -> None:
        if copied is not None:
            copied.synchronize()
        with stage("land"):
            if out.dtype == staging.numpy().dtype:
                torch.from_numpy(out).copy_(staging)  # torch copies with every thread
            else:
                out[...] = staging.numpy()  # int32 results into uint16 frames: numpy casts
        self.pool.give(staging)


def _record(stream):
    if stream is None:
        return None
    # blocking: the host thread waiting on it sleeps instead of spinning a core that the
    # replica's decoders and encoders need.
    event = torch.cuda.Event(blocking=True)
    event.record(stream)
    return event


def _nbytes(tensor: torch.Tensor) -> int:
    return tensor.numel() * tensor.element_size()


def _torch_dtype(dtype: np.dtype) -> torch.dtype:
    return torch.from_numpy(np.empty(0, dtype)).dtype
