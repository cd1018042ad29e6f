"""SeedVR2 DiT attention: 3-D window partitions, window-local "mmrope3d" and the windowed
video+text attention (torch, no Ray).

Tokens of the video are in (t, h, w) raster order on the patch grid. Each window attends over its
own video tokens plus every text token; a text token's output is the mean over all windows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Iterator, List, Sequence, Tuple

import torch
import torch.nn.functional as F

Grid = Tuple[int, int, int]  # (t, h, w) in patches
Window = Tuple[int, int, int, int, int, int]  # (t0, t1, h0, h1, w0, w1), end exclusive

# Windows per axis at the reference's 720p scale: the "(4, 3, 3)" of the SeedVR2 configuration.
WINDOW_COUNTS: Grid = (4, 3, 3)
# A 720p frame on the patch grid is 45 × 80 patches; other sizes scale their windows to it.
REFERENCE_AREA = 45 * 80
MAX_WINDOW_FRAMES = 30

# Windows run in batches bounded by their tokens (the fp32 q/k/v of a batch: ~1 GB for the 3B) and,
# for fp32 attention whose SDPA kernels hold the scores, by the score elements (~512 MB).
TOKEN_BUDGET = 1 << 15
SCORE_BUDGET = 1 << 27


# -- window partition ------------------------------------------------------------------------


def window_size(grid: Grid, counts: Grid = WINDOW_COUNTS) -> Grid:
    """Window extent (t, h, w): the grid is rescaled to 720p's area and cut into ``counts``."""
    t, h, w = grid
    scale = math.sqrt(REFERENCE_AREA / (h * w))
    # Python's round (half to even) on purpose: the reference uses it.
    return (math.ceil(min(t, MAX_WINDOW_FRAMES) / counts[0]),
            math.ceil(round(h * scale) / counts[1]),
            math.ceil(round(w * scale) / counts[2]))


def _axis_spans(length: int, size: int, shifted: bool) -> List[Tuple[int, int]]:
    """Non-empty [start, end) spans along one axis; shifted spans start half a window early and
    are clipped at both borders (no cyclic roll). An axis that fits one window is never shifted."""
    shift = 0.5 if shifted and size < length else 0.0
    count = math.ceil((length - shift) / size) + (1 if shift else 0)
    spans = []
    for i in range(count):
        # int() truncates toward zero, like the reference, before clipping.
        start, end = max(int((i - shift) * size), 0), min(int((i - shift + 1) * size), length)
        if end > start:
            spans.append((start, end))
    return spans


def window_partition(grid: Grid, shifted: bool, counts: Grid = WINDOW_COUNTS) -> List[Window]:
    """The windows of one block, in the reference's order: w outermost, then h, t innermost."""
    sizes = window_size(grid, counts)
    t_spans, h_spans, w_spans = (_axis_spans(n, s, shifted) for n, s in zip(grid, sizes))
    return [(t0, t1, h0, h1, w0, w1) for (w0, w1) in w_spans for (h0, h1) in h_spans for (t0, t1) in t_spans]


def window_token_index(grid: Grid, window: Window, device: torch.device | str) -> torch.Tensor:
    """Raster indices of a window's tokens, in the window's own (t, h, w) raster order."""
    _, h, w = grid
    t0, t1, h0, h1, w0, w1 = window
    ts = torch.arange(t0, t1, device=device).view(-1, 1, 1)
    hs = torch.arange(h0, h1, device=device).view(1, -1, 1)
    ws = torch.arange(w0, w1, device=device).view(1, 1, -1)
    return ((ts * h + hs) * w + ws).reshape(-1)


def group_windows(grid: Grid, windows: Sequence[Window], device: torch.device | str) -> Dict[Grid, torch.Tensor]:
    """Windows of equal shape share RoPE tables and run as one batch: shape → (count, tokens)."""
    groups: Dict[Grid, List[torch.Tensor]] = {}
    for window in windows:
        shape = (window[1] - window[0], window[3] - window[2], window[5] - window[4])
        groups.setdefault(shape, []).append(window_token_index(grid, window, device))
    return {shape: torch.stack(indices) for shape, indices in groups.items()}


# -- rotary position embedding ("mmrope3d") --------------------------------------------------


