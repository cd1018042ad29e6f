"""The one place that makes basicsr 1.4.2 importable with current torchvision.

basicsr 1.4.2 (and realesrgan 0.3.0 through it) imports ``torchvision.transforms.functional_tensor``,
which torchvision 0.17 renamed to ``_functional_tensor``. Every import of basicsr or realesrgan in
this project goes through :func:`import_architectures`, which registers the old name first.
"""

from __future__ import annotations

import sys
from typing import Tuple


def _register_functional_tensor_alias() -> None:
    name = "torchvision.transforms.functional_tensor"
    if name in sys.modules:
        return
    try:
        import torchvision.transforms.functional_tensor  # noqa: F401  (old torchvision)
    except ImportError:
        from torchvision.transforms import _functional_tensor

        sys.modules[name] = _functional_tensor


def import_architectures() -> Tuple[type, type]:
    """Returns (RRDBNet, SRVGGNetCompact)."""
    _register_functional_tensor_alias()
    from basicsr.archs.rrdbnet_arch import RRDBNet
    from realesrgan.archs.srvgg_arch import SRVGGNetCompact

    return RRDBNet, SRVGGNetCompact


__all__ = ["import_architectures"]
