"""SeedVR2's causal 3-D video VAE (torch, no Ray): 8x spatial, 4x temporal, 16 latent channels.

Written from the description in ``../shared/spec/SEEDVR2.md`` and checked against the golden data
of the reference implementation. The module tree mirrors the key names of
``ema_vae_fp16.safetensors`` so the file loads as is; the configuration (widths, depths, which
blocks resample time) is read off the tensor names and shapes, never off the file name.

Layouts: video (C, T, H, W) in [-1, 1] with T = 4n+1; latent (t', h, w, 16) with t' = 1 + (T-1)/4,
h = H/8, w = W/8, scaled by ``SCALING_FACTOR``.

Causality: every 3-D convolution sees only the current and earlier frames; the first frame is
repeated in front of the video instead of zero padding. Because of that a video can be processed
in temporal chunks that hand each convolution's last input frames to the next chunk
(``CausalState``), and the result equals one-shot processing: GroupNorm and attention work per
frame, so nothing else couples frames. Spatial tiles, on the other hand, are approximate (the
per-frame GroupNorm statistics and the mid-block attention span the whole frame) and are blended
linearly across their overlap.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from tmlsr_ray.models.base import ModelError
from tmlsr_ray.models.checkpoint import load_checkpoint

SCALING_FACTOR = 0.9152
# Not recorded in the state dict; both the real VAE and the golden tiny one use these.
NORM_GROUPS = 32
NORM_EPS = 1e-6


@dataclass(frozen=True)
class VaeTiling:
    """How encode/decode bound their memory.

    ``tile_size`` and ``tile_overlap`` are in pixels of the decoded frame and must be multiples of
    the VAE's spatial factor (8), so that tiles fall on whole latent pixels; a ``tile_size`` of 0,
    or one that covers the frame, means no spatial tiling (bit-identical to the untiled path).
    ``temporal_chunk`` is the number of video frames per causal slice, a multiple of the temporal
    factor (4): the encoder runs frames [0..chunk], then chunks of ``chunk`` frames; the decoder
    runs latent frames [0..chunk/4], then chunks of chunk/4 latent frames. Any valid chunk gives
    the same result as one shot; it only trades memory for per-call overhead. ``tiling=None`` in
    ``encode``/``decode`` means no spatial tiling, chunks of 4 frames.

    Each tile normalises with its own GroupNorm statistics, so tiled output drifts from untiled
    where tiles see different content; the overlap hides the seams. Measured on an H200 with a
    real-size (random) VAE in bf16, 1080p, 5 frames: with the defaults encode 0.9 s / 3.9 GiB
    peak, decode 1.7 s / 6.2 GiB; untiled 26.8 GiB and 44.5 GiB.
    """

    tile_size: int = 512
    tile_overlap: int = 64
    temporal_chunk: int = 4

    def __post_init__(self) -> None:
        if self.tile_size < 0 or self.tile_overlap < 0 or self.temporal_chunk < 1:
            raise ValueError(f"invalid VAE tiling {self}: sizes must be >= 0 and temporal_chunk >= 1")
        if self.tile_size and self.tile_overlap >= self.tile_size:
            raise ValueError(f"invalid VAE tiling {self}: tile_overlap must be smaller than tile_size")


UNTILED = VaeTiling(tile_size=0, tile_overlap=0)


@dataclass(frozen=True)
class VaeConfig:
    in_channels: int
    out_channels: int
    latent_channels: int
    block_out_channels: tuple[int, ...]
    layers_per_block: int  # encoder resnets per down block
    decoder_layers_per_block: int  # decoder resnets per up block (SeedVR2: layers_per_block + 1)
    temporal_down_blocks: tuple[int, ...]  # encoder blocks whose downsampler also halves time
    temporal_up_blocks: tuple[int, ...]  # decoder blocks whose upsampler also doubles time

    @property
    def spatial_factor(self) -> int:
        return 2 ** (len(self.block_out_channels) - 1)  # every block but the last resamples space

    @property
    def temporal_factor(self) -> int:
        return 2 ** len(self.temporal_down_blocks)


# --------------------------------------------------------------------------------------------
# Configuration from the state dict


def _shape(state: Mapping[str, torch.Tensor], key: str) -> tuple[int, ...]:
    if key not in state:
        raise ModelError(f"not a SeedVR2 video VAE state dict: tensor '{key}' is missing")
    return tuple(state[key].shape)


def _count_indexed(state: Mapping[str, torch.Tensor], prefix: str) -> int:
    """How many consecutive ``prefix{i}.`` entries (i = 0, 1, ...) the state dict holds."""
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    indices = {int(m.group(1)) for key in state if (m := pattern.match(key))}
    if indices != set(range(len(indices))):
        raise ModelError(f"SeedVR2 VAE state dict: '{prefix}N' indices are not 0..n-1: {sorted(indices)}")
    return len(indices)


def _temporal_down_blocks(state: Mapping[str, torch.Tensor], blocks: int) -> tuple[int, ...]:
    # A downsampler that also halves time has a 3-frame kernel; a spatial-only one has 1 frame.
    kernels = [_shape(state, f"encoder.down_blocks.{i}.downsamplers.0.conv.weight") for i in range(blocks - 1)]
    return tuple(i for i, shape in enumerate(kernels) if len(shape) == 5 and shape[2] > 1)


def _temporal_up_blocks(state: Mapping[str, torch.Tensor], blocks: int) -> tuple[int, ...]:
    # The 1x1x1 upscale_conv makes channels x (2 x 2 [x 2 in time]) outputs.
    temporal = []
    for i in range(blocks - 1):
        out, inp = _shape(state, f"decoder.up_blocks.{i}.upsamplers.0.upscale_conv.weight")[:2]
        if out not in (4 * inp, 8 * inp):
            raise ModelError(f"SeedVR2 VAE: decoder.up_blocks.{i} upscale_conv maps {inp} to {out} channels")
        if out == 8 * inp:
            temporal.append(i)
    return tuple(temporal)


def infer_config(state: Mapping[str, torch.Tensor]) -> VaeConfig:
    blocks = _count_indexed(state, "encoder.down_blocks.")
    if blocks < 2:
        raise ModelError("not a SeedVR2 video VAE state dict: fewer than two encoder.down_blocks")
    channels = tuple(_shape(state, f"encoder.down_blocks.{i}.resnets.0.conv1.weight")[0] for i in range(blocks))
    latent_channels = _shape(state, "decoder.conv_in.weight")[1]
    if _shape(state, "encoder.conv_out.weight")[0] != 2 * latent_channels:
        raise ModelError("SeedVR2 VAE: encoder.conv_out must give mean and log-variance (2 x latent channels)")
    temporal_down = _temporal_down_blocks(state, blocks)
    temporal_up = _temporal_up_blocks(state, blocks)
    if len(temporal_down) != len(temporal_up):
        raise ModelError(f"SeedVR2 VAE: {len(temporal_down)} temporal down blocks "
                         f"but {len(temporal_up)} temporal up blocks")
    return VaeConfig(
        in_channels=_shape(state, "encoder.conv_in.weight")[1],
        out_channels=_shape(state, "decoder.conv_out.weight")[0],
        latent_channels=latent_channels,
        block_out_channels=channels,
        layers_per_block=_count_indexed(state, "encoder.down_blocks.0.resnets."),
        decoder_layers_per_block=_count_indexed(state, "decoder.up_blocks.0.resnets."),
        temporal_down_blocks=temporal_down,
        temporal_up_blocks=temporal_up,
    )


# --------------------------------------------------------------------------------------------
# Building blocks


class CausalState:
    """What one stream of temporal chunks carries from a chunk to the next.

    ``tails`` holds, per causal convolution, the last input frames the next chunk's first
    outputs need (kernel - stride frames); ``first_chunk`` tells the temporal upsamplers to drop
    the duplicate of the first frame, which only the start of the video has.
    """

    def __init__(self) -> None:
        self.tails: dict[nn.Module, torch.Tensor] = {}
        self.first_chunk = True


class CausalConv3d(nn.Conv3d):
    """A Conv3d that pads time on the past side only: with the first frame repeated at the start
    of the video, with the previous chunk's trailing frames afterwards. Space is zero-padded."""

    def __init__(self, in_channels: int, out_channels: int, kernel: Sequence[int],
                 stride: Sequence[int] = (1, 1, 1), spatial_padding: int | None = None) -> None:
        if spatial_padding is None:
            spatial_padding = kernel[1] // 2
        super().__init__(in_channels, out_channels, tuple(kernel), stride=tuple(stride),
                         padding=(0, spatial_padding, spatial_padding))

    def forward(self, x: torch.Tensor, state: CausalState) -> torch.Tensor:  # type: ignore[override]
        history = self.kernel_size[0] - 1
        if history:
            past = state.tails.get(self)
            if past is None:
                past = x[:, :, :1].expand(-1, -1, history, -1, -1)
            x = torch.cat([past, x], dim=2)
        keep = self.kernel_size[0] - self.stride[0]
        if keep > 0:
            # A copy, so the state does not pin this whole chunk's input in memory.
            state.tails[self] = x[:, :, -keep:].clone(memory_format=torch.contiguous_format)
        return super().forward(x)


