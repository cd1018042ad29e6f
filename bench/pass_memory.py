"""A pass's memory estimate (``frame_bytes``, which sizes passes and decides whole or tiled on a
GPU) against the peak it measures, per served family at its published widths, per number type
and frame size, up to 4K at no cost: on the meta device, where tensors have sizes but no data.

    python bench/pass_memory.py [--sizes 64x64 180x320 720x1280 2160x3840] [--only HAT SPAN]
    python bench/pass_memory.py --resident --sizes 64x64 256x256 [--only ESRGAN OmniSR]

Each row: the estimate per frame, the measured peak (the largest of a pass at the network's size,
one resized and one converted to the encoder's planes) and their ratio, which must stay >= 1.
SPAN's reparametrisation and HVI-CIDNet's masks need data: they run on the CPU, so give them
small sizes. Not measured: the upload of the next pass and the download of the last that overlap a pass on CUDA (3 bytes per
input pixel, 3·scale² per output pixel at most), and a convolution's workspace (cuDNN's).
With --resident, fp32 on the CPU: the CPU estimate of a pass against the resident memory a fresh
process adds running it (a child forked per family from one process per size).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.helpers import (DATA_DEPENDENT_FAMILIES, SERVED_FAMILIES, largest_pass_peak_bytes,  # noqa: E402
                           largest_pass_resident_bytes, served_width_model)
from tmlsr_ray.models.frame_network import frame_bytes  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["64x64", "180x320", "720x1280", "2160x3840"])
    parser.add_argument("--only", nargs="+", default=list(SERVED_FAMILIES))
    parser.add_argument("--resident", action="store_true", help="the CPU estimate against a pass's resident memory")
    args = parser.parse_args()
    sizes = [tuple(int(side) for side in size.split("x")) for size in args.sizes]
    if args.resident:
        resident(args.only, sizes)
        return
    print(f"{'family':20} {'dtype':8} {'size':>10} {'estimate MiB':>13} {'peak MiB':>10} {'ratio':>6}")
    with tempfile.TemporaryDirectory() as folder:
        for family in args.only:
            for dtype in ("fp32", "fp16"):
                model = served_width_model(family, dtype, Path(folder))
                device = "cpu" if family in DATA_DEPENDENT_FAMILIES else "meta"
                for height, width in sizes:
                    estimate = frame_bytes(height, width, model.scale, model._activations, model._dtype.itemsize,
                                           model._num_feat)
                    peak = largest_pass_peak_bytes(model, height, width, device)
                    print(f"{family:20} {model.dtype:8} {f'{height}x{width}':>10} {estimate / 2**20:13.1f} "
                          f"{peak / 2**20:10.1f} {estimate / peak:6.2f}", flush=True)


def resident(families, sizes) -> None:
    print(f"{'family':20} {'size':>10} {'CPU estimate MiB':>17} {'resident MiB':>13} {'ratio':>6}")
    with tempfile.TemporaryDirectory() as folder:
        for height, width in sizes:
            for family, grown in zip(families, largest_pass_resident_bytes(families, height, width)):
                estimate = served_width_model(family, "fp32", Path(folder))._pass_bytes(height, width, 1)
                print(f"{family:20} {f'{height}x{width}':>10} {estimate / 2**20:17.1f} {grown / 2**20:13.1f} "
                      f"{estimate / grown:6.2f}", flush=True)


if __name__ == "__main__":
    main()
