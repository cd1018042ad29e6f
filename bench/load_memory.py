"""Host memory loading a model file takes: a float SeedVR2 DiT (fp8, fp16, bf16; safetensors and
.pth) and a large RRDBNet (.pth and .safetensors), each with random weights of the real layout.

    python bench/load_memory.py [--work /tmp/load_memory] [--dit-hidden 1024] [--dit-blocks 8] [--rrdb-blocks 200]

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
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.recognition import status_bytes  # noqa: E402
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


def write_files(work: Path, hidden: int, blocks: int, rrdb_blocks: int) -> list:
    """The files to load, each with a tiny file of its kind to warm up on: [(file, warm-up)]."""
    work.mkdir(parents=True, exist_ok=True)
    shape = DiTShape(hidden=hidden, blocks=blocks, mm_layers=max(1, blocks // 4), mlp_hidden=hidden * 27 // 10)
    tiny = DiTShape(hidden=256, blocks=2, mm_layers=1, mlp_hidden=768)
    pairs = []
    for label, dtype in DIT_DTYPES.items():
        for suffix in (".safetensors", ".pth") if label == "bf16" else (".safetensors",):
            path, warm = work / f"dit-{label}{suffix}", work / f"tiny-dit-{label}{suffix}"
            for target, target_shape in ((path, shape), (warm, tiny)):
                if not target.exists():
                    write_random_float_dit(target, target_shape, dtype)
            pairs.append((path, warm))
    for suffix in (".pth", ".safetensors"):
        path, warm = work / f"rrdbnet-{rrdb_blocks}{suffix}", work / f"tiny-rrdbnet{suffix}"
        for target, count in ((path, rrdb_blocks), (warm, 1)):
            if not target.exists():
                _save_rrdbnet(target, count)
        pairs.append((path, warm))
    return pairs


def _save_rrdbnet(path: Path, blocks: int) -> None:
    from safetensors.torch import save_file

    from tmlsr_ray.models.basicsr_compat import import_architectures

    rrdbnet, _ = import_architectures()
    state = rrdbnet(num_in_ch=3, num_out_ch=3, scale=4, num_feat=64, num_block=blocks, num_grow_ch=32).state_dict()
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
    parser.add_argument("--one", type=Path, nargs=2, help=argparse.SUPPRESS)  # the child's file and warm-up
    args = parser.parse_args()
    if args.one:
        return load_once(*args.one)
    for path, warm_up in write_files(args.work, args.dit_hidden, args.dit_blocks, args.rrdb_blocks):
        subprocess.run([sys.executable, __file__, "--one", str(path), str(warm_up)], check=True)


if __name__ == "__main__":
    main()
