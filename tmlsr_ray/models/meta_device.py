"""Building a network without its weights, to recognise a file (no Ray here).

Recognising a file means building the network its tensors describe and loading them strictly into
it: built on the ``meta`` device, its parameters take no memory and their random initialisation
no time, while the load still checks every key and shape. An AuraSR's 600M parameters, built for
real, cost the ingress seconds and GBs for each file it lists.
"""

from __future__ import annotations

import warnings
from typing import Callable, TypeVar

import torch

Built = TypeVar("Built")

# torch warns once per parameter that copying a file's tensor into a meta one does nothing: here
# that is the point (the load checks keys and shapes only).
warnings.filterwarnings("ignore", message=r".*copying from a non-meta parameter in the checkpoint to a meta parameter")


def built_on_meta(build: Callable[[], Built]) -> Built:
    """``build()`` with the tensors it makes on the meta device; built for real where it fails there:
    some constructors read a value back (transformers' drop-path rates, ``torch.linspace(...).item()``),
    which a meta tensor has none of. The meta device is this thread's only (a torch function mode),
    so a model loading on another thread meanwhile is built as usual."""
    try:
        with torch.device("meta"):
            return build()
    except Exception:  # a constructor that needs values; a file that does not fit fails again, for real
        return build()
