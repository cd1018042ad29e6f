"""The time and memory recognising a large model file takes, as the ingress does for GET /models
and each POST naming it: an RRDBNet of many blocks with random weights, saved once as a
Real-ESRGAN file and once in spandrel's ESRGAN layout, and a wide SwinIR (spandrel).

    python bench/recognition.py [--blocks 200] [--swinir-dim 360] [--work /tmp/recognition]

Each file is recognised in a fresh process (so that its peak resident set is its own), printing the
file's size, the seconds recognition took and the peak resident set it added.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tmlsr_ray.models.basicsr_compat import import_architectures  # noqa: E402


def status_bytes(field: str) -> int:
    with open("/proc/self/status") as status:
        return int(next(line for line in status if line.startswith(field)).split()[1]) * 1024


def save_large_models(folder: Path, blocks: int, swinir_dim: int) -> list:
    """The Real-ESRGAN file and the spandrel one, each an RRDBNet of ``blocks`` blocks, 64 features,
    and a SwinIR of ``swinir_dim`` features."""
    from spandrel.architectures.ESRGAN import ESRGAN

    folder.mkdir(parents=True, exist_ok=True)
    rrdbnet, _ = import_architectures()
    paths = [folder / f"rrdbnet-{blocks}.pth", folder / f"esrgan-{blocks}.pth", folder / f"swinir-{swinir_dim}.pth"]
    networks = [lambda: rrdbnet(num_in_ch=3, num_out_ch=3, scale=4, num_feat=64, num_block=blocks, num_grow_ch=32),
                lambda: ESRGAN(in_nc=3, out_nc=3, num_filters=64, num_blocks=blocks, scale=4),
                lambda: swinir(swinir_dim)]
    for path, network in zip(paths, networks):
        if not path.exists():
            torch.save(network().state_dict(), path)
    return paths


def swinir(dim: int, depth: int = 6):
    """A SwinIR of spandrel's classical ×4 layout at ``dim`` features (180 in the released files)."""
    from spandrel.architectures.SwinIR import SwinIR

    return SwinIR(upscale=4, upsampler="pixelshuffle", img_size=64, window_size=8, embed_dim=dim,
                  depths=[depth] * 6, num_heads=[6] * 6, mlp_ratio=2)


WARM_UPS = ("tiny-rrdbnet.pth", "tiny-esrgan.pth", "tiny-swinir.pth")


def save_tiny_models(folder: Path) -> None:
    from spandrel.architectures.ESRGAN import ESRGAN

    rrdbnet, _ = import_architectures()
    torch.save(rrdbnet(num_in_ch=3, num_out_ch=3, num_feat=8, num_block=1, num_grow_ch=4).state_dict(),
               folder / WARM_UPS[0])
    torch.save(ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=1).state_dict(), folder / WARM_UPS[1])
    torch.save(swinir(12, depth=1).state_dict(), folder / WARM_UPS[2])


def recognise_once(path: Path) -> None:
    from tmlsr_ray.models.registry import recognise

    for warm_up in WARM_UPS:  # imports and first-call work, not the file's
        recognise(path.parent / warm_up)
    before, started = status_bytes("VmRSS"), time.perf_counter()
    info = recognise(path)
    took = time.perf_counter() - started
    grown = status_bytes("VmHWM") - before
    print(f"{path.name} ({path.stat().st_size / 2**20:.0f} MiB, {info.family} {info.architecture}): "
          f"{took:.2f} s, peak resident set +{grown / 2**20:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=200)
    parser.add_argument("--swinir-dim", type=int, default=360)
    parser.add_argument("--work", type=Path, default=Path("/tmp/recognition"))
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)  # the child process's file
    args = parser.parse_args()
    if args.one:
        return recognise_once(args.one)
    paths = save_large_models(args.work, args.blocks, args.swinir_dim)
    save_tiny_models(args.work)
    for path in paths:
        subprocess.run([sys.executable, __file__, "--one", str(path)], check=True)


if __name__ == "__main__":
    main()
