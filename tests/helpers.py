"""Helpers shared by the tests: the shared assets, tiny random models, a real input HTTP server."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import weakref
import zlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import partial
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from fractions import Fraction
from typing import Callable, Iterator, List, Optional, Sequence, Tuple
from urllib.parse import parse_qs, urlsplit

import av
import cv2
import numpy as np
import pytest
import requests
import torch
from PIL import Image
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from tests.waiting import eventually  # re-exported: the tests import it from here
from tmlsr_ray.models.basicsr_compat import import_architectures
from tmlsr_ray.pipeline.h264_header import HIGH_PROFILES, RbspBits
from tmlsr_ray.pipeline.length import LengthLimits
from tmlsr_ray.pipeline.isobmff import boxes, top_level_box
from tmlsr_ray.pipeline.video_info import VideoInfo

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
BASIC_AUTH = "user:s3cret"  # what the input server's /basic-auth/ asks for


def shared_path(*parts: str) -> Path:
    """A file of ../shared, or a skip when this checkout has none beside it (a user's fresh clone)."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs {path} (the shared test assets are not beside this checkout)")
    return path


@contextlib.contextmanager
def small_disk(path: Path, size: str = "1m"):
    """A tmpfs of ``size`` mounted on ``path`` (made if missing) for the block: a disk that fills
    up for real. A skip where this process may not mount (not root, no CAP_SYS_ADMIN)."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                             capture_output=True, text=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a small disk here: {mounted.stderr.strip() or mounted.returncode}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def server_sent_events(response):
    """The events of a streaming ``requests`` response as they arrive: dicts of ``id`` (int),
    ``event`` and ``data`` (parsed JSON); a comment line comes as ``{"comment": text}``."""
    import json

    event: dict = {}
    for line in response.iter_lines(chunk_size=None, decode_unicode=True):  # None: each chunk as it comes
        if not line:
            if event:
                yield event
            event = {}
        elif line.startswith(":"):
            yield {"comment": line[1:].strip()}
        else:
            name, _, value = line.partition(": ")
            event[name] = int(value) if name == "id" else json.loads(value) if name == "data" else value


API_TOKEN = "s3cret"  # the secured service's (tests/serve/conftest.py)
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
SEEDVR2_MODEL = "seedvr2_ema_3b-Q4_K_M.gguf"  # the tiny golden SeedVR2, under a real installation's file name
WEBHOOK_SECRET = "hook-secret"


def wait_for_task(base: str, task_id: str, headers: Optional[dict] = None, timeout: float = 60,
                  until: Optional[Callable[[dict], bool]] = None) -> dict:
    """A task of the service at ``base`` once ``until`` it (by default, once it has ended), asked
    with ``headers`` (a token's, if any)."""
    return eventually(lambda: read_task(base, task_id, headers), timeout, f"task {task_id} to get there",
                      until=until or task_ended)


def read_task(base: str, task_id: str, headers: Optional[dict] = None) -> dict:
    response = requests.get(f"{base}/tasks/{task_id}", headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def task_ended(task: dict) -> bool:
    return task["status"] in ("completed", "failed", "canceled")


def video_progress(task: dict) -> dict:
    """A video task's upscaling stage detail: frames and segments done and in all (empty before it starts)."""
    return task["stages"][1].get("detail") or {}


def segments_done(task: dict) -> int:
    return video_progress(task).get("segments_done", 0)


def fetch_output(task: dict) -> bytes:
    """The bytes of a completed task's output, from the URL the task hands out."""
    response = requests.get(task["output"]["url"], timeout=30)
    assert response.status_code == 200, response.text
    return response.content


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def save_srvgg(path: Path, num_feat: int = 8, num_conv: int = 2, scale: int = 4, seed: int = 0,
               key: str = "params", weight_scale: float = 1.0) -> Path:
    """A random SRVGGNetCompact checkpoint, in the official file layout.

    A small ``weight_scale`` makes the output close to the nearest-neighbour upscale the network
    adds its residual to: smooth frames that encode like real model output.
    """
    _, srvgg = import_architectures()
    torch.manual_seed(seed)
    net = srvgg(num_in_ch=3, num_out_ch=3, num_feat=num_feat, num_conv=num_conv, upscale=scale, act_type="prelu")
    state = {name: tensor * weight_scale for name, tensor in net.state_dict().items()}
    torch.save({key: state}, path)
    return path


def save_rrdbnet(path: Path, scale: int = 4, num_feat: int = 8, num_block: int = 1, num_grow_ch: int = 4,
                 seed: int = 0) -> Path:
    rrdbnet, _ = import_architectures()
    torch.manual_seed(seed)
    net = rrdbnet(num_in_ch=3, num_out_ch=3, scale=scale, num_feat=num_feat, num_block=num_block,
                  num_grow_ch=num_grow_ch)
    torch.save({"params_ema": net.state_dict()}, path)
    return path


# Architectures served through spandrel, each built tiny from spandrel's own classes (hyper-
# parameters spandrel reads back from the state dict). Compact files are Real-ESRGAN's family.
SPANDREL_ARCHS = ("ESRGAN", "SwinIR", "HAT", "DAT", "OmniSR", "SPAN", "RealCUGAN", "PLKSR")
# Architectures whose spandrel call takes one image at a time (FDnCNN is DnCNN with a noise map);
# DRUNet and FDnCNN restore at ×1 whatever the scale asked.
SPANDREL_ONE_IMAGE_ARCHS = ("DRUNet", "FDnCNN", "IPT", "SeemoRe")
# Architectures spandrel says tile badly (ModelTiling.DISCOURAGED): they draw on the whole image.
SPANDREL_TILING_DISCOURAGED_ARCHS = ("SCUNet", "RetinexFormer", "SwinIR")


def _spandrel_class(module: str, name: str = ""):
    import importlib

    return getattr(importlib.import_module(f"spandrel.architectures.{module}"), name or module)


def tiny_spandrel_network(arch: str, scale: int) -> torch.nn.Module:
    cls = _spandrel_class
    window = dict(img_size=16, window_size=4, embed_dim=12, depths=[1], num_heads=[2], mlp_ratio=2)
    builders = {
        "Compact": lambda: cls("Compact")(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=scale),
        "ESRGAN": lambda: cls("ESRGAN")(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=scale),
        "SwinIR": lambda: cls("SwinIR")(upscale=scale, upsampler="pixelshuffledirect", **window),
        "HAT": lambda: cls("HAT")(upscale=scale, upsampler="pixelshuffle", compress_ratio=3, squeeze_factor=4,
                                  overlap_ratio=0.5, **window),
        "DAT": lambda: cls("DAT")(upscale=scale, img_size=16, embed_dim=16, depth=[2], num_heads=[2],
                                  split_size=[2, 4], expansion_factor=2, upsampler="pixelshuffledirect"),
        "OmniSR": lambda: cls("OmniSR")(num_in_ch=3, num_out_ch=3, num_feat=16, block_num=1, window_size=4,
                                        up_scale=scale, res_num=1),
        "SPAN": lambda: cls("SPAN")(num_in_ch=3, num_out_ch=3, feature_channels=8, upscale=scale),
        "RealCUGAN": lambda: cls("RealCUGAN", f"UpCunet{scale}x")(in_channels=3, out_channels=3),
        "PLKSR": lambda: cls("PLKSR")(dim=8, n_blocks=2, upscaling_factor=scale, kernel_size=9, split_ratio=0.25),
        "DRUNet": lambda: cls("DRUNet")(in_nc=4, out_nc=3, nc=[4, 8, 8, 8], nb=2),
        "FDnCNN": lambda: cls("DnCNN")(in_nc=4, out_nc=3, nc=8, nb=8, act_mode="R", mode="FDnCNN"),
        "IPT": lambda: cls("IPT")(patch_size=12, n_feats=8, scale=[scale], num_heads=1, num_layers=1),
        "SeemoRe": lambda: cls("SeemoRe")(scale=scale, num_experts=2, num_layers=1, embedding_dim=8),
        # restoration at ×1 whatever the scale asked; spandrel discourages tiling both
        "SCUNet": lambda: cls("SCUNet")(in_nc=3, config=[1] * 7, dim=64),  # its attention heads are 32 wide
        "RetinexFormer": lambda: cls("RetinexFormer")(n_feat=8, stage=1),
        # always ×4 (spandrel reads the scale off the style network's widths, 32 / 8)
        "AuraSR": lambda: cls("AuraSR")(dim=8, image_size=None, input_image_size=None, up_dim_mults=(1,) * 5,
                                        down_dim_mults=(1,) * 3, style_network=dict(dim_in=8, dim_out=32, depth=1),
                                        resnet_block_groups=4, full_attn=(False,) * 5, flash_attn=False,
                                        self_attn_dim_head=8, attn_depths=(1,) * 5, mid_attn_depth=1),
    }
    return builders[arch]()


# spandrel architectures at the feature widths, windows and heads of their published models, one
# shallow stage deep: (module, class, the keyword of its scale, the other arguments)
_SWIN = dict(img_size=64, embed_dim=180, depths=[2], num_heads=[6], mlp_ratio=2, upsampler="pixelshuffle")
SERVED_WIDTHS = {
    "Compact": ("Compact", "Compact", "upscale", dict(num_in_ch=3, num_out_ch=3, num_feat=64, num_conv=4)),
    "ESRGAN": ("ESRGAN", "ESRGAN", "scale", dict(in_nc=3, out_nc=3, num_filters=64, num_blocks=2)),
    "SwinIR": ("SwinIR", "SwinIR", "upscale", dict(window_size=8, **_SWIN)),
    # the real-world large model: the widest published SwinIR (240 channels, 8 heads)
    "SwinIR-L": ("SwinIR", "SwinIR", "upscale", dict(window_size=8, **{**_SWIN, "embed_dim": 240, "num_heads": [8],
                                                                        "upsampler": "nearest+conv"},
                                                     resi_connection="3conv")),
    # the lightweight model (60 channels, a direct pixel shuffle)
    "SwinIR-light": ("SwinIR", "SwinIR", "upscale", dict(window_size=8, **{**_SWIN, "embed_dim": 60,
                                                                            "upsampler": "pixelshuffledirect"})),
    "HAT": ("HAT", "HAT", "upscale", dict(window_size=16, compress_ratio=3, squeeze_factor=30, overlap_ratio=0.5,
                                          **_SWIN)),
    "DAT": ("DAT", "DAT", "upscale", dict(img_size=64, embed_dim=180, depth=[2], num_heads=[6], split_size=[8, 32],
                                          expansion_factor=2, upsampler="pixelshuffle")),
    "DAT-light": ("DAT", "DAT", "upscale", dict(img_size=64, embed_dim=60, depth=[2], num_heads=[6], split_size=[8, 32],
                                                expansion_factor=2, upsampler="pixelshuffledirect")),
    "OmniSR": ("OmniSR", "OmniSR", "up_scale", dict(num_in_ch=3, num_out_ch=3, num_feat=64, block_num=1,
                                                    window_size=8, res_num=1)),
    "SPAN": ("SPAN", "SPAN", "upscale", dict(num_in_ch=3, num_out_ch=3, feature_channels=48)),
    "RealCUGAN": ("RealCUGAN", "UpCunet4x", None, dict(in_channels=3, out_channels=3)),
    "PLKSR": ("PLKSR", "PLKSR", "upscaling_factor", dict(dim=64, n_blocks=2, kernel_size=17, split_ratio=0.25)),
    # ×1 restoration networks whose tiles show: spandrel's defaults are the published networks
    "SCUNet": ("SCUNet", "SCUNet", None, dict()),
    "RetinexFormer": ("RetinexFormer", "RetinexFormer", None, dict()),
    "MixDehazeNet": ("MixDehazeNet", "MixDehazeNet", None, dict()),
    "HVI-CIDNet": ("HVICIDNet", "HVICIDNet", None, dict()),
}
# Families whose pass needs data (SPAN's reparametrisation, HVI-CIDNet's masks of its maximum
# channel): measured on the CPU, so at small sizes
DATA_DEPENDENT_FAMILIES = ("SPAN", "HVI-CIDNet")


def served_width_spandrel_network(arch: str) -> torch.nn.Module:
    """``arch`` ×4 at its published widths (:data:`SERVED_WIDTHS`): a pass's peak memory follows
    the widths, not the depth (blocks run one after another), so a memory estimate checked
    against it holds for a served file."""
    module, name, scale_keyword, arguments = SERVED_WIDTHS[arch]
    scale = {scale_keyword: 4} if scale_keyword else {}
    return _spandrel_class(module, name)(**arguments, **scale)


# The transformers among them, whose memory estimate decides whether a frame runs whole at the
# sizes users send (a convolution network's fits whole at all of them)
SERVED_TRANSFORMERS = ("SwinIR", "SwinIR-L", "SwinIR-light", "HAT", "DAT", "DAT-light", "OmniSR", "SCUNet",
                       "RetinexFormer")

# The families the registry loads, at their published feature widths: Real-ESRGAN's own
# (SRVGGNetCompact as realesr-animevideov3 and the x2/x4 general models, RRDBNet as x4plus and
# anime_6B), then spandrel's.
SERVED_FAMILIES = ("SRVGGNetCompact x2", "SRVGGNetCompact x4", "RRDBNet x4", *SERVED_WIDTHS)
# Their architectures :func:`tiny_spandrel_network` builds small (MixDehazeNet and HVI-CIDNet are
# small at their published widths)
TINY_SPANDREL_ARCHS = {SERVED_WIDTHS[family][0] for family in SERVED_WIDTHS} - {"MixDehazeNet", "HVICIDNet"}


def served_width_model(family: str, dtype: str, folder: Path):
    """A loaded model on the CPU of ``family`` (one of :data:`SERVED_FAMILIES`) at its published
    widths, random weights saved in ``folder``."""
    from tmlsr_ray.models.base import LoadOptions
    from tmlsr_ray.models.realesrgan import RealESRGANModel
    from tmlsr_ray.models.spandrel import SpandrelModel

    if family.startswith("SRVGGNetCompact"):
        path = save_srvgg(folder / "m.pth", num_feat=64, num_conv=4, scale=int(family[-1]))
        return RealESRGANModel(path, device="cpu", dtype=dtype)
    if family.startswith("RRDBNet"):
        return RealESRGANModel(save_rrdbnet(folder / "m.pth", num_feat=64, num_block=2, num_grow_ch=32),
                               device="cpu", dtype=dtype)
    torch.manual_seed(0)
    path = save_state(served_width_spandrel_network(family).state_dict(), folder / "m.pth")
    return SpandrelModel(path, LoadOptions("cpu", dtype=dtype))


def tiny_model(family: str, dtype: str, folder: Path):
    """A loaded model on the CPU of ``family`` (one of :data:`SERVED_FAMILIES`), its architecture
    at the tiny widths of :func:`tiny_spandrel_network` (Real-ESRGAN's at 8 features), ×4."""
    from tmlsr_ray.models.base import LoadOptions
    from tmlsr_ray.models.realesrgan import RealESRGANModel
    from tmlsr_ray.models.spandrel import SpandrelModel

    if family.startswith("SRVGGNetCompact"):
        return RealESRGANModel(save_srvgg(folder / "m.pth", scale=int(family[-1])), device="cpu", dtype=dtype)
    if family.startswith("RRDBNet"):
        return RealESRGANModel(save_rrdbnet(folder / "m.pth"), device="cpu", dtype=dtype)
    arch = SERVED_WIDTHS[family][0]
    path = save_spandrel_model(arch, folder / "m.pth", scale=4) if arch in TINY_SPANDREL_ARCHS else \
        save_state(served_width_spandrel_network(family).state_dict(), folder / "m.pth")
    return SpandrelModel(path, LoadOptions("cpu", dtype=dtype))


def save_spandrel_model(arch: str, path: Path, scale: int = 2, seed: int = 0) -> Path:
    """A tiny random ``arch`` network as a .pth (or .safetensors) state dict, as community files are."""
    torch.manual_seed(seed)
    return save_state(tiny_spandrel_network(arch, scale).state_dict(), path)


def save_state(state: dict, path: Path) -> Path:
    """A network's state dict as a .pth, or a .safetensors where ``path`` ends so."""
    state = {name: tensor.contiguous().clone() for name, tensor in state.items()}
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        torch.save(state, path)
    return path


def save_unshuffle_swinir(path: Path, scale: int = 2) -> Path:
    """A tiny SwinIR whose first layer pixel-unshuffles its input by 2 (``conv_first.1.*``, the
    layout spandrel reads for a SwinIR that starts at half size): its ×4 network scales ×``scale``."""
    from spandrel.architectures.SwinIR import SwinIR

    torch.manual_seed(0)
    network = SwinIR(upscale=scale * 2, upsampler="pixelshuffle", start_unshuffle=2, img_size=16, window_size=4,
                     embed_dim=12, depths=[1], num_heads=[2], mlp_ratio=2)
    torch.save({name.replace("conv_first.", "conv_first.1."): tensor.contiguous().clone()
                for name, tensor in network.state_dict().items()}, path)
    return path


def write_gguf(path: Path, tensors, retype: dict | None = None) -> Path:
    """A GGUF file of ``tensors`` (``PackedTensor``s, as ``read_gguf`` yields them) as stored;
    ``retype`` {name: qtype} turns a tensor into random bytes of another type (an IQ2, a Q3_K)."""
    import gguf

    writer = gguf.GGUFWriter(str(path), "seedvr2")
    for tensor in tensors:
        qtype = (retype or {}).get(tensor.name, tensor.qtype)
        if qtype != tensor.qtype:
            block, size = gguf.GGML_QUANT_SIZES[qtype]
            raw = np.random.default_rng(0).integers(0, 256, (*tensor.shape[:-1], tensor.shape[-1] // block * size),
                                                    dtype=np.uint8)
            writer.add_tensor(tensor.name, raw, raw_shape=raw.shape, raw_dtype=qtype)
        elif qtype in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16):
            writer.add_tensor(tensor.name, np.asarray(tensor.data).reshape(tensor.shape))
        else:
            writer.add_tensor(tensor.name, np.asarray(tensor.data), raw_shape=tensor.data.shape, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@dataclass(frozen=True)
class DiTShape:
    """The widths and depths of a NaDiT checkpoint (SeedVR2 3B's by default)."""

    hidden: int = 2560
    blocks: int = 32
    mm_layers: int = 10
    mlp_hidden: int = 6912
    head_dim: int = 128
    text_dim: int = 5120
    rope_freqs: int = 21


def dit_tensors(shape: DiTShape) -> Iterator[Tuple[str, Tuple[int, ...]]]:
    """(name, logical shape) of every tensor of a NaDiT checkpoint."""
    h = shape.hidden
    yield from [("vid_in.proj.weight", (h, 132)), ("vid_in.proj.bias", (h,)),
                ("txt_in.weight", (h, shape.text_dim)), ("txt_in.bias", (h,)),
                ("emb_in.proj_in.weight", (h, 256)), ("emb_in.proj_in.bias", (h,)),
                ("emb_in.proj_hid.weight", (h, h)), ("emb_in.proj_hid.bias", (h,)),
                ("emb_in.proj_out.weight", (6 * h, h)), ("emb_in.proj_out.bias", (6 * h,))]
    for index in range(shape.blocks):
        streams = ("vid", "txt") if index < shape.mm_layers else ("all",)
        yield from _block_tensors(f"blocks.{index}", streams, shape)
    yield from [("vid_out_norm.weight", (h,)), ("vid_out_ada.out_shift", (h,)), ("vid_out_ada.out_scale", (h,)),
                ("vid_out.proj.weight", (64, h)), ("vid_out.proj.bias", (64,))]


def _block_tensors(prefix: str, streams: Tuple[str, ...], shape: DiTShape) -> Iterator[Tuple[str, Tuple[int, ...]]]:
    h, m = shape.hidden, shape.mlp_hidden
    yield f"{prefix}.attn.rope.rope.freqs", (shape.rope_freqs,)
    for stream in streams:
        yield f"{prefix}.attn.proj_qkv.{stream}.weight", (3 * h, h)
        yield f"{prefix}.attn.proj_out.{stream}.weight", (h, h)
        yield f"{prefix}.attn.proj_out.{stream}.bias", (h,)
        yield f"{prefix}.attn.norm_q.{stream}.weight", (shape.head_dim,)
        yield f"{prefix}.attn.norm_k.{stream}.weight", (shape.head_dim,)
        yield f"{prefix}.mlp.{stream}.proj_in_gate.weight", (m, h)
        yield f"{prefix}.mlp.{stream}.proj_in.weight", (m, h)
        yield f"{prefix}.mlp.{stream}.proj_out.weight", (h, m)
        for slot in ("attn", "mlp"):
            for part in ("shift", "scale", "gate"):
                yield f"{prefix}.ada.{stream}.{slot}_{part}", (h,)


def write_random_float_dit(path: Path, shape: DiTShape, dtype: torch.dtype, seed: int = 0) -> None:
    """Every tensor in ``dtype`` (random, about ±0.05 like trained weights), as ComfyUI-SeedVR2's
    fp16/fp8 safetensors store them, or a torch state dict where ``path`` ends in .pth (the
    official release's bf16 file)."""
    from safetensors.torch import save_file

    generator = torch.Generator().manual_seed(seed)
    state = {name: (torch.randn(dims, generator=generator) * 0.02).to(dtype) for name, dims in dit_tensors(shape)}
    if path.suffix == ".pth":
        torch.save(state, path)
    else:
        save_file(state, str(path))


def peak_memory_of(statement: str, setup: str = "") -> int:
    """Bytes the resident set of a fresh Python process peaks at above what it held before
    ``statement`` ran, after ``setup`` (its imports, whose own peak is not counted: the high-water
    mark is reset first). tracemalloc does not see torch's storages."""
    return peak_memories_of(statement, setup, [""])[0]


def peak_memories_of(statement: str, setup: str, cases: Sequence[str]) -> List[int]:
    """:func:`peak_memory_of` ``statement`` after each of ``cases`` (code run before it), each in a
    child forked from one process that ran ``setup``: a fresh process's measurement with the
    imports paid once (a process per case cost 5 s of imports each on two loaded cores). With more
    than one case ``setup`` must run no torch operation: a child of a process that started
    OpenMP's threads can hang, and what that work left measured 16 MiB more in a child (one case
    runs in that process, as before)."""
    forked = [f"for case in {list(cases)!r}:", "    child = os.fork()", "    if child == 0:", "        measure(case)",
              "        os._exit(0)", "    assert os.waitpid(child, 0)[1] == 0, case"]
    code = "\n".join([
        "import os, sys",
        setup,
        "def resident(field):",
        "    return next(int(line.split()[1]) for line in open('/proc/self/status') if line.startswith(field)) * 1024",
        "def measure(case):",
        "    exec(case, globals())",
        "    open('/proc/self/clear_refs', 'w').write('5')",
        "    before = resident('VmRSS')",
        "    exec(STATEMENT, globals())",
        "    print(resident('VmHWM') - before, flush=True)",
        f"STATEMENT = {statement!r}",
        "sys.stdout.flush()",
        *(forked if len(cases) > 1 else [f"measure({cases[0]!r})"]),
    ])
    run = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    return [int(line) for line in run.stdout.split()[-len(cases):]]


class StoragePeak(TorchDispatchMode):
    """The most bytes of tensor storage made under it that were alive at once (``peak``): what a
    device's allocator would hold for the work, measured on any device, the meta one too (no
    data, so a 4K pass costs nothing). Storages its operations were given (weights, an input
    made before) are not counted; a view or an in-place result adds nothing."""

    def __init__(self):
        super().__init__()
        self.live = self.peak = 0
        self._storages = {}  # id → weak reference, freed storages leave

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self._note(args, kwargs, counted=False)
        out = func(*args, **(kwargs or {}))
        self._note(out, counted=True)
        self.peak = max(self.peak, self.live)
        return out

    def _note(self, *values, counted: bool) -> None:
        for tensor in tree_flatten(values)[0]:
            if not isinstance(tensor, torch.Tensor):
                continue
            storage = tensor.untyped_storage()
            if id(storage) in self._storages:
                continue
            size = storage.nbytes() if counted else 0
            self._storages[id(storage)] = weakref.ref(storage, partial(self._freed, id(storage), size))
            self.live += size

    def _freed(self, key: int, size: int, _reference) -> None:
        self._storages.pop(key, None)
        self.live -= size


def pass_peak_bytes(model, height: int, width: int, target=None, yuv=None, device: str = "meta") -> int:
    """Peak bytes of tensors one pass of ``model`` (a FrameNetwork) makes for one 8-bit frame of
    this size, as the replica runs it (``upscale_samples``' pass: to the network's type, the
    network, back to samples, resized to ``target`` or converted to ``yuv``); on ``meta`` its
    network is moved there for good."""
    if device == "meta" and hasattr(model, "_net"):
        model._net = model._net.to("meta")
    elif device == "meta":
        model._descriptor.to("meta")
    frame = torch.zeros((1, height, width, 3), dtype=torch.uint8, device=device)
    with torch.inference_mode(), StoragePeak() as peak:
        model._samples_pass(frame, 255.0, target, yuv)
    return peak.peak


def largest_pass_peak_bytes(model, height: int, width: int, device: str = "meta") -> int:
    """The largest :func:`pass_peak_bytes` of the passes a replica runs on one frame of this
    size: at the network's size, resized (three times the input's sides), to the encoder's planes."""
    from tmlsr_ray.models.yuv import Yuv420

    return max(pass_peak_bytes(model, height, width, target, yuv, device)
               for target, yuv in [(None, None), ((width * 3, height * 3), None), (None, Yuv420("ITU709"))])


def largest_pass_resident_bytes(families: Sequence[str], height: int, width: int, dtype: str = "fp32",
                                tiny: bool = False, threads: Optional[int] = None) -> List[int]:
    """The resident memory a fresh process adds running the passes of :func:`largest_pass_peak_bytes`
    on one frame of this size with each of ``families`` (of :data:`SERVED_FAMILIES`) on the CPU, at
    their published widths or ``tiny``, with torch's default threads or ``threads``: tensor storage
    and what the libraries under it keep (oneDNN's buffers, the allocator's arenas), which
    StoragePeak does not see."""
    setup = "\n".join([
        "import tempfile, torch",
        "from pathlib import Path",
        "from tests.helpers import served_width_model, tiny_model",
        "import spandrel  # its architectures, imported once, not in every child",
        "from tmlsr_ray.models.yuv import Yuv420",
        f"passes = [(None, None), (({width * 3}, {height * 3}), None), (None, Yuv420('ITU709'))]",
    ])
    build = "tiny_model" if tiny else "served_width_model"
    cases = ["\n".join([f"torch.set_num_threads({threads})" if threads else "",
                        f"model = {build}({family!r}, {dtype!r}, Path(tempfile.mkdtemp()))",
                        f"frame = torch.zeros((1, {height}, {width}, 3), dtype=torch.uint8)"])
             for family in families]
    statement = "with torch.inference_mode():\n    [model._samples_pass(frame, 255.0, *kind) for kind in passes]"
    return peak_memories_of(statement, setup, cases)


def write_dit_safetensors(path: Path, tensors, dtype: torch.dtype) -> Path:
    """The expanded ``tensors`` (``PackedTensor``s) saved as a DiT of ``dtype``: safetensors as
    ComfyUI-SeedVR2 ships them (seedvr2_ema_3b_fp16.safetensors, …_fp8_e4m3fn.safetensors), or a
    torch state dict where ``path`` ends in .pth, as the official release does (seedvr2_ema_3b.pth)."""
    from safetensors.torch import save_file

    state = {tensor.name: tensor.dequantize().to(dtype).contiguous() for tensor in tensors}
    if path.suffix == ".pth":
        torch.save(state, path)
    else:
        save_file(state, str(path))
    return path


def save_official_companions(folder: Path, dtype: torch.dtype | None = None) -> Path:
    """The golden SeedVR2 VAE and text embeddings as the official release names and saves them
    (ema_vae.pth, pos_emb.pt, neg_emb.pt: torch files), in ``dtype`` (default as stored)."""
    from safetensors.torch import load_file

    golden = shared_path("golden", "seedvr2")
    torch.save({name: tensor.to(dtype or tensor.dtype) for name, tensor in load_file(str(golden / "vae.safetensors")).items()},
               folder / "ema_vae.pth")
    for name, tensor in load_file(str(golden / "pos_emb.safetensors")).items():
        torch.save(tensor.to(dtype or tensor.dtype), folder / f"{name}.pt")
    return folder


def save_face_model(path: Path) -> Path:
    """Tensors spandrel detects as GFPGAN (a face-restoration model), which the service refuses on
    detection, before a network is built; the real generator would take 340 MB."""
    torch.save({"toRGB.0.weight": torch.zeros(3, 8, 1, 1), "stylegan_decoder.style_mlp.1.weight": torch.zeros(8, 8)},
               path)
    return path


def make_clip(path: Path, frames: int = 12, size=(64, 48), rate: int = 12, audio: bool = True,
              codec: str = "libx264", options: dict | None = None, pts: list | None = None,
              time_base=None, pix_fmt: str = "yuv420p", container: str | None = None, start_s: float = 0.0,
              audio_codec: str = "aac", languages: Sequence[str] = ("",), sample_aspect=None,
              durations: list | None = None, chapters: Sequence[tuple] = (), audio_layout: str = "mono",
              audio_s: float | None = None, audio_rate: int | None = None,
              container_options: dict | None = None, codec_tag: str | None = None,
              levels_by_channel: bool = False) -> Path:
    """A short real clip made with PyAV: a brightness ramp with a noisy corner (:func:`_ramp`),
    optionally audio (one stream per language, of ``audio_layout``), any encoder options, and given
    timestamps (VFR). ``start_s`` moves every stream's times (below 0: an MP4 edit list's
    hidden frames, a transport stream unwrapped past 0); ``sample_aspect``: non-square pixels;
    ``durations``: how long each frame shows, in the stream's time base (else the muxer's guess);
    ``chapters``: (start s, end s, title) each; ``audio_s``: how long the audio plays (else as the video); ``audio_rate``: its
    sample rate (else 16 kHz, or 48 where the encoder takes no 16); ``container_options``: the muxer's (``movflags``);
    ``codec_tag``: the FourCC the video is stored under (else the muxer's choice); ``levels_by_channel``:
    each audio channel at its own level (see :func:`_write_tone`)."""
    with av.open(str(path), "w", format=container, options=container_options or {}) as out:
        out.set_chapters([{"id": n + 1, "start": round(start * 1000), "end": round(end * 1000),
                           "time_base": Fraction(1, 1000), "metadata": {"title": title}}
                          for n, (start, end, title) in enumerate(chapters)])
        video = out.add_stream(codec, rate=rate, options=options or {})
        video.width, video.height, video.pix_fmt = size[0], size[1], pix_fmt
        if codec_tag is not None:
            video.codec_tag = codec_tag
        if time_base is not None:
            video.time_base = video.codec_context.time_base = time_base
        base = video.codec_context.time_base or Fraction(1, rate)
        if sample_aspect is not None:
            video.codec_context.sample_aspect_ratio = sample_aspect
        sounds = ([_audio_stream(out, audio_codec, language, audio_layout, audio_rate) for language in languages]
                  if audio else [])
        if pts is None and start_s:
            pts = [round(start_s / base) + i * round(Fraction(1, rate) / base) for i in range(frames)]
        for i, pixels in enumerate(_ramp(frames, size)):
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            if pts is not None:
                frame.pts, frame.time_base = pts[i], base
            out.mux(_with_durations(video.encode(frame), pts, durations))
        out.mux(_with_durations(video.encode(None), pts, durations))
        for sound in sounds:
            _write_tone(out, sound, audio_s or frames / rate, round(start_s * sound.rate), levels_by_channel)
    return path


def media_recorder_webm(path: Path, frames: int = 60, codec: str = "libvpx", start_ms: int = 0) -> Path:
    """What a browser's MediaRecorder writes: VP8 or VP9 and Opus in a live WebM (no Duration, no
    Cues, no frame count), each frame stamped in milliseconds as it was captured (33 or 34 ms
    apart, now and then 17 or 50), the first at ``start_ms``."""
    steps = [33, 34, 33, 50, 17, 33, 34] * (frames // 7 + 1)
    stamps = [start_ms + sum(steps[:i]) for i in range(frames)]
    return make_clip(path, frames=frames, rate=30, codec=codec, audio_codec="libopus", pts=stamps,
                     time_base=Fraction(1, 1000), container="webm", container_options={"live": "1"})


def growing_recording(path: Path, parts: Sequence[tuple], codec: str = "libvpx", container: str = "webm",
                      options: dict | None = None) -> Path:
    """A WebRTC call's recording: parts of ((width, height), frames), each from a keyframe stating
    its size, in one stream at 30 fps whose header states the first part's size, as the picture
    grows when the bandwidth allows; ``options``: the encoder's (a long GOP's)."""
    made = [make_clip(path.with_name(f"{path.stem}-{n}{path.suffix}"), frames=frames, size=size, rate=30,
                      codec=codec, container=container, audio=False, options=options)
            for n, (size, frames) in enumerate(parts)]
    return _one_after_another(path, made, container, rate=30)


def video_under_a_smaller_header(path: Path, stated: tuple, actual: tuple) -> Path:
    """A WebM whose stream header states ``stated`` (width, height) and whose frames, from the
    first keyframe on, are ``actual``: a header that lies about the pictures to come."""
    small, large = (make_clip(path.with_name(f"{path.stem}-{w}x{h}.webm"), frames=2, size=(w, h), audio=False,
                              codec="libvpx") for w, h in (stated, actual))
    with av.open(str(small)) as header, av.open(str(large)) as frames, av.open(str(path), "w", format="webm") as out:
        video = out.add_stream_from_template(header.streams.video[0])
        for number, packet in enumerate(p for p in frames.demux(frames.streams.video[0]) if p.size):
            packet.stream, packet.pts, packet.dts, packet.time_base = video, number * 40, number * 40, Fraction(1, 1000)
            out.mux(packet)
    return path


def growing_broadcast(path: Path, parts: Sequence[tuple], codec: str = "libx264") -> Path:
    """An interlaced transport stream whose picture grows at a keyframe, as a broadcast's SD ident
    comes before its HD programme: parts of ((width, height), frames) of :func:`interlaced_clip`."""
    made = [interlaced_clip(path.with_name(f"{path.stem}-{n}.ts"), frames=frames, size=size, codec=codec)
            for n, (size, frames) in enumerate(parts)]
    return _one_after_another(path, made, "mpegts", rate=25)


def _one_after_another(path: Path, made: Sequence[Path], container: str, rate: int) -> Path:
    """The video packets of the files ``made`` in one stream, each file's after the last's, at ``rate``."""
    with av.open(str(made[0])) as first, av.open(str(path), "w", format=container) as out:
        video = out.add_stream_from_template(first.streams.video[0])
        offset = 0
        for part in made:
            with av.open(str(part)) as inp:
                stream = inp.streams.video[0]
                ticks = round(Fraction(1, rate) / stream.time_base)
                packets = [p for p in inp.demux(stream) if p.size]
                for packet in packets:
                    packet.pts += offset
                    packet.dts = None if packet.dts is None else packet.dts + offset
                    packet.stream = video
                    out.mux(packet)
                offset += len(packets) * ticks
    return path


def _with_durations(packets, pts: list | None, durations: list | None):
    if durations is not None:
        for packet in packets:
            packet.duration = durations[pts.index(packet.pts) if pts is not None else packet.pts]
    return packets


def whole_decode(path: Path):
    """(pts, RGB frame) of one plain decode of the whole video."""
    from tmlsr_ray.pipeline.decode import iter_batches
    from tmlsr_ray.pipeline.probe import probe_video

    info = probe_video(path)
    return [(pts, frame) for batch in iter_batches(path, info, 16) for pts, frame in zip(batch.pts, batch.frames)]


def frame_count(path: Path) -> int:
    """The frames a plain PyAV decode of the first video stream gives."""
    return len(plain_decode_stamps(path))


def cut_and_decode(path: Path, cutting, planes: bool = False, repeat_damaged: bool = False):
    """The plan, and (pts, frame) of every segment decoded from its own segment file, in order;
    ``planes``: the 4:2:0 planes a GPU replica asks for, where the stream has them;
    ``repeat_damaged``: as a task with damaged_frames "repeat" cuts and decodes it."""
    from tmlsr_ray.pipeline.damage import DamagedPackets
    from tmlsr_ray.pipeline.decode import planar_layout
    from tmlsr_ray.pipeline.probe import probe_video
    from tmlsr_ray.pipeline.segments import decode_segment, extract_segments, plan_segments

    info = probe_video(path, repeat_damaged=repeat_damaged)
    plan = plan_segments(path, info, cutting)
    layout = planar_layout(info) if planes else None  # a batch is RGB still where the siting cannot be told
    by_segment = {}
    for segment, data in extract_segments(path, info, plan.segments, repeat_damaged=repeat_damaged):
        damaged = DamagedPackets(repeat=True, limit_share=False) if repeat_damaged else None
        batches = decode_segment(data, info, segment, 5, planes=layout, damaged=damaged)
        # planes as a model sees them: converted with the chroma siting the decoder's frames show
        by_segment[segment.index] = [(pts, frame) for batch in batches for pts, frame in
                                     zip(batch.pts, batch.frames.rgb() if hasattr(batch.frames, "rgb") else batch.frames)]
    return plan, [item for index in sorted(by_segment) for item in by_segment[index]]


def interlaced_clip(path: Path, frames: int = 24, size=(96, 64), codec: str = "libx264", rate: int = 25,
                    gop: int = 6) -> Path:
    """Interlaced video as a camera makes it: each frame's two fields are two moments, a white bar
    moving right, the bottom field half a frame after the top (top field first)."""
    options = ({"x264-params": f"interlaced=1:tff=1:keyint={gop}:bframes=2", "crf": "10"}
               if codec == "libx264" else {"flags": "+ilme+ildct", "g": str(gop), "qscale": "2"})
    with av.open(str(path), "w") as out:
        video = out.add_stream(codec, rate=rate, options=options)
        video.width, video.height, video.pix_fmt = size[0], size[1], "yuv420p"
        for i in range(frames):
            pixels = np.zeros((size[1], size[0], 3), np.uint8)
            for field in (0, 1):
                x = (2 * i + field) * 3 % (size[0] - 16)
                pixels[field::2, x:x + 16] = 255
            out.mux(video.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        out.mux(video.encode(None))
    return path


def spliced_encodes(path: Path, parts: Sequence[tuple], size=(64, 48), rate: int = 24) -> Path:
    """An H.264 transport stream of encodes one after another, as a broadcast capture splices
    programmes: each part's x264 parameters (its colour tags, say) start at its first frame, an IDR
    with a sequence header of its own; ``parts``: (frames, x264 params) each, no B-frames."""
    frames = list(_ramp(sum(count for count, _ in parts), size))
    with av.open(str(path), "w", format="mpegts") as out:
        video = out.add_stream("h264", rate=rate)
        video.width, video.height, video.pix_fmt = size[0], size[1], "yuv420p"
        video.time_base = Fraction(1, 90000)  # the transport stream's clock
        step = 90000 // rate
        first = 0
        for count, params in parts:
            encoder = av.CodecContext.create("libx264", "w")
            encoder.width, encoder.height, encoder.pix_fmt = size[0], size[1], "yuv420p"
            encoder.time_base, encoder.framerate = Fraction(1, rate), Fraction(rate)
            encoder.options = {"x264-params": f"{params}:bframes=0:repeat-headers=1"}
            pictures = [av.VideoFrame.from_ndarray(frames[i], format="rgb24") for i in range(first, first + count)]
            for i, picture in enumerate(pictures, first):
                picture.pts = i
            for packet in [p for picture in pictures + [None] for p in encoder.encode(picture)]:
                packet.pts, packet.dts = packet.pts * step, packet.dts * step
                packet.stream, packet.time_base = video, video.time_base
                out.mux(packet)
            first += count
    return path


def with_parameter_sets_apart(source: Path, path: Path, format: str = "avi") -> Path:
    """``source``'s H.264 packets (after start codes) in ``format``, the parameter sets that start a
    keyframe's packet (and the delimiter before them) moved to a packet of their own before it, as
    some AVI writers store them; times counted in packets, as an AVI counts its chunks."""
    def split(data: bytes) -> list:
        units = [(found.start(), data[found.end()] & 0x1F) for found in re.finditer(b"\x00\x00\x01", data)]
        cut = next(at for at, kind in units if kind not in (7, 8, 9))  # SPS, PPS, delimiter
        return [data[:cut], data[cut:]] if any(kind == 7 for at, kind in units if at < cut) else [data]

    return _with_packets_split(source, path, format, "h264", "yuv420p", split)


def with_prefix_sei_apart(source: Path, path: Path) -> Path:
    """``source``'s 10-bit HEVC packets (after start codes) in Matroska, a keyframe's prefix SEI
    (HDR10's mastering display and light level) moved to a packet of its own between its parameter
    sets' packet and its picture's, as some writers store them."""
    def split(data: bytes) -> list:
        units = [(found.start(), data[found.end()] >> 1 & 0x3F) for found in re.finditer(b"\x00\x00\x01", data)]
        picture = next(at for at, kind in units if kind < 32)
        sei = next((at for at, kind in units if kind == 39 and at < picture), None)
        return [data[:sei], data[sei:picture], data[picture:]] if sei else [data]

    return _with_packets_split(source, path, "matroska", "hevc", "yuv420p10le", split)


def _with_packets_split(source: Path, path: Path, format: str, codec: str, pix_fmt: str, split) -> Path:
    """``source``'s video packets in ``format``, each as the packets ``split`` makes of its bytes,
    the last of them flagged as it was; times counted in packets at 24 a second."""
    with av.open(str(source)) as inp, av.open(str(path), "w", format=format) as out:
        video = out.add_stream(codec, rate=24)
        video.width, video.height, video.pix_fmt = inp.streams.video[0].width, inp.streams.video[0].height, pix_fmt
        video.time_base = Fraction(1, 24)
        count = 0
        for packet in inp.demux(video=0):
            if not packet.size:
                continue
            pieces = split(bytes(packet))
            for piece in pieces:
                copy = av.Packet(piece)
                copy.pts = copy.dts = count
                copy.stream, copy.time_base = video, video.time_base
                copy.is_keyframe = packet.is_keyframe and piece is pieces[-1]
                out.mux(copy)
                count += 1
    return path


def progressive_then_interlaced(path: Path, frames: int = 12) -> Path:
    """A broadcast that switches from progressive to interlaced (an ident or advert before the
    programme, a DVD's film then its video-shot extras): two MPEG-2 streams, the progressive one
    first, back to back in a transport stream."""
    first = make_clip(path.with_suffix(".progressive.m2v"), frames=frames, size=(96, 64), rate=25, audio=False,
                      codec="mpeg2video", container="mpeg2video", options={"g": "6", "qscale": "2"})
    then = interlaced_clip(path.with_suffix(".interlaced.m2v"), frames=frames, codec="mpeg2video")
    return mpeg2_back_to_back(path, [first, then])


def mpeg2_back_to_back(path: Path, parts: Sequence[Path]) -> Path:
    """MPEG-2 elementary streams one after another in a transport stream, as a broadcast splices
    them: each part's sequence header (its size, its interlacing) starts at its first frame."""
    joined = path.with_suffix(".m2v")
    joined.write_bytes(b"".join(part.read_bytes() for part in parts))
    with av.open(str(joined)) as inp, av.open(str(path), "w", format="mpegts") as out:
        video = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(video=0):
            if packet.size:
                packet.stream = video
                out.mux(packet)
    return path


def combing(rgb: np.ndarray) -> float:
    """How far each line is from the mean of its neighbours: high where two fields from different
    moments are woven into one frame, about 0 for a progressive picture of the bar."""
    luma = rgb.astype(float).mean(axis=-1)
    return float(np.abs(luma[..., 1:-1, :] - (luma[..., :-2, :] + luma[..., 2:, :]) / 2).mean())


def trim_by_edit_list(source: Path, path: Path, frames: int, timecode: str | None = None) -> Path:
    """What a lossless trim (``ffmpeg -ss … -c copy``) writes: the source's video packets moved
    ``frames`` earlier, so the frames before 0 stay as references an MP4 edit list hides;
    ``timecode`` labels its first frame shown (FFmpeg's ``tmcd`` track starts at 0)."""
    with av.open(str(source)) as inp, av.open(str(path), "w") as out:
        video = inp.streams.video[0]
        copy = out.add_stream_from_template(video, opaque=True)
        if timecode:
            copy.metadata["timecode"] = timecode
        step = round(Fraction(1) / (video.average_rate * video.time_base))
        for packet in inp.demux(video):
            if packet.dts is not None:
                packet.pts, packet.dts, packet.stream = packet.pts - frames * step, packet.dts - frames * step, copy
                out.mux(packet)
    return path


def joined_recordings(path: Path, starts: Sequence[float], frames: int = 24, rate: int = 12,
                      time_base=None) -> Path:
    """Transport streams joined end to end (``cat a.ts b.ts``, as DVRs and camcorders split a
    recording), each part's clock starting at its ``starts`` second: the same twice, or a jump
    (``time_base`` 1/90000 for a start off the frames' grid)."""
    parts = [make_clip(path.with_name(f"{path.stem}-part{n}.ts"), frames=frames, rate=rate, container="mpegts",
                       options={"g": "6"}, start_s=start, time_base=time_base) for n, start in enumerate(starts)]
    path.write_bytes(b"".join(part.read_bytes() for part in parts))
    return path


def joined_fragments(path: Path, starts: Sequence[float], frames: int = 48, rate: int = 24, cues: Sequence = (),
                     **clip) -> Path:
    """CMAF segments (fragmented MP4) joined after the first part's init segment, as HLS and DASH
    downloaders write them, each part's fragments starting at its ``starts`` second (their tfdt):
    across a discontinuity (an ad break, a stream restart) a part starts at 0 again. Each part:
    H.264 with B-frames, a fragment a GOP, and AAC audio; each part coded at its own quality, so that
    no two parts' frames are the same bytes (a part that is would be the same fragments written twice);
    ``cues``: each part's mov_text subtitles (see :func:`with_mov_text`); ``clip``: :func:`make_clip`'s
    other arguments."""
    fragmented = {"movflags": "frag_keyframe+empty_moov+default_base_moof"}
    parts = [make_clip(path.with_name(f"{path.stem}-part{n}.mp4"), frames=frames, rate=rate,
                       options={"g": "12", "bf": "2", "crf": str(23 + n)}, container_options=fragmented, **clip)
             for n in range(len(starts))]
    if cues:
        parts = [with_mov_text(part, part.with_name(f"{part.stem}-subtitled.mp4"), cues, fragmented) for part in parts]
    with av.open(str(parts[0])) as first:
        timescales = {stream.id: 1 / stream.time_base for stream in first.streams}
    data = parts[0].read_bytes()
    init = b"".join(data[start - 8:end] for kind, start, end in boxes(data) if kind not in (b"moof", b"mdat"))
    path.write_bytes(init + b"".join(_fragments_moved(part.read_bytes(), start, timescales)
                                     for part, start in zip(parts, starts)))
    return path


def _fragments_moved(data: bytes, seconds: float, timescales) -> bytes:
    """The fragments (moof and mdat boxes) of a fragmented MP4, each track's tfdt ``seconds`` on."""
    moved = bytearray(data)
    for kind, start, end in boxes(data):
        for traf_start, traf_end in [(s, e) for k, s, e in boxes(data, start, end) if kind == b"moof" and k == b"traf"]:
            inner = {k: s for k, s, _ in boxes(data, traf_start, traf_end)}
            track = struct.unpack(">I", data[inner[b"tfhd"] + 4:inner[b"tfhd"] + 8])[0]
            shape = ">Q" if data[inner[b"tfdt"]] == 1 else ">I"
            at = inner[b"tfdt"] + 4
            base = struct.unpack_from(shape, data, at)[0]
            struct.pack_into(shape, moved, at, base + round(seconds * timescales[track]))
    return b"".join(bytes(moved[start - 8:end]) for kind, start, end in boxes(data) if kind in (b"moof", b"mdat"))


def with_fragment_repeated(source: Path, path: Path, fragment: int) -> Path:
    """A fragmented MP4 with its ``fragment``-th fragment (moof and mdat) written twice in a row,
    as a downloader that retried a segment writes it."""
    data = source.read_bytes()
    top = list(boxes(data))
    at = [n for n, (kind, _, _) in enumerate(top) if kind == b"moof"][fragment]
    start, end = top[at][1] - 8, top[at + 1][2]
    path.write_bytes(data[:end] + data[start:end] + data[end:])
    return path


def programme_on_new_pids(path: Path, frames: int = 24, rate: int = 12) -> Path:
    """HLS segments joined (yt-dlp, a stream recorder) across an ad break whose segments carry
    their programme on other PIDs: FFmpeg's probe ends before the new PMT's streams show a packet,
    and they come with no parameters (no sample rate, no picture size)."""
    parts = [make_clip(path.with_name(f"{path.stem}-part{n}.ts"), frames=frames, rate=rate, container="mpegts",
                       options={"g": "6"}, start_s=10.0 + n * frames / rate, container_options=options)
             for n, options in enumerate([None, {"mpegts_start_pid": "0x300"}])]
    path.write_bytes(b"".join(part.read_bytes() for part in parts))
    return path


def with_audio_ahead(ts: Path, packets: int = 8) -> Path:
    """A transport stream whose first audio comes before its first video in the file, as a
    recording that starts anywhere often has: its first ``packets`` audio TS packets moved up to
    just after the tables (PAT, PMT). FFmpeg's demuxer hands a video packet over only when the next
    one starts, so in a join this audio is read before the last frame of the part before."""
    cells = [ts.read_bytes()[i:i + 188] for i in range(0, ts.stat().st_size, 188)]
    pids = [((cell[1] & 0x1F) << 8) | cell[2] for cell in cells]
    audio_pid = 0x101  # FFmpeg's second elementary stream: make_clip's audio
    moved = [i for i, pid in enumerate(pids) if pid == audio_pid][:packets]
    tables = [i for i, pid in enumerate(pids) if pid in (0x0000, 0x1000, 0x0011)][:3]
    head = [cells[i] for i in tables + moved]
    ts.write_bytes(b"".join(head + [cell for i, cell in enumerate(cells) if i not in set(tables + moved)]))
    return ts


def recording_with_audio_gap(path: Path, seconds: int, gap: Sequence[float], rate: int = 2,
                             audio_codec: str = "aac", container: str = "mpegts") -> Path:
    """A transport stream (or another ``container``) whose audio stops for ``gap`` (start, end in
    seconds) while its video runs on: a dropout in reception, or a silent stretch an encoder sent
    nothing for, not a jump in the clock. Audio and video are written side by side, as a recording
    interleaves them. ``audio_codec``: ``mp2`` for a DVB broadcast's audio."""
    with av.open(str(path), "w", format=container) as out:
        video = out.add_stream("libx264", rate=rate, options={"g": str(rate)})
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        sound = _audio_stream(out, audio_codec, "")
        tone = (0.2 * np.sin(np.arange(1024) * 2 * np.pi * 440 / sound.rate)).astype(np.float32)[None]
        sample = 0
        for i, pixels in enumerate(_ramp(seconds * rate, (64, 48))):
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
            while sample < (i + 1) * sound.rate // rate:
                if not gap[0] <= sample / sound.rate < gap[1]:
                    chunk = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
                    chunk.sample_rate, chunk.pts = sound.rate, sample
                    out.mux(sound.encode(chunk))
                sample += 1024
        out.mux(video.encode(None))
        out.mux(sound.encode(None))
    return path


def with_audio_time_wrong(ts: Path, packet: int, seconds: float) -> Path:
    """A transport stream one of whose audio packets (the ``packet``-th PES of make_clip's or
    :func:`recording_with_audio_gap`'s audio) says a time ``seconds`` off, the others right: a bit
    error in a PES header, as a recording with poor reception has, not a dropout or a clock jump."""
    return _with_pes_pts_changed(ts, 0x101, packet, lambda pts: pts + round(seconds * 90000))


def long_capture(path: Path, seconds: int, piece_s: int = 10) -> Path:
    """A transport stream ``seconds`` long made cheaply: one ``piece_s`` clip of 16x16 H.264 at
    25 fps and 48 kHz AAC, its packets muxed again and again, each copy ``piece_s`` on (the sound
    that runs past a copy's end left out, so each stream's times only go on): a broadcast
    capture's count of packets (a 2-hour one: 515,520)."""
    clip = make_clip(path.with_name(f"{path.stem}-piece.ts"), frames=25 * piece_s, size=(16, 16), rate=25,
                     container="mpegts", options={"g": "50"}, audio_rate=48000)
    with av.open(str(clip)) as source, av.open(str(path), "w", format="mpegts") as out:
        packets = [packet for packet in source.demux() if packet.size]
        first = min(packet.dts * packet.time_base for packet in packets)
        packets = [packet for packet in packets if packet.stream.type == "video"
                   or (packet.pts + packet.duration) * packet.time_base <= first + piece_s]
        copies = {stream.index: out.add_stream_from_template(stream) for stream in source.streams}
        for piece in range(seconds // piece_s):
            for packet in packets:
                shift = round(piece * piece_s / packet.time_base)
                copy = av.Packet(bytes(packet))
                copy.pts, copy.dts, copy.duration = packet.pts + shift, packet.dts + shift, packet.duration
                copy.time_base, copy.is_keyframe = packet.time_base, packet.is_keyframe
                copy.stream = copies[packet.stream.index]
                out.mux(copy)
    return path


def with_audio_times_early(ts: Path, seconds: float) -> Path:
    """A transport stream every audio PES of which (make_clip's, on PID 0x101) says a time
    ``seconds`` before its own, the first audio ahead of the video in the file (as a recording
    has it): FFmpeg's demuxer unwraps the clock from the first time it reads, so the sound lies
    that far before the picture, not a 33-bit wrap after it."""
    data = ts.read_bytes()
    pes = sum(1 for i in range(0, len(data), 188) if ((data[i + 1] & 0x1F) << 8 | data[i + 2]) == 0x101
              and data[i + 1] & 0x40)
    for packet in range(pes):
        _with_pes_pts_changed(ts, 0x101, packet, lambda pts: pts - round(seconds * 90000))
    return with_audio_ahead(ts)


def with_pts_bit_flipped(ts: Path, pid: int, packet: int, bit: int) -> Path:
    """A transport stream the PTS of whose ``packet``-th PES on ``pid`` (0x100: make_clip's video,
    0x101: its audio) has bit ``bit`` flipped, its decode time and every other PES right: a bit
    error in a broadcast recording (bit 31: 6.6 hours late)."""
    return _with_pes_pts_changed(ts, pid, packet, lambda pts: pts ^ (1 << bit))


def broadcast_with_bit_errors(path: Path) -> Path:
    """A 2 s H.264 + AAC transport stream (B-frames) whose 23rd frame and 11th audio packet say
    a time 6.6 hours late (bit 31 of their PES PTS flipped), their decode times and neighbours right."""
    make_clip(path, frames=48, rate=24, container="mpegts", options={"g": "12", "bf": "2"})
    return with_pts_bit_flipped(with_pts_bit_flipped(path, 0x100, 22, 31), 0x101, 10, 31)


def _with_pes_pts_changed(ts: Path, pid: int, packet: int, change) -> Path:
    data = bytearray(ts.read_bytes())
    starts = [i for i in range(0, len(data), 188)
              if ((data[i + 1] & 0x1F) << 8 | data[i + 2]) == pid and data[i + 1] & 0x40]
    cell = starts[packet]
    header = cell + 4 + (1 + data[cell + 4] if data[cell + 3] & 0x20 else 0)
    assert data[header:header + 3] == b"\0\0\1" and data[header + 7] & 0x80, "a PES that states its PTS"
    at = header + 9
    pts = ((data[at] >> 1) & 7) << 30 | data[at + 1] << 22 | (data[at + 2] >> 1) << 15 | data[at + 3] << 7 \
        | data[at + 4] >> 1
    pts = change(pts) % (1 << 33)
    data[at] = (data[at] & 0xF1) | ((pts >> 30) & 7) << 1
    data[at + 1:at + 5] = bytes([(pts >> 22) & 0xFF, ((pts >> 15) & 0x7F) << 1 | 1, (pts >> 7) & 0xFF,
                                 (pts & 0x7F) << 1 | 1])
    ts.write_bytes(bytes(data))
    return ts


def with_every_tfdt_huge(mp4: Path) -> Path:
    """A fragmented MP4 each of whose fragments' decode times (tfdt, version 1) has its high word
    set: every track's times 2^32 of its own ticks off, so tracks of other timescales lie hours
    apart (the audio 81,091 s after the video for make_clip's 12288 and 16000)."""
    data = bytearray(mp4.read_bytes())
    at = data.find(b"tfdt")
    while at >= 0:
        assert data[at + 4] == 1, "a 64-bit tfdt"
        data[at + 8:at + 12] = b"\xff\xff\xff\xff"
        at = data.find(b"tfdt", at + 4)
    mp4.write_bytes(bytes(data))
    return mp4


def with_tfdt_moved(mp4: Path, path: Path, number: int, seconds: float) -> Path:
    """A fragmented MP4 whose ``number``-th track fragment (traf) states a decode time (tfdt)
    ``seconds`` off, every sample of it moving with it: a bit error in one fragment's header."""
    data = bytearray(mp4.read_bytes())
    at = data.find(b"tfdt")
    for _ in range(number):
        at = data.find(b"tfdt", at + 4)
    traf = data.rfind(b"tfhd", 0, at)
    track = struct.unpack_from(">I", data, traf + 8)[0]
    with av.open(str(mp4)) as source:
        timescale = 1 / next(stream.time_base for stream in source.streams if stream.id == track)
    shape = ">Q" if data[at + 4] == 1 else ">I"
    struct.pack_into(shape, data, at + 8, struct.unpack_from(shape, data, at + 8)[0] + round(seconds * timescale))
    path.write_bytes(bytes(data))
    return path


def with_first_index_size_huge(avi: Path) -> Path:
    """An AVI whose index (idx1) says its first chunk holds 2 GB: FFmpeg times MP3 by the bytes
    before each chunk, and every audio packet comes 134,217 s after the picture."""
    data = bytearray(avi.read_bytes())
    at = data.find(b"idx1")
    data[at + 20:at + 24] = (0x7FFFFFF0).to_bytes(4, "little")
    avi.write_bytes(bytes(data))
    return avi


def with_sample_durations_zero(mov: Path, entries: int | None = None) -> Path:
    """An MP4 or MOV whose sample tables (every stts) give each sample a duration of 0 (those of
    their first ``entries`` runs of equal durations, where given)."""
    data = bytearray(mov.read_bytes())
    at = data.find(b"stts")
    while at >= 0:
        for entry in range(min(int.from_bytes(data[at + 8:at + 12], "big"), entries or 1 << 32)):
            data[at + 16 + 8 * entry:at + 20 + 8 * entry] = bytes(4)
        at = data.find(b"stts", at + 4)
    mov.write_bytes(bytes(data))
    return mov


def with_audio_frames_bundled(ts: Path, path: Path) -> Path:
    """The transport stream remuxed as the ffmpeg command writes one (0.7 s max_delay): several
    audio frames share one PES and its one time, which the demuxer hands on to each frame."""
    with av.open(str(ts)) as inp, av.open(str(path), "w", format="mpegts", options={"max_delay": "700000"}) as out:
        copies = {s.index: out.add_stream_from_template(s) for s in inp.streams}
        for packet in inp.demux():
            if packet.dts is not None:
                packet.stream = copies[packet.stream.index]
                out.mux(packet)
    return path


def with_track_emptied(source: Path, path: Path, index: int) -> Path:
    """The source remuxed without any packet of its stream ``index``, which stays listed: an audio
    track a recorder declared but never wrote to (a microphone that was off)."""
    with av.open(str(source)) as inp, av.open(str(path), "w", format=inp.format.name.split(",")[0]) as out:
        copies = {s.index: out.add_stream_from_template(s, opaque=True) for s in inp.streams}
        for packet in inp.demux():
            if packet.size and packet.stream.index != index:
                packet.stream = copies[packet.stream.index]
                out.mux(packet)
    return path


def dark_then_busy_master(path: Path, dark: int = 32, busy: int = 16, size=(64, 48)) -> Path:
    """A ProRes master whose frames differ a tenfold in bytes: a black leader, then noise (a
    film's detail), as a studio's masters open on black and titles."""
    noise = np.random.default_rng(1)
    with av.open(str(path), "w") as out:
        video = out.add_stream("prores_ks", rate=25)
        video.width, video.height, video.pix_fmt = size[0], size[1], "yuv422p10le"
        for i in range(dark + busy):
            pixels = np.zeros((size[1], size[0], 3), np.uint8) if i < dark else \
                noise.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            out.mux(video.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        out.mux(video.encode(None))
    return path


def without_frame_durations(source: Path, path: Path) -> Path:
    """The source's video remuxed into Matroska with neither a block duration nor the track's
    default duration, as muxers that know no frame rate write it (a VFR track, a stream copied
    without its rate): the demuxer gives every packet a duration of 0."""
    with av.open(str(source)) as inp, av.open(str(path), "w", format="matroska") as out:
        video = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(inp.streams.video[0]):
            if packet.size:
                packet.duration, packet.stream = 0, video
                out.mux(packet)
    return path


def with_every_frame_keyed(source: Path, path: Path) -> Path:
    """The source remuxed with every video packet flagged a keyframe: an AVI whose index a repair
    tool (DivFix) rebuilt marking every frame as one."""
    return with_keyframe_flags(source, path, lambda index, keyframe: True)


def with_adts_header_broken(ts: Path, path: Path, pes: int = 2) -> Path:
    """A TS whose ``pes``-th audio PES has its AAC frame's ADTS sync word zeroed (a bit error in a
    recording): the packet demuxes, and MP4's muxer refuses it as invalid data."""
    data = bytearray(ts.read_bytes())
    with av.open(str(ts)) as container:
        pid = container.streams.audio[0].id
    starts = [i for i in range(0, len(data), 188)
              if data[i + 1] & 0x40 and ((data[i + 1] & 0x1F) << 8 | data[i + 2]) == pid]
    sync = data.find(b"\xff\xf1", starts[pes], starts[pes] + 188)
    data[sync:sync + 2] = bytes(2)
    path.write_bytes(bytes(data))
    return path


def audio_layout_switch_ts(path: Path, layouts: Sequence[str] = ("mono", "stereo"), frames: int = 24,
                           rate: int = 24) -> Path:
    """A TS recording whose MP2 sound changes layout on the way, as a broadcast's stereo programme
    and its 5.1 film do: clips of ``frames`` each, one per layout, one after another on the same
    PIDs (each file as FFmpeg's muxer writes it, the second's clock on from the first's)."""
    parts = [make_clip(path.with_name(f"{path.stem}-{n}.ts"), frames=frames, rate=rate, audio_codec="mp2",
                       audio_layout=layout, audio_rate=48000, start_s=n * frames / rate)
             for n, layout in enumerate(layouts)]
    path.write_bytes(b"".join(part.read_bytes() for part in parts))
    return path


def cut_inside_packet(source: Path, path: Path, packet: int) -> Path:
    """``source`` cut off halfway through the data of its video packet ``packet`` (decode order),
    as a download or a recording stopped there leaves it."""
    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        found = [p for p in container.demux(stream) if p.size][packet]
        end = found.pos + found.size // 2
    path.write_bytes(source.read_bytes()[:end])
    return path


def with_box_field(source: Path, path: Path, box: bytes, offset: int, value: int) -> Path:
    """``source`` with the 32-bit field ``offset`` bytes after the type of every ``box`` (an MP4
    box: b"stts") set to ``value``, as a damaged or hostile header states it."""
    data = bytearray(source.read_bytes())
    at = data.find(box)
    while at >= 0:
        data[at + offset:at + offset + 4] = value.to_bytes(4, "big")
        at = data.find(box, at + 1)
    path.write_bytes(bytes(data))
    return path


def flv_tags(data: bytes) -> Iterator[Tuple[int, int]]:
    """(offset, tag type) of each tag of an FLV file: 8 audio, 9 video, 18 script data."""
    offset = 13  # the file header and the first PreviousTagSize
    while offset + 11 <= len(data):
        yield offset, data[offset] & 0x1F
        offset += 11 + int.from_bytes(data[offset + 1:offset + 4], "big") + 4


def with_flv_tag_time_moved(source: Path, path: Path, kind: int, index: int, milliseconds: int) -> Path:
    """An FLV whose ``index``-th tag of ``kind`` (8 audio, 9 video) states a time ``milliseconds``
    off, the others right: a bit error in one tag header."""
    data = bytearray(source.read_bytes())
    offset = [o for o, k in flv_tags(bytes(data)) if k == kind][index]
    stamp = (int.from_bytes(data[offset + 4:offset + 7], "big") | data[offset + 7] << 24) + milliseconds
    data[offset + 4:offset + 7] = (stamp % (1 << 24)).to_bytes(3, "big")
    data[offset + 7] = (stamp >> 24) % 256
    path.write_bytes(bytes(data))
    return path


def with_last_audio_tag_recoded(source: Path, path: Path, sound_format: int = 1) -> Path:
    """An FLV whose last audio tag names another codec (``sound_format``, 1: ADPCM): FFmpeg adds a
    stream for it while the file is read, long after the header, as for a damaged tag."""
    data = bytearray(source.read_bytes())
    last = max(offset for offset, kind in flv_tags(bytes(data)) if kind == 8)
    data[last + 11] = (data[last + 11] & 0x0F) | sound_format << 4
    path.write_bytes(bytes(data))
    return path


def with_keyframe_flags(source: Path, path: Path, flag) -> Path:
    """The source remuxed with each video packet flagged a keyframe as ``flag(index, keyframe)``
    says (index: the packet's place among the video's, in decode order)."""
    with av.open(str(source)) as inp, av.open(str(path), "w", format=inp.format.name.split(",")[0]) as out:
        copies = {s.index: out.add_stream_from_template(s, opaque=True) for s in inp.streams}
        video = 0
        for packet in inp.demux():
            if packet.size:
                if packet.stream.type == "video":
                    packet.is_keyframe = flag(video, packet.is_keyframe)
                    video += 1
                packet.stream = copies[packet.stream.index]
                out.mux(packet)
    return path


def with_packets_damaged(source: Path, path: Path, damaged: Sequence[int], keep: int = 0,
                         format: str | None = None) -> Path:
    """The source remuxed with the data of its video packets at ``damaged`` (places in decode
    order) overwritten with 0xFF, times and flags kept: an MP4's H.264 decoder refuses each as
    invalid data (a NAL unit longer than its packet), as it refuses a frame hit by a bit error.
    ``keep``: the first bytes left as they were (5: an MP4's NAL length and header, so a keyframe
    is still read as one, its slice refused; in a raw H.264 stream, its start code and first NAL's
    header). ``format``: the muxer, where the source's demuxer names none (``mpeg2video`` for an
    ``.m2v``)."""
    def overwritten(index: int, data: bytes) -> bytes:
        return data[:keep] + b"\xff" * (len(data) - keep) if index in damaged else data

    return with_video_packets_rewritten(source, path, overwritten, format)


def with_frames_hidden(source: Path, path: Path, hidden: Sequence[int]) -> Path:
    """A VP8 source remuxed with its video packets at ``hidden`` (places in decode order) flagged
    not shown (show_frame cleared), as an encoder's alternate reference frames are: decoded into
    the references, never shown, a good stream's packets that give no frame."""
    def unshown(index: int, data: bytes) -> bytes:
        return bytes([data[0] & ~0x10]) + data[1:] if index in hidden else data

    return with_video_packets_rewritten(source, path, unshown)


def vp8_with_hidden_frames(tmp_path: Path) -> Path:
    """48 VP8 frames at 24 fps from libvpx asked for alternate references (this libvpx makes none
    in one pass), packets 5, 17 and 30 flagged not shown as an alternate reference is."""
    source = make_clip(tmp_path / "in.webm", frames=48, rate=24, audio=False, codec="libvpx",
                       options={"auto-alt-ref": "1", "lag-in-frames": "16"})
    return with_frames_hidden(source, tmp_path / "hidden.webm", [5, 17, 30])


def with_video_packets_rewritten(source: Path, path: Path, rewrite, format: str | None = None) -> Path:
    """The source remuxed with each video packet's data as ``rewrite(index, data)`` gives it
    (index: its place among the video's, in decode order; None: the packet left out), times and
    flags kept."""
    with av.open(str(source)) as inp, av.open(str(path), "w", format=format or inp.format.name.split(",")[0]) as out:
        copies = {s.index: out.add_stream_from_template(s, opaque=True) for s in inp.streams}
        video = 0
        for packet in inp.demux():
            if not packet.size:
                continue
            copy = packet
            if packet.stream.type == "video":
                data = bytes(packet)
                rewritten = rewrite(video, data)
                video += 1
                if rewritten is None:
                    continue
                if rewritten != data:
                    copy = av.Packet(rewritten)
                    copy.pts, copy.dts, copy.duration = packet.pts, packet.dts, packet.duration
                    copy.time_base, copy.is_keyframe = packet.time_base, packet.is_keyframe
            copy.stream = copies[packet.stream.index]
            out.mux(copy)
    return path


def damaged_clip(tmp_path: Path, packets: Sequence[int]) -> Path:
    """48 frames at 24 fps (keyframe every 12, B-frames), the video packets at ``packets`` damaged."""
    source = make_clip(tmp_path / "in.mp4", frames=48, rate=24, audio=False,
                       options={"x264-params": "keyint=12:bframes=2:b-adapt=0"})
    return with_packets_damaged(source, tmp_path / "damaged.mp4", packets)


def with_an_empty_video_pid(path: Path) -> Path:
    """48 H.264 frames in an MPEG-TS whose programme lists a second video stream (MPEG-2) that
    carries nothing: it has no picture size, however far a probe reads."""
    with av.open(str(path), "w", format="mpegts") as out:
        video = out.add_stream("libx264", rate=24)
        empty = out.add_stream("mpeg2video", rate=24)
        for stream in (video, empty):
            stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for n in range(48):
            out.mux(video.encode(av.VideoFrame.from_ndarray(np.full((48, 64, 3), n * 5, np.uint8), format="rgb24")))
        out.mux(video.encode(None))
    return path


def opens_spied(monkeypatch) -> list:
    """Each open of an input (``container._opened``) from now on, as whether it read with the long probe."""
    from tmlsr_ray.pipeline import container

    opens = []
    opened = container._opened
    monkeypatch.setattr(container, "_opened",
                        lambda path, options: opens.append("probesize" in (options or {})) or opened(path, options))
    return opens


def damaged_raw_stream(tmp_path: Path, container: str | None, packets: Sequence[int], keep: int) -> Path:
    """48 frames at 24 fps (keyframe every 12, B-frames) as a raw H.264 stream (``container``
    None: its packets carry no times) or an MPEG-TS (its times start 1.4 s in), the video packets
    at ``packets`` damaged (see :func:`with_packets_damaged`); ``keep``: the bytes left whole at
    the start of each (its start codes, and the slice's NAL header)."""
    suffix = "ts" if container else "h264"
    source = make_clip(tmp_path / f"in.{suffix}", frames=48, rate=24, audio=False, container=container,
                       options={"x264-params": "keyint=12:bframes=2:b-adapt=0"})
    return with_packets_damaged(source, tmp_path / f"damaged.{suffix}", packets, keep=keep)



def video_after_start_codes(source: Path, path: Path, container: str) -> Path:
    """The source's video stream alone, remuxed into ``container`` ("h264": a raw stream, "mpegts"):
    its H.264 NAL units after start codes, as a broadcast or a camera's dump carries them."""
    with av.open(str(source)) as inp, av.open(str(path), "w", format=container) as out:
        video = inp.streams.video[0]
        copy = out.add_stream_from_template(video)
        for packet in inp.demux(video):
            if packet.size:
                packet.stream = copy
                out.mux(packet)
    return path


# H.264 streams after start codes that FFmpeg's parser cuts into pictures (raw, MPEG-TS), good and
# damaged, for the pictures a decode lacks (h264_header.PictureOrderGaps). Each x264 option set
# keeps the picture order out of the pixels (spatial direct, no weighted B), so a test may rewrite
# its counts and the stream decodes as before.
POC_STREAM_OPTIONS = "keyint=12:scenecut=0:bframes=2:b-adapt=0:b-pyramid=none:weightb=0:direct=spatial"
# x264 without B-frames: no count in its slice headers (pic_order_cnt_type 2), every picture a reference
FRAME_NUM_ORDER_OPTIONS = "keyint=12:bframes=0"


def start_code_stream(tmp_path: Path, container: str | None, options: str = POC_STREAM_OPTIONS,
                      name: str = "in", frames: int = 48) -> Path:
    """``frames`` at 24 fps, 64x48, as a raw H.264 stream (``container`` None) or an MPEG-TS."""
    suffix = "ts" if container else "h264"
    return make_clip(tmp_path / f"{name}.{suffix}", frames=frames, rate=24, audio=False, container=container,
                     options={"x264-params": options})


def resized_mid_stream(path: Path, container: str | None, sizes=((64, 48), (96, 64)), frames: int = 24,
                       rate: int = 24) -> Path:
    """Two x264 encodes of ``sizes``, ``frames`` each with B-frames (the counts in their slice
    headers), one after the other as a raw H.264 stream (``container`` None) or an MPEG-TS, as a
    broadcast splices an SD ident before its HD programme: each starts at an IDR picture with
    parameter sets of its own, its frame_num and count from 0."""
    with av.open(str(path), "w", format=container or "h264") as out:
        video = out.add_stream("h264", rate=rate)
        video.width, video.height, video.pix_fmt = sizes[-1][0], sizes[-1][1], "yuv420p"
        video.time_base = Fraction(1, 90000)
        step, lead = 90000 // rate, 3  # lead: frames the first B-frames' decode times come before 0
        for part, size in enumerate(sizes):
            encoder = av.CodecContext.create("libx264", "w")
            encoder.width, encoder.height, encoder.pix_fmt = size[0], size[1], "yuv420p"
            encoder.time_base, encoder.framerate = Fraction(1, rate), Fraction(rate)
            encoder.options = {"x264-params": "keyint=12:bframes=2:repeat-headers=1"}
            pictures = [av.VideoFrame.from_ndarray(pixels, format="rgb24") for pixels in _ramp(frames, size)]
            for i, picture in enumerate(pictures):
                picture.pts = i
            for packet in [p for picture in pictures + [None] for p in encoder.encode(picture)]:
                first = part * frames + lead
                packet.pts, packet.dts = (packet.pts + first) * step, (packet.dts + first) * step
                packet.stream, packet.time_base = video, video.time_base
                out.mux(packet)
    return path


def two_video_streams_ts(path: Path, frames: int = 48, rate: int = 24) -> Path:
    """An MPEG-TS carrying two H.264 video streams of one time, as a broadcast's multiplex carries
    two channels: x264 encodes of their own GOPs and B-frames (12 and 2; 20 and 3) and sizes,
    whose frame_num and counts, read as one stream, skip and repeat."""
    with av.open(str(path), "w", format="mpegts") as out:
        streams = []
        for size, params in (((64, 48), "keyint=12:bframes=2"), ((96, 64), "keyint=20:bframes=3:b-adapt=0")):
            video = out.add_stream("libx264", rate=rate, options={"x264-params": params})
            video.width, video.height, video.pix_fmt = size[0], size[1], "yuv420p"
            streams.append((video, _ramp(frames, size)))
        for _ in range(frames):
            for video, pictures in streams:
                out.mux(video.encode(av.VideoFrame.from_ndarray(next(pictures), format="rgb24")))
        for video, _ in streams:
            out.mux(video.encode(None))
    return path


def _slice_units(data: bytes) -> List[Tuple[int, int]]:
    """Where each NAL unit of a packet after start codes starts (its header byte), and its type."""
    return [(found.end(), data[found.end()] & 0x1F) for found in re.finditer(b"\x00\x00\x01", data)
            if found.end() < len(data)]


def with_start_codes_damaged(source: Path, path: Path, packets: Sequence[int], byte: int = 1) -> Path:
    """The source remuxed with the start code of the first slice of each video packet at
    ``packets`` (places in decode order) hit by a bit error, its ``byte``-th from the end (1: x264's
    00 00 00 01 read 00 00 00 81; 3, of a 4-byte start code: 00 00 00 01 read 00 80 00 01, which leaves no byte
    a NAL unit may not hold): the picture's bytes whole, FFmpeg's parser no longer finds where it
    starts."""
    def hit(index: int, data: bytes) -> bytes:
        if index not in packets:
            return data
        at = next(at for at, kind in _slice_units(data) if kind in (1, 5)) - byte
        return data[:at] + bytes([data[at] | 0x80]) + data[at + 1:]

    return with_video_packets_rewritten(source, path, hit)


def with_unreferenced_pictures_dropped(source: Path, path: Path, every: int = 1) -> Path:
    """The source remuxed without every ``every``-th picture no other refers to (nal_ref_idc 0,
    a non-reference B-frame): a stream thinned for trick play or a lower frame rate, good."""
    dropped = []

    def thinned(index: int, data: bytes) -> Optional[bytes]:
        if not any(kind == 1 and not data[at] & 0x60 for at, kind in _slice_units(data)):
            return data
        dropped.append(index)
        return None if len(dropped) % every == 0 else data

    return with_video_packets_rewritten(source, path, thinned)


def _escaped(rbsp_bits: str) -> bytes:
    """An RBSP written as bits, emulation prevention bytes put in (H.264 7.4.1)."""
    escaped, zeros = bytearray(), 0
    for byte in int(rbsp_bits, 2).to_bytes(len(rbsp_bits) // 8, "big"):
        if zeros >= 2 and byte <= 3:
            escaped.append(3)
            zeros = 0
        escaped.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(escaped)


def _golomb(value: int) -> str:
    """An unsigned Exp-Golomb number written as bits."""
    return "0" * ((value + 1).bit_length() - 1) + f"{value + 1:b}"


def _signed_golomb(value: int) -> str:
    return _golomb(2 * value - 1 if value > 0 else -2 * value)


def _x264_field_bits(data: bytes) -> Tuple[int, int]:
    """The bits of frame_num and of pic_order_cnt_lsb, read from the packet's SPS (x264's: high
    profile, no scaling matrices)."""
    at = next(at for at, kind in _slice_units(data) if kind == 7)
    bits = RbspBits(data[at + 1:at + 64])
    bits.read(24)
    bits.number()  # seq_parameter_set_id
    if data[at + 1] in HIGH_PROFILES:
        bits.number(), bits.number(), bits.number(), bits.read(2)  # chroma, depths, bypass, no matrices
    frame_num_bits = bits.number() + 4
    bits.number()  # pic_order_cnt_type, 0
    return frame_num_bits, bits.number() + 4


def _slice_start(unit: bytes, field_bits: Tuple[int, int]) -> Tuple[RbspBits, int, int]:
    """A slice's header read up to pic_order_cnt_lsb, its frame_num and the bit where the lsb starts."""
    bits = RbspBits(unit[1:])
    bits.number(), bits.number(), bits.number()  # first_mb_in_slice, slice_type, pic_parameter_set_id
    frame_num = bits.read(field_bits[0])
    if unit[0] & 0x1F == 5:
        bits.number()  # idr_pic_id
    return bits, frame_num, bits.at


def with_picture_order_rewritten(source: Path, path: Path, order: Callable[[int], int]) -> Path:
    """The source remuxed with each slice's pic_order_cnt_lsb made ``order(lsb)`` (of the same
    bits): a stream whose picture order steps otherwise, as an encoder whose count follows
    capture time writes it. ``order`` keeps the order, so the stream decodes as before."""
    field_bits = (0, 0)

    def rewritten(index: int, data: bytes) -> bytes:
        nonlocal field_bits
        field_bits = _x264_field_bits(data) if any(kind == 7 for _, kind in _slice_units(data)) else field_bits
        for at, kind in reversed(_slice_units(data)):
            if kind in (1, 5):
                end = data.find(b"\x00\x00\x01", at)
                end = len(data) if end < 0 else end
                bits, _, lsb_at = _slice_start(data[at:end], field_bits)
                lsb = order(bits.read(field_bits[1])) % (1 << field_bits[1])
                rbsp = bits.bits[:lsb_at] + f"{lsb:0{field_bits[1]}b}" + bits.bits[lsb_at + field_bits[1]:]
                data = data[:at + 1] + _escaped(rbsp) + data[end:]
        return data

    return with_video_packets_rewritten(source, path, rewritten)


def _units(data: bytes) -> List[bytes]:
    """A raw H.264 stream's NAL units whole, each from its header byte."""
    starts = [at for at, _ in _slice_units(data)] + [len(data) + 3]
    return [data[at:end - 3].rstrip(b"\x00") for at, end in zip(starts, starts[1:])]


def _memory_reset_picture(idr: bytes, field_bits: Tuple[int, int], frame_num: int, order_lsb: int) -> bytes:
    """An x264 IDR slice (CABAC, deblocking fields in its header) as a non-IDR I slice of
    ``frame_num`` and ``order_lsb`` whose dec_ref_pic_marking holds MMCO 5: what it decodes to is
    the same."""
    bits, _, _ = _slice_start(idr, field_bits)
    bits.read(field_bits[1])  # pic_order_cnt_lsb, 0
    bits.read(2)  # no_output_of_prior_pics_flag, long_term_reference_flag
    qp_delta = bits.signed()
    deblocking = [bits.number()]
    deblocking += [bits.signed(), bits.signed()] if deblocking[0] != 1 else []
    data = bits.bits[(bits.at + 7) // 8 * 8:]  # after cabac_alignment_one_bits
    before = RbspBits(idr[1:])
    before.number(), before.number(), before.number()  # first_mb_in_slice, slice_type, its PPS
    rebuilt = (before.bits[:before.at] + f"{frame_num:0{field_bits[0]}b}" + f"{order_lsb:0{field_bits[1]}b}"
               + "1" + _golomb(5) + _golomb(0) + _signed_golomb(qp_delta) + _golomb(deblocking[0])
               + "".join(map(_signed_golomb, deblocking[1:])))
    rebuilt += "1" * (-len(rebuilt) % 8) + data
    return bytes([idr[0] & 0x60 | 1]) + _escaped(rebuilt)


def joined_by_memory_reset(first: Path, second: Path, path: Path, step: int = 2) -> Path:
    """Two raw x264 streams of one configuration as one, the second's IDR picture made an I
    picture whose MMCO 5 starts the references, frame_num and the picture order count over (H.264
    8.2.1): what an encoder that starts over without an IDR picture writes, its count going on
    to that picture by ``step`` (so it is shown after those before, as FFmpeg shows it): the first
    one IDR period, its count x264's, two a frame. Good."""
    units = _units(first.read_bytes())
    field_bits = _x264_field_bits(b"\x00\x00\x01" + next(unit for unit in units if unit[0] & 0x1F == 7))
    pictures = [unit for unit in units if unit[0] & 0x1F in (1, 5) and RbspBits(unit[1:8]).number() == 0]
    frame_num = [_slice_start(unit, field_bits)[1] for unit in pictures if unit[0] & 0x60][-1]
    reset = partial(_memory_reset_picture, field_bits=field_bits, frame_num=(frame_num + 1) % (1 << field_bits[0]),
                    order_lsb=(2 * len(pictures) - 2 + step) % (1 << field_bits[1]))
    joined = units + [reset(unit) if unit[0] & 0x1F == 5 else unit for unit in _units(second.read_bytes())]
    path.write_bytes(b"".join(b"\x00\x00\x00\x01" + unit for unit in joined))
    return path


# NAL units an encoder or muxer may leave after a raw stream's last picture (H.264 and HEVC
# tables 7-1), each with its codec; the parameter sets are x264's and x265's for 64x48
H264_SEI = b"\x00\x00\x00\x01\x06\x05\x01\x00\x80"
HEVC_SEI = b"\x00\x00\x00\x01\x4e\x01\x05\x01\x00\x80"  # a prefix SEI message
STRAY_NAL_UNITS = {"access unit delimiter": ("h264", b"\x00\x00\x00\x01\x09\xf0"),
                   "SEI message": ("h264", H264_SEI),
                   "delimiter and SEI": ("h264", b"\x00\x00\x00\x01\x09\xf0" + H264_SEI),
                   "SEI flagged as a reference": ("h264", b"\x00\x00\x00\x01\x66\x05\x01\x00\x80"),
                   "parameter sets": ("h264", bytes.fromhex("000000016764000aacd9447a1000000300100000030300f1"
                                                            "22596000" "0000000168ebe3cb22c0")),
                   "end of sequence": ("h264", b"\x00\x00\x00\x01\x0a"),
                   "end of stream": ("h264", b"\x00\x00\x00\x01\x0b"),
                   "filler data": ("h264", b"\x00\x00\x00\x01\x0c\xff\xff\x80"),
                   "HEVC SEI message": ("hevc", HEVC_SEI),
                   "HEVC delimiter and SEI": ("hevc", b"\x00\x00\x00\x01\x46\x01\x50" + HEVC_SEI),
                   "HEVC parameter sets": ("hevc", bytes.fromhex(
                       "0000000140010c01ffff01600000030090000003000003001e95900900"
                       "0000000142010101600000030090000003000003001ea020831659592e4cae6808000003000800000300c04000"
                       "000000014401c173d089")),
                   "HEVC end of sequence": ("hevc", b"\x00\x00\x00\x01\x48\x01")}
RAW_ENCODERS = {"h264": ("libx264", {"x264-params": "keyint=12:bframes=2:b-adapt=0"}),
                "hevc": ("libx265", {"x265-params": "keyint=12:min-keyint=12:bframes=2:log-level=none"})}


def raw_stream_ending_with(tmp_path: Path, units: bytes, codec: str = "h264") -> Path:
    """48 frames at 24 fps (keyframe every 12, B-frames) as a raw H.264 or HEVC stream, ``units``
    after its last picture."""
    encoder, options = RAW_ENCODERS[codec]
    source = make_clip(tmp_path / f"in.{codec}", frames=48, rate=24, audio=False, codec=encoder, options=options)
    path = tmp_path / f"ended.{codec}"
    path.write_bytes(source.read_bytes() + units)
    return path


def raw_hevc_recording(tmp_path: Path, pictures: int = 4) -> Path:
    """A raw open-GOP HEVC stream (48 frames at 24 fps, a CRA keyframe every 12 with its RASL
    pictures, parameter sets at each) as a dump that starts anywhere: without its first
    ``pictures`` pictures, so it starts inside its first GOP."""
    source = make_clip(tmp_path / "in.hevc", frames=48, rate=24, audio=False, codec="libx265", options={
        "x265-params": "keyint=12:min-keyint=12:bframes=3:open-gop=1:repeat-headers=1:log-level=none"})
    data = source.read_bytes()
    starts = [found.start() for found in re.finditer(b"\x00\x00\x01", data) if data[found.end()] >> 1 & 0x3F < 32]
    path = tmp_path / "recording.hevc"
    path.write_bytes(data[starts[pictures]:])  # one slice a picture at this size
    return path


def intra_refresh_clip(path: Path, container: str | None = None, params: str = "keyint=30:bframes=2") -> Path:
    """48 frames at 24 fps as a low-latency live encoder makes them (x264's intra refresh, with
    B-frames): one IDR picture, then keyframes flagged at recovery points, pictures other than IDR
    that a column of intra blocks sweeps from (the first at 1.25 s); ``params``: x264's others
    (a webcam's "keyint=12:bframes=0:scenecut=0" has one each 0.5 s, and no B-frames)."""
    return make_clip(path, frames=48, rate=24, audio=False, container=container,
                     options={"x264-params": f"intra-refresh=1:{params}"})


def intra_refresh_recording(tmp_path: Path, suffix: str, damaged: Sequence[int] = ()) -> Path:
    """A recording of an intra-refresh stream with B-frames (keyint 12, 3 B-frames, 4 references)
    started at a recovery point, no IDR picture: its source without the first 5 video packets
    (see :func:`cut_mid_gop`), 43 packets of which FFmpeg gives the last 28 frames, those shown from
    when its pictures are whole. ``damaged``: the recording's packets (places in decode order)
    overwritten (see :func:`with_packets_damaged`)."""
    source = intra_refresh_clip(tmp_path / f"in.{suffix}", params="keyint=12:bframes=3:ref=4")
    if damaged:
        source = with_packets_damaged(source, tmp_path / f"damaged.{suffix}", [place + 5 for place in damaged])
    return cut_mid_gop(source, tmp_path / f"recording.{suffix}", packets=5)


def plain_decode_stamps(path: Path) -> list:
    """The times of the frames a plain PyAV decode of the first video stream gives (what a player shows)."""
    with av.open(str(path)) as container:
        return [frame.pts for frame in container.decode(video=0)]


def first_keyframe_wiped(tmp_path: Path) -> Path:
    """48 frames at 24 fps (keyframe every 12, B-frames) in Matroska, the first keyframe's data
    wiped with its flag (see :func:`with_packets_damaged`): its NAL header too, by which FFmpeg
    would flag an H.264 keyframe again. Its packets look like a recording started inside a GOP."""
    source = make_clip(tmp_path / "in.mkv", frames=48, rate=24, audio=False,
                       options={"x264-params": "keyint=12:bframes=2:b-adapt=0"})
    damaged = with_packets_damaged(source, tmp_path / "damaged.mkv", [0])
    return with_keyframe_flags(damaged, tmp_path / "unflagged.mkv", lambda index, keyframe: keyframe and index > 0)


def with_block_time_moved(source: Path, path: Path, block: int, milliseconds: int) -> Path:
    """A Matroska file whose ``block``-th SimpleBlock states a time ``milliseconds`` off (its
    cluster-relative time changed in place, a 16-bit number), the others right: a bit error in a block header."""
    return _with_matroska_time_moved(source, path, 0xA3, block, milliseconds)


def with_cluster_time_moved(source: Path, path: Path, cluster: int, milliseconds: int) -> Path:
    """A Matroska file whose ``cluster``-th Cluster states a time ``milliseconds`` off (its Timecode
    changed in place: it must fit the bytes the muxer gave it, three from 65.536 s on), every block in
    it moving with it: a bit error in a cluster header."""
    return _with_matroska_time_moved(source, path, 0xE7, cluster, milliseconds)


def _with_matroska_time_moved(source: Path, path: Path, element: int, number: int, milliseconds: int) -> Path:
    """``source`` with the time of its ``number``-th ``element`` (a SimpleBlock's or a Cluster's
    Timecode) ``milliseconds`` off."""
    data = bytearray(source.read_bytes())
    body, size = _matroska_element(data, element, number, (0x18538067, 0x1F43B675))  # in Segment, Clusters
    if element == 0xA3:  # a SimpleBlock: its track number, then its time relative to its cluster's
        _, body = _ebml_number(data, body)
        size = 2
    moved = int.from_bytes(data[body:body + size], "big", signed=element == 0xA3) + milliseconds
    data[body:body + size] = moved.to_bytes(size, "big", signed=element == 0xA3)
    path.write_bytes(bytes(data))
    return path


def with_matroska_duration(source: Path, path: Path, milliseconds: float) -> Path:
    """A Matroska file whose Duration (in its Info, a float of its TimestampScale's milliseconds)
    states ``milliseconds``, the blocks as they were: a header a tool wrote from its own clock (a
    browser's recording given a Duration by a script), or one left stale."""
    data = bytearray(source.read_bytes())
    body, size = _matroska_element(data, 0x4489, 0, (0x18538067, 0x1549A966))  # in Segment, Info
    data[body:body + size] = struct.pack(">d" if size == 8 else ">f", milliseconds)
    path.write_bytes(bytes(data))
    return path


def _matroska_element(data: bytes, element: int, number: int, parents: Tuple[int, ...]) -> Tuple[int, int]:
    """Where the body of the ``number``-th ``element`` among the children of ``parents`` starts, and its size."""
    found, at = -1, 0
    while at < len(data):
        ident, body = _ebml_number(data, at, keep_marker=True)
        size, body = _ebml_number(data, body)
        if ident in parents:  # its children are read
            at = body
            continue
        found += ident == element
        if ident == element and found == number:
            return body, size
        at = body + size
    raise ValueError(f"no element {element:#x} number {number}")


def _ebml_number(data: bytes, at: int, keep_marker: bool = False) -> Tuple[int, int]:
    """An EBML variable-length number at ``at`` (an element ID keeps its length marker), and where it ends."""
    length = 9 - data[at].bit_length()
    value = data[at] if keep_marker else data[at] & ((1 << (8 - length)) - 1)
    for byte in data[at + 1:at + length]:
        value = value << 8 | byte
    return value, at + length


def with_container_colour(source: Path, path: Path, **tags) -> Path:
    """The source's video remuxed with colour tags its container states (a Matroska Colour
    element, an MP4 colr box) where its bitstream states none, as some recorders and remuxers write it."""
    with av.open(str(source)) as inp, av.open(str(path), "w") as out:
        copy = out.add_stream_from_template(inp.streams.video[0], opaque=True)
        for tag, value in tags.items():
            setattr(copy.codec_context, tag, value)
        for packet in inp.demux(video=0):
            if packet.size:
                packet.stream = copy
                out.mux(packet)
    return path


def bottom_up_avi(source: Path, path: Path) -> Path:
    """An uncompressed RGB AVI stored bottom row first, as VirtualDub and Windows capture tools
    write it (a positive height in its bitmap header); PyAV's muxer writes rows top first."""
    data = bytearray(source.read_bytes())
    header = data.find(b"strf", data.find(b"vids")) + 8  # BITMAPINFOHEADER: size, width, height, ...
    height = struct.unpack_from("<i", data, header + 8)[0]
    struct.pack_into("<i", data, header + 8, abs(height))
    path.write_bytes(bytes(data))
    return path


def palette_clip(path: Path, codec: str, frames: int = 24, size=(64, 48), rate: int = 24,
                 new_palette_at: int | None = None, options: dict | None = None) -> Path:
    """8-bit palette video (an old game's or Windows capture's): moving diagonal bands of 256
    colours, the palette changed from frame ``new_palette_at`` on (a fade, as DOS games did them)."""
    rng = np.random.default_rng(1)
    palettes = rng.integers(0, 256, (2, 256, 4), dtype=np.uint8)
    palettes[:, :, 3] = 255
    width, height = size
    bands = (np.arange(width)[None, :] // 4 + np.arange(height)[:, None] // 4).astype(np.uint8)
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate, options=options or {})
        stream.width, stream.height, stream.pix_fmt = width, height, "pal8"
        for index in range(frames):
            frame = av.VideoFrame(width, height, "pal8")
            rows = np.zeros((height, frame.planes[0].line_size), np.uint8)
            rows[:, :width] = np.roll(bands, index, axis=1)
            frame.planes[0].update(rows.tobytes())
            frame.planes[1].update(palettes[int(new_palette_at is not None and index >= new_palette_at)].tobytes())
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def microsoft_video_1_8bit_avi(path: Path, frames: int = 24, size=(64, 48), keyint: int = 6) -> Path:
    """Microsoft Video 1 in its 8-bit mode (CRAM), as old Windows AVIs hold it: a palette AVI
    sends with the first packet only, which QuickTime does not hold. FFmpeg has no encoder for
    that mode: each frame is 4x4 blocks of one palette colour (a fill code), moving along."""
    template = palette_clip(path.with_suffix(".raw.avi"), "rawvideo", frames=1, size=size)
    header = bytearray(template.read_bytes())
    for fourcc_at in (header.find(b"vids") + 4, header.find(b"strf") + 8 + 16):  # handler, biCompression
        header[fourcc_at:fourcc_at + 4] = b"CRAM"
    template.write_bytes(bytes(header))
    width, height = size
    with av.open(str(template)) as inp, av.open(str(path), "w") as out:
        stream = out.add_stream_from_template(inp.streams.video[0], opaque=True)
        palette = next(inp.demux(video=0)).get_sidedata("palette")
        for index in range(frames):
            colours = (index * 7 + np.arange(width // 4)[None, :] * 3 + np.arange(height // 4)[:, None] * 5) % 256
            packet = av.Packet(bytes(np.stack([colours, np.full_like(colours, 0x80)], -1).astype(np.uint8)))
            if index == 0:
                packet.set_sidedata(palette)
            packet.pts = packet.dts = index
            packet.time_base, packet.stream, packet.is_keyframe = stream.time_base, stream, index % keyint == 0
            out.mux(packet)
    return path


def bayer_clip(path: Path, frames: int = 24, size=(64, 48), rate: int = 24) -> Path:
    """Raw Bayer video (a machine-vision camera's sensor data), noise: swscale converts nothing
    into Bayer, so the samples are written as they are."""
    width, height = size
    with av.open(str(path), "w") as out:
        stream = out.add_stream("rawvideo", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "bayer_rggb8"
        for index in range(frames):
            frame = av.VideoFrame(width, height, "bayer_rggb8")
            noise = np.random.default_rng(index).integers(0, 256, height * frame.planes[0].line_size, np.uint8)
            frame.planes[0].update(noise.tobytes())
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def packed_b_frames_avi(path: Path, frames: int = 48, rate: int = 24) -> Path:
    """MPEG-4 in AVI as DivX 5 and XviD stored B-frames ("packed bitstream"): each B-frame in the
    chunk of the picture decoded before it, and in its own place a not-coded VOP (N-VOP), with
    the user data that tells FFmpeg's decoder so."""
    source = make_clip(path.with_name("unpacked.avi"), frames=frames, rate=rate, audio=False, codec="mpeg4",
                       container="avi", options={"bf": "1", "g": "12", "sc_threshold": "1000000000"})
    increment_bits = max(1, (rate - 1).bit_length())
    # start code, P, no seconds, marker, time increment 0, marker, not coded, stuffing to the byte
    fields = "01" + "0" + "1" + "0" * increment_bits + "1" + "0" + "0"
    fields += "1" * (-len(fields) % 8)
    not_coded = b"\x00\x00\x01\xb6" + int(fields, 2).to_bytes(len(fields) // 8, "big")
    with av.open(str(source)) as inp, av.open(str(path), "w", format="avi") as out:
        video = out.add_stream_from_template(inp.streams.video[0], opaque=True)
        packets = [(p.pts, bytes(p), p.is_keyframe) for p in inp.demux(video=0) if p.size]
        start = packets[0][1].find(b"\x00\x00\x01\xb6")
        packets[0] = (packets[0][0], packets[0][1][:start] + b"\x00\x00\x01\xb2DivX503b1393p" + packets[0][1][start:],
                      True)
        chunks, index = [], 0
        while index < len(packets):
            pts, data, key = packets[index]
            shown_before = index + 1 < len(packets) and packets[index + 1][0] < pts
            chunks += [(data + packets[index + 1][1], key), (not_coded, False)] if shown_before else [(data, key)]
            index += 2 if shown_before else 1
        for number, (data, key) in enumerate(chunks):
            packet = av.Packet(data)
            packet.pts = packet.dts = number
            packet.time_base, packet.stream, packet.is_keyframe = video.time_base, video, key
            out.mux(packet)
    return path


def cut_mid_gop(source: Path, path: Path, packets: int, timecode: str | None = None) -> Path:
    """What a TV recording or a stream dump that starts anywhere looks like: the source without its
    first ``packets`` video packets (and the audio before them), so it starts inside a GOP;
    ``timecode`` labels its first frame, on its video (a MOV's ``tmcd`` track)."""
    with av.open(str(source)) as inp, av.open(str(path), "w", format=inp.format.name.split(",")[0]) as out:
        copies = {s.index: out.add_stream_from_template(s, opaque=True) for s in inp.streams}
        if timecode:
            copies[inp.streams.video[0].index].metadata["timecode"] = timecode
        seen, started = 0, False
        for packet in inp.demux():
            if packet.dts is None:
                continue
            if packet.stream.type == "video":
                seen += 1
                started = seen > packets
            if started:
                packet.stream = copies[packet.stream.index]
                out.mux(packet)
    return path


ASS_SCRIPT = """[Script Info]
ScriptType: v4.00+
PlayResX: 640
PlayResY: 360

[V4+ Styles]
Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, Encoding
Style: Sign,Test Font,40,&H0000FFFF,&H000000FF,&H00000000,&H00000000,-1,0,0,0,100,100,0,0,1,2,0,8,10,10,10,1

[Events]
Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text
Dialogue: 0,0:00:00.10,0:00:00.60,Sign,,0,0,0,,{\\pos(320,40)}A styled sign
Dialogue: 1,0:00:00.10,0:00:00.40,Sign,,0,0,0,,The same moment as the sign
Dialogue: 0,0:00:00.50,0:00:00.90,Sign,,0,0,0,,Second line
"""
# ASS's defaults (Arial 16, white): a converter writes no styling for it.
PLAIN_ASS_HEADER = (b"[Script Info]\nScriptType: v4.00+\n\n[V4+ Styles]\nFormat: Name, Fontname, Fontsize, "
                    b"PrimaryColour, Bold\nStyle: Default,Arial,16,&H00FFFFFF,0\n\n")
SRT_SCRIPT = "1\n00:00:00,100 --> 00:00:00,500\nPlain words\n\n2\n00:00:00,600 --> 00:00:00,900\nMore words\n"
FONT_BYTES = b"\x00\x01\x00\x00" + bytes(range(256)) * 8  # stands in for a TrueType font: copied, never read


COVER_JPEG = cv2.imencode(".jpg", np.full((8, 8, 3), 200, np.uint8))[1].tobytes()


def with_attachments(source: Path, path: Path, attachments: Sequence[tuple]) -> Path:
    """``source`` remuxed into Matroska with ``attachments`` (name, MIME type, bytes) each; FFmpeg
    reads back one of an image's MIME type as an attached picture of the codec that type names."""
    with av.open(str(source)) as src, av.open(str(path), "w", format="matroska") as out:
        streams = {s.index: out.add_stream_from_template(s, opaque=True) for s in src.streams}
        for name, mimetype, data in attachments:
            out.add_attachment(name, mimetype, data)
        for packet in src.demux():
            if packet.dts is not None:
                packet.stream = streams[packet.stream.index]
                out.mux(packet)
    return path


def anime_matroska(path: Path, frames: int = 12, rate: int = 12, size=(64, 48),
                   default_subtitle: Optional[int] = None) -> Path:
    """A fansub-style Matroska: H.264 with PCM audio (MP4 holds no PCM), a styled ASS track (its
    font attached, as fansubs ship them), an SRT track, a cover image, and chapters. Neither
    subtitle track is the default unless ``default_subtitle`` names one (0 the ASS, 1 the SRT)."""
    ass, srt = path.with_name(path.stem + ".ass"), path.with_name(path.stem + ".srt")
    ass.write_text(ASS_SCRIPT)
    srt.write_text(SRT_SCRIPT)
    with av.open(str(ass)) as ass_in, av.open(str(srt)) as srt_in, av.open(str(path), "w", format="matroska") as out:
        out.set_chapters([{"id": 1, "start": 0, "end": 500, "time_base": Fraction(1, 1000), "metadata": {"title": "Opening"}},
                          {"id": 2, "start": 500, "end": 1000, "time_base": Fraction(1, 1000), "metadata": {"title": "Part A"}}])
        video = out.add_stream("libx264", rate=rate)
        video.width, video.height, video.pix_fmt = size[0], size[1], "yuv420p"
        sound = _audio_stream(out, "pcm_s16le", "jpn")
        subtitles = []
        for source, language in ((ass_in, "eng"), (srt_in, "spa")):
            copy = out.add_stream_from_template(source.streams.subtitles[0], opaque=True)
            copy.metadata["language"] = language
            copy.disposition = av.stream.Disposition(0)
            subtitles.append((source, copy))
        if default_subtitle is not None:
            subtitles[default_subtitle][1].disposition = av.stream.Disposition.default
        out.add_attachment("TestFont.ttf", "application/x-truetype-font", FONT_BYTES)
        out.add_attachment("cover.jpg", "image/jpeg", COVER_JPEG)  # read back as an attached picture
        for pixels in _ramp(frames, size):
            out.mux(video.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        out.mux(video.encode(None))
        _write_tone(out, sound, frames / rate, 0)
        for source, copy in subtitles:
            for packet in source.demux(source.streams.subtitles[0]):
                if packet.pts is not None:
                    packet.stream = copy
                    out.mux(packet)
    return path


def video_tracks(path: Path, tracks: Sequence[tuple], container: str | None = None, rate: int = 30) -> Path:
    """A file of several video streams, as multi-angle Matroska and MP4s with a preview track have,
    and a tone: ``tracks`` are (size, frames, default) each, in stream order."""
    with av.open(str(path), "w", format=container) as out:
        streams = []
        for size, frames, default in tracks:
            video = out.add_stream("libx264", rate=rate)
            video.width, video.height, video.pix_fmt = size[0], size[1], "yuv420p"
            video.disposition = av.stream.Disposition.default if default else av.stream.Disposition(0)
            streams.append((video, size, frames))
        sound = _audio_stream(out, "aac", "")
        for video, size, frames in streams:
            for pixels in _ramp(frames, size):
                out.mux(video.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
            out.mux(video.encode(None))
        _write_tone(out, sound, max(frames for _, frames, _ in tracks) / rate, 0)
    return path


def timecoded_clip(path: Path, timecode: str, container: str, on_file: bool = False, frames: int = 24,
                   rate: int = 25) -> Path:
    """A clip whose first frame is labelled with an SMPTE ``timecode``: on the video stream (the
    MOV muxer writes it as a ``tmcd`` track, as cameras and iPhones record it), or ``on_file`` (as
    MXF and DV state it, and Matroska remuxed from them), with a tone."""
    with av.open(str(path), "w", format=container) as out:
        video = out.add_stream("libx264", rate=rate)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        (out if on_file else video).metadata["timecode"] = timecode
        sound = _audio_stream(out, "aac", "")
        for pixels in _ramp(frames, (64, 48)):
            out.mux(video.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        out.mux(video.encode(None))
        _write_tone(out, sound, frames / rate, 0)
    return path


def with_telemetry_and_cover(source: Path, path: Path, covers: int = 1) -> Path:
    """The MP4 ``source`` with what cameras and music videos add beside the video: a GoPro-style
    telemetry track (a data stream, handler "GoPro MET") and ``covers`` JPEG cover pictures (MP4's
    covr, which FFmpeg reads as attached pictures)."""
    with av.open(str(source)) as src, av.open(str(path), "w", format="mp4") as out:
        streams = {s.index: out.add_stream_from_template(s, opaque=True, disposition=s.disposition)
                   for s in src.streams}
        telemetry = out.add_data_stream("bin_data")
        telemetry.codec_tag, telemetry.time_base = "gpmd", Fraction(1, 1000)
        telemetry.metadata["handler_name"] = "GoPro MET"
        extra = [(telemetry, b"DEVC" + bytes(28), 0), (telemetry, b"DEVC" + bytes(28), 500)]
        for _ in range(covers):
            cover = out.add_stream("mjpeg", rate=1)
            cover.width = cover.height = 8
            cover.pix_fmt, cover.disposition = "yuvj420p", av.stream.Disposition.attached_pic
            cover.time_base = Fraction(1, 1)
            extra.insert(0, (cover, COVER_JPEG, 0))
        for stream, data, start in extra:
            packet = av.Packet(data)
            packet.stream, packet.time_base, packet.pts, packet.dts = stream, stream.time_base, start, start
            packet.duration = 500 if stream is telemetry else 0
            out.mux(packet)
        for packet in src.demux():
            if packet.dts is not None:
                packet.stream = streams[packet.stream.index]
                out.mux(packet)
    return path


def camcorder_dv(path: Path, frames: int = 10, timecode: str = "10:00:00:00") -> Path:
    """A raw DV file as a camcorder capture (dvgrab) is: PAL 720x576 at 25 frames a second, 48 kHz
    stereo PCM, and the recording's timecode, which FFmpeg reads as the file's."""
    with av.open(str(path), "w", format="dv") as out:
        out.metadata["timecode"] = timecode
        video = out.add_stream("dvvideo", rate=25)
        video.width, video.height, video.pix_fmt = 720, 576, "yuv420p"
        sound = out.add_stream("pcm_s16le", rate=48000)
        sound.layout = "stereo"
        for i, pixels in enumerate(_ramp(frames, (720, 576))):
            out.mux(video.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
            silence = av.AudioFrame.from_ndarray(np.zeros((1, 1920 * 2), np.int16), format="s16", layout="stereo")
            silence.sample_rate, silence.pts = 48000, i * 1920  # a PAL frame's samples
            out.mux(sound.encode(silence))
        out.mux(video.encode(None))
        out.mux(sound.encode(None))
    return path


def with_dolby_vision_config(source: Path, path: Path, profile: int, compatibility: int) -> Path:
    """The HEVC MP4 ``source`` (its moov after its media, as FFmpeg writes it unless told to move
    it) with a Dolby Vision configuration box (``dvcC``) in its sample entry, as an iPhone's HDR
    video has (profile 8, compatibility 4: the base layer is HLG; 1: HDR10)."""
    data = bytearray(source.read_bytes())
    with open(source, "rb") as file:
        moov_at, moov = top_level_box(file, b"moov")
    assert data.find(b"mdat") < moov_at, "the moov must come last: the chunk offsets are not moved"
    grown, start, end = [moov_at - 8], 0, len(moov)  # where each enclosing box's size is
    for kind in (b"trak", b"mdia", b"minf", b"stbl", b"stsd"):
        start, end = next((s, e) for k, s, e in boxes(moov, start, end) if k == kind)
        grown.append(moov_at + start - 8)
    entry = start + 8  # past the stsd's version, flags and count
    size, kind = struct.unpack(">I4s", moov[entry:entry + 8])
    assert kind in (b"hvc1", b"hev1"), kind
    grown.append(moov_at + entry)
    fields = (1 << 24) | (profile << 9) | (6 << 3) | 0b101  # version 1.0, level 6, RPU and base layer
    record = struct.pack(">IB", fields, compatibility << 4) + bytes(19)
    box = struct.pack(">I4s", 8 + len(record), b"dvcC") + record
    data[moov_at + entry + size:moov_at + entry + size] = box
    for at in grown:
        struct.pack_into(">I", data, at, struct.unpack_from(">I", data, at)[0] + len(box))
    path.write_bytes(bytes(data))
    return path


def with_unknown_codec(source: Path, path: Path, entry: bytes, config: bytes) -> Path:
    """The MP4 ``source`` with its second ``entry`` sample entry (``mp4a``, ``avc1``) renamed to a
    FourCC FFmpeg does not know and its decoder configuration (``esds``, ``avcC``) hidden: a track
    FFmpeg cannot name, as a newer phone's may be."""
    data = bytearray(source.read_bytes())
    second = data.find(entry, data.find(entry, data.find(b"moov")) + 4)
    data[second:second + 4] = b"zzzz"
    hidden = data.find(config, second)
    data[hidden:hidden + 4] = b"free"
    path.write_bytes(bytes(data))
    return path


def with_mov_text(source: Path, path: Path, cues=((100, 500, "Plain words"), (600, 900, "More words")),
                  options: dict | None = None) -> Path:
    """``source`` (an MP4) with a mov_text track of ``cues`` (start ms, end ms, text), as a phone
    or an MP4 authoring tool writes subtitles; ``options``: the muxer's (``movflags``)."""
    with av.open(str(source)) as inp, av.open(str(path), "w", format="mp4", options=options or {}) as out:
        copies = {s.index: out.add_stream_from_template(s, opaque=True) for s in inp.streams}
        subtitles = out.add_stream("mov_text")
        subtitles.codec_context.subtitle_header = PLAIN_ASS_HEADER  # its encoder needs one
        subtitles.time_base = Fraction(1, 1000)
        for packet in inp.demux():
            if packet.dts is not None:
                packet.stream = copies[packet.stream.index]
                out.mux(packet)
        for start, end, text in cues:
            data = text.encode()
            packet = av.Packet(struct.pack(">H", len(data)) + data)  # a mov_text sample: length, then UTF-8
            packet.pts = packet.dts = start
            packet.duration, packet.time_base, packet.stream = end - start, Fraction(1, 1000), subtitles
            out.mux(packet)
    return path


def with_ass(source: Path, path: Path, dialogue: Sequence[str]) -> Path:
    """``source`` (an MP4) as a Matroska with an ASS track of the ``dialogue`` lines (what follows
    ``Dialogue:`` in a script), styled as :data:`ASS_SCRIPT` is."""
    script = path.with_suffix(".ass")
    script.write_text(ASS_SCRIPT.split("[Events]")[0] + "[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, "
                      "MarginR, MarginV, Effect, Text\n" + "".join(f"Dialogue: {line}\n" for line in dialogue))
    with av.open(str(source)) as inp, av.open(str(script)) as ass, av.open(str(path), "w", format="matroska") as out:
        copies = {s.index: out.add_stream_from_template(s, opaque=True) for s in inp.streams}
        subtitles = out.add_stream_from_template(ass.streams.subtitles[0], opaque=True)
        for packet in inp.demux():
            if packet.pts is not None:
                packet.stream = copies[packet.stream.index]
                out.mux(packet)
        for packet in ass.demux(ass.streams.subtitles[0]):
            if packet.pts is not None:
                packet.stream = subtitles
                out.mux(packet)
    return path


def soft_telecine_clip(path: Path, frames: int = 48, size=(64, 48), container: str = "vob") -> Path:
    """A DVD film's MPEG-2 (soft telecine): 23.976 frames a second coded, stated as 29.97 in the
    sequence header, each frame flagged progressive and, in the 3:2 pattern, to repeat its first
    field (so it displays at 29.97: frames alternately 3 and 2 fields long)."""
    elementary = make_clip(path.with_suffix(".m2v"), frames=frames, size=size, rate=Fraction(24000, 1001),
                           audio=False, codec="mpeg2video", container="mpeg2video", options={"g": "12", "bf": "2"})
    data = bytearray(elementary.read_bytes())
    first_in_gop = shown_in_gop = picture = 0
    for start in (m.start() for m in re.finditer(b"\x00\x00\x01", data)):
        code = data[start + 3]
        if code == 0xB3:  # sequence header: frame_rate_code 4, 29.97
            data[start + 7] = (data[start + 7] & 0xF0) | 4
        elif code == 0xB8:  # GOP header: its pictures' temporal references count from 0 again
            first_in_gop, shown_in_gop = first_in_gop + shown_in_gop, 0
        elif code == 0x00:  # picture header: its place in display order
            picture = first_in_gop + ((data[start + 4] << 2) | (data[start + 5] >> 6))
            shown_in_gop = max(shown_in_gop, picture - first_in_gop + 1)
        elif code == 0xB5 and data[start + 4] >> 4 == 1:  # sequence extension: progressive_sequence 0
            data[start + 5] &= ~0x08
        elif code == 0xB5 and data[start + 4] >> 4 == 8:  # picture coding extension
            top_first, repeat = [(1, 1), (0, 0), (0, 1), (1, 0)][picture % 4]
            data[start + 7] = (data[start + 7] & ~0x82) | top_first << 7 | repeat << 1
            data[start + 8] |= 0x80  # progressive_frame
    elementary.write_bytes(bytes(data))
    with av.open(str(elementary)) as source, av.open(str(path), "w", format=container) as out:
        video = out.add_stream_from_template(source.streams.video[0])
        for packet in source.demux(source.streams.video[0]):
            if packet.size:
                packet.stream = video
                out.mux(packet)
    return path


def _ramp(frames: int, size) -> Iterator[np.ndarray]:
    """A brightness ramp with a noisy corner, so every frame differs."""
    rng = np.random.default_rng(0)
    for i in range(frames):
        pixels = np.full((size[1], size[0], 3), i * 255 // frames, np.uint8)
        pixels[:8, :8] = rng.integers(0, 255, (8, 8, 3))
        yield pixels


def _audio_stream(out, codec: str, language: str, layout: str = "mono", rate: int | None = None):
    rates = av.Codec(codec, "w").audio_rates  # Opus, AC-3 and E-AC-3 take no 16 kHz
    sound = out.add_stream(codec, rate=rate or (16000 if not rates or 16000 in rates else 48000))
    sound.layout = layout
    if language:
        sound.metadata["language"] = language
    return sound


def _write_tone(out, sound, seconds: float, first_sample: int, levels_by_channel: bool = False) -> None:
    """A 440 Hz tone on each of the stream's channels; PyAV converts it to the encoder's sample
    format and frame size. ``levels_by_channel``: channel k of n at (k + 1) / n of the level, so
    each channel can be told by its level."""
    rate, channels = sound.rate, sound.layout.nb_channels
    samples = int(rate * seconds)
    tone = (0.2 * np.sin(np.arange(samples) * 2 * np.pi * 440 / rate)).astype(np.float32)
    gains = (np.arange(1, channels + 1) / channels if levels_by_channel else np.ones(channels)).astype(np.float32)
    pcm = sound.codec_context.name.startswith("pcm_")
    for start in range(0, samples, 1024):
        chunk = tone[None, start:start + 1024]
        if pcm:  # packed: each sample's channels side by side
            chunk = np.repeat(chunk, channels, axis=1) * np.tile(gains, chunk.shape[1])
        else:
            chunk = np.repeat(chunk, channels, axis=0) * gains[:, None]
        frame = av.AudioFrame.from_ndarray((chunk * 32767).astype(np.int16) if pcm else chunk,
                                           format="s16" if pcm else "fltp", layout=sound.layout.name)
        frame.sample_rate, frame.pts = rate, first_sample + start
        out.mux(sound.encode(frame))
    out.mux(sound.encode(None))


def png_bytes(width: int, height: int, mode: str = "RGB", seed: int = 0) -> bytes:
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    pixels = np.random.default_rng(seed).integers(0, 255, (height, width, channels), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels.squeeze() if channels == 1 else pixels, mode).save(buf, "PNG")
    return buf.getvalue()


def decode(data: bytes) -> np.ndarray:
    """An encoded image's pixels as OpenCV reads them (BGR, alpha and depth kept)."""
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)


def video_frames(data: bytes, path: Path):
    """A video's (seconds, RGB frame) list, its (type, codec) streams and its duration, from its bytes
    written to ``path``."""
    path.write_bytes(data)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [(float(f.pts * f.time_base), f.to_ndarray(format="rgb24")) for f in container.decode(stream)]
    with av.open(str(path)) as container:
        streams = [(s.type, s.codec_context.name) for s in container.streams]
        duration = container.duration / av.time_base
    return frames, streams, duration


def start_slow_video(service, input_server, tmp_path, name: str, frames: int) -> str:
    """Submits a clip with the slow model and returns its id once frames are coming out."""
    url = input_server.add(name, make_clip(tmp_path / name, frames=frames, size=(160, 120)).read_bytes())
    task_id = service.submit(url=url, model="slow-x4.pth")["task_id"]
    service.wait(task_id, until=lambda t: video_progress(t).get("frames_done", 0) > 0, timeout=120)
    return task_id


def animated_gif(frames: int = 8, size=(24, 16), delay_ms: int = 100) -> bytes:
    """A short real animation made with Pillow: a grey ramp, every frame different."""
    images = [Image.new("L", size, i * 255 // frames) for i in range(frames)]
    out = io.BytesIO()
    images[0].save(out, "GIF", save_all=True, append_images=images[1:], duration=delay_ms, loop=0)
    return out.getvalue()


def frame_flood_gif(frames: int = 40_000, delay_cs: int = 0) -> bytes:
    """A GIF of ``frames`` 1x1 frames shown for ``delay_cs`` centiseconds each, written block by
    block (Pillow's writer takes 10 s for 40,000 frames and merges equal ones): 23 bytes a frame,
    so 40,000 zero-delay frames are the 920 KB file that kept the service busy for 148 s."""
    header = b"GIF89a" + struct.pack("<HHBBB", 1, 1, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    control = b"\x21\xf9\x04\x00" + struct.pack("<H", delay_cs) + b"\x00\x00"  # graphic control extension
    image = b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00"  # one pixel, LZW-coded
    return header + (control + image) * frames + b"\x3b"


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_chunks_in_order(png: bytes) -> List[Tuple[bytes, bytes]]:
    """(kind, data) of each chunk of a PNG, up to IEND, each checked against its CRC."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, at = [], 8
    while at < len(png):
        length, kind = struct.unpack(">I4s", png[at:at + 8])
        data = png[at + 8:at + 8 + length]
        assert struct.unpack(">I", png[at + 8 + length:at + 12 + length])[0] == zlib.crc32(kind + data), kind
        chunks.append((kind, data))
        at += 12 + length
    return chunks


def with_png_chunk(png: bytes, kind: bytes, data: bytes) -> bytes:
    """The PNG with one more chunk right after IHDR (before its pixels)."""
    end_of_ihdr = 8 + 8 + 13 + 4
    return png[:end_of_ihdr] + png_chunk(kind, data) + png[end_of_ihdr:]


def with_png_checksum_broken(png: bytes, kind: bytes) -> bytes:
    """The PNG with the checksum of its first chunk of ``kind`` wrong (a bit error in that chunk)."""
    at = 8
    while png[at + 4:at + 8] != kind:
        at += 12 + struct.unpack(">I", png[at:at + 4])[0]
    crc_at = at + 8 + struct.unpack(">I", png[at:at + 4])[0]
    return png[:crc_at] + bytes([png[crc_at] ^ 0xFF]) + png[crc_at + 1:]


def flat_gray_jpeg(width: int, height: int, sampling: Sequence[int] = (0x11, 0x11, 0x11)) -> bytes:
    """A whole, valid baseline Y'CbCr JPEG of mid-gray (every coefficient 0), its components
    sampled as ``sampling`` says (0x13: luma 1 block wide and 3 high an MCU): layouts libjpeg reads
    and no encoder here writes. Width and height: multiples of 8 x the largest factor. Its Huffman
    tables hold one 1-bit code each."""
    blocks = sum(width * (f >> 4) // (8 * max(g >> 4 for g in sampling)) * (height * (f & 15) // (8 * max(
        g & 15 for g in sampling))) for f in sampling)
    bits = "00" * blocks  # each block: DC difference 0, then end of block
    scan = int((bits + "1" * (-len(bits) % 8)), 2).to_bytes((len(bits) + 7) // 8, "big")
    components = b"".join(bytes([index + 1, factors, 0]) for index, factors in enumerate(sampling))
    one_code = bytes([1] + [0] * 15 + [0])  # a table of one code of 1 bit, for the symbol 0
    return (b"\xff\xd8" + jpeg_marker_segment(0xDB, b"\x00" + b"\x01" * 64)
            + jpeg_marker_segment(0xC0, struct.pack(">BHHB", 8, height, width, 3) + components)
            + jpeg_marker_segment(0xC4, b"\x00" + one_code + b"\x10" + one_code)
            + jpeg_marker_segment(0xDA, b"\x03\x01\x00\x02\x00\x03\x00\x00\x3f\x00")
            + scan.replace(b"\xff", b"\xff\x00") + b"\xff\xd9")


def small_noise_jpeg(width: int = 48, height: int = 32) -> bytes:
    """A baseline JPEG of noise, as OpenCV writes it (no restart markers), ending in its EOI marker."""
    picture = (np.random.default_rng(3).random((height, width, 3)) * 255).astype(np.uint8)
    return cv2.imencode(".jpg", picture)[1].tobytes()


def jpeg_cut_and_closed(jpeg: bytes, kept: float) -> bytes:
    """The first ``kept`` of a JPEG's bytes, closed by an EOI marker as a careless repair or a
    transfer tool closes one: its picture data ends before its last row."""
    return jpeg[:int(len(jpeg) * kept)] + b"\xff\xd9"


def jpeg_marker_segment(marker: int, body: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(body) + 2) + body


ISO_GAIN_MAP_SIGNATURE = b"urn:iso:std:iso:ts:21496:-1\x00"
# what Android's camera writes of a gain map (hdrgm attributes, ISO 21496-1 numbers), made up here
GAIN_MAP_METADATA = (
    jpeg_marker_segment(0xE1, b"http://ns.adobe.com/xap/1.0/\x00" + (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description xmlns:hdrgm="http://ns.adobe.com/hdr-gain-map/1.0/" hdrgm:Version="1.0" '
        'hdrgm:GainMapMin="0" hdrgm:GainMapMax="2.3" hdrgm:Gamma="1" hdrgm:OffsetSDR="0.015625" '
        'hdrgm:OffsetHDR="0.015625" hdrgm:HDRCapacityMin="0" hdrgm:HDRCapacityMax="2.3" '
        'hdrgm:BaseRenditionIsHDR="False"/></rdf:RDF></x:xmpmeta>').encode())
    + jpeg_marker_segment(0xE2, ISO_GAIN_MAP_SIGNATURE + struct.pack(
        ">HHB" + "II" * 5, 0, 0, 0, 0, 1, 23, 10, 0, 1, 23, 10, 1, 64)))


def ultra_hdr_jpeg(primary: np.ndarray, gain_map: np.ndarray, orientation: int = 1, iso: bool = True,
                   gain_map_icc: Optional[bytes] = None, mpf: bool = True, directory: bool = True,
                   video: bytes = b"", padding: int = 0, extended_xmp: bool = False) -> bytes:
    """An Ultra HDR JPEG as Android phones write one, made from scratch: the primary (EXIF with
    ``orientation``, XMP with hdrgm:Version and, with ``directory``, a GContainer directory, with
    ``iso`` an ISO 21496-1 version segment, with ``mpf`` a little-endian MPF index) and the gain
    map after its EOI (its hdrgm XMP, with ``iso`` its ISO 21496-1 metadata:
    :data:`GAIN_MAP_METADATA`; ``gain_map_icc``, the colour space it is applied in, as Skia writes
    it); a ``video`` goes between them, a MotionPhoto item before the GainMap in the directory, and
    ``padding`` zero bytes after the primary's EOI (its item's Item:Padding). With ``extended_xmp``
    the primary's hdrgm and directory XMP is extended XMP (:func:`extended_xmp_segments`)."""
    gain_map_metadata = GAIN_MAP_METADATA if iso else GAIN_MAP_METADATA[:GAIN_MAP_METADATA.index(b"\xff\xe2")]
    if gain_map_icc:
        gain_map_metadata += jpeg_marker_segment(0xE2, b"ICC_PROFILE\x00\x01\x01" + gain_map_icc)
    gain_map_jpeg = _with_segments(_jpeg_of(gain_map), gain_map_metadata)
    exif = Image.Exif()
    exif[0x0112] = orientation
    video_item = ('<rdf:li rdf:parseType="Resource"><Container:Item Item:Semantic="MotionPhoto" '
                  f'Item:Mime="video/mp4" Item:Length="{len(video)}"/></rdf:li>') if video else ""
    directory = ('<Container:Directory><rdf:Seq><rdf:li rdf:parseType="Resource"><Container:Item '
                 f'Item:Semantic="Primary" Item:Mime="image/jpeg" Item:Padding="{padding}"/></rdf:li>{video_item}'
                 '<rdf:li rdf:parseType="Resource"><Container:Item Item:Semantic="GainMap" Item:Mime="image/jpeg" '
                 f'Item:Length="{len(gain_map_jpeg)}"/></rdf:li></rdf:Seq></Container:Directory>'
                 ) if directory else ""
    xmp = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
           '<rdf:Description xmlns:Container="http://ns.google.com/photos/1.0/container/" '
           'xmlns:Item="http://ns.google.com/photos/1.0/container/item/" '
           f'xmlns:hdrgm="http://ns.adobe.com/hdr-gain-map/1.0/" hdrgm:Version="1.0">{directory}'
           '</rdf:Description></rdf:RDF></x:xmpmeta>')
    xmp_segments = extended_xmp_segments(xmp.encode()) if extended_xmp else \
        jpeg_marker_segment(0xE1, XMP_SIGNATURE + xmp.encode())
    head = (jpeg_marker_segment(0xE1, exif.tobytes()) + xmp_segments
            + (jpeg_marker_segment(0xE2, ISO_GAIN_MAP_SIGNATURE + bytes(4)) if iso else b""))
    primary_jpeg = _jpeg_of(primary)
    mpf_at = 2 + len(head) + 4 + 4  # SOI, the segments before, the MPF segment's marker, length and "MPF\0"
    primary_bytes = len(primary_jpeg) + len(head) + len(_little_endian_mpf([0, 0], [0, 0]))
    gain_map_at = primary_bytes + padding + len(video)
    index = _little_endian_mpf([primary_bytes, len(gain_map_jpeg)], [0, gain_map_at - mpf_at]) if mpf else b""
    return _with_segments(primary_jpeg, head + index) + bytes(padding) + video + gain_map_jpeg


XMP_SIGNATURE = b"http://ns.adobe.com/xap/1.0/\x00"


def extended_xmp_segments(packet: bytes, parts: int = 2) -> bytes:
    """APP1 segments holding ``packet`` as extended XMP (XMP Specification Part 3, 1.1.3.1): a
    standard XMP naming its GUID (the packet's MD5, hex) in xmpNote:HasExtendedXMP, then the packet
    in ``parts`` pieces, the last first, each after the GUID, the packet's length and its offset."""
    guid = hashlib.md5(packet).hexdigest().upper().encode()
    standard = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
                '<rdf:Description rdf:about="" xmlns:xmpNote="http://ns.adobe.com/xmp/note/" '
                f'xmpNote:HasExtendedXMP="{guid.decode()}"/></rdf:RDF></x:xmpmeta>').encode()
    step = -(-len(packet) // parts)
    pieces = [jpeg_marker_segment(0xE1, b"http://ns.adobe.com/xmp/extension/\x00" + guid
                                  + struct.pack(">II", len(packet), at) + packet[at:at + step])
              for at in range(0, len(packet), step)]
    return jpeg_marker_segment(0xE1, XMP_SIGNATURE + standard) + b"".join(reversed(pieces))


def _jpeg_of(pixels: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()


def _with_segments(jpeg: bytes, segments: bytes) -> bytes:
    return jpeg[:2] + segments + jpeg[2:]


def _little_endian_mpf(sizes: Sequence[int], offsets: Sequence[int]) -> bytes:
    """An APP2 MPF segment listing pictures of ``sizes`` at ``offsets`` (from its TIFF header),
    the first a baseline primary, the others of no stated kind."""
    entries_at = 8 + 2 + 3 * 12 + 4
    tags = (struct.pack("<HHI4s", 0xB000, 7, 4, b"0100") + struct.pack("<HHII", 0xB001, 4, 1, len(sizes))
            + struct.pack("<HHII", 0xB002, 7, 16 * len(sizes), entries_at))
    entries = b"".join(struct.pack("<IIIHH", 0x030000 if n == 0 else 0, size, offset, 0, 0)
                       for n, (size, offset) in enumerate(zip(sizes, offsets)))
    return jpeg_marker_segment(0xE2, b"MPF\x00II*\x00" + struct.pack("<IH", 8, 3) + tags + bytes(4) + entries)


def zlib_bomb(inflated: int) -> bytes:
    """A zlib stream of ``inflated`` zero bytes (about a thousandth of that), made a megabyte at a time."""
    stream, block = zlib.compressobj(9), bytes(1 << 20)
    parts = [stream.compress(block[:min(len(block), inflated - done)]) for done in range(0, inflated, len(block))]
    return b"".join(parts) + stream.flush()


def png_bomb(width: int, height: int) -> bytes:
    """A black 8-bit RGB PNG of ``width`` x ``height``, its pixels a zlib bomb (9000x9000: 240 kB)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib_bomb((width * 3 + 1) * height))
            + png_chunk(b"IEND", b""))


def tiff_with_alpha(pixels: np.ndarray, associated: bool) -> bytes:
    """An uncompressed one-strip TIFF of RGBA (H, W, 4) or gray+alpha (H, W, 2) samples, 8- or
    16-bit, whose ExtraSamples tag says the alpha is associated (colour premultiplied, what GIMP
    writes) or unassociated (Photoshop's): the layouts Pillow cannot write."""
    return uncompressed_tiff(pixels, extra_sample=1 if associated else 2)


def with_ispe(heif: bytes, width: int, height: int) -> bytes:
    """A HEIC or AVIF whose first ``ispe`` property states ``width`` x ``height``, its coded picture as it was."""
    at = heif.index(b"ispe") + 8  # after the box's type, version and flags: width, height
    return heif[:at] + struct.pack(">II", width, height) + heif[at + 8:]


def with_tiff_strip_damaged(tiff: bytes, damage: str) -> bytes:
    """A one-strip TIFF (as Pillow writes it) with its strip's second half zeroed ("zeroed-tail")
    or 8 bytes of it changed at its middle ("changed-middle"), its byte count as it was."""
    with Image.open(io.BytesIO(tiff)) as img:
        offset, count = img.tag_v2[273][0], img.tag_v2[279][0]
    middle = offset + count // 2
    if damage == "zeroed-tail":
        return tiff[:middle] + bytes(offset + count - middle) + tiff[offset + count:]
    changed = bytes(b ^ 0x5A for b in tiff[middle:middle + 8])
    return tiff[:middle] + changed + tiff[middle + 8:]


def deflated_tiff(pixels: np.ndarray, planar: bool = False, tile: Optional[int] = None,
                  byte_counts: Optional[Sequence[int]] = None) -> bytes:
    """:func:`uncompressed_tiff`'s TIFF with each piece compressed by zlib (Deflate, compression 8)."""
    return uncompressed_tiff(pixels, planar=planar, tile=tile, byte_counts=byte_counts, deflated=True)


def uncompressed_tiff(pixels: np.ndarray, extra_sample: Optional[int] = None, planar: bool = False,
                      tile: Optional[int] = None, photometric: Optional[int] = None,
                      byte_counts: Optional[Sequence[int]] = None, deflated: bool = False) -> bytes:
    """An uncompressed TIFF of gray, RGB or either with one more sample (H, W, C), 8- or 16-bit:
    one strip of interleaved samples, or with ``planar`` one strip a plane (PlanarConfiguration 2,
    a scanner's or Photoshop's "per channel" order); in ``tile``-pixel square tiles if given.
    ``extra_sample`` is the ExtraSamples value of that last sample (1: associated alpha, 2:
    unassociated); ``photometric`` the colour, if not gray or RGB by the samples (5: CMYK);
    ``byte_counts`` what it states of each piece's bytes, if not the truth."""
    height, width, samples = pixels.shape
    bits = 8 * pixels.dtype.itemsize
    planes = [pixels[..., [i]] for i in range(samples)] if planar else [pixels]
    pieces = [_tiles(plane, tile) if tile else [plane] for plane in planes]
    data = [np.ascontiguousarray(piece).astype(pixels.dtype.newbyteorder("<")).tobytes()
            for plane in pieces for piece in plane]
    data = [zlib.compress(piece) for piece in data] if deflated else data
    short, long = 3, 4
    layout = [(322, short, 1, tile), (323, short, 1, tile)] if tile else [(278, long, 1, height)]
    count = 9 + len(layout) + (extra_sample is not None)
    bits_at = 8 + 2 + 12 * count + 4
    bits_values = struct.pack(f"<{samples}H", *[bits] * samples)
    offsets_at = bits_at + len(bits_values)
    counts_at = offsets_at + 4 * len(data)
    data_at = counts_at + 4 * len(data)
    starts = [data_at + sum(map(len, data[:i])) for i in range(len(data))]
    stated_counts = list(byte_counts) if byte_counts is not None else [len(piece) for piece in data]
    offsets_tag, counts_tag = (324, 325) if tile else (273, 279)
    entries = [(256, long, 1, width), (257, long, 1, height), (258, short, samples, bits_at if samples > 2 else None),
               (259, short, 1, 8 if deflated else 1), (262, short, 1, photometric or (2 if samples >= 3 else 1)),
               (offsets_tag, long, len(data), offsets_at if len(data) > 1 else starts[0]), (277, short, 1, samples),
               (counts_tag, long, len(data), counts_at if len(data) > 1 else stated_counts[0]),
               (284, short, 1, 2 if planar else 1), *layout]
    if extra_sample is not None:
        entries.append((338, short, 1, extra_sample))
    ifd = struct.pack("<H", count)
    for tag, kind, n, value in sorted(entries):
        if value is None:  # one or two SHORTs fit the entry itself
            ifd += struct.pack("<HHI", tag, kind, n) + bits_values.ljust(4, b"\0")
        elif kind == short and n == 1:
            ifd += struct.pack("<HHIHH", tag, kind, n, value, 0)
        else:
            ifd += struct.pack("<HHII", tag, kind, n, value)
    return (b"II*\0" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0) + bits_values
            + struct.pack(f"<{len(data)}I", *starts) + struct.pack(f"<{len(data)}I", *stated_counts) + b"".join(data))


def _tiles(plane: np.ndarray, tile: int) -> List[np.ndarray]:
    """The plane's ``tile``-square tiles, row by row, the last ones padded."""
    rows, columns = -(-plane.shape[0] // tile), -(-plane.shape[1] // tile)
    padded = np.zeros((rows * tile, columns * tile, plane.shape[2]), plane.dtype)
    padded[:plane.shape[0], :plane.shape[1]] = plane
    return [padded[y:y + tile, x:x + tile] for y in range(0, rows * tile, tile) for x in range(0, columns * tile, tile)]


def bmp_with_alpha_mask(bgra: np.ndarray) -> bytes:
    """A 32-bit bottom-up BMP of BGRA (H, W, 4) samples with a BITMAPV5HEADER whose bit fields name
    an alpha mask (what Photoshop's and GDI+'s 32-bit BMPs have; Pillow writes no alpha mask)."""
    height, width, _ = bgra.shape
    pixels = np.ascontiguousarray(bgra[::-1]).astype(np.uint8).tobytes()
    masks = struct.pack("<4I", 0x00FF0000, 0x0000FF00, 0x000000FF, 0xFF000000)
    header = (struct.pack("<IiiHHIIiiII", 124, width, height, 1, 32, 3, len(pixels), 2835, 2835, 0, 0) + masks
              + b"BGRs" + b"\0" * 36 + b"\0" * 12 + struct.pack("<4I", 4, 0, 0, 0))
    start = 14 + len(header)
    return b"BM" + struct.pack("<IHHI", start + len(pixels), 0, 0, start) + header + pixels


def os2_bitmap(pixels: np.ndarray, palette: Optional[Sequence[tuple]] = None) -> bytes:
    """An OS/2 1.x BMP (the 12-byte BITMAPCOREHEADER of OS/2's and Windows 2's bitmaps) of RGB
    (H, W, 3) samples, or of 8-bit indices (H, W) into ``palette``'s RGB colours."""
    height, width = pixels.shape[:2]
    samples = pixels[..., ::-1] if pixels.ndim == 3 else pixels  # BGR, as BMP stores colour
    rows = [row.astype(np.uint8).tobytes() for row in samples[::-1]]
    data = b"".join(row + b"\0" * (-len(row) % 4) for row in rows)
    header = struct.pack("<IHHHH", 12, width, height, 1, 24 if pixels.ndim == 3 else 8)
    colours = b"".join(bytes([b, g, r]) for r, g, b in palette or ())
    start = 14 + len(header) + len(colours)
    return b"BM" + struct.pack("<IHHI", start + len(data), 0, 0, start) + header + colours + data


def sixteen_bit_bmp(levels: np.ndarray, green_bits: int = 5, v5_header: bool = False) -> bytes:
    """A 16-bit BMP of RGB levels (H, W, 3) of 5 bits each (X1R5G5B5, BI_RGB) or with 6 of green
    (R5G6B5, whose bit fields say so): old games' and Windows CE's bitmaps. With ``v5_header``,
    GIMP's: a BITMAPV5HEADER whose bit fields say either layout."""
    height, width, _ = levels.shape
    red, green, blue = (levels[..., i].astype(np.uint16) for i in range(3))
    words = red << (5 + green_bits) | green << 5 | blue
    rows = [row.astype("<u2").tobytes() for row in words[::-1]]
    data = b"".join(row + b"\0" * (-len(row) % 4) for row in rows)
    masks = (0xF800, 0x07E0, 0x001F) if green_bits == 6 else (0x7C00, 0x03E0, 0x001F)
    fields = struct.pack("<3I", *masks) if green_bits == 6 or v5_header else b""
    header = struct.pack("<IiiHHIIiiII", 124 if v5_header else 40, width, height, 1, 16, 3 if fields else 0,
                         len(data), 2835, 2835, 0, 0)
    if v5_header:  # the masks (alpha's 0), sRGB, its unused end points and gammas, and rendering intent
        header += fields + b"\0" * 4 + b"BGRs" + b"\0" * 48 + struct.pack("<4I", 4, 0, 0, 0)
        fields = b""
    start = 14 + len(header) + len(fields)
    return b"BM" + struct.pack("<IHHI", start + len(data), 0, 0, start) + header + fields + data


# A colour chart of in-gamut RGB patches, as exact YUV code values for a given matrix and range.
CHART_RGB = [(0.45, 0.32, 0.26), (0.76, 0.58, 0.50), (0.36, 0.48, 0.61), (0.35, 0.42, 0.26),
             (0.51, 0.50, 0.69), (0.38, 0.74, 0.67), (0.85, 0.47, 0.18), (0.25, 0.36, 0.65)]
LUMA_WEIGHTS = {9: (0.2627, 0.0593), 1: (0.2126, 0.0722), 6: (0.299, 0.114), 5: (0.299, 0.114),
                10: (0.2627, 0.0593)}  # BT.2020 constant luminance: its chart as its non-constant twin's
YCGCO = 8
HDR_MASTERING = {"master_display": "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1)",
                 "cll": "1000,400"}


def chart_yuv(width: int, height: int, depth: int, matrix: int, full_range: bool,
              chart: Sequence[Tuple[float, float, float]] = CHART_RGB):
    """Y, U, V planes (4:2:0) of ``chart``'s 4 × 2 patches, code values 0..1 (YCgCo: Y, Cg, Co)."""
    kr, kb = LUMA_WEIGHTS.get(matrix, (0.25, 0.25))
    planes = [np.zeros((height, width), np.uint16), np.zeros((height // 2, width // 2), np.uint16)]
    planes.append(planes[1].copy())
    pitch_x, pitch_y = width // 4, height // 2
    for k, (r, g, b) in enumerate(chart):
        y = kr * r + (1 - kr - kb) * g + kb * b
        u, v = (b - y) / (2 * (1 - kb)), (r - y) / (2 * (1 - kr))
        if matrix == YCGCO:
            u, v = g / 2 - (r + b) / 4, (r - b) / 2
        if full_range:
            codes = [round(c * ((1 << depth) - 1)) for c in (y, u + 0.5, v + 0.5)]
        else:
            unit = 1 << (depth - 8)
            codes = [round((16 + 219 * y) * unit), round((128 + 224 * u) * unit), round((128 + 224 * v) * unit)]
        row, col = divmod(k, 4)
        for index, (plane, code) in enumerate(zip(planes, codes)):
            sub = 2 if index else 1
            plane[row * pitch_y // sub:(row + 1) * pitch_y // sub, col * pitch_x // sub:(col + 1) * pitch_x // sub] = code
    return planes


def colour_chart_clip(path: Path, codec: str, pix_fmt: str, depth: int, tags: dict, rotation: int = 0,
                      frames: int = 6, size=(128, 64), mastering: bool = False,
                      chart: Sequence[Tuple[float, float, float]] = CHART_RGB) -> Path:
    """A lossless clip of ``chart`` with the given colour tags (and rotation, and HDR10 metadata)."""
    width, height = size
    if codec == "libx265":
        params = "log-level=error:lossless=1"
        if mastering:
            params += (f":hdr10=1:master-display={HDR_MASTERING['master_display']}"
                       f":max-cll={HDR_MASTERING['cll']}")
        options = {"x265-params": params}
    else:
        options = {"qp": "0"}
    planes = chart_yuv(width, height, depth, tags["colorspace"], tags["color_range"] == 2, chart)
    dtype = np.uint16 if depth > 8 else np.uint8
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=25, options=options)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        for name, value in tags.items():
            setattr(stream.codec_context, name, value)
        if rotation:
            stream.set_display_rotation(rotation)
        for i in range(frames):
            frame = av.VideoFrame(width, height, pix_fmt)
            for plane, values in zip(frame.planes, planes):
                line = np.zeros((values.shape[0], plane.line_size // np.dtype(dtype).itemsize), dtype)
                line[:, :values.shape[1]] = values
                plane.update(line.tobytes())
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def deep_levels(bits: int, layout: str) -> np.ndarray:
    """A ramp from black to white at ``bits``, in gray, BGR or BGRA (its alpha a ramp too)."""
    ramp = np.tile(np.linspace(0, (1 << bits) - 1, 64).round().astype(np.uint16), (16, 1))
    if layout == "gray":
        return ramp
    return np.stack([ramp, ramp[:, ::-1], ramp // 2] + ([ramp[::-1]] if layout == "alpha" else []), axis=2)


def image_round_trip(path: Path):
    """An image probed, decoded and encoded in the format the service picks, with its profile and
    EXIF: (info, pixels, format, bytes)."""
    from tmlsr_ray.pipeline.image import decode_image, encode_image, output_format, probe_image

    info = probe_image(path, 10**8)
    image = decode_image(path, info)
    fmt = output_format(info, image)
    return info, image, fmt, encode_image(image, fmt, 95, info.icc_profile, info.exif, info.png_colour)


def deep_photo(path: Path, levels: np.ndarray, bits: int, **code_points) -> Path:
    """A ``bits``-deep HEIC (pillow-heif, with ``color_primaries`` / ``transfer_characteristics``
    nclx code points if given) or AVIF (OpenCV: its encoder has no code points, so they are written
    into its ``colr`` box after) by ``path``'s suffix: ``levels`` are BGR(A) or gray 0 to 2**bits-1."""
    if path.suffix == ".heic":
        import pillow_heif

        pillow_heif.options.SAVE_HDR_TO_12_BIT = bits == 12
        try:
            rgb = levels if levels.ndim == 2 else cv2.cvtColor(levels, cv2.COLOR_BGRA2RGBA if levels.shape[2] == 4
                                                               else cv2.COLOR_BGR2RGB)
            mode = "I;16" if rgb.ndim == 2 else "RGBA;16" if rgb.shape[2] == 4 else "RGB;16"
            heif = pillow_heif.from_bytes(mode, rgb.shape[1::-1], (rgb.astype(np.uint16) << (16 - bits)).tobytes())
            heif.save(path, quality=-1, chroma=444, **code_points)
        finally:
            pillow_heif.options.SAVE_HDR_TO_12_BIT = False
        return path
    assert cv2.imwrite(str(path), levels.astype(np.uint16), [cv2.IMWRITE_AVIF_DEPTH, bits, cv2.IMWRITE_AVIF_QUALITY, 100])
    if code_points:
        data = bytearray(path.read_bytes())
        at = data.index(b"colrnclx") + 8
        data[at:at + 4] = struct.pack(">HH", code_points["color_primaries"], code_points["transfer_characteristics"])
        path.write_bytes(bytes(data))
    return path


# 10-bit codes of HDR reference white, 203 nits (BT.2408): PQ's, and HLG's 75% signal
REFERENCE_WHITE_CODES = {16: 594, 18: 767}


def srgb_level(light: float) -> int:
    """The 8-bit sRGB code (IEC 61966-2-1) of ``light``, 0 to 1 of SDR white."""
    signal = light * 12.92 if light <= 0.0031308 else 1.055 * light ** (1 / 2.4) - 0.055
    return round(signal * 255)


def hdr_white_photo(path: Path, transfer: int) -> Path:
    """A 10-bit BT.2020 HEIC or AVIF (by ``path``'s suffix) of HDR reference white, PQ (16) or HLG (18)."""
    return deep_photo(path, np.full((16, 32, 3), REFERENCE_WHITE_CODES[transfer], np.uint16), 10, color_primaries=9,
                      transfer_characteristics=transfer)


APPLE_GAIN_MAP_URN = b"urn:com:apple:photo:2020:aux:hdrgainmap"


def apple_hdr_heic(path: Path, primary: np.ndarray, gain_map: np.ndarray, maker_tags: Optional[dict] = None,
                   rotation: int = 0, mirror: Optional[int] = None, tmap: bool = False, tile: int = 0,
                   thumbnails: int = 0) -> Path:
    """An iPhone's HDR HEIC (iOS 14.1 to 17), assembled box by box: the primary (BGR, 8-bit or
    10-bit levels in uint16, encoded by pillow-heif) as item 1, the gain map (gray, 8-bit or
    10-bit levels in uint16) as item 2, an auxiliary image of it (``auxl``) whose
    ``auxC`` names Apple's URN, and an EXIF item 3 whose maker note ("Apple iOS", big-endian) holds
    ``maker_tags`` as signed rationals (tag: Fraction; by default 33 = 1.02 and 48 = 0.0064, 2.48
    stops); ``rotation`` (degrees anticlockwise) an ``irot`` and ``mirror`` (its axis) an ``imir``
    of the primary alone, in that order. With ``tmap``, as iOS 18 adds: an ISO 21496-1 ``tmap``
    item 4 derived (``dimg``) from the primary and the gain map, which is its auxiliary image as
    well as the primary's, in an ``altr`` group before the primary. With ``tile`` (8-bit levels),
    the primary and the gain map are ``grid`` items of tiles of that side, hidden items 10 on, as
    an iPhone writes them (:func:`heif_grid_tiles`). ``thumbnails``: that many HEVC thumbnails of
    the primary (``thmb``, 64x48: iPhones write a 320x240 one), items 5 on."""
    maker_tags = {33: Fraction(102, 100), 48: Fraction(64, 10000)} if maker_tags is None else maker_tags
    import pillow_heif

    rgb = cv2.cvtColor(primary, cv2.COLOR_BGR2RGB)
    primary_properties, primary_data = _heif_coded_item(
        pillow_heif.from_bytes("RGB;16", rgb.shape[1::-1], (rgb.astype(np.uint16) << 6).tobytes())
        if rgb.dtype == np.uint16 else pillow_heif.from_pillow(Image.fromarray(rgb)))
    gain_properties, gain_data = _heif_coded_item(_heif_of_gain_map(gain_map))
    if tile:
        primary_properties, primary_data = [image_spatial_extent(*primary.shape[1::-1])], image_grid(
            -(-primary.shape[0] // tile), -(-primary.shape[1] // tile), primary.shape[1::-1])
        gain_properties, gain_data = [image_spatial_extent(*gain_map.shape[1::-1])], image_grid(
            -(-gain_map.shape[0] // tile), -(-gain_map.shape[1] // tile), gain_map.shape[1::-1])
    exif_data = bytes(4) + _apple_exif(maker_tags)  # its TIFF header right after the 4-byte offset to it
    properties = primary_properties + gain_properties + [_full_box(b"auxC", 0, APPLE_GAIN_MAP_URN + b"\0")]
    primary_indices = list(range(1, len(primary_properties) + 1))
    gain_indices = list(range(len(primary_properties) + 1, len(properties) + 1))  # its own and auxC
    turns = ([_box(b"irot", bytes([rotation // 90]))] if rotation else []) + \
        ([_box(b"imir", bytes([mirror]))] if mirror is not None else [])
    for turn in turns:
        properties.append(turn)
        primary_indices.append(len(properties))
    associations = [(1, primary_indices), (2, gain_indices)]
    coding = b"grid" if tile else b"hvc1"
    items = [(1, coding, primary_data), (2, coding, gain_data), (3, b"Exif", exif_data)]
    iref = _box(b"auxl", struct.pack(">HHH", 2, 1, 1)) + _box(b"cdsc", struct.pack(">HHH", 3, 1, 1))
    tiles: List[tuple] = []
    kept_references = b""  # the tiles' and thumbnails': kept where tmap's replace the others
    for grid, picture in ((1, primary), (2, gain_map)) if tile else ():
        grid_tiles, tile_associations = heif_grid_tiles(picture, tile, 10 + len(tiles), properties)
        tiles += grid_tiles
        associations += tile_associations
        tile_ids = [item for item, _, _ in grid_tiles]
        kept_references += _box(b"dimg", struct.pack(f">HH{len(tile_ids)}H", grid, len(tile_ids), *tile_ids))
    small = (cv2.resize(rgb, (64, 48)) >> (2 if rgb.dtype == np.uint16 else 0)).astype(np.uint8)
    thumbnail_properties, thumbnail_data = (_heif_coded_item(pillow_heif.from_pillow(Image.fromarray(small)))
                                            if thumbnails else ([], b""))
    for item in range(5, 5 + thumbnails):
        properties.extend(box for box in thumbnail_properties if box not in properties)
        associations.append((item, [properties.index(box) + 1 for box in thumbnail_properties]))
        items.append((item, b"hvc1", thumbnail_data))
        kept_references += _box(b"thmb", struct.pack(">HHH", item, 1, 1))
    groups = b""
    if tmap:  # version 0, then headroom, gains and offsets as log2_gain_map_metadata's (2 stops)
        items.append((4, b"tmap", bytes(1) + iso_gain_map_metadata(0, 2, [(0, 2, 1, 0, 0)], flags=0)))
        associations.append((4, [primary_indices[[p[4:8] for p in primary_properties].index(b"ispe")]]))
        iref = (_box(b"auxl", struct.pack(">HHHH", 2, 2, 1, 4)) + _box(b"dimg", struct.pack(">HHHH", 4, 2, 1, 2))
                + _box(b"cdsc", struct.pack(">HHH", 3, 1, 1)))
        groups = _box(b"grpl", _full_box(b"altr", 0, struct.pack(">IIII", 1, 2, 4, 1)))
    brands = b"mif1heic" + (b"tmap" if tmap else b"")
    return _assembled_heif(path, items + tiles, properties, associations, iref + kept_references, groups, brands,
                           hidden=tuple(item for item, _, _ in tiles), in_idat=(1, 2) if tile else ())


def iso_hdr_heic(path: Path, primary: np.ndarray, gain_map: np.ndarray, metadata: Optional[bytes] = None,
                 gain_map_turns: Sequence[bytes] = (), coded_as: bytes = b"hvc1", without: bytes = b"",
                 tone_map_colour: bytes = b"", gain_map_range: str = "full", gain_map_tile: int = 0) -> Path:
    """An Android HDR HEIC (ISO 21496-1, as Android 15 on writes it): the primary (BGR, 8-bit) as
    item 1, the gain map (gray 8- or 10-bit, or BGR) as item 2, hidden (infe flags bit 0), and a ``tmap`` item 3
    derived (``dimg``) from both, its payload in the meta box's ``idat``: version 0 then
    ``metadata`` (ISO 21496-1's: by default one channel of 0 to 2 stops, headroom 0 to 2, gamma 1,
    offsets 1/64, in the primary's colour space), the two in an ``altr`` group, tmap first.
    ``gain_map_turns``: whole ``irot``/``imir`` boxes of the gain map's own; ``coded_as``: its item
    type; ``without``: a property type left out of the gain map's (``hvcC``); ``tone_map_colour``:
    the tmap item's ``colr`` payload (the alternate picture's colour), where it has one;
    ``gain_map_range``: "limited" codes the gain map's levels so (16 to 235); ``gain_map_tile``: the
    gain map stored as a ``grid`` item (its ImageGrid in ``idat``, ``gain_map_turns`` its own) of
    tiles of that side, hidden items 4 on (:func:`heif_grid_tiles`), as phones store a large one."""
    import pillow_heif

    primary_coded = _heif_coded_item(pillow_heif.from_pillow(Image.fromarray(cv2.cvtColor(primary, cv2.COLOR_BGR2RGB))))
    gain_properties, gain_data = _heif_coded_item(_heif_of_gain_map(gain_map),
                                                  full_range_flag=int(gain_map_range == "full"))
    if gain_map_tile:
        gain_properties, gain_data = [image_spatial_extent(gain_map.shape[1], gain_map.shape[0])], image_grid(
            -(-gain_map.shape[0] // gain_map_tile), -(-gain_map.shape[1] // gain_map_tile), gain_map.shape[1::-1])
    gain_properties = [prop for prop in gain_properties if prop[4:8] != without] + list(gain_map_turns)
    return _tone_mapped_heif(path, primary_coded, (b"grid" if gain_map_tile else coded_as, gain_properties, gain_data),
                             metadata, tone_map_colour, (gain_map, gain_map_tile) if gain_map_tile else None)


def iso_hdr_avif(path: Path, primary: np.ndarray, gain_map: np.ndarray, metadata: Optional[bytes] = None,
                 gain_map_turns: Sequence[bytes] = (), primary_turns: Sequence[bytes] = (), bits: int = 8,
                 matrix: Optional[int] = None, gain_map_trailing_obus: bytes = b"") -> Path:
    """An AVIF HDR photo as libavif writes one (``avifenc --gain-map``, Chrome): as
    :func:`iso_hdr_heic`'s, its items AV1 (``av01``), coded by OpenCV's AVIF writer (libavif): the
    primary BGR 8-bit, the gain map gray (monochrome) or BGR (4:4:4 of matrix 0, its samples G, B,
    R) of ``bits`` (levels 0 to 2**bits - 1); with ``matrix``, a BGR map coded by SVT-AV1 in 4:2:0
    of that H.273 matrix (0: G, B and R as they are; 1, 6, 8 (YCgCo) or 9), full range, which its ``nclx``
    states and its sequence header does not. ``primary_turns``: whole ``irot``/``imir`` boxes of
    the primary's (libavif 1.4 refuses a tmap item of turns of its own); ``gain_map_turns``: the
    gain map's own; ``gain_map_trailing_obus``: OBUs after the gain map's frame in its data."""
    primary_properties, primary_data = _avif_coded_item(primary, 8)
    gain_properties, gain_data = _av1_coded_in_matrix(gain_map, matrix) if matrix is not None else \
        _avif_coded_item(gain_map, bits)
    return _tone_mapped_heif(path, (primary_properties + list(primary_turns), primary_data),
                             (b"av01", gain_properties + list(gain_map_turns), gain_data + gain_map_trailing_obus),
                             metadata, b"", None, major_brand=b"avif", brands=b"avifmif1miaftmap")


def _tone_mapped_heif(path: Path, primary_coded: Tuple[List[bytes], bytes], gain_coded: Tuple[bytes, List[bytes], bytes],
                      metadata: Optional[bytes], tone_map_colour: bytes, grid: Optional[Tuple[np.ndarray, int]],
                      major_brand: bytes = b"heic", brands: bytes = b"mif1heictmap") -> Path:
    """The HEIF of :func:`iso_hdr_heic`: the primary (its properties and data), the gain map (its
    item type, properties and data; a ``grid`` of HEVC tiles of ``grid``'s picture and side) and a
    ``tmap`` item of ``metadata`` (by default one channel of 0 to 2 stops, headroom 0 to 2, gamma
    1, offsets 1/64), its ``colr`` ``tone_map_colour`` where given."""
    if metadata is None:
        metadata = iso_gain_map_metadata(0, 2, [(0, 2, 1, Fraction(1, 64), Fraction(1, 64))])
    primary_properties, primary_data = primary_coded
    coding, gain_properties, gain_data = gain_coded
    properties = primary_properties + gain_properties + ([_box(b"colr", tone_map_colour)] if tone_map_colour else [])
    associations = [(1, list(range(1, len(primary_properties) + 1))),
                    (2, list(range(len(primary_properties) + 1, len(primary_properties + gain_properties) + 1))),
                    (3, [[p[4:8] for p in primary_properties].index(b"ispe") + 1]
                     + ([len(properties)] if tone_map_colour else []))]
    primary_coding = b"av01" if major_brand == b"avif" else b"hvc1"
    items = [(1, primary_coding, primary_data), (2, coding, gain_data), (3, b"tmap", bytes(1) + metadata)]
    iref = _box(b"dimg", struct.pack(">HHHH", 3, 2, 1, 2))
    tiles: List[tuple] = []
    if grid:
        tiles, tile_associations = heif_grid_tiles(*grid, 4, properties)
        associations += tile_associations
        iref += _box(b"dimg", struct.pack(f">HH{len(tiles)}H", 2, len(tiles), *(item for item, _, _ in tiles)))
    groups = _box(b"grpl", _full_box(b"altr", 0, struct.pack(">IIII", 1, 2, 3, 1)))
    return _assembled_heif(path, items + tiles, properties, associations, iref, groups, brands,
                           hidden=(2, *(item for item, _, _ in tiles)), in_idat=(2, 3) if grid else (3,),
                           major_brand=major_brand)


def grid_heic(path: Path, picture: np.ndarray, tile: int, grid_properties: Sequence[bytes] = (),
              tile_colour: Optional[bytes] = None, grid: Optional[bytes] = None) -> Path:
    """A HEIC whose primary is a ``grid`` item (as phones write their photos): ``picture`` (BGR or
    gray, 8-bit) in hidden tiles of ``tile`` square (:func:`heif_grid_tiles`), the grid item 1
    holding its ``ispe`` and ``grid_properties`` (whole boxes), its ImageGrid (``grid``'s bytes
    where given) in ``idat``; ``tile_colour``: the tiles' ``colr`` payload in place of pillow-heif's."""
    properties = [image_spatial_extent(picture.shape[1], picture.shape[0]), *grid_properties]
    tiles, associations = heif_grid_tiles(picture, tile, 2, properties, tile_colour)
    if grid is None:
        grid = image_grid(-(-picture.shape[0] // tile), -(-picture.shape[1] // tile), picture.shape[1::-1])
    iref = _box(b"dimg", struct.pack(f">HH{len(tiles)}H", 1, len(tiles), *(item for item, _, _ in tiles)))
    return _assembled_heif(path, [(1, b"grid", grid), *tiles], properties,
                           [(1, list(range(1, len(grid_properties) + 2))), *associations], iref, b"", b"mif1heic",
                           hidden=tuple(item for item, _, _ in tiles), in_idat=(1,))


def heif_grid_tiles(picture: np.ndarray, tile: int, first_item: int, properties: List[bytes],
                    colour: Optional[bytes] = None) -> Tuple[List[tuple], List[tuple]]:
    """``picture`` cut in tiles of ``tile`` square (at least 64, which pillow-heif codes without a
    ``clap``), row by row, the last column and row padded with its edge's pixels: their items
    (id, b"hvc1", data) numbered from ``first_item`` and associations, each property box appended to
    ``properties`` once (tiles coded alike share them, as phones' do); ``colour`` their ``colr``
    payload in place of pillow-heif's."""
    rows, columns = -(-picture.shape[0] // tile), -(-picture.shape[1] // tile)
    padding = [(0, rows * tile - picture.shape[0]), (0, columns * tile - picture.shape[1])]
    padded = np.pad(picture, padding + [(0, 0)] * (picture.ndim - 2), mode="edge")
    items, associations, coded = [], [], {}
    for n in range(rows * columns):
        row, column = divmod(n, columns)
        pixels = np.ascontiguousarray(padded[row * tile:(row + 1) * tile, column * tile:(column + 1) * tile])
        if pixels.tobytes() not in coded:  # a grid of thousands of tiles alike is coded in one go
            coded[pixels.tobytes()] = _heif_coded_item(_heif_of_gain_map(pixels))
        boxes_of_tile, data = coded[pixels.tobytes()]
        if colour is not None:
            boxes_of_tile = [_box(b"colr", colour) if box[4:8] == b"colr" else box for box in boxes_of_tile]
        for box in boxes_of_tile:
            if box not in properties:
                properties.append(box)
        items.append((first_item + n, b"hvc1", data))
        associations.append((first_item + n, [properties.index(box) + 1 for box in boxes_of_tile]))
    return items, associations


def image_grid(rows: int, columns: int, size: Tuple[int, int]) -> bytes:
    """An ImageGrid (ISO/IEC 23008-12 6.6.2.3): version 0, 16-bit sizes where they fit, else 32-bit."""
    wide = max(size) > 0xFFFF
    return struct.pack(">BBBB" + ("II" if wide else "HH"), 0, int(wide), rows - 1, columns - 1, *size)


def image_spatial_extent(width: int, height: int) -> bytes:
    return _full_box(b"ispe", 0, struct.pack(">II", width, height))


def meta_box_damaged(source: Path, path: Path, copies: int, seed: int) -> Iterator[Path]:
    """``path`` written ``copies`` times with a copy of the HEIF ``source``, each with 1 to 8 of its
    meta box's bytes overwritten (0, 1, 2, 0x80, 0xFF or any; a fixed ``seed``): counts, sizes,
    offsets, item ids and types, properties."""
    data = source.read_bytes()
    meta = data.index(b"meta") - 4
    meta_end = meta + struct.unpack(">I", data[meta:meta + 4])[0]
    rng = np.random.default_rng(seed)
    for _ in range(copies):
        copy = bytearray(data)
        for at in rng.integers(meta + 8, meta_end, rng.integers(1, 9)):
            copy[at] = rng.choice([0, 1, 2, 0x80, 0xFF, int(rng.integers(256))])
        path.write_bytes(bytes(copy))
        yield path


def _heif_of_gain_map(gain_map: np.ndarray):
    """pillow-heif's picture of a gain map: gray 8-bit, gray 10-bit levels in uint16, or BGR 8-bit."""
    import pillow_heif

    if gain_map.ndim == 3:
        return pillow_heif.from_pillow(Image.fromarray(cv2.cvtColor(gain_map, cv2.COLOR_BGR2RGB)))
    if gain_map.dtype == np.uint16:
        return pillow_heif.from_bytes("L;16", gain_map.shape[::-1], (gain_map << 6).tobytes())
    return pillow_heif.from_pillow(Image.fromarray(gain_map, "L"))


def iso_gain_map_metadata(base_headroom, alternate_headroom, channels, flags: int = 0x40) -> bytes:
    """ISO 21496-1's metadata (versions 0, ``flags``, each number its own fraction): the headrooms,
    then each channel's (min, max, gamma, base offset, alternate offset); more than one channel
    sets the multichannel flag."""
    numbers = [Fraction(base_headroom), Fraction(alternate_headroom)] + [Fraction(v) for c in channels for v in c]
    flags |= 0x80 if len(channels) == 3 else 0
    return struct.pack(">HHB", 0, 0, flags) + b"".join(
        struct.pack(">iI", n.numerator, n.denominator) for n in numbers)


def _assembled_heif(path: Path, items: Sequence[tuple], properties: List[bytes], associations: Sequence[tuple],
                    iref: bytes, groups: bytes, brands: bytes, hidden: Sequence[int] = (),
                    in_idat: Sequence[int] = (), major_brand: bytes = b"heic") -> Path:
    """A HEIF of ``items`` ((id, type, data): item 1 the primary), ``properties`` (whole boxes,
    ``associations`` (item, 1-based indices) giving each item's), the references and groups
    given; the items ``hidden`` flagged so, those ``in_idat`` stored in the meta box's ``idat``
    (construction method 1), the others in ``mdat``."""
    ipma = struct.pack(">I", len(associations)) + b"".join(
        struct.pack(">HB", item, len(indices)) + bytes(0x80 | index for index in indices)
        for item, indices in associations)
    infe = b"".join(_box(b"infe", bytes([2, 0, 0, int(item in hidden)]) + struct.pack(">HH4s", item, 0, kind) + b"\0")
                    for item, kind, _ in items)
    idat = b"".join(data for item, _, data in items if item in in_idat)

    def meta(mdat_at: int) -> bytes:
        extents, in_file, in_meta = b"", mdat_at, 0
        for item, _, data in items:
            method, at = (1, in_meta) if item in in_idat else (0, in_file)
            extents += struct.pack(">HHHHII", item, method, 0, 1, at, len(data))
            if item in in_idat:
                in_meta += len(data)
            else:
                in_file += len(data)
        return _full_box(b"meta", 0, _full_box(b"hdlr", 0, bytes(4) + b"pict" + bytes(13))
                         + _full_box(b"pitm", 0, struct.pack(">H", 1))
                         + _full_box(b"iloc", 1, b"\x44\x00" + struct.pack(">H", len(items)) + extents)
                         + _full_box(b"iinf", 0, struct.pack(">H", len(items)) + infe)
                         + _full_box(b"iref", 0, iref)
                         + _box(b"iprp", _box(b"ipco", b"".join(properties)) + _full_box(b"ipma", 0, ipma))
                         + (_box(b"idat", idat) if idat else b"") + groups)

    ftyp = _box(b"ftyp", major_brand + bytes(4) + brands)
    mdat_at = len(ftyp) + len(meta(0)) + 8
    path.write_bytes(ftyp + meta(mdat_at) + _box(b"mdat", b"".join(d for i, _, d in items if i not in in_idat)))
    return path


def _heif_coded_item(heif, **options) -> Tuple[List[bytes], bytes]:
    """The properties (whole boxes) and coded data of the one picture pillow-heif encodes ``heif``
    as, with its save ``options`` (``full_range_flag=0``: limited-range levels, in its nclx and its
    HEVC VUI both)."""
    out = io.BytesIO()
    heif.save(out, quality=95, **options)
    return _single_item(out.getvalue())


def _single_item(heif: bytes) -> Tuple[List[bytes], bytes]:
    """The properties (whole boxes) and data (its ``mdat``) of a HEIF or AVIF of one item."""
    top = {kind: heif[start:end] for kind, start, end in boxes(heif)}
    meta = {kind: top[b"meta"][start:end] for kind, start, end in boxes(top[b"meta"], 4)}
    ipco = dict((kind, meta[b"iprp"][start:end]) for kind, start, end in boxes(meta[b"iprp"]))[b"ipco"]
    return [ipco[start - 8:end] for _, start, end in boxes(ipco)], top[b"mdat"]


def _avif_coded_item(picture: np.ndarray, bits: int) -> Tuple[List[bytes], bytes]:
    """The properties (whole boxes) and data of OpenCV's AVIF of ``picture`` (BGR or gray, levels
    of ``bits``), losslessly coded: gray as monochrome, BGR as 4:4:4 of matrix 0 (G, B and R)."""
    ok, avif = cv2.imencode(".avif", picture.astype(np.uint16 if bits > 8 else np.uint8),
                            [cv2.IMWRITE_AVIF_DEPTH, bits, cv2.IMWRITE_AVIF_QUALITY, 100])
    assert ok
    return _single_item(avif.tobytes())


# H.273's matrices of YCbCr: (Kr, Kb)
MATRIX_WEIGHTS = {1: (0.2126, 0.0722), 6: (0.299, 0.114), 9: (0.2627, 0.0593)}


def _av1_coded_in_matrix(picture: np.ndarray, matrix: int) -> Tuple[List[bytes], bytes]:
    """The properties (whole boxes: ispe, av1C of the sequence header, nclx of ``matrix`` at full
    range) and data (the sequence header and frame, as libavif stores an item) of ``picture`` (BGR,
    8-bit, even sides) coded by SVT-AV1 in 4:2:0, its YCbCr by ``matrix``'s weights (of matrix 0,
    its G, B and R planes as they are): the sequence header states no matrix, so a reader not told
    the item's reads it as BT.601."""
    blue, green, red = (picture[:, :, n].astype(float) for n in range(3))
    if matrix == 0:
        luma, chroma = green, [blue, red]
    elif matrix == YCGCO:
        luma = red / 4 + green / 2 + blue / 4
        chroma = [green / 2 - (red + blue) / 4 + 128, (red - blue) / 2 + 128]
    else:
        kr, kb = MATRIX_WEIGHTS.get(matrix, MATRIX_WEIGHTS[1])  # another: coded as BT.709, stated as it is
        luma = kr * red + (1 - kr - kb) * green + kb * blue
        chroma = [(blue - luma) / (2 * (1 - kb)) + 128, (red - luma) / (2 * (1 - kr)) + 128]
    height, width = picture.shape[:2]
    encoder = av.CodecContext.create("libsvtav1", "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
    encoder.time_base, encoder.options = Fraction(1, 25), {"crf": "1", "preset": "8"}
    frame = av.VideoFrame(width, height, "yuv420p")
    planes = [luma] + [cv2.resize(plane, (width // 2, height // 2), interpolation=cv2.INTER_AREA) for plane in chroma]
    for plane, levels in zip(frame.planes, planes):
        rows = np.clip(np.round(levels), 0, 255).astype(np.uint8)
        padded = np.zeros((rows.shape[0], plane.line_size), np.uint8)
        padded[:, :rows.shape[1]] = rows
        plane.update(padded.tobytes())
    frame.pts = 0
    obus = b"".join(bytes(packet) for packet in [*encoder.encode(frame), *encoder.encode(None)])
    obus = obus[2:] if obus[:2] == b"\x12\x00" else obus  # its temporal delimiter, which an item holds none of
    assert obus[0] >> 3 & 0xF == 1 and obus[1] < 0x80  # a sequence header first, its size in one byte
    sequence_header = obus[:2 + obus[1]]
    av1c = _box(b"av1C", bytes([0x81, 0x00, 0x0C, 0x00]) + sequence_header)  # profile 0, 8-bit 4:2:0
    nclx = _box(b"colr", b"nclx" + struct.pack(">HHHB", 1, 13, matrix, 0x80))
    return [image_spatial_extent(width, height), av1c, nclx], obus


def _apple_exif(maker_tags: dict) -> bytes:
    """EXIF (TIFF bytes) whose maker note is Apple's: "Apple iOS", version 1, "MM", then an IFD of
    ``maker_tags`` as signed rationals, its offsets from the maker note's first byte; a tag of
    value None is a damaged entry, its offset past the note's end."""
    values_at = 14 + 2 + 12 * len(maker_tags) + 4
    entries = b"".join(struct.pack(">HHII", tag, 10, 1, values_at + 8 * n if value is not None else 1 << 30)
                       for n, (tag, value) in enumerate(maker_tags.items()))
    values = b"".join(struct.pack(">ii", value.numerator, value.denominator) if value is not None else bytes(8)
                      for value in maker_tags.values())
    maker_note = b"Apple iOS\0\0\x01MM" + struct.pack(">H", len(maker_tags)) + entries + bytes(4) + values
    exif = Image.Exif()
    exif[0x010F] = "Apple"
    exif.get_ifd(0x8769)[0x927C] = maker_note
    data = exif.tobytes()
    return data[6:] if data.startswith(b"Exif\0\0") else data


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def _full_box(kind: bytes, version: int, payload: bytes) -> bytes:
    return _box(kind, bytes([version, 0, 0, 0]) + payload)


def icc_colourants(profile: bytes) -> dict:
    """An ICC profile's rXYZ, gXYZ and bXYZ tags as (X, Y, Z) each."""
    count = struct.unpack(">I", profile[128:132])[0]
    colourants = {}
    for entry in range(count):
        tag, offset, _ = struct.unpack(">4sII", profile[132 + 12 * entry:144 + 12 * entry])
        if tag in (b"rXYZ", b"gXYZ", b"bXYZ"):
            colourants[tag.decode()] = tuple(v / 65536 for v in struct.unpack(">3i", profile[offset + 8:offset + 20]))
    return colourants


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _icc_xyz(x: float, y: float, z: float) -> bytes:
    return b"XYZ " + b"\0" * 4 + _s15(x) + _s15(y) + _s15(z)


def _icc_profile(version: bytes, tags: Sequence[Tuple[bytes, bytes]]) -> bytes:
    """An RGB display profile of ``tags`` (signature, body), laid out as ICC.1 has it: the header,
    the tag table, each tag on a 4-byte boundary; D50 its PCS white."""
    offset = 128 + 4 + 12 * len(tags)
    table, data = b"", b""
    for signature, body in tags:
        body += b"\0" * (-len(body) % 4)
        table += signature + struct.pack(">II", offset + len(data), len(body))
        data += body
    header = (struct.pack(">I", offset + len(data)) + b"lcms" + version + b"mntrRGB XYZ " + b"\0" * 12
              + b"acsp" + b"APPL" + b"\0" * 4 + b"\0" * 8 + b"\0" * 8 + b"\0" * 4
              + _icc_xyz(0.9642, 1.0, 0.8249)[8:] + b"\0" * 4 + b"\0" * 16 + b"\0" * 28)
    return header + struct.pack(">I", len(tags)) + table + data


def display_p3_icc() -> bytes:
    """A Display P3 ICC v2 profile (matrix/TRC: P3 primaries adapted to D50, D65 white, the sRGB
    curve), built tag by tag as ICC.1:2001 lays it out."""
    def text(kind, value):
        if kind == b"desc":
            raw = value.encode() + b"\0"
            return b"desc" + b"\0" * 4 + struct.pack(">I", len(raw)) + raw + b"\0" * 12 + b"\0" * 67
        return b"text" + b"\0" * 4 + value.encode() + b"\0"

    curve = b"para" + b"\0" * 4 + struct.pack(">HH", 3, 0) + b"".join(
        _s15(v) for v in (2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045))
    tags = [(b"desc", text(b"desc", "Display P3")), (b"cprt", text(b"text", "No copyright, test profile")),
            (b"wtpt", _icc_xyz(0.9642, 1.0, 0.8249)),
            (b"rXYZ", _icc_xyz(0.5151, 0.2412, -0.0011)), (b"gXYZ", _icc_xyz(0.2920, 0.6922, 0.0419)),
            (b"bXYZ", _icc_xyz(0.1571, 0.0666, 0.7841)),
            (b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve)]
    return _icc_profile(bytes([2, 0x10, 0, 0]), tags)


def tagged_photo(path: Path, fmt: str, size=(40, 24), orientation: int = 6, mode: str = "RGB") -> Path:
    """A photo tagged with a Display P3 profile and an EXIF orientation (6: shown turned 90° clockwise)."""
    pixels = np.zeros((size[1], size[0], len(mode)), np.uint8)
    pixels[:, : size[0] // 2] = 200  # left half bright: shows where the pixels went
    image = Image.fromarray(pixels[:, :, 0] if mode == "L" else pixels, mode)
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "TMLSR test camera"
    image.save(path, fmt, icc_profile=display_p3_icc(), exif=exif.tobytes(), **({"quality": 95} if fmt != "PNG" else {}))
    return path


def bt2100_icc(transfer: int, cicp: Optional[bytes] = None) -> bytes:
    """A minimal ICC v4.4 (ICC.1:2022) BT.2020 display profile with a ``cicp`` tag, as macOS's and
    Photoshop's HDR profiles have: primaries 9, ``transfer`` (16 PQ, 18 HLG), matrix 0 (RGB), full
    range, or the four code point bytes ``cicp`` given. Its matrix/TRC (BT.2020 adapted to D50, a
    2.4 gamma) is what a reader that knows no cicp tag makes of it."""
    def mluc(text: str) -> bytes:
        raw = text.encode("utf-16-be")
        return b"mluc" + b"\0" * 4 + struct.pack(">II2s2sII", 1, 12, b"en", b"US", len(raw), 28) + raw

    curve = b"para" + b"\0" * 4 + struct.pack(">HH", 0, 0) + _s15(2.4)
    chad = ((1.0479, 0.0229, -0.0502), (0.0296, 0.9904, -0.0171), (-0.0092, 0.0151, 0.7519))  # Bradford D65 → D50
    tags = [(b"desc", mluc(f"BT.2100 {transfer}")), (b"cprt", mluc("No copyright, test profile")),
            (b"wtpt", _icc_xyz(0.9642, 1.0, 0.8249)),
            (b"chad", b"sf32" + b"\0" * 4 + b"".join(_s15(v) for row in chad for v in row)),
            (b"rXYZ", _icc_xyz(0.6734, 0.2790, -0.0019)), (b"gXYZ", _icc_xyz(0.1656, 0.6753, 0.0299)),
            (b"bXYZ", _icc_xyz(0.1251, 0.0456, 0.7970)),
            (b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve),
            (b"cicp", b"cicp" + b"\0" * 4 + (cicp if cicp is not None else bytes([9, transfer, 0, 1])))]
    return _icc_profile(bytes([4, 0x40, 0, 0]), tags)


class _InputHandler(SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    """Serves files, plus ``/slow/<path>?seconds=S&times=N&first_byte_after=F`` (trickled over S
    seconds after F seconds of silence past the headers, to the first N requests
    if N is given), ``/ranged/<path>`` (answering
    Range requests), ``/status/<code>``, ``/redirect?to=URL&delay=S`` (answered after S seconds), ``/chunked?bytes=N``,
    ``/lying?declared=N&sent=M&close=1`` (hanging up after M bytes where ``close`` is given), ``/not-http`` (an SSH server's greeting, no HTTP), ``/busy/<path>?status=S&times=N&retry_after=R`` (S with
    ``Retry-After: R`` to the first N requests, then the file) and ``/cookie-gate/<path>`` (the
    file to a request with the cookie ``gate=open``, else a redirect to itself that sets it) and
    ``/basic-auth/<path>`` (the file to a request with HTTP Basic credentials ``BASIC_AUTH``, else
    401) and ``/gzip-cut/<path>`` (to a client that accepts gzip, the file gzipped with its last part cut off
    and a Content-Length that says so: complete as HTTP, short as gzip; else the file)."""

    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):
        self.server.fetched[self.path] += 1
        parts = urlsplit(self.path)
        if parts.path.startswith("/status/"):
            code = int(parts.path.rsplit("/", 1)[1])
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if parts.path == "/redirect":
            time.sleep(float(parse_qs(parts.query).get("delay", ["0"])[0]))
            self.send_response(302)
            self.send_header("Location", parse_qs(parts.query, encoding="latin-1")["to"][0])  # its bytes as given
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if parts.path == "/chunked":  # no Content-Length: only the stream tells the size
            size = int(parse_qs(parts.query)["bytes"][0])
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for start in range(0, size, 65536):
                chunk = b"c" * min(65536, size - start)
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")
            return
        if parts.path == "/not-http":
            self.wfile.write(b"SSH-2.0-OpenSSH_9.6 secret-banner\r\n")
            self.close_connection = True
            return
        if parts.path == "/lying":  # declares another count of bytes than it sends
            self.send_response(200)
            self.send_header("Content-Length", parse_qs(parts.query)["declared"][0])
            self.end_headers()
            self.wfile.write(b"l" * int(parse_qs(parts.query)["sent"][0]))
            self.close_connection = "close" in parse_qs(parts.query)  # else the client waits for the rest
            return
        if parts.path.startswith("/slow/") and self.server.fetched[self.path] > int(parse_qs(parts.query).get(
                "times", [sys.maxsize])[0]):  # trickled the first `times` requests, then served at once
            self.path = parts.path[len("/slow"):]
            return super().do_GET()
        if parts.path.startswith("/slow/"):
            query = parse_qs(parts.query)
            return self._trickle(parts.path[len("/slow"):], float(query.get("seconds", ["5"])[0]),
                                 float(query.get("first_byte_after", ["0"])[0]))
        if parts.path.startswith("/ranged/"):
            return self._ranged(parts.path[len("/ranged"):])
        if parts.path.startswith("/busy/"):
            return self._busy(parts.path[len("/busy"):], parse_qs(parts.query))
        if parts.path.startswith("/cookie-gate/"):
            return self._cookie_gate(parts.path[len("/cookie-gate"):])
        if parts.path.startswith("/gzip-cut/"):
            return self._gzip_cut(parts.path[len("/gzip-cut"):])
        if parts.path.startswith("/basic-auth/"):
            return self._basic_auth(parts.path[len("/basic-auth"):])
        return super().do_GET()

    def _basic_auth(self, path: str) -> None:
        if self.headers.get("Authorization") == "Basic " + base64.b64encode(BASIC_AUTH.encode()).decode():
            self.path = path
            return super().do_GET()
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="media"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _gzip_cut(self, path: str) -> None:
        self.path = path
        if "gzip" not in self.headers.get("Accept-Encoding", ""):
            return super().do_GET()
        import gzip

        body = gzip.compress(Path(self.translate_path(path)).read_bytes())
        body = body[: len(body) * 9 // 10]
        self.send_response(200)
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _cookie_gate(self, path: str) -> None:
        if "gate=open" in self.headers.get("Cookie", ""):
            self.path = path
            return super().do_GET()
        self.send_response(302)
        self.send_header("Set-Cookie", "gate=open; Path=/")
        self.send_header("Location", self.path)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _busy(self, path: str, query: dict):
        if self.server.fetched[self.path] > int(query["times"][0]):
            self.path = path
            return super().do_GET()
        self.send_response(int(query["status"][0]))
        self.send_header("Retry-After", query["retry_after"][0])
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _ranged(self, path: str):
        """One byte range, as web servers and OSS answer it: browsers seek in a video with these."""
        data = Path(self.translate_path(path)).read_bytes()
        asked = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        start = int(asked[1]) if asked else 0
        end = min(int(asked[2]), len(data) - 1) if asked and asked[2] else len(data) - 1
        self.send_response(206 if asked else 200)
        self.send_header("Accept-Ranges", "bytes")
        if asked:
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        self.send_header("Content-Type", self.guess_type(path))
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        self.wfile.write(data[start:end + 1])

    def _trickle(self, path: str, seconds: float, first_byte_after: float = 0.0):
        data = Path(self.translate_path(path)).read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        time.sleep(first_byte_after)
        steps = 20
        try:
            for i in range(steps):
                self.wfile.write(data[i * len(data) // steps : (i + 1) * len(data) // steps])
                self.wfile.flush()
                time.sleep(seconds / steps)
        except (BrokenPipeError, ConnectionResetError):
            pass


class QuietHTTPServer(ThreadingHTTPServer):
    """Clients that hang up early (timeouts, cancels, lying-server tests) are expected here."""

    daemon_threads = True
    fetched: Counter  # GET requests by path and query, for servers that count them

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class InputServer:
    def __init__(self, root: Path):
        self.root = root
        self._server = QuietHTTPServer(("127.0.0.1", 0), partial(_InputHandler, directory=str(root)))
        self._server.daemon_threads = True
        self._server.fetched = Counter()
        self.base = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def url(self, relative: str) -> str:
        return f"{self.base}/{relative}"

    def fetches(self, relative: str) -> int:
        """How often ``relative`` (path and query, as passed to :meth:`url`) was downloaded."""
        return self._server.fetched["/" + relative]

    def add(self, name: str, data: bytes) -> str:
        (self.root / name).write_bytes(data)
        return self.url(name)

    def close(self) -> None:
        self._server.shutdown()


class WebhookReceiver:
    """A real HTTP endpoint on loopback that records every POST; answers ``statuses`` in turn
    (then 200), so tests can make a delivery fail a few times first; a 429 or 503 says
    ``retry_after`` as its Retry-After where given."""

    def __init__(self, statuses: tuple = (), retry_after: Optional[str] = None):
        self.received: list = []  # (path, headers, body bytes)
        self._statuses = list(statuses)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.received.append((self.path, dict(self.headers), body))
                status = receiver._statuses.pop(0) if receiver._statuses else 200
                self.send_response(status)
                if 300 <= status < 400:  # a real redirect, to a path of this same receiver
                    self.send_header("Location", "/moved")
                if status in (429, 503) and retry_after is not None:
                    self.send_header("Retry-After", retry_after)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self._server = QuietHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def events(self) -> list:
        import json

        return [json.loads(body)["event"] for _, _, body in self.received]

    def close(self) -> None:
        self._server.shutdown()


def probed_info(**changes) -> VideoInfo:
    """What a probe finds in a 2 s MP4 of 64x48 H.264 at 24 fps (time base 1/12288), with ``changes``."""
    info = VideoInfo("mov,mp4,m4a,3gp,3g2,mj2", 0, "h264", 64, 48, 64, 48, 0, "yuv420p", 8, Fraction(1, 12288),
                     Fraction(24), 48, 2.0, {})
    return replace(info, **changes)


def kill_state_actor(name: str, namespace: str) -> None:
    """Ends a service's state actor for good, where there is one (a fixture's teardown)."""
    import ray

    try:
        ray.kill(ray.get_actor(name, namespace=namespace), no_restart=True)
    except ValueError:
        pass


def replica_pids(deployment: str, app: str = "tmlsr") -> List[int]:
    """The processes of a deployment's replicas, to SIGKILL as the OOM killer would (Serve starts
    new ones). Asked before the moment of the kill: a busy replica may answer late, and the kill
    must land while the work is still on it."""
    import ray

    names = [a for a in ray.util.list_named_actors(all_namespaces=True)
             if f"{app}#{deployment}#" in a["name"]]
    assert names, f"no {deployment} replica actor found"
    return [actor_pid(ray.get_actor(actor["name"], namespace=actor["namespace"])) for actor in names]


def actor_pid(actor) -> int:
    import ray

    return ray.get(actor.__ray_call__.remote(lambda self: os.getpid()), timeout=30)


def sigkill(pids: List[int]) -> None:
    for pid in pids:
        os.kill(pid, signal.SIGKILL)


def stop_past_frozen(stop: Callable[[], None], runners: List[int], frozen_pids: List[int]) -> None:
    """Runs ``stop``; the frozen processes are killed once the ``runners`` are gone: then no work of
    theirs can land, and a stop waits out Serve's 20 s grace for a replica that never answers it.
    The stop may kill and reap a frozen one first, and its pid may name another process by the kill:
    each is held by a pidfd from the start, so one gone is passed over and no other is signalled."""
    held = []
    for pid in frozen_pids:
        with contextlib.suppress(ProcessLookupError):
            held.append(os.pidfd_open(pid))
    try:
        with ThreadPoolExecutor(1) as pool:
            stopped = pool.submit(stop)
            eventually(lambda: all(map(process_gone, runners)) or stopped.done(), 60, "the runner processes gone")
            for pidfd in held:
                with contextlib.suppress(ProcessLookupError):
                    signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            stopped.result()
    finally:
        for pidfd in held:
            os.close(pidfd)


def process_state(pid: int) -> str:
    """The state letter of /proc/<pid>/stat: T for a stopped process, Z for one ended but not reaped."""
    return _proc_stat(pid)[0]


def cpu_seconds(pid: int) -> float:
    """The CPU time a process has spent so far (user and system): it grows only while the process works."""
    fields = _proc_stat(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _proc_stat(pid: int) -> List[str]:
    """The fields of /proc/<pid>/stat after the command name (the state letter first)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def process_gone(pid: int) -> bool:
    """Whether the process has ended (its parent may not have reaped it yet)."""
    try:
        return process_state(pid) in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):  # reaped before the open, or between it and the read
        return True


@contextlib.contextmanager
def frozen(pids: List[int]) -> Iterator[None]:
    """The processes stopped (SIGSTOP) for the block, then let go on: a replica frozen so makes no
    progress however fast the machine is, so a cut landing meanwhile finds the work it left as it was
    seen. One the block killed is passed over; one already gone raises, with those stopped before it
    let go on (a replica left stopped would hang every later test of its application)."""
    stopped = []
    try:
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
            stopped.append(pid)
        yield
    finally:
        for pid in stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


class PieceRewrites:
    """The finished pieces (a record and its bytes) under a task's local ``pieces`` folder, and which of
    them are seen written again: each :meth:`look` compares every file's inode and modification time
    with those it had when this was made (a write through a rename, as pieces are saved, changes both).
    Look while the task runs: its folder goes when it ends."""

    def __init__(self, pieces: Path):
        self.pieces = pieces
        records = pieces.glob("*/[0-9]*.json")
        self.found = self._identities([path for record in records for path in (record, record.with_suffix(".mp4"))])
        self.rewritten: set = set()

    def look(self) -> None:
        seen = self._identities([self.pieces / name for name in self.found])
        self.rewritten |= {name for name, identity in seen.items() if identity != self.found[name]}

    def _identities(self, paths) -> dict:
        identities = {}
        for path in paths:
            with contextlib.suppress(FileNotFoundError):
                stat = path.stat()
                identities[str(path.relative_to(self.pieces))] = (stat.st_ino, stat.st_mtime_ns)
        return identities


class DemuxCount:
    """How many packets a pipeline module's reads demux: its ``demux`` (container.demux) wrapped to count them."""

    def __init__(self, monkeypatch, module):
        self.packets = 0
        read = module.demux

        def counted(*args, **kwargs):
            for packet in read(*args, **kwargs):
                self.packets += 1
                yield packet

        monkeypatch.setattr(module, "demux", counted)


def packets_in(path: Path) -> int:
    """Every packet a file holds, all its streams'."""
    with av.open(str(path)) as container:
        return sum(1 for _ in container.demux())


# The recordings a scan reads whole to learn their length (see live_source): what make_clip writes each as
_LIVE_CLIPS = {"fragmented mp4": {"container": "mp4",
                                  "container_options": {"movflags": "frag_keyframe+empty_moov+default_base_moof"}},
                "transport stream": {"container": "mpegts"}}
LIVE_KINDS = ("live webm",) + tuple(_LIVE_CLIPS)
# Limits a few seconds of such a recording are over, and the refusal each gives as soon as it is
# (not how long it is: the scan stops there)
SHORT_LIMITS = {"2 s": (LengthLimits(500_000, 2.0),
                        r"^video lasts longer than the limit of 2 s \(max_video_duration_s\)$"),
                "50 frames": (LengthLimits(50, 3600.0),
                              r"^video has more frames than the limit of 50 \(max_video_frames\)$")}


def live_source(folder: Path, kind: str) -> Path:
    """20 s of a ``kind`` of :data:`LIVE_KINDS`: a browser's live WebM (no Duration), a fragmented MP4, a TS."""
    if kind == "live webm":
        return media_recorder_webm(folder / "live.webm", frames=600)
    return make_clip(folder / kind.replace(" ", "."), frames=240, rate=12, **_LIVE_CLIPS[kind])
