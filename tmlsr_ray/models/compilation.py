"""``torch.compile`` of a network, once per replica, with the compilation time reported.

The compilation happens at the first call with a new input shape (``default`` compiles one
dynamic-shape graph, so later sizes mostly reuse it; ``reduce-overhead`` and ``max-autotune``
specialise on the shape, which a video's segments keep): that call is timed, logged and kept in
``compile_seconds``, so a bench or a replica's log shows what the first batch paid.
"""

from __future__ import annotations

import logging
import time
from typing import Dict, Tuple

import torch

from tmlsr_ray.models.base import compile_mode

logger = logging.getLogger(__name__)


class CompiledNetwork:
    """A network under ``torch.compile`` in one of the compile modes (not ``off``)."""

    def __init__(self, network: torch.nn.Module, mode: str, name: str):
        self.mode = mode
        self._name = name
        self._compiled = torch.compile(network, mode=None if mode == "default" else mode, dynamic=mode == "default")
        self.compile_seconds: Dict[Tuple[Tuple[int, ...], torch.dtype], float] = {}

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        key = (tuple(batch.shape), batch.dtype)
        if key in self.compile_seconds:
            return self._compiled(batch)
        start = time.perf_counter()
        out = self._compiled(batch)
        if out.is_cuda:
            torch.cuda.synchronize(out.device)  # once per shape: the time is the compilation's
        self.compile_seconds[key] = time.perf_counter() - start
        logger.info("%s: torch.compile (%s) for input %s took %.1f s", self._name, self.mode,
                    "x".join(map(str, key[0])), self.compile_seconds[key])
        return out


def compile_network(network: torch.nn.Module, mode, name: str):
    """The network itself for ``off`` (or False), else a :class:`CompiledNetwork`."""
    mode = compile_mode(mode)
    return network if mode == "off" else CompiledNetwork(network, mode, name)