def frame_group_norm(x: torch.Tensor, norm: nn.GroupNorm) -> torch.Tensor:
    """GroupNorm of each frame on its own (statistics over channels-in-group x H x W), in fp32."""
    b, c, t, h, w = x.shape
    frames = x.transpose(1, 2).reshape(b * t, c, h, w)
    out = F.group_norm(frames.float(), norm.num_groups, norm.weight.float(), norm.bias.float(), norm.eps)
    return out.to(x.dtype).reshape(b, t, c, h, w).transpose(1, 2)


def _group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(NORM_GROUPS, channels, eps=NORM_EPS)


class ResnetBlock3D(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.norm1 = _group_norm(in_channels)
        self.conv1 = CausalConv3d(in_channels, out_channels, (3, 3, 3))
        self.norm2 = _group_norm(out_channels)
        self.conv2 = CausalConv3d(out_channels, out_channels, (3, 3, 3))
        self.conv_shortcut = (CausalConv3d(in_channels, out_channels, (1, 1, 1))
                              if in_channels != out_channels else None)

    def forward(self, x: torch.Tensor, state: CausalState) -> torch.Tensor:
        h = self.conv1(F.silu(frame_group_norm(x, self.norm1)), state)
        h = self.conv2(F.silu(frame_group_norm(h, self.norm2)), state)
        skip = x if self.conv_shortcut is None else self.conv_shortcut(x, state)
        return skip + h


class FrameAttention(nn.Module):
    """Single-head self-attention over the pixels of each frame, with a residual connection."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.group_norm = _group_norm(channels)
        self.to_q = nn.Linear(channels, channels)
        self.to_k = nn.Linear(channels, channels)
        self.to_v = nn.Linear(channels, channels)
        self.to_out = nn.ModuleList([nn.Linear(channels, channels)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # One frame at a time: the attention matrix is (H*W)^2 per frame.
        return torch.stack([self._frame(x[:, :, t]) for t in range(x.shape[2])], dim=2)

    def _frame(self, frame: torch.Tensor) -> torch.Tensor:
        b, c, h, w = frame.shape
        normed = F.group_norm(frame.float(), self.group_norm.num_groups, self.group_norm.weight.float(),
                              self.group_norm.bias.float(), self.group_norm.eps).to(frame.dtype)
        tokens = normed.reshape(b, c, h * w).transpose(1, 2)  # (B, N, C)
        q, k, v = (proj(tokens).unsqueeze(1) for proj in (self.to_q, self.to_k, self.to_v))
        attended = F.scaled_dot_product_attention(q, k, v).squeeze(1)  # scale 1/sqrt(C): one head
        out = self.to_out[0](attended)
        return frame + out.transpose(1, 2).reshape(b, c, h, w)


class MidBlock3D(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock3D(channels, channels), ResnetBlock3D(channels, channels)])
        self.attentions = nn.ModuleList([FrameAttention(channels)])

    def forward(self, x: torch.Tensor, state: CausalState) -> torch.Tensor:
        x = self.resnets[0](x, state)
        x = self.attentions[0](x)
        return self.resnets[1](x, state)


class Downsample3D(nn.Module):
    """Halves H and W (and T when ``temporal``) with a strided causal conv."""

    def __init__(self, channels: int, temporal: bool) -> None:
        super().__init__()
        frames = 3 if temporal else 1
        self.conv = CausalConv3d(channels, channels, (frames, 3, 3), stride=(2 if temporal else 1, 2, 2),
                                 spatial_padding=0)

    def forward(self, x: torch.Tensor, state: CausalState) -> torch.Tensor:
        # The reference pads only bottom/right before the stride-2 3x3 conv.
        return self.conv(F.pad(x, (0, 1, 0, 1)), state)


class Upsample3D(nn.Module):
    """Doubles H and W (and T when ``temporal``): a 1x1x1 conv to channels x ratio, shuffled into
    space and time, then a causal 3x3x3 conv."""

    def __init__(self, channels: int, temporal: bool) -> None:
        super().__init__()
        self.time_ratio = 2 if temporal else 1
        self.upscale_conv = nn.Conv3d(channels, channels * 4 * self.time_ratio, kernel_size=1)
        self.conv = CausalConv3d(channels, channels, (3, 3, 3))

    def forward(self, x: torch.Tensor, state: CausalState) -> torch.Tensor:
        x = self._shuffle(self.upscale_conv(x))
        if self.time_ratio > 1 and state.first_chunk:
            # Frame 0 stands alone (T = 1 + 4n): its second copy in time is dropped.
            x = torch.cat([x[:, :, :1], x[:, :, 2:]], dim=2)
        return self.conv(x, state)

    def _shuffle(self, x: torch.Tensor) -> torch.Tensor:
        # Output channels are ordered (row offset, column offset, time offset, channel).
        b, _, t, h, w = x.shape
        z = self.time_ratio
        c = x.shape[1] // (4 * z)
        x = x.reshape(b, 2, 2, z, c, t, h, w).permute(0, 4, 5, 3, 6, 1, 7, 2)
        return x.reshape(b, c, t * z, h * 2, w * 2)


class DownBlock3D(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, layers: int, downsample: bool, temporal: bool) -> None:
        super().__init__()
        self.resnets = nn.ModuleList(
            [ResnetBlock3D(in_channels if i == 0 else out_channels, out_channels) for i in range(layers)])
        self.downsamplers = nn.ModuleList([Downsample3D(out_channels, temporal)] if downsample else [])

    def forward(self, x: torch.Tensor, state: CausalState) -> torch.Tensor:
        for layer in [*self.resnets, *self.downsamplers]:
            x = layer(x, state)
        return x


class UpBlock3D(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, layers: int, upsample: bool, temporal: bool) -> None:
        super().__init__()
        self.resnets = nn.ModuleList(
            [ResnetBlock3D(in_channels if i == 0 else out_channels, out_channels) for i in range(layers)])
        self.upsamplers = nn.ModuleList([Upsample3D(out_channels, temporal)] if upsample else [])

    def forward(self, x: torch.Tensor, state: CausalState) -> torch.Tensor:
        for layer in [*self.resnets, *self.upsamplers]:
            x = layer(x, state)
        return x


class Encoder3D(nn.Module):
    def __init__(self, config: VaeConfig) -> None:
        super().__init__()
        channels = config.block_out_channels
        self.conv_in = CausalConv3d(config.in_channels, channels[0], (3, 3, 3))
        self.down_blocks = nn.ModuleList([
            DownBlock3D(channels[max(i - 1, 0)], channels[i], config.layers_per_block,
                        downsample=i < len(channels) - 1, temporal=i in config.temporal_down_blocks)
            for i in range(len(channels))])
        self.mid_block = MidBlock3D(channels[-1])
        self.conv_norm_out = _group_norm(channels[-1])
        self.conv_out = CausalConv3d(channels[-1], 2 * config.latent_channels, (3, 3, 3))

    def forward(self, x: torch.Tensor, state: CausalState) -> torch.Tensor:
        x = self.conv_in(x, state)
        for block in self.down_blocks:
            x = block(x, state)
        x = self.mid_block(x, state)
        return self.conv_out(F.silu(frame_group_norm(x, self.conv_norm_out)), state)


class Decoder3D(nn.Module):
    def __init__(self, config: VaeConfig) -> None:
        super().__init__()
        channels = list(reversed(config.block_out_channels))
        self.conv_in = CausalConv3d(config.latent_channels, channels[0], (3, 3, 3))
        self.mid_block = MidBlock3D(channels[0])
        self.up_blocks = nn.ModuleList([
            UpBlock3D(channels[max(i - 1, 0)], channels[i], config.decoder_layers_per_block,
                      upsample=i < len(channels) - 1, temporal=i in config.temporal_up_blocks)
            for i in range(len(channels))])
        self.conv_norm_out = _group_norm(channels[-1])
        self.conv_out = CausalConv3d(channels[-1], config.out_channels, (3, 3, 3))

    def forward(self, z: torch.Tensor, state: CausalState) -> torch.Tensor:
        x = self.mid_block(self.conv_in(z, state), state)
        for block in self.up_blocks:
            x = block(x, state)
        return self.conv_out(F.silu(frame_group_norm(x, self.conv_norm_out)), state)


# --------------------------------------------------------------------------------------------
# Temporal chunks and spatial tiles


def chunk_bounds(length: int, first: int, rest: int) -> list[tuple[int, int]]:
    """[0, first), then steps of ``rest``, clipped to ``length``."""
    bounds = [(0, min(first, length))]
    while bounds[-1][1] < length:
        start = bounds[-1][1]
        bounds.append((start, min(start + rest, length)))
    return bounds


def run_causal(net: nn.Module, x: torch.Tensor, bounds: Sequence[tuple[int, int]]) -> torch.Tensor:
    """Runs ``net`` over time chunks of ``x`` (B, C, T, H, W), one causal state for all of them."""
    state = CausalState()
    outputs = []
    for start, end in bounds:
        outputs.append(net(x[:, :, start:end], state))
        state.first_chunk = False
    return outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=2)


def tile_spans(length: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """Tiles of ``tile`` units that step by tile - overlap; the last one is moved back to end
    at ``length`` rather than left short. One span when no tiling is asked for or needed."""
    if tile <= 0 or tile >= length:
        return [(0, length)]
    starts = list(range(0, length - tile, tile - overlap)) + [length - tile]
    return [(start, start + tile) for start in starts]


def blend_weights(spans: Sequence[tuple[int, int]], length: int, ramp: int, scale: int) -> list[torch.Tensor]:
    """Per-span 1-D weights in output units (span units x ``scale``) that sum to 1 at every
    position: linear ramps over ``ramp`` units on each side shared with a neighbour. Float64, so
    the normalisation adds no error of its own."""
    steps = torch.arange(1, ramp + 1, dtype=torch.float64) / (ramp + 1)
    raw = []
    for start, end in spans:
        weight = torch.ones((end - start) * scale, dtype=torch.float64)
        if ramp and start > 0:
            weight[:ramp] = torch.minimum(weight[:ramp], steps)
        if ramp and end < length:
            weight[-ramp:] = torch.minimum(weight[-ramp:], steps.flip(0))
        raw.append(weight)
    total = torch.zeros(length * scale, dtype=torch.float64)
    for (start, _), weight in zip(spans, raw):
        total[start * scale:start * scale + weight.numel()] += weight
    return [weight / total[start * scale:start * scale + weight.numel()] for (start, _), weight in zip(spans, raw)]


def tiled_apply(x: torch.Tensor, run: Callable[[torch.Tensor], torch.Tensor], tile: int, overlap: int,
                in_scale: int, out_scale: int) -> torch.Tensor:
    """Applies ``run`` to overlapping spatial tiles of ``x`` (..., H, W) and blends the results.

    ``tile`` and ``overlap`` count latent pixels; a latent pixel is ``in_scale`` pixels of ``x``
    and ``out_scale`` pixels of the output, so encoder tiles start and end on whole latent
    pixels. A single tile is ``run(x)`` itself, untouched by any blending arithmetic.
    """
    grid_h, grid_w = x.shape[-2] // in_scale, x.shape[-1] // in_scale
    rows, cols = tile_spans(grid_h, tile, overlap), tile_spans(grid_w, tile, overlap)
    if len(rows) == 1 and len(cols) == 1:
        return run(x)
    row_weights = blend_weights(rows, grid_h, overlap * out_scale, out_scale)
    col_weights = blend_weights(cols, grid_w, overlap * out_scale, out_scale)
    out = None
    for (top, bottom), row_weight in zip(rows, row_weights):
        for (left, right), col_weight in zip(cols, col_weights):
            piece = run(x[..., top * in_scale:bottom * in_scale, left * in_scale:right * in_scale])
            if out is None:
                out = piece.new_zeros(*piece.shape[:-2], grid_h * out_scale, grid_w * out_scale)
            weight = (row_weight[:, None] * col_weight[None, :]).to(piece)
            out[..., top * out_scale:bottom * out_scale, left * out_scale:right * out_scale] += piece * weight
    return out


# --------------------------------------------------------------------------------------------
# The VAE


class CausalVideoVAE(nn.Module):
    def __init__(self, config: VaeConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder3D(config)
        self.decoder = Decoder3D(config)

    # ---- loading

    @classmethod
    def from_safetensors(cls, path: str | Path, device: str | torch.device = "cpu",
                         dtype: torch.dtype = torch.float32) -> CausalVideoVAE:
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"SeedVR2 VAE weights not found: {path}")
        state = load_checkpoint(path, what="SeedVR2 VAE weights")
        return cls.from_state_dict(state, device=device, dtype=dtype)

    @classmethod
    def from_state_dict(cls, state: Mapping[str, torch.Tensor], device: str | torch.device = "cpu",
                        dtype: torch.dtype = torch.float32) -> CausalVideoVAE:
        config = infer_config(state)
        with torch.device("meta"):  # no random init: every parameter comes from the file
            model = cls(config)
        _check_layout(model, state)
        # Copies even where device and dtype match: ema_vae.pth is memory-mapped, and mapped weights
        # would change, or SIGBUS, when the file is rewritten in place.
        weights = {name: tensor.to(device=device, dtype=dtype, copy=True) for name, tensor in state.items()}
        model.load_state_dict(weights, strict=True, assign=True)
        return model.requires_grad_(False).eval()

    @property
    def device(self) -> torch.device:
        return self.decoder.conv_out.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.decoder.conv_out.weight.dtype

    # ---- public API

    def encode(self, video: torch.Tensor, tiling: VaeTiling | None = None) -> torch.Tensor:
        """(3, T, H, W) in [-1, 1] → posterior mean x SCALING_FACTOR, (t', H/8, W/8, latent)."""
        tiling = tiling or UNTILED
        self._check_video(video)
        self._check_tiling(tiling)
        chunk = tiling.temporal_chunk
        latent_channels = self.config.latent_channels

        def encode_tile(tile: torch.Tensor) -> torch.Tensor:
            moments = run_causal(self.encoder, tile, chunk_bounds(tile.shape[2], 1 + chunk, chunk))
            return moments[:, :latent_channels]  # the mean; the log-variance is not needed

        with torch.no_grad():
            x = video.to(device=self.device, dtype=self.dtype).unsqueeze(0)
            mean = self._tiled(x, encode_tile, tiling, in_scale=self.config.spatial_factor, out_scale=1)
            return (mean[0] * SCALING_FACTOR).permute(1, 2, 3, 0).contiguous()

    def decode(self, latent: torch.Tensor, tiling: VaeTiling | None = None) -> torch.Tensor:
        """(t', h, w, latent) scaled as ``encode`` gives it → (3, 1 + 4(t'-1), 8h, 8w), not clamped."""
        tiling = tiling or UNTILED
        self._check_latent(latent)
        self._check_tiling(tiling)
        chunk = tiling.temporal_chunk // self.config.temporal_factor

        def decode_tile(tile: torch.Tensor) -> torch.Tensor:
            return run_causal(self.decoder, tile, chunk_bounds(tile.shape[2], 1 + chunk, chunk))

        with torch.no_grad():
            z = latent.to(device=self.device, dtype=self.dtype).permute(3, 0, 1, 2).unsqueeze(0) / SCALING_FACTOR
            video = self._tiled(z, decode_tile, tiling, in_scale=1, out_scale=self.config.spatial_factor)
            return video[0]

    # ---- internals

    def _tiled(self, x: torch.Tensor, run: Callable[[torch.Tensor], torch.Tensor], tiling: VaeTiling,
               in_scale: int, out_scale: int) -> torch.Tensor:
        factor = self.config.spatial_factor
        return tiled_apply(x, run, tiling.tile_size // factor, tiling.tile_overlap // factor, in_scale, out_scale)

    def _check_tiling(self, tiling: VaeTiling) -> None:
        factor, frames = self.config.spatial_factor, self.config.temporal_factor
        if tiling.tile_size % factor or tiling.tile_overlap % factor:
            raise ValueError(f"VAE tile_size and tile_overlap must be multiples of {factor} pixels: {tiling}")
        if tiling.temporal_chunk % frames:
            raise ValueError(f"VAE temporal_chunk must be a multiple of {frames} frames: {tiling}")

    def _check_video(self, video: torch.Tensor) -> None:
        factor, frames = self.config.spatial_factor, self.config.temporal_factor
        if (video.ndim != 4 or video.shape[0] != self.config.in_channels or (video.shape[1] - 1) % frames
                or video.shape[2] % factor or video.shape[3] % factor):
            raise ValueError(f"VAE encode wants ({self.config.in_channels}, {frames}n+1, H, W) with H and W "
                             f"multiples of {factor}, got {tuple(video.shape)}")

    def _check_latent(self, latent: torch.Tensor) -> None:
        if latent.ndim != 4 or latent.shape[3] != self.config.latent_channels:
            raise ValueError(f"VAE decode wants (t, h, w, {self.config.latent_channels}), "
                             f"got {tuple(latent.shape)}")


def _check_layout(model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """A ModelError naming what does not fit, instead of load_state_dict's RuntimeError."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ModelError(f"SeedVR2 VAE weights do not match the inferred layout {model.config}: "
                         f"missing {_some(missing)}, unexpected {_some(unexpected)}")
    wrong = [f"{name} {tuple(state[name].shape)} != {tuple(tensor.shape)}"
             for name, tensor in expected.items() if tuple(state[name].shape) != tuple(tensor.shape)]
    if wrong:
        raise ModelError(f"SeedVR2 VAE weights have unexpected shapes: {_some(wrong)}")


def _some(items: Sequence[str], limit: int = 5) -> str:
    if not items:
        return "none"
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more
