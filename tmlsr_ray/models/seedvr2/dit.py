"""SeedVR2's diffusion transformer ("NaDiT", the 3B layout) loaded from GGUF (torch, no Ray).

The linear weights stay packed (quantized bytes) on the model's device and each layer expands its
own weight just before use, so a Q4_K_M 3B model holds about 2 GB of GPU memory. Only small
vectors (norms, modulation, biases, RoPE frequencies) are kept expanded, in fp32.

Layouts: the latent is (t, h, w, channels) with [noise ‖ condition ‖ ones] = 33 channels; video
tokens are 1×2×2 patches in (t, h, w) raster order; text is (L, txt_in_dim). The residual streams,
norms, modulation and RoPE run in fp32; matrix products run in the compute dtype.
See ``../shared/spec/SEEDVR2.md`` ("DiT") for the arithmetic this follows.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, Optional, Tuple

import torch
import torch.nn.functional as F

from tmlsr_ray.models.base import ModelError
from tmlsr_ray.models.gguf_tensors import PackedTensor, dequantize, read_tensors
from tmlsr_ray.models.seedvr2.attention import (
    Grid,
    QKNorm,
    group_windows,
    rms_norm,
    window_attention,
    window_partition,
)

NORM_EPS = 1e-5
SINUSOID_DIM = 256
ROPE_THETA = 10000.0
MLP_CHUNK_TOKENS = 16384  # bounds the SwiGLU's hidden activations (tokens × mlp_hidden)
COMPUTE_DTYPES = (torch.float32, torch.bfloat16, torch.float16)

# The time embedding, viewed (hidden, 2, 3): [channel][attn | mlp][shift | scale | gate].
ATTN, MLP = 0, 1
SHIFT, SCALE, GATE = 0, 1, 2


# -- configuration ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DiTConfig:
    """What a checkpoint's tensor names and shapes say about the network."""

    hidden: int  # width of the video and text streams
    heads: int
    head_dim: int
    depth: int  # number of blocks
    mm_layers: int  # leading blocks with separate video/text weights; the rest share them
    mlp_hidden: int  # SwiGLU width
    txt_in_dim: int  # width of the text embedding fed in (5120)
    in_channels: int  # latent channels per position fed in (33)
    out_channels: int  # latent channels per position predicted (16)
    patch: Tuple[int, int, int]  # (t, h, w)
    rope_freqs: int  # RoPE frequencies per axis (21: 3 axes × 42 dims)
    parameters: int  # number of weights in the file

    def describe(self) -> str:
        return (f"NaDiT {self.parameters / 1e9:.2f}B params: hidden {self.hidden} "
                f"({self.heads}×{self.head_dim} heads), {self.depth} blocks ({self.mm_layers} mm), "
                f"SwiGLU {self.mlp_hidden}, text {self.txt_in_dim}, "
                f"{self.in_channels}→{self.out_channels} ch, patch {'×'.join(map(str, self.patch))}")

    def __str__(self) -> str:
        return self.describe()


_BLOCK = re.compile(r"blocks\.(\d+)\.")


