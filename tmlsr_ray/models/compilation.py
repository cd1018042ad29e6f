"""``torch.compile`` of a network, once per replica, with the compilation time reported.

The compilation happens at the first call with a new input shape (``default`` compiles one
dynamic-shape graph, so later sizes mostly reuse it; ``reduce-overhead`` and ``max-autotune``
specialise on the shape, which a video's segments keep): that call is timed, logged and kept in
``compile_seconds``, so a bench or a replica's log shows what the first batch paid.

In the shape-specialising modes a pass with fewer frames than one before it at the same frame
size (a segment's last) is padded up to that count: one graph per frame size, where each new
count would compile again (minutes under ``max-autotune``, and torch stops compiling a function
after a few recompilations). A count that ran out of memory is padded to no more: a pass halved
after it compiles at its own count, once, where padded back it ran out again at every halving,
until the model lets passes of that size grow again (:meth:`CompiledNetwork.may_pad_again`).
"""

from __future__ import annotations

import logging
import time
from typing import Dict, Set, Tuple

import torch

from tmlsr_ray.models.base import compile_mode
from tmlsr_ray.models.device import is_out_of_memory

logger = logging.getLogger(__name__)


class CompiledNetwork:
    """A network under ``torch.compile`` in one of the compile modes (not ``off``)."""

    def __init__(self, network: torch.nn.Module, mode: str, name: str):
        self.mode = mode
        self._name = name
        self._static = mode != "default"
        self._compiled = torch.compile(network, mode=None if mode == "default" else mode, dynamic=not self._static)
        self.compile_seconds: Dict[Tuple[Tuple[int, ...], torch.dtype], float] = {}
        # Compiled shapes that ran out of memory: a pass halved after it is not padded back to them.
        self._out_of_memory_at: Set[Tuple[Tuple[int, ...], torch.dtype]] = set()

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        frames = len(batch)
        if self._static:
            batch = self._padded(batch)
        key = (tuple(batch.shape), batch.dtype)
        if key in self.compile_seconds:
            try:
                return self._compiled(batch)[:frames]
            except RuntimeError as exc:
                if is_out_of_memory(exc):
                    self._out_of_memory_at.add(key)
                raise
        start = time.perf_counter()
        out = self._compiled(batch)
        if out.is_cuda:
            torch.cuda.synchronize(out.device)  # once per shape: the time is the compilation's
        self.compile_seconds[key] = time.perf_counter() - start
        logger.info("%s: torch.compile (%s) for input %s took %.1f s", self._name, self.mode,
                    "x".join(map(str, key[0])), self.compile_seconds[key])
        return out[:frames]

    def may_pad_again(self, height: int, width: int) -> None:
        """Passes of inputs this size may again be padded to counts that ran out of memory: the
        model tries larger passes again after a run of smaller ones that worked."""
        self._out_of_memory_at = {key for key in self._out_of_memory_at if key[0][2:] != (height, width)}

    def _padded(self, batch: torch.Tensor) -> torch.Tensor:
        """The batch with zero frames after it up to the most a compiled pass of its size had."""
        frames = max((shape[0] for shape, dtype in self.compile_seconds.keys() - self._out_of_memory_at
                      if shape[1:] == batch.shape[1:] and dtype == batch.dtype), default=len(batch))
        if frames <= len(batch):
            return batch
        # The same memory layout as the batch: the compiled graph is specialised on strides too.
        layout = torch.channels_last if batch.dim() == 4 and not batch.is_contiguous() and \
            batch.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
        filler = batch.new_zeros((frames - len(batch), *batch.shape[1:]))
        return torch.cat([batch, filler]).contiguous(memory_format=layout)


def compile_network(network: torch.nn.Module, mode, name: str):
    """The network itself for ``off`` (or False), else a :class:`CompiledNetwork`."""
    mode = compile_mode(mode)
    return network if mode == "off" else CompiledNetwork(network, mode, name)
