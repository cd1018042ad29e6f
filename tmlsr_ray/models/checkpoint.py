"""Reading a checkpoint's tensors, as data only (shared by every torch backend; no Ray here).

``torch.load(weights_only=True)`` never runs pickled code, and safetensors holds none. What either
says about a file it refuses is library advice (PyTorch's suggests loading it with
``weights_only=False``, which this service never does); the error names what the file is instead.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, BinaryIO, Dict, Iterator, Tuple

import torch

from tmlsr_ray.models.base import ModelError, file_suffix

_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")
# Keys trainers nest a network's tensors under; the averaged (EMA) weights first, as basicsr's
# RealESRGANer takes them when a file holds both.
WRAPPER_KEYS = ("params_ema", "params-ema", "params", "model_state_dict", "state_dict", "model", "net_g", "net")
# Prefixes every key gets from a wrapped network: DataParallel's, torch.compile's, old ESRGAN's.
WRAPPER_PREFIXES = ("module.", "_orig_mod.", "netG.")


def load_checkpoint(path: Path, what: str = "model file", mapped: bool = True) -> Any:
    """The file's contents: a dict of tensors (safetensors), or whatever data ``torch.load`` reads
    with weights only (a state dict, or one nested under ``params_ema`` and the like). ``mapped``:
    a PyTorch file's tensors mapped from the file (to list them), else each read into memory of
    its own (to keep them: a mapping's pages count in the process's memory while any is held)."""
    try:
        with open(path, "rb") as file:
            if _holds_safetensors(file, path):
                from safetensors.torch import load_file

                return load_file(str(path)) if mapped else dict(read_safetensors(path))
            if mapped and _zip_archive(file) and file_suffix(path) != ".safetensors":
                state = _mapped(path)
                if state is not None:
                    return state
            # The open file, not its name: torch.load reads a name ending in .safetensors as one.
            return torch.load(file, map_location="cpu", weights_only=True)
    except ModelError:  # already says what is wrong with the file
        raise
    except Exception as exc:  # torch and safetensors raise many types for a broken file
        raise ModelError(f"cannot read {what} {path.name}: {unreadable_reason(exc)}") from exc


def read_safetensors(path: Path) -> Iterator[Tuple[str, torch.Tensor]]:
    """A safetensors file's tensors read one at a time, in file order, each into memory of its
    own. Not ``load_file``: its tensors are the file mapped (privately), so a model keeping them
    kept the mapping, its weights changing with the file rewritten in place; and its pages count
    in the process's memory until the file's last tensor is dropped. The header is checked by
    safetensors first (offsets, sizes and the file's length agree), so none is trusted blindly."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt"):
        pass
    with open(path, "rb") as file:
        header_bytes = int.from_bytes(file.read(8), "little")
        header = json.loads(file.read(header_bytes))
        header.pop("__metadata__", None)
        for name, entry in sorted(header.items(), key=lambda item: item[1]["data_offsets"][0]):
            begin, end = entry["data_offsets"]
            tensor = torch.empty(entry["shape"], dtype=_safetensors_dtype(path, name, entry["dtype"]))
            file.seek(8 + header_bytes + begin)
            if file.readinto(tensor.reshape(-1).view(torch.uint8).numpy()) != end - begin:
                raise ModelError(f"safetensors file {path.name} is cut short (in tensor {name})")
            yield name, tensor


def _safetensors_dtype(path: Path, name: str, kind: str) -> torch.dtype:
    dtype = SAFETENSORS_DTYPES.get(kind)
    if dtype is None:
        raise ModelError(f"safetensors file {path.name} holds a tensor of type {kind} ({name}), which PyTorch has not")
    return dtype


# safetensors' type names (its Dtype enum) of the types PyTorch has.
SAFETENSORS_DTYPES = {"BOOL": torch.bool, "U8": torch.uint8, "I8": torch.int8, "I16": torch.int16,
                      "U16": torch.uint16, "I32": torch.int32, "U32": torch.uint32, "I64": torch.int64,
                      "U64": torch.uint64, "F16": torch.float16, "BF16": torch.bfloat16, "F32": torch.float32,
                      "F64": torch.float64, "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2}


# What torch says of a file cut short: a zip archive's (PyTorch 1.6 on), a legacy file's.
TRUNCATION_SIGNS = ("central directory", "zip archive", "unexpected EOF")
# How PyTorch's files start: a zip archive, or (before PyTorch 1.6) a pickle.
TORCH_HEADS = (b"PK\x03\x04", b"\x80")


def _holds_safetensors(file: BinaryIO, path: Path) -> bool:
    """Whether the file is safetensors (an 8-byte header length, then its JSON) by its contents,
    whatever its name says (a safetensors file saved as ``.pth``, a ``.pth`` renamed
    ``.safetensors``); by its name where its contents are neither format's."""
    head = file.read(9)
    file.seek(0)
    if head[8:9] == b"{":
        return True
    return not head.startswith(TORCH_HEADS) and file_suffix(path) == ".safetensors"


def _mapped(path: Path) -> Any:
    """The file's data mapped, not read: recognising a file lists its tensors, and a large one (the
    official SeedVR2 DiT, several GB) was read whole by every process that lists models. ``None``
    where torch cannot map it (``realesr-animevideov3.pth``: "Trying to resize storage that is
    not resizable"): it is read then."""
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:
        return None


def _zip_archive(file: BinaryIO) -> bool:
    """A PyTorch file of 1.6 on (a zip archive), which torch can map instead of reading."""
    head = file.read(len(TORCH_HEADS[0]))
    file.seek(0)
    return head == TORCH_HEADS[0]


def read_state_dict(path: Path, mapped: bool = True) -> Dict[str, torch.Tensor]:
    """The network's tensors in a checkpoint, however a trainer saved them: nested under one of
    :data:`WRAPPER_KEYS` beside its iteration count and optimizer state, or with a wrapper's
    prefix on every key (a compiled or DataParallel network's ``state_dict()``); ``mapped`` as
    :func:`load_checkpoint` takes it."""
    state = load_checkpoint(path, mapped=mapped)
    if isinstance(state, dict):
        state = next((state[key] for key in WRAPPER_KEYS if isinstance(state.get(key), dict)), state)
        if len(state) == 1 and isinstance(next(iter(state.values())), dict):
            state = next(iter(state.values()))
        tensors = {name: value for name, value in state.items() if isinstance(value, torch.Tensor)}
        if tensors:
            _refuse_dataless(path, tensors)
            return _without_wrapper_prefixes(tensors if mapped else _in_memory_of_their_own(tensors))
    raise ModelError(f"model file {path.name} holds no state dict")


def _in_memory_of_their_own(tensors: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Each tensor that is a view of a larger storage (a tool that saved a network as views of one
    flat buffer) copied out of it: a model keeps some of a file's tensors as they are (a network's
    biases), and one view kept the whole buffer alive beside the model's copies of the rest."""
    return {name: tensor.clone() if tensor.untyped_storage().nbytes() > tensor.nbytes else tensor
            for name, tensor in tensors.items()}


def _refuse_dataless(path: Path, tensors: Dict[str, torch.Tensor]) -> None:
    """ModelError for a file of tensors with shapes but no data: recognition builds networks on the
    meta device too, where its strict load would take such a file for a model its tasks cannot load."""
    dataless = next((name for name, tensor in tensors.items() if tensor.is_meta), None)
    if dataless is not None:
        raise ModelError(f"model file {path.name} holds tensors without data ({dataless}, …): it was saved "
                         "from a network on PyTorch's meta device, before its weights were loaded")


def _without_wrapper_prefixes(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    prefix = next((p for p in WRAPPER_PREFIXES if all(name.startswith(p) for name in state)), None)
    if prefix is None:
        return state
    return _without_wrapper_prefixes({name[len(prefix):]: tensor for name, tensor in state.items()})


def unreadable_reason(exc: Exception) -> str:
    message = str(exc)
    if "Weights only load failed" in message:
        named = _GLOBAL.search(message)
        if named:
            return (f"it holds Python objects ({named.group(1)}), not only tensors; they are never loaded, "
                    f"since loading them could run code: save the network's state_dict instead")
        return "not a PyTorch checkpoint of tensors (an unknown or damaged pickle)"
    if any(sign in message for sign in TRUNCATION_SIGNS) or isinstance(exc, (EOFError, OSError)):
        return f"truncated or not a PyTorch checkpoint ({first_lines(message)})"
    if "safetensors" in type(exc).__module__ or "header" in message.lower():
        return f"not a safetensors file, or a damaged one ({first_lines(message)})"
    return f"not a PyTorch checkpoint ({type(exc).__name__}: {first_lines(message)})"


def first_lines(message: str, count: int = 1, limit: int = 120) -> str:
    """The first ``count`` lines of a library's message as one line of at most ``limit``
    characters: what a listing's ``error`` and a 400 can hold (torch lists every tensor that does
    not fit a network, a line each)."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()][:count]
    line = " ".join(lines) or "no detail"
    return line if len(line) <= limit else line[: limit - 1] + "…"
