"""GGUF checkpoints: read tensors with the ``gguf`` package, dequantize them in torch (no Ray).
Float safetensors and torch checkpoints are read into the same packed form (as ggml's F32/F16/BF16).

The kernels run on whatever device the packed bytes are on, so a quantized model can stay packed in
GPU memory and be expanded layer by layer. Each kernel follows the arithmetic order of
``gguf.quants.dequantize`` (the reference), so fp32 results are bit-identical to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Dict, Iterable, Iterator, Optional, Tuple

import gguf
import numpy as np
import torch

from tmlsr_ray.models.base import ModelError, file_suffix
from tmlsr_ray.models.checkpoint import load_checkpoint, read_safetensors

QK_K = 256
NAME_PREFIX = "model.diffusion_model."
Q = gguf.GGMLQuantizationType


@dataclass(frozen=True)
class PackedTensor:
    """A tensor as stored: its logical (PyTorch-order) shape, ggml type and raw bytes."""

    name: str
    qtype: gguf.GGMLQuantizationType
    shape: Tuple[int, ...]
    data: np.ndarray  # uint8 bytes for quantized types, typed for F32/F16/BF16

    def dequantize(self, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
        # A copy of the memory-mapped bytes: torch may not alias read-only memory.
        raw = torch.from_numpy(np.array(self.data, copy=True)).to(device)
        return dequantize(raw, self.qtype, self.shape).to(dtype)

    def packed_bytes(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """The stored bytes as a flat uint8 tensor on ``device``: a copy of a mapped file's (torch
        may not alias read-only memory, and a model must not keep its file mapped), the bytes
        themselves where they were read for this tensor alone (as :func:`read_tensors` reads
        them): a second copy of each would double the host memory a load peaks at."""
        raw = np.ascontiguousarray(self.data).reshape(-1).view(np.uint8)
        return torch.from_numpy(raw if raw.flags.writeable else raw.copy()).to(device)


def read_gguf(path: Path, mapped: bool = True) -> Iterator[PackedTensor]:
    """Yields every tensor of a GGUF file, names without the ComfyUI prefix: memory-mapped (to
    list them), else each read into memory of its own (to keep them: a mapped tensor's copy
    touched its pages, which counted in the process's memory beside the copies until the load
    ended, 2x the file)."""
    try:
        reader = gguf.GGUFReader(str(path))
    except Exception as exc:  # the reader raises ValueError/struct errors on a broken file
        raise ModelError(f"cannot read GGUF file {path.name}: damaged or cut short ({exc})") from exc
    with open(path, "rb") as file:
        for tensor in reader.tensors:
            shape = tuple(int(n) for n in reversed(tensor.shape.tolist()))  # ggml order is reversed
            data = tensor.data if mapped else _read_data(path, file, tensor.data, tensor.data_offset)
            yield PackedTensor(_unprefixed(tensor.name), tensor.tensor_type, shape, data)


def _read_data(path: Path, file: BinaryIO, mapped: np.ndarray, offset: int) -> np.ndarray:
    """The bytes of a mapped tensor read at ``offset``, into an array of its type and shape (the
    mapping's are only looked at, none of its pages touched)."""
    data = np.empty(mapped.shape, mapped.dtype)
    file.seek(offset)
    if file.readinto(data.reshape(-1).view(np.uint8)) != data.nbytes:
        raise ModelError(f"cannot read GGUF file {path.name}: cut short (in a tensor at byte {offset})")
    return data


def check_supported_types(types: Dict[str, str], supported: Iterable[str], file_name: str) -> None:
    """ModelError naming the tensor types of a file (tensor name → type name) that cannot be
    expanded: the weights stay packed until a layer runs, so without this a task would fail at its
    first DiT step."""
    unsupported: Dict[str, list] = {}
    for name, kind in types.items():
        if kind not in supported:
            unsupported.setdefault(kind, []).append(name)
    if unsupported:
        found = "; ".join(f"{kind} ({names[0]}" + (f" and {len(names) - 1} more)" if len(names) > 1 else ")")
                          for kind, names in unsupported.items())
        raise ModelError(f"{file_name} holds tensor types this service cannot dequantize: {found}; "
                         f"supported: {', '.join(supported)}")


def read_tensors(path: Path) -> Iterator[PackedTensor]:
    """Every tensor of a GGUF checkpoint, or (by its suffix) of a float safetensors or torch one;
    ModelError first when one has a type that cannot be expanded."""
    check_tensor_types(path)
    return read_gguf(path, mapped=False) if file_suffix(path) == ".gguf" else _read_float_tensors(path)


def tensor_layout(path: Path) -> Dict[str, Tuple[str, Tuple[int, ...]]]:
    """Tensor name → (type name, logical shape) of a checkpoint, without expanding any: one read
    serves both the shapes a family recognises and the type check."""
    if file_suffix(path) == ".gguf":
        return {tensor.name: (tensor.qtype.name, tensor.shape) for tensor in read_gguf(path)}
    return {_unprefixed(name): layout for name, layout in _float_layout(path).items()}


def tensor_shapes(path: Path) -> Dict[str, Tuple[int, ...]]:
    """Tensor name → logical shape of a checkpoint, without expanding any."""
    return {name: shape for name, (_, shape) in tensor_layout(path).items()}


def check_tensor_types(path: Path, layout: Optional[Dict[str, Tuple[str, Tuple[int, ...]]]] = None) -> None:
    """ModelError where a tensor of the file (its ``layout``, read here if not given) cannot be expanded."""
    layout = tensor_layout(path) if layout is None else layout
    supported = SUPPORTED_TYPES if file_suffix(path) == ".gguf" else tuple(FLOAT_TYPES)
    check_supported_types({name: kind for name, (kind, _) in layout.items()}, supported, path.name)


def _read_float_tensors(path: Path) -> Iterator[PackedTensor]:
    """Every tensor of a float safetensors or torch file as packed bytes of its ggml float type
    (fp8 widened to F16, which holds each of its values exactly), names without the ComfyUI prefix.
    Each is in memory of its own, widened or copied as it is read: the file is never held whole
    beside the model's copy (an fp8 DiT peaked at 4x its file)."""
    for name, tensor in _float_tensors(path):
        kind = TORCH_TYPE_NAMES[tensor.dtype]
        tensor = tensor.to(torch.float16) if tensor.dtype.itemsize == 1 else tensor
        raw = tensor.contiguous().reshape(-1).view(torch.uint8).numpy()
        yield PackedTensor(_unprefixed(name), FLOAT_TYPES[kind], tuple(tensor.shape), raw)


def _float_tensors(path: Path) -> Iterator[Tuple[str, torch.Tensor]]:
    """The tensors one by one, each in memory of its own (fp8 ones still fp8)."""
    if file_suffix(path) == ".safetensors":
        yield from read_safetensors(path)
        return
    state = _torch_state(path, mapped=False)
    for name in list(state):
        yield name, state.pop(name)  # an fp8 one is dropped once widened


def _float_layout(path: Path) -> Dict[str, Tuple[str, Tuple[int, ...]]]:
    """Tensor name → (type name such as F16 or F8_E4M3, shape), read without copying any tensor."""
    if file_suffix(path) == ".safetensors":
        return _safetensors_header(path)
    return {name: (TORCH_TYPE_NAMES.get(tensor.dtype, str(tensor.dtype).removeprefix("torch.")), tuple(tensor.shape))
            for name, tensor in _torch_state(path).items()}


def _torch_state(path: Path, mapped: bool = True) -> Dict[str, torch.Tensor]:
    """A torch state dict (the official SeedVR2 release's .pth), memory-mapped where torch can map
    it and ``mapped`` asks (to list its tensors), else read (to keep them)."""
    state = load_checkpoint(path, what="torch file", mapped=mapped)
    if not isinstance(state, dict) or not all(isinstance(t, torch.Tensor) for t in state.values()):
        raise ModelError(f"{path.name} is not a flat state dict of tensors")
    return state


def _safetensors_header(path: Path) -> Dict[str, Tuple[str, Tuple[int, ...]]]:
    """Tensor name → (safetensors dtype such as F16 or F8_E4M3, shape), from the header alone."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            slices = {name: handle.get_slice(name) for name in handle.keys()}
            return {name: (view.get_dtype(), tuple(view.get_shape())) for name, view in slices.items()}
    except Exception as exc:  # safetensors raises its own error types for a broken header
        raise ModelError(f"cannot read safetensors file {path.name}: {exc}") from exc


def _unprefixed(name: str) -> str:
    return name[len(NAME_PREFIX):] if name.startswith(NAME_PREFIX) else name


def dequantize(raw: torch.Tensor, qtype: gguf.GGMLQuantizationType, shape: Tuple[int, ...]) -> torch.Tensor:
    """Packed tensor → float32 of ``shape`` on ``raw``'s device."""
    if qtype == Q.F32:
        return raw.view(torch.float32).reshape(shape)
    if qtype == Q.F16:
        return raw.view(torch.float16).float().reshape(shape)
    if qtype == Q.BF16:
        return raw.view(torch.bfloat16).float().reshape(shape)
    kernel = _KERNELS.get(qtype)
    if kernel is None:
        raise ModelError(f"GGUF tensor type {qtype.name} is not supported")
    block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
    blocks = raw.reshape(-1).view(torch.uint8).reshape(-1, type_size)
    return kernel(blocks).reshape(shape)


# -- helpers ---------------------------------------------------------------------------------


def _f16(column: torch.Tensor) -> torch.Tensor:
    """(n, 2) bytes → (n, 1) float32."""
    return column.contiguous().view(torch.float16).float()


def _nibbles(packed: torch.Tensor, groups: int) -> torch.Tensor:
    """Bytes (n, groups·k) → (n, groups, 2, k): low nibbles first, then high nibbles, per group."""
    n = packed.shape[0]
    packed = packed.reshape(n, groups, 1, -1)
    shifts = torch.tensor([0, 4], dtype=torch.uint8, device=packed.device).reshape(1, 1, 2, 1)
    return (packed >> shifts) & 0x0F


def _bits(packed: torch.Tensor, count: int, width: int = 1) -> torch.Tensor:
    """Little-endian bit fields of each byte row: (n, bytes) → (n, count, bytes)."""
    shifts = torch.arange(0, count * width, width, dtype=torch.uint8, device=packed.device).reshape(1, -1, 1)
    return (packed.unsqueeze(1) >> shifts) & ((1 << width) - 1)


def _u32_bits(packed: torch.Tensor) -> torch.Tensor:
    """(n, 4) bytes of a little-endian uint32 → (n, 32) bits, bit 0 first."""
    words = packed.to(torch.int64)
    value = words[:, 0] | (words[:, 1] << 8) | (words[:, 2] << 16) | (words[:, 3] << 24)
    shifts = torch.arange(32, device=packed.device)
    return ((value.unsqueeze(1) >> shifts) & 1).to(torch.uint8)


def _k_scales(scales: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """The 12-byte K-quant field → 8 six-bit scales and 8 six-bit mins per block."""
    n = scales.shape[0]
    scales = scales.reshape(n, 3, 4)
    d, m, m_d = scales[:, 0], scales[:, 1], scales[:, 2]
    sc = torch.cat([d & 0x3F, (m_d & 0x0F) | ((d >> 2) & 0x30)], dim=-1)
    mins = torch.cat([m & 0x3F, (m_d >> 4) | ((m >> 2) & 0x30)], dim=-1)
    return sc, mins


# -- kernels: one per type, (n_blocks, type_size) uint8 → (n_blocks, block_size) float32 ------


def _q8_0(blocks: torch.Tensor) -> torch.Tensor:
    d = _f16(blocks[:, :2])
    x = blocks[:, 2:].contiguous().view(torch.int8).float()
    return x * d


def _q4_0(blocks: torch.Tensor) -> torch.Tensor:
    d = _f16(blocks[:, :2])
    qs = _nibbles(blocks[:, 2:], 1).reshape(blocks.shape[0], -1).to(torch.int8) - 8
    return d * qs.float()


def _q4_1(blocks: torch.Tensor) -> torch.Tensor:
    d, m = _f16(blocks[:, :2]), _f16(blocks[:, 2:4])
    qs = _nibbles(blocks[:, 4:], 1).reshape(blocks.shape[0], -1).float()
    return (d * qs) + m


def _q5_0(blocks: torch.Tensor) -> torch.Tensor:
    d = _f16(blocks[:, :2])
    qh = _u32_bits(blocks[:, 2:6])
    ql = _nibbles(blocks[:, 6:], 1).reshape(blocks.shape[0], -1)
    qs = (ql | (qh << 4)).to(torch.int8) - 16
    return d * qs.float()


def _q5_1(blocks: torch.Tensor) -> torch.Tensor:
    d, m = _f16(blocks[:, :2]), _f16(blocks[:, 2:4])
    qh = _u32_bits(blocks[:, 4:8])
    ql = _nibbles(blocks[:, 8:], 1).reshape(blocks.shape[0], -1)
    qs = (ql | (qh << 4)).float()
    return (d * qs) + m


def _q2_k(blocks: torch.Tensor) -> torch.Tensor:
    n = blocks.shape[0]
    scales = blocks[:, :16]
    d, dmin = _f16(blocks[:, 80:82]), _f16(blocks[:, 82:84])
    dl = (d * (scales & 0x0F).float()).reshape(n, 16, 1)
    ml = (dmin * (scales >> 4).float()).reshape(n, 16, 1)
    q = _bits(blocks[:, 16:80].reshape(n * 2, 32), 4, width=2).reshape(n, 16, 16).float()
    return (dl * q - ml).reshape(n, QK_K)


def _q3_k(blocks: torch.Tensor) -> torch.Tensor:
    n = blocks.shape[0]
    hmask, qs, scales = blocks[:, :32], blocks[:, 32:96], blocks[:, 96:108]
    d = _f16(blocks[:, 108:110])
    # 16 six-bit scales: low nibbles of bytes 0–7, then their high nibbles; 2 more bits each from bytes 8–11.
    low = _bits(scales[:, :8], 2, width=4).reshape(n, 16)
    high = _bits(scales[:, 8:12], 4, width=2).reshape(n, 16)
    sc = ((low | (high << 4)).to(torch.int8) - 32).float()
    dl = (d * sc).reshape(n, 16, 1)
    ql = _bits(qs.reshape(n * 2, 32), 4, width=2).reshape(n, 16, 16)
    qh = _bits(hmask, 8).reshape(n, 16, 16) ^ 1  # a set mask bit means no offset
    q = (ql.to(torch.int8) - (qh << 2).to(torch.int8)).float()
    return (dl * q).reshape(n, QK_K)


def _k_sub_block_terms(blocks: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Q4_K/Q5_K: per 32-weight sub-block, the scale and the offset (d·scale, dmin·min)."""
    n = blocks.shape[0]
    d, dmin = _f16(blocks[:, :2]), _f16(blocks[:, 2:4])
    sc, mins = _k_scales(blocks[:, 4:16])
    return (d * sc.float()).reshape(n, -1, 1), (dmin * mins.float()).reshape(n, -1, 1)


def _q4_k(blocks: torch.Tensor) -> torch.Tensor:
    n = blocks.shape[0]
    d, dm = _k_sub_block_terms(blocks)
    qs = _nibbles(blocks[:, 16:], 4).reshape(n, -1, 32).float()
    return (d * qs - dm).reshape(n, QK_K)


def _q5_k(blocks: torch.Tensor) -> torch.Tensor:
    n = blocks.shape[0]
    d, dm = _k_sub_block_terms(blocks)
    qh = _bits(blocks[:, 16:48], 8).reshape(n, -1, 32)
    ql = _nibbles(blocks[:, 48:], 4).reshape(n, -1, 32)
    q = (ql | (qh << 4)).float()
    return (d * q - dm).reshape(n, QK_K)


def _q6_k(blocks: torch.Tensor) -> torch.Tensor:
    n = blocks.shape[0]
    ql, qh = blocks[:, :128], blocks[:, 128:192]
    scales = blocks[:, 192:208].contiguous().view(torch.int8).float()
    d = _f16(blocks[:, 208:210])
    d = (d * scales).reshape(n, QK_K // 16, 1)
    ql = _nibbles(ql, 2).reshape(n, -1, 32)
    qh = _bits(qh.reshape(n * 2, 32), 4, width=2).reshape(n, -1, 32)
    q = (ql | (qh << 4)).to(torch.int8) - 32
    q = q.reshape(n, QK_K // 16, -1).float()
    return (d * q).reshape(n, QK_K)


_KERNELS: Dict[gguf.GGMLQuantizationType, Callable[[torch.Tensor], torch.Tensor]] = {
    Q.Q8_0: _q8_0, Q.Q4_0: _q4_0, Q.Q4_1: _q4_1, Q.Q5_0: _q5_0, Q.Q5_1: _q5_1,
    Q.Q2_K: _q2_k, Q.Q3_K: _q3_k, Q.Q4_K: _q4_k, Q.Q5_K: _q5_k, Q.Q6_K: _q6_k,
}
SUPPORTED_TYPES = tuple(qtype.name for qtype in (Q.F32, Q.F16, Q.BF16, *_KERNELS))
# The dtypes of a float DiT (ComfyUI-SeedVR2 ships fp16 and fp8 safetensors, the official release a
# bf16 .pth), by their safetensors names, and the type each is kept packed as.
FLOAT_TYPES = {"F32": Q.F32, "F16": Q.F16, "BF16": Q.BF16, "F8_E4M3": Q.F16, "F8_E5M2": Q.F16}
TORCH_TYPE_NAMES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
                    torch.float8_e4m3fn: "F8_E4M3", torch.float8_e5m2: "F8_E5M2"}