def _axis_angles(positions: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    """(n,) positions × (f,) frequencies → (n, f) angles, in fp32 like the reference."""
    return positions.to(torch.float32).unsqueeze(-1) * freqs.unsqueeze(0)


def video_rope(freqs: torch.Tensor, shape: Grid, text_len: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """cos, sin (n, 3·f) for a window of ``shape``: positions are local to the window, time shifted
    by the text length, so (text_len + t, h, w). One angle per rotated pair of dims."""
    t, h, w = shape
    dev = freqs.device
    at = _axis_angles(torch.arange(text_len, text_len + t, device=dev), freqs)
    ah = _axis_angles(torch.arange(h, device=dev), freqs)
    aw = _axis_angles(torch.arange(w, device=dev), freqs)
    f = freqs.numel()
    angles = torch.cat([at.view(t, 1, 1, f).expand(t, h, w, f),
                        ah.view(1, h, 1, f).expand(t, h, w, f),
                        aw.view(1, 1, w, f).expand(t, h, w, f)], dim=-1).reshape(t * h * w, 3 * f)
    return angles.cos(), angles.sin()


def text_rope(freqs: torch.Tensor, text_len: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """cos, sin (L, 3·f): text token i sits at (i, i, i)."""
    angles = _axis_angles(torch.arange(text_len, device=freqs.device), freqs).repeat(1, 3)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotates interleaved pairs (2i, 2i+1) of the first 2·cos.shape[-1] dims of x (..., n, heads,
    d) by the angles (n, pairs); the remaining dims (126, 127 for head_dim 128) pass through."""
    pairs = cos.shape[-1]
    rotated, rest = x[..., : 2 * pairs], x[..., 2 * pairs:]
    rotated = rotated.unflatten(-1, (pairs, 2))
    even, odd = rotated[..., 0], rotated[..., 1]
    cos, sin = cos.unsqueeze(-2), sin.unsqueeze(-2)  # broadcast over heads
    out = torch.stack([even * cos - odd * sin, odd * cos + even * sin], dim=-1).flatten(-2)
    return torch.cat([out, rest], dim=-1)


# -- attention -------------------------------------------------------------------------------


def rms_norm(x: torch.Tensor, weight: torch.Tensor | None, eps: float) -> torch.Tensor:
    """RMSNorm over the last dim, always in fp32 (the reference's norms are fp32)."""
    x = x.to(torch.float32)
    x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    return x if weight is None else x * weight


@dataclass(frozen=True)
class QKNorm:
    """Per-head RMS norm of queries and keys of one stream (video or text), fp32."""

    q_weight: torch.Tensor
    k_weight: torch.Tensor
    eps: float

    def __call__(self, qkv: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(..., 3, heads, d) projections → normed q, k and raw v, each (..., heads, d)."""
        q, k, v = qkv.unbind(-3)
        return rms_norm(q, self.q_weight, self.eps), rms_norm(k, self.k_weight, self.eps), v


def _batches(count: int, length: int, heads: int, attn_dtype: torch.dtype) -> Iterator[slice]:
    """Slices of ``count`` windows of ``length`` tokens each, within the budgets above."""
    step = TOKEN_BUDGET // length
    if attn_dtype == torch.float32:
        step = min(step, SCORE_BUDGET // (heads * length * length))
    step = max(step, 1)
    for start in range(0, count, step):
        yield slice(start, min(start + step, count))


def window_attention(
    vid_qkv: torch.Tensor,
    txt_qkv: torch.Tensor,
    norms: Tuple[QKNorm, QKNorm],
    groups: Dict[Grid, torch.Tensor],
    freqs: torch.Tensor,
    attn_dtype: torch.dtype,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Attention of every window over [its video tokens ‖ all text tokens].

    ``vid_qkv`` (N, 3, heads, d) and ``txt_qkv`` (L, 3, heads, d) are the raw projections;
    ``norms`` the (video, text) qk-norms. The video is normed window by window so only one batch
    of windows is ever in fp32. q, k and v are rounded to bf16 after norm and RoPE, and the result
    is rounded to bf16, as in the reference; softmax runs in ``attn_dtype``.
    Returns video (N, heads·d) in ``attn_dtype`` (fp32 at least for fp32 attention) and text
    (L, heads·d) in fp32, averaged over the windows.
    """
    n_tokens, _, heads, dim = vid_qkv.shape
    text_len = txt_qkv.shape[0]
    cos, sin = text_rope(freqs, text_len)
    tq, tk, tv = norms[1](txt_qkv)
    tq, tk = (_round(apply_rope(x, cos, sin), attn_dtype) for x in (tq, tk))
    tv = _round(tv, attn_dtype)

    vid_out = vid_qkv.new_empty(n_tokens, heads * dim, dtype=attn_dtype)
    txt_sum = vid_qkv.new_zeros(text_len, heads * dim, dtype=torch.float32)
    windows = 0
    for shape, index in groups.items():
        cos, sin = video_rope(freqs, shape, text_len)
        size = index.shape[1]
        for part in _batches(index.shape[0], size + text_len, heads, attn_dtype):
            idx = index[part]
            vq, vk, vv = norms[0](vid_qkv[idx])
            q = torch.cat([_round(apply_rope(vq, cos, sin), attn_dtype), _expand(tq, idx)], dim=1)
            k = torch.cat([_round(apply_rope(vk, cos, sin), attn_dtype), _expand(tk, idx)], dim=1)
            v = torch.cat([_round(vv, attn_dtype), _expand(tv, idx)], dim=1)
            out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
            out = _round(out.transpose(1, 2), attn_dtype).flatten(2)  # (G, n + L, heads·d)
            vid_out[idx.reshape(-1)] = out[:, :size].reshape(-1, heads * dim)
            txt_sum += out[:, size:].to(torch.float32).sum(0)
            windows += idx.shape[0]
    return vid_out, txt_sum / windows


def _round(x: torch.Tensor, attn_dtype: torch.dtype) -> torch.Tensor:
    """bf16 rounding (the reference's precision), then the dtype attention runs in."""
    return x.to(torch.bfloat16).to(attn_dtype)


def _expand(text: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    return text.unsqueeze(0).expand(idx.shape[0], *text.shape)
