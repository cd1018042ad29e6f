"""Host memory loading a model file takes: a SeedVR2 DiT (Q4_K GGUF; fp8, fp16, bf16 safetensors;
bf16 .pth), a large RRDBNet and a large SwinIR and SPAN through spandrel (.pth and .safetensors), each
with random weights of the real layout.

    python bench/load_memory.py [--work /tmp/load_memory] [--dit-hidden 1024] [--dit-blocks 8] [--rrdb-blocks 200]
                                [--swinir-dim 360] [--span-features 192] [--only swinir]

Each file is loaded in a fresh process, after a tiny file of its kind has paid for imports and
first-call work, printing the file's size and what the load added to the process at its peak:
the resident set's high-water mark (``VmHWM``, which counts the file's pages a mapping touched
while it is mapped) and the largest anonymous resident set seen (``RssAnon``, sampled every
millisecond: the memory that is not the file's pages and that the kernel cannot drop).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time
from functools import partial
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.recognition import status_bytes, swinir  # noqa: E402
from bench.seedvr2_checkpoints import write_random_dit  # noqa: E402
from tests.helpers import DiTShape, write_random_float_dit  # noqa: E402

DIT_DTYPES = {"fp8": torch.float8_e4m3fn, "fp16": torch.float16, "bf16": torch.bfloat16}


class AnonymousPeak:
    """The largest ``RssAnon`` seen while in the block (torch's copies release the GIL, so the
    sampling thread sees them as they run)."""

    def __enter__(self) -> "AnonymousPeak":
        self.peak, self._running = status_bytes("RssAnon"), True
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while self._running:
            self.peak = max(self.peak, status_bytes("RssAnon"))
            time.sleep(0.001)

    def __exit__(self, *_) -> None:
        self._running = False
        self._thread.join()
        self.peak = max(self.peak, status_bytes("RssAnon"))


def write_files(work: Path, only: str, hidden: int, blocks: int, rrdb_blocks: int, swinir_dim: int,
                span_features: int) -> list:
    """The files to load whose names hold ``only``, each with a tiny file of its kind to warm up
    on, written where missing: [(file, warm-up)]."""
    work.mkdir(parents=True, exist_ok=True)
    shape = DiTShape(hidden=hidden, blocks=blocks, mm_layers=max(1, blocks // 4), mlp_hidden=hidden * 27 // 10)
    tiny = DiTShape(hidden=256, blocks=2, mm_layers=1, mlp_hidden=768)
    kinds = []  # (name, its warm-up's, suffix, write the large file, write the tiny one)
    for label, dtype in DIT_DTYPES.items():
        for suffix in (".safetensors", ".pth") if label == "bf16" else (".safetensors",):
            kinds.append((f"dit-{label}", f"tiny-dit-{label}", suffix, partial(write_random_float_dit, shape=shape, dtype=dtype),
                          partial(write_random_float_dit, shape=tiny, dtype=dtype)))
    kinds.append(("dit-q4k", "tiny-dit-q4k", ".gguf", partial(write_random_dit, shape=shape),
                  partial(write_random_dit, shape=tiny)))
    networks = {f"rrdbnet-{rrdb_blocks}": (partial(_rrdbnet, rrdb_blocks), partial(_rrdbnet, 1)),
                f"swinir-{swinir_dim}": (partial(swinir, swinir_dim), partial(swinir, 12, depth=1)),
                f"span-{span_features}": (partial(_span, span_features), partial(_span, 8))}
    for name, (large, small) in networks.items():
        for suffix in (".pth", ".safetensors"):
            kinds.append((name, f"tiny-{name.split('-')[0]}", suffix, partial(_save, large), partial(_save, small)))
    pairs = []
    for name, warm_name, suffix, write_large, write_tiny in kinds:
        path, warm = work / f"{name}{suffix}", work / f"{warm_name}{suffix}"
        if only not in path.name:
            continue
        for target, write in ((path, write_large), (warm, write_tiny)):
            if not target.exists():
                write(target)
        pairs.append((path, warm))
    return pairs


def _rrdbnet(blocks: int):
    from tmlsr_ray.models.basicsr_compat import import_architectures

    rrdbnet, _ = import_architectures()
    return rrdbnet(num_in_ch=3, num_out_ch=3, scale=4, num_feat=64, num_block=blocks, num_grow_ch=32)


def _span(features: int):
    from spandrel.architectures.SPAN import SPAN

    return SPAN(num_in_ch=3, num_out_ch=3, feature_channels=features, upscale=4)


def _save(network, path: Path) -> None:
    from safetensors.torch import save_file

    state = {name: tensor.contiguous() for name, tensor in network().state_dict().items()}
    if path.suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save(state, path)


def load(path: Path):
    """The model the service would hold for ``path`` (on the CPU, in fp32)."""
    if path.name.startswith(("dit-", "tiny-dit-")):
        from tmlsr_ray.models.seedvr2.dit import NaDiT

        return NaDiT.from_file(path)
    from tmlsr_ray.models.base import LoadOptions
    from tmlsr_ray.models.registry import load_model, recognise

    return load_model(path, recognise(path), LoadOptions("cpu", dtype="fp32"))


def load_once(path: Path, warm_up: Path) -> None:
    load(warm_up)
    before_rss, before_anon = status_bytes("VmRSS"), status_bytes("RssAnon")
    with AnonymousPeak() as anonymous:
        model = load(path)
    mib = 2**20
    print(f"{path.name:28} {path.stat().st_size / mib:7.0f} MiB file: peak resident "
          f"+{(status_bytes('VmHWM') - before_rss) / mib:6.0f} MiB, anonymous +{(anonymous.peak - before_anon) / mib:6.0f} "
          f"MiB, held after +{(status_bytes('RssAnon') - before_anon) / mib:6.0f} MiB anonymous", flush=True)
    del model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/load_memory"))
    parser.add_argument("--dit-hidden", type=int, default=1024)
    parser.add_argument("--dit-blocks", type=int, default=8)
    parser.add_argument("--rrdb-blocks", type=int, default=200)
    parser.add_argument("--swinir-dim", type=int, default=360)
    parser.add_argument("--span-features", type=int, default=192)
    parser.add_argument("--only", default="", help="load only the files whose names hold this")
    parser.add_argument("--one", type=Path, nargs=2, help=argparse.SUPPRESS)  # the child's file and warm-up
    args = parser.parse_args()
    if args.one:
        return load_once(*args.one)
    for path, warm_up in write_files(args.work, args.only, args.dit_hidden, args.dit_blocks, args.rrdb_blocks,
                                     args.swinir_dim, args.span_features):
        subprocess.run([sys.executable, __file__, "--one", str(path), str(warm_up)], check=True)


if __name__ == "__main__":
    main()
