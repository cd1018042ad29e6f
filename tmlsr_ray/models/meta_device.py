"""Building a network without its weights (no Ray here).

A network whose parameters are on the ``meta`` device takes no memory for them and no time for
their random initialisation, while a strict load still checks every key and shape of a file
against it (to recognise the file), and a load with ``assign=True`` gives it the file's tensors as
its weights (to run it with one copy of them). An AuraSR's 600M parameters, built for real, cost
the ingress seconds and GBs for each file it lists.
"""

from __future__ import annotations

import threading
import warnings
from contextlib import contextmanager
from typing import Callable, Iterator, TypeVar

import torch
from torch.nn.modules.module import register_module_parameter_registration_hook
from torch.overrides import TorchFunctionMode

Built = TypeVar("Built")

# torch warns once per parameter that copying a file's tensor into a meta one does nothing: here
# that is the point (the load checks keys and shapes only).
warnings.filterwarnings("ignore", message=r".*copying from a non-meta parameter in the checkpoint to a meta parameter")


def built_on_meta(build: Callable[[], Built]) -> Built:
    """``build()`` with its parameters on the meta device (:func:`parameters_on_meta`); built for
    real where it fails there (a constructor that reads a parameter's value back)."""
    try:
        with parameters_on_meta():
            return build()
    except Exception:  # a constructor that needs values; a file that does not fit fails again, for real
        return build()


class _ParameterPlacement(threading.local):
    """Whether the parameters this thread registers go to the meta device."""

    on_meta = False


# One hook for the process, registered once and never removed: adding or removing a process-wide
# hook while another thread registered a parameter (iterating the hooks) failed that thread's
# network with "OrderedDict mutated during iteration" (a second model loading, a file recognised).
_PLACEMENT = _ParameterPlacement()


def _on_meta_where_placed(module: torch.nn.Module, name: str, parameter: torch.nn.Parameter):
    if not _PLACEMENT.on_meta or type(parameter) is not torch.nn.Parameter:
        return None  # another thread's network, or a lazy module's uninitialised parameter
    return torch.nn.Parameter(parameter.to("meta"), requires_grad=parameter.requires_grad)


register_module_parameter_registration_hook(_on_meta_where_placed)


@contextmanager
def parameters_on_meta() -> Iterator[None]:
    """The parameters this thread makes go to the meta device; buffers are made for real: those a
    constructor computes (SwinIR's relative position index, OmniSR's, attention masks) may be in
    no file, and a file's buffers are small. A model loading on another thread meanwhile is
    built as usual."""
    placed_before = _PLACEMENT.on_meta
    _PLACEMENT.on_meta = True
    try:
        with _MadeOnMeta():
            yield
    finally:
        _PLACEMENT.on_meta = placed_before


class _MadeOnMeta(TorchFunctionMode):
    """``torch.empty`` on meta where no device is named, as layers make their weights before they
    are initialised: a weight made on the CPU and moved to meta at registration cost nothing
    resident, but its freed memory raised glibc's mmap threshold, so the constructor's buffers and
    the load's work came from the heap and stayed resident when freed (+30 MiB of a 196 MiB SwinIR).
    A value a constructor sets as a meta parameter's ``.data`` goes to meta too (IPT's mean shift
    sets its weights so): torch refused it as of another tensor type, and the network was built
    for real, random weights and all."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.empty and kwargs.get("device") is None:
            kwargs = {**kwargs, "device": "meta"}
        elif func == torch.Tensor.data.__set__ and args[0].is_meta and not args[1].is_meta:
            args = (args[0], args[1].to("meta"))
        return func(*args, **kwargs)


def holds_meta_tensors(network: torch.nn.Module) -> bool:
    """Whether any of the network's parameters, buffers or tensor attributes has no data: one a
    file's load did not fill, or one a constructor computed from a parameter still on meta."""
    held = [tensor for module in network.modules() for tensor in vars(module).values() if isinstance(tensor, torch.Tensor)]
    return any(tensor.is_meta for tensor in [*network.parameters(), *network.buffers(), *held])