def infer_config(shapes: Dict[str, Tuple[int, ...]]) -> DiTConfig:
    """The configuration from tensor names and shapes alone (never from the file name)."""

    def shape(name: str) -> Tuple[int, ...]:
        if name not in shapes:
            raise ModelError(f"not a SeedVR2 DiT: tensor '{name}' is missing")
        return shapes[name]

    hidden, in_features = shape("vid_in.proj.weight")
    out_features, _ = shape("vid_out.proj.weight")
    txt_dim, txt_in_dim = shape("txt_in.weight")
    emb_dim = shape("emb_in.proj_out.weight")[0]
    if txt_dim != hidden or emb_dim != 6 * hidden:
        raise ModelError(f"not a SeedVR2 DiT: text width {txt_dim} / time embedding {emb_dim} "
                         f"do not fit hidden size {hidden}")
    patch, in_channels, out_channels = _patch_layout(in_features, out_features)

    depth = _depth(shapes)
    mm_layers = _mm_layers(shapes, depth)
    first = "vid" if mm_layers else "all"
    if f"blocks.0.mlp.{first}.proj_in_gate.weight" not in shapes:
        # SeedVR2 7B uses the older DiT (GELU MLP, pixel RoPE on video only, no output norm).
        raise ModelError("unsupported DiT layout: no SwiGLU MLP (blocks.0.mlp.*.proj_in_gate); "
                         "only the SeedVR2 3B-style DiT (dit_v2) is implemented")
    head_dim = shape(f"blocks.0.attn.norm_q.{first}.weight")[0]
    qkv_rows = shape(f"blocks.0.attn.proj_qkv.{first}.weight")[0]
    heads = hidden // head_dim
    if heads * head_dim != hidden or qkv_rows != 3 * hidden:
        raise ModelError(f"not a SeedVR2 DiT: hidden {hidden}, qk-norm size {head_dim} and "
                         f"qkv rows {qkv_rows} do not fit together")
    rope = shapes.get("blocks.0.attn.rope.rope.freqs", (head_dim // 6,))[0]
    if 6 * rope > head_dim:
        raise ModelError(f"RoPE with {rope} frequencies per axis does not fit head size {head_dim}")
    return DiTConfig(
        hidden=hidden, heads=heads, head_dim=head_dim, depth=depth, mm_layers=mm_layers,
        mlp_hidden=shape(f"blocks.0.mlp.{first}.proj_in.weight")[0], txt_in_dim=txt_in_dim,
        in_channels=in_channels, out_channels=out_channels, patch=patch, rope_freqs=rope,
        parameters=sum(math.prod(s) for s in shapes.values()),
    )


def _patch_layout(in_features: int, out_features: int) -> Tuple[Tuple[int, int, int], int, int]:
    """Patch size and channels from the patch projections: the input holds 2·out + 1 channels
    (noise, condition, ones) per position, so in_features − 2·out_features is the patch volume."""
    volume = in_features - 2 * out_features
    side = math.isqrt(max(volume, 0))
    if volume <= 0 or side * side != volume or in_features % volume or out_features % volume:
        raise ModelError(f"not a SeedVR2 DiT: patch projections {in_features} in / {out_features} out "
                         "do not describe [noise, condition, ones] patches")
    return (1, side, side), in_features // volume, out_features // volume


def _depth(shapes: Dict[str, Tuple[int, ...]]) -> int:
    indices = {int(m.group(1)) for name in shapes if (m := _BLOCK.match(name))}
    if not indices:
        raise ModelError("not a SeedVR2 DiT: no 'blocks.N.*' tensors")
    depth = max(indices) + 1
    missing = sorted(set(range(depth)) - indices)
    if missing:
        raise ModelError(f"DiT blocks {missing} are missing (the file has blocks up to {depth - 1})")
    return depth


def _mm_layers(shapes: Dict[str, Tuple[int, ...]], depth: int) -> int:
    separate = [f"blocks.{i}.attn.proj_qkv.vid.weight" in shapes for i in range(depth)]
    count = separate.index(False) if False in separate else depth
    if any(separate[count:]):
        raise ModelError("DiT blocks with separate video/text weights must come first")
    return count


# -- packed weights --------------------------------------------------------------------------


class PackedLinear(torch.nn.Module):
    """A Linear whose weight stays as stored (quantized bytes) and is expanded at each call."""

    def __init__(self, weight: PackedTensor, bias: Optional[torch.Tensor], device: torch.device):
        super().__init__()
        self.register_buffer("packed", weight.packed_bytes(device))
        self.register_buffer("bias", bias)
        self.qtype, self.shape = weight.qtype, weight.shape

    def weight(self, dtype: torch.dtype) -> torch.Tensor:
        return dequantize(self.packed, self.qtype, self.shape).to(dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x in the compute dtype → output in the compute dtype; the expanded weight is freed on
        return (it is only referenced here)."""
        bias = None if self.bias is None else self.bias.to(x.dtype)
        return F.linear(x, self.weight(x.dtype), bias)


class _Store:
    """The file's tensors by name; the model takes them one by one, and whatever it never takes
    is reported as unknown."""

    def __init__(self, tensors: Dict[str, PackedTensor], device: torch.device):
        self.tensors, self.device, self.used = tensors, device, set()

    def has(self, name: str) -> bool:
        return name in self.tensors

    def take(self, name: str) -> PackedTensor:
        if name not in self.tensors:
            raise ModelError(f"SeedVR2 DiT tensor '{name}' is missing from the file")
        self.used.add(name)
        return self.tensors[name]

    def vector(self, name: str) -> torch.Tensor:
        """A small tensor, expanded once to fp32 on the device."""
        return self.take(name).dequantize(self.device, torch.float32)

    def linear(self, prefix: str, bias: bool = True) -> PackedLinear:
        weight = self.take(f"{prefix}.weight")
        return PackedLinear(weight, self.vector(f"{prefix}.bias") if bias else None, self.device)

    def check_all_used(self) -> None:
        unknown = sorted(set(self.tensors) - self.used)
        if unknown:
            shown = ", ".join(unknown[:5]) + (f" (and {len(unknown) - 5} more)" if len(unknown) > 5 else "")
            raise ModelError(f"unknown tensors in the SeedVR2 DiT file: {shown}")


# -- blocks ----------------------------------------------------------------------------------


class SwiGLU(torch.nn.Module):
    def __init__(self, store: _Store, prefix: str):
        super().__init__()
        self.gate = store.linear(f"{prefix}.proj_in_gate", bias=False)
        self.up = store.linear(f"{prefix}.proj_in", bias=False)
        self.down = store.linear(f"{prefix}.proj_out", bias=False)

    def forward(self, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """fp32 (n, hidden) → fp32 (n, hidden); tokens in chunks so the hidden activations stay
        bounded, each weight expanded once per call."""
        gate, up, down = (layer.weight(dtype) for layer in (self.gate, self.up, self.down))
        out = torch.empty_like(x)
        for start in range(0, x.shape[0], MLP_CHUNK_TOKENS):
            part = x[start:start + MLP_CHUNK_TOKENS].to(dtype)
            out[start:start + MLP_CHUNK_TOKENS] = F.linear(F.silu(F.linear(part, gate)) * F.linear(part, up), down)
        return out


class Modulation(torch.nn.Module):
    """"Ada single": the block's learned shift/scale/gate vectors added to the time embedding's
    (no implicit +1 on the scale)."""

    def __init__(self, store: _Store, prefix: str, layers: Tuple[str, ...]):
        super().__init__()
        for layer in layers:
            for slot in ("shift", "scale", "gate"):
                self.register_buffer(f"{layer}_{slot}", store.vector(f"{prefix}.{layer}_{slot}"))

    def params(self, emb: torch.Tensor, layer: str) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """emb (hidden, 2, 3) → shift, scale, gate (hidden,) for ``layer``."""
        part = emb[:, ATTN if layer == "attn" else MLP]
        return (part[:, SHIFT] + getattr(self, f"{layer}_shift"),
                part[:, SCALE] + getattr(self, f"{layer}_scale"),
                part[:, GATE] + getattr(self, f"{layer}_gate"))


class StreamWeights(torch.nn.Module):
    """One weight set of a block: video, text, or shared by both ("all")."""

    def __init__(self, store: _Store, block: str, tag: str, with_mlp: bool):
        super().__init__()
        self.qkv = store.linear(f"{block}.attn.proj_qkv.{tag}", bias=False)
        self.out = store.linear(f"{block}.attn.proj_out.{tag}")
        self.register_buffer("norm_q", store.vector(f"{block}.attn.norm_q.{tag}.weight"))
        self.register_buffer("norm_k", store.vector(f"{block}.attn.norm_k.{tag}.weight"))
        # The last block's text stream has no MLP/modulation; shared weights serve video there.
        self.mlp = SwiGLU(store, f"{block}.mlp.{tag}") if with_mlp else None
        self.ada = Modulation(store, f"{block}.ada.{tag}", ("attn", "mlp")) if with_mlp else None

    def qk_norm(self) -> QKNorm:
        return QKNorm(self.norm_q, self.norm_k, NORM_EPS)


class Block(torch.nn.Module):
    """Windowed joint video/text attention, then SwiGLU, each with modulation and gated residual."""

    def __init__(self, store: _Store, config: DiTConfig, index: int, freqs: torch.Tensor):
        super().__init__()
        prefix = f"blocks.{index}"
        self.last = index == config.depth - 1
        self.shifted = index % 2 == 1  # blocks alternate plain / shifted windows
        self.heads, self.head_dim = config.heads, config.head_dim
        self.register_buffer("freqs", freqs)
        if index < config.mm_layers:
            self.vid = StreamWeights(store, prefix, "vid", with_mlp=True)
            self.txt = StreamWeights(store, prefix, "txt", with_mlp=not self.last)
        else:
            self.vid = StreamWeights(store, prefix, "all", with_mlp=True)
            self.txt = self.vid

    def forward(self, vid: torch.Tensor, txt: torch.Tensor, emb: torch.Tensor,
                groups: Dict[Grid, torch.Tensor], dtype: torch.dtype) -> Tuple[torch.Tensor, torch.Tensor]:
        """vid (N, hidden), txt (L, hidden) fp32 → the same after the block."""
        v_shift, v_scale, v_gate = self.vid.ada.params(emb, "attn")
        v = rms_norm(vid, None, NORM_EPS) * v_scale + v_shift
        t = rms_norm(txt, None, NORM_EPS)
        if not self.last:
            t_shift, t_scale, t_gate = self.txt.ada.params(emb, "attn")
            t = t * t_scale + t_shift
        v_attn, t_attn = self._attention(v, t, groups, dtype)
        vid = vid + v_attn * v_gate
        txt = txt + (t_attn if self.last else t_attn * t_gate)

        vid = vid + self._mlp(self.vid, vid, emb, dtype)
        if self.last:
            # The reference skips the text MLP by passing the stream through unchanged and then
            # still adds its residual, doubling it. The text is dropped after this block anyway.
            return vid, txt + txt
        return vid, txt + self._mlp(self.txt, txt, emb, dtype)

    def _attention(self, vid: torch.Tensor, txt: torch.Tensor, groups: Dict[Grid, torch.Tensor],
                   dtype: torch.dtype) -> Tuple[torch.Tensor, torch.Tensor]:
        split = (3, self.heads, self.head_dim)
        vid_qkv = self.vid.qkv(vid.to(dtype)).unflatten(-1, split)
        txt_qkv = self.txt.qkv(txt.to(dtype)).unflatten(-1, split)
        attn_dtype = torch.float32 if dtype == torch.float32 else dtype
        v_out, t_out = window_attention(vid_qkv, txt_qkv, (self.vid.qk_norm(), self.txt.qk_norm()),
                                        groups, self.freqs, attn_dtype)
        del vid_qkv, txt_qkv
        return self.vid.out(v_out.to(dtype)).float(), self.txt.out(t_out.to(dtype)).float()

    @staticmethod
    def _mlp(weights: StreamWeights, x: torch.Tensor, emb: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        shift, scale, gate = weights.ada.params(emb, "mlp")
        return weights.mlp(rms_norm(x, None, NORM_EPS) * scale + shift, dtype) * gate


# -- the network -----------------------------------------------------------------------------


class NaDiT(torch.nn.Module):
    """SeedVR2's DiT. ``forward(latent, text, timestep)`` → velocity; stages are public methods
    so each can be checked against the reference's intermediates."""

    config: DiTConfig

    def __init__(self, config: DiTConfig, store: _Store, dtype: torch.dtype = torch.float32):
        super().__init__()
        if dtype not in COMPUTE_DTYPES:
            raise ValueError(f"compute dtype must be one of {COMPUTE_DTYPES}, not {dtype}")
        self.config, self.dtype = config, dtype
        self.vid_in = store.linear("vid_in.proj")
        self.txt_in = store.linear("txt_in")
        self.emb_in = torch.nn.ModuleList(store.linear(f"emb_in.{name}")
                                          for name in ("proj_in", "proj_hid", "proj_out"))
        self.blocks = torch.nn.ModuleList(
            Block(store, config, i, self._rope_freqs(store, i)) for i in range(config.depth))
        self.register_buffer("out_norm", store.vector("vid_out_norm.weight"))
        self.register_buffer("out_shift", store.vector("vid_out_ada.out_shift"))
        self.register_buffer("out_scale", store.vector("vid_out_ada.out_scale"))
        self.vid_out = store.linear("vid_out.proj")

    @classmethod
    def from_file(cls, path: Path | str, device: torch.device | str = "cpu",
                  dtype: torch.dtype = torch.float32) -> "NaDiT":
        """The DiT of a GGUF file, or of a float (fp32/fp16/bf16/fp8) safetensors one."""
        return cls.from_tensors(read_tensors(Path(path)), device, dtype)

    @classmethod
    def from_tensors(cls, tensors: Iterable[PackedTensor], device: torch.device | str = "cpu",
                     dtype: torch.dtype = torch.float32) -> "NaDiT":
        """The model from packed tensors (as ``read_gguf`` yields them); ModelError when one is
        missing or unknown."""
        by_name = {tensor.name: tensor for tensor in tensors}
        config = infer_config({name: tensor.shape for name, tensor in by_name.items()})
        store = _Store(by_name, torch.device(device))
        model = cls(config, store, dtype)
        store.check_all_used()
        return model.eval()

    def _rope_freqs(self, store: _Store, index: int) -> torch.Tensor:
        name = f"blocks.{index}.attn.rope.rope.freqs"
        if store.has(name):
            return store.vector(name)
        # Files converted without the (non-trainable) buffer: it only holds 1/θ^(2k/axis_dim).
        axis_dim = 2 * self.config.rope_freqs
        exponent = torch.arange(0, axis_dim, 2, dtype=torch.float32)[: self.config.rope_freqs] / axis_dim
        return (1.0 / ROPE_THETA ** exponent).to(store.device)

    @property
    def device(self) -> torch.device:
        return self.out_norm.device

    # -- stages --

    def embed_time(self, timestep: float) -> torch.Tensor:
        """(1, 6·hidden) fp32: sinusoid [sin, cos] → Linear SiLU Linear SiLU Linear."""
        half = SINUSOID_DIM // 2
        exponent = -math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=self.device) / half
        step = torch.tensor([float(timestep)], dtype=torch.float32, device=self.device)
        angles = step[:, None] * exponent.exp()[None]  # the reference's order of operations, in fp32
        x = torch.cat([angles.sin(), angles.cos()], dim=-1)
        proj_in, proj_hid, proj_out = self.emb_in
        x = F.silu(proj_hid(F.silu(proj_in(x.to(self.dtype)))))
        return proj_out(x).float()

    def embed_text(self, text: torch.Tensor) -> torch.Tensor:
        """(L, txt_in_dim) any float dtype → (L, hidden) fp32."""
        if text.ndim != 2 or text.shape[1] != self.config.txt_in_dim:
            raise ValueError(f"text embedding must be (L, {self.config.txt_in_dim}), got {tuple(text.shape)}")
        return self.txt_in(text.to(self.device, torch.float32).to(self.dtype)).float()

    def embed_video(self, latent: torch.Tensor) -> Tuple[torch.Tensor, Grid]:
        """(t, h, w, in_channels) → patch tokens (N, hidden) fp32 and the patch grid."""
        patches, grid = self._patchify(latent)
        return self.vid_in(patches.to(self.dtype)).float(), grid

    def run_block(self, index: int, vid: torch.Tensor, txt: torch.Tensor, emb: torch.Tensor,
                  grid: Grid, groups: Optional[Dict[bool, Dict[Grid, torch.Tensor]]] = None
                  ) -> Tuple[torch.Tensor, torch.Tensor]:
        block = self.blocks[index]
        groups = groups if groups is not None else self.window_groups(grid)
        return block(vid, txt, emb.view(self.config.hidden, 2, 3), groups[block.shifted], self.dtype)

    def window_groups(self, grid: Grid) -> Dict[bool, Dict[Grid, torch.Tensor]]:
        """Token indices of the plain (False) and shifted (True) windows, grouped by shape."""
        return {shifted: group_windows(grid, window_partition(grid, shifted), self.device)
                for shifted in (False, True)}

    def head(self, vid: torch.Tensor, emb: torch.Tensor, grid: Grid) -> torch.Tensor:
        """Output norm, modulation and projection, unpatchified to (t, h, w, out_channels).
        The modulation reads the ATTN slot of the embedding layout, as the reference does."""
        emb = emb.view(self.config.hidden, 2, 3)[:, ATTN]
        x = rms_norm(vid, self.out_norm, NORM_EPS)
        x = x * (emb[:, SCALE] + self.out_scale) + (emb[:, SHIFT] + self.out_shift)
        return self._unpatchify(self.vid_out(x.to(self.dtype)).float(), grid)

    @torch.no_grad()
    def forward(self, latent: torch.Tensor, text: torch.Tensor, timestep: float) -> torch.Tensor:
        """latent (t, h, w, 33), text (L, txt_in_dim), timestep (1000 for SeedVR2's one step)
        → velocity (t, h, w, 16) fp32."""
        emb = self.embed_time(timestep)
        txt = self.embed_text(text)
        vid, grid = self.embed_video(latent)
        groups = self.window_groups(grid)
        for index in range(self.config.depth):
            vid, txt = self.run_block(index, vid, txt, emb, grid, groups)
        return self.head(vid, emb, grid)

    # -- layout --

    def _patchify(self, latent: torch.Tensor) -> Tuple[torch.Tensor, Grid]:
        _, ph, pw = self.config.patch
        if latent.ndim != 4 or latent.shape[-1] != self.config.in_channels:
            raise ValueError(f"latent must be (t, h, w, {self.config.in_channels}), got {tuple(latent.shape)}")
        t, h, w, c = latent.shape
        if h % ph or w % pw:
            raise ValueError(f"latent height and width must be multiples of {ph}×{pw}, got {h}×{w}")
        grid = (t, h // ph, w // pw)
        x = latent.to(self.device, torch.float32).reshape(t, grid[1], ph, grid[2], pw, c)
        # Features of a patch in (dh, dw, channel) order, as the reference's projection expects.
        return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, ph * pw * c), grid

    def _unpatchify(self, x: torch.Tensor, grid: Grid) -> torch.Tensor:
        _, ph, pw = self.config.patch
        t, gh, gw = grid
        x = x.reshape(t, gh, gw, ph, pw, self.config.out_channels).permute(0, 1, 3, 2, 4, 5)
        return x.reshape(t, gh * ph, gw * pw, self.config.out_channels)
