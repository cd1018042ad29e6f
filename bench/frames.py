"""The model path (frames in → upscaled frames out, both copies included) and the segment
pipeline, without Ray, so it runs on a bare GPU machine; bench/video.py measures the service
through Ray Serve.

    python bench/frames.py [--clip CLIP | --sizes 1280x720 1920x1080] [--frames 32] [--batch 8]
                           [--model weights/realesr-animevideov3.pth] [--device auto|cpu|cuda]
                           [--outscale 2 4] [--dtype fp16 bf16 fp32] [--repeats 3]
                           [--compile off default reduce-overhead max-autotune] [--pass-pixels N]
                           [--old-path] [--planes] [--precision] [--profile N] [--profile-out FILE]
                           [--pipeline [--pieces 1 4] [--preset veryfast] [--codec libx264]]
                           [--budget-s S] [--peak-tflops T]

Model path: for each size × compile mode × dtype × outscale, frames/s (median of the repeats,
after a first pass that pays compilation and cuDNN's search, whose time is reported), the ratio
to the baseline measured in the same run (eager, in the service's default type on the device: fp16
on a GPU, fp32 on a CPU; same size and outscale), the arithmetic rate against the network's
convolution count (its compute floor at --peak-tflops, by default the GPU's dense half-precision
peak from HALF_PEAK_TFLOPS; none for fp32), peak GPU memory and the pinned buffers each case made. --old-path adds the path before buffer reuse and overlap (a
fresh pin_memory() per batch, results copied into pageable memory, one pass per batch).
--planes adds the path a GPU replica runs on 8-bit 4:2:0 video: the decoder's planes cross and
become RGB on the device.
--precision: PSNR of each half type against fp32 on the bench frames and on the golden images
(shared/golden/realesrgan, with the fp32 GPU output checked against the golden files).
--profile N: torch.profiler over N batches of the baseline, old and new path, the time split by
kind of work (bench/profile_split.py). --pipeline (needs PyAV and a clip): the service's own
segment code (segments of --segment-s), 1 or P of them rendered at once sharing the model,
against the model alone (the service's own call) and the encoder alone on the same frames.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.clip import parse_size, synthetic_frames  # noqa: E402
from bench.profile_split import format_split, kernel_table, profile_run, time_split  # noqa: E402
from tmlsr_ray.models.device import select_device  # noqa: E402
from tmlsr_ray.models.realesrgan import RealESRGANModel  # noqa: E402
from tmlsr_ray.models.transfer import StagedPasses, stage  # noqa: E402

BASELINE_COMPILE = "off"


@dataclass(frozen=True)
class Case:
    size: Tuple[int, int]
    dtype: str
    compile: str
    outscale: float
    path: str = "new"  # new | old (before buffer reuse and overlap) | planes (4:2:0 in)

    def baseline(self, dtype: str) -> "Case":
        return Case(self.size, dtype, BASELINE_COMPILE, self.outscale)

    def label(self) -> str:
        return (f"{self.size[0]}x{self.size[1]} {self.dtype} {self.compile} x{self.outscale:g}"
                + {"new": "", "old": " old path", "planes": " planes in"}[self.path])


class Models:
    """The models of the run, loaded once per (dtype, compile mode)."""

    def __init__(self, args):
        self._args = args
        self._loaded: Dict[Tuple[str, str], RealESRGANModel] = {}

    def get(self, dtype: str, compile: str) -> RealESRGANModel:
        if (dtype, compile) not in self._loaded:
            model = RealESRGANModel(self._args.model, device=self._args.device, dtype=dtype, compile=compile)
            if self._args.pass_pixels:
                model.pass_pixels = self._args.pass_pixels
            self._loaded[(dtype, compile)] = model
        return self._loaded[(dtype, compile)]


def sync(model: RealESRGANModel) -> None:
    if model.device.startswith("cuda"):
        torch.cuda.synchronize()


def even(width: int, height: int) -> Tuple[int, int]:
    return max(2, width - width % 2), max(2, height - height % 2)


def target_for(size: Tuple[int, int], outscale: float, scale: int) -> Optional[Tuple[int, int]]:
    """The output size the service asks the model for (None: the native scale)."""
    return None if outscale == scale else even(round(size[0] * outscale), round(size[1] * outscale))


def old_upscale_samples(model: RealESRGANModel, frames: np.ndarray, target) -> np.ndarray:
    """The path before buffer reuse and overlap (uint8 frames): one pass, a fresh pin_memory(),
    the result copied into pageable memory (the resize is today's blocked one: bench/resize.py
    measures the dense one it replaced)."""
    with torch.inference_mode(), model._stream_context():
        with stage("stage_in"):
            pinned = torch.from_numpy(np.ascontiguousarray(frames))
            pinned = pinned.pin_memory() if model.device.startswith("cuda") else pinned
        out = model._samples_pass(pinned.to(model._device, non_blocking=True), 255.0, target)
        if out.is_cuda:  # the wait for the network is the profile's "waits", not the copy's
            torch.cuda.current_stream(out.device).synchronize()
        with stage("land"):
            return out.cpu().numpy()


def as_planes(batches: List[np.ndarray]) -> list:
    """The batches as a decoder's 4:2:0 planes (BT.601, limited range), made by the service's own
    conversion so that this runs without PyAV."""
    from tmlsr_ray.models.yuv import Yuv420, Yuv420Frames, rgb_to_yuv420

    return [Yuv420Frames(rgb_to_yuv420(torch.from_numpy(b).permute(0, 3, 1, 2), 255.0, Yuv420()).numpy(), Yuv420())
            for b in batches]


def run_batches(model, batches: list, target, path: str = "new", yuv=None) -> None:
    for frames in batches:
        if path == "old":
            old_upscale_samples(model, frames, target)
        elif path == "service":
            service_upscale(model, frames, target, yuv)
        else:
            model.upscale_samples(frames, target)
    sync(model)


def service_upscale(model, frames, target, yuv=None) -> np.ndarray:
    """The service's own call for a batch of a video, RGB frames or the decoder's planes (on a
    GPU: upscale_samples to the target, into the encoder's ``yuv`` planes when given; on a CPU: at
    the model's scale, resized by OpenCV, RGB)."""
    from tmlsr_ray.models.yuv import Yuv420Frames
    from tmlsr_ray.pipeline.upscale import Tiling, upscale_frames

    height, width = frames.size if isinstance(frames, Yuv420Frames) else frames.shape[1:3]
    return upscale_frames(model, frames, target or (width * model.scale, height * model.scale), Tiling(), yuv=yuv)


def measure(model, batches, target, path: str, repeats: int, yuv=None) -> Dict:
    """First pass (compilation, cuDNN's search) timed apart, then the repeats; ``pinned``: the
    page-locked buffers this case added to the model's pool (shared by every case of the model)."""
    pinned_before = pinned_buffers_made(model)
    start = time.perf_counter()
    run_batches(model, batches, target, path, yuv)
    first_s = time.perf_counter() - start
    if model.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    frames, fps = sum(len(b) for b in batches), []
    for _ in range(repeats):
        start = time.perf_counter()
        run_batches(model, batches, target, path, yuv)
        fps.append(frames / (time.perf_counter() - start))
    peak = torch.cuda.max_memory_allocated() / 2**20 if model.device.startswith("cuda") else float("nan")
    return {"fps": fps, "first_s": first_s, "peak_mib": peak, "pinned": pinned_buffers_made(model) - pinned_before}


def pinned_buffers_made(model) -> int:
    return model.passes.pool.allocated if isinstance(model.passes, StagedPasses) else 0


def network_flops(model_path: Path, width: int, height: int) -> float:
    """Convolution FLOPs (2 per multiply-add) of one frame, counted on a small input and scaled:
    every convolution's output grows with the input's area."""
    probe = RealESRGANModel(model_path, device="cpu", dtype="fp32")
    total = [0.0]

    def count(module, _inputs, output):
        kernel = module.weight.shape[1] * module.weight.shape[2] * module.weight.shape[3]
        total[0] += 2.0 * kernel * output.numel()

    convs = [m for m in probe._net.modules() if isinstance(m, torch.nn.Conv2d)]
    hooks = [m.register_forward_hook(count) for m in convs]
    probe.upscale(np.zeros((1, 16, 16, 3), np.float32))
    for hook in hooks:
        hook.remove()
    return total[0] * (width * height) / (16 * 16)


def model_cases(args) -> List[Case]:
    cases = []
    for size in args.sizes:
        for mode in args.compile:
            for dtype in args.dtype:
                cases += [Case(size, dtype, mode, o) for o in args.outscale]
        cases += [Case(size, args.baseline_dtype, BASELINE_COMPILE, o) for o in args.outscale]
        if args.old_path:
            cases += [Case(size, args.baseline_dtype, BASELINE_COMPILE, o, "old") for o in args.outscale]
        if args.planes:
            cases += [Case(size, args.baseline_dtype, BASELINE_COMPILE, o, "planes") for o in args.outscale]
    baselines_first = sorted(dict.fromkeys(cases),
                             key=lambda c: (args.sizes.index(c.size), c != c.baseline(args.baseline_dtype)))
    return baselines_first


def report_model_path(args, models: Models, sources, deadline: float) -> Dict[Case, Dict]:
    results: Dict[Case, Dict] = {}
    flops = {size: network_flops(args.model, *size) for size in args.sizes}
    print(f"\n== model path (frames/s, median of {args.repeats}; ratio to eager {args.baseline_dtype} at the same "
          f"size and outscale) ==")
    print(f"{'case':38s} {'frames/s':>9s} {'min..max':>15s} {'ratio':>6s} {'TFLOP/s':>8s} {'floor %':>7s} "
          f"{'peak MiB':>9s} {'1st pass s':>10s} {'pinned':>6s}")
    for case in model_cases(args):
        if time.perf_counter() > deadline:
            print(f"{case.label():38s} skipped (time budget spent)")
            continue
        try:
            model = models.get(case.dtype, case.compile)
            target = target_for(case.size, case.outscale, model.scale)
            batches = as_planes(sources[case.size]) if case.path == "planes" else sources[case.size]
            results[case] = result = measure(model, batches, target, case.path, args.repeats)
        except Exception as exc:  # one case failing (a compile mode, memory) must not end the run
            print(f"{case.label():38s} FAILED: {type(exc).__name__}: {str(exc)[:300]}")
            continue
        baseline = results.get(case.baseline(args.baseline_dtype))
        print(row(case, result, baseline, flops[case.size], args.peak_tflops), flush=True)
    for size, per_frame in flops.items():
        print(f"compute floor {size[0]}x{size[1]}: {per_frame / 1e12:.3f} TFLOP per frame (convolutions) → "
              f"{args.peak_tflops * 1e12 / per_frame:.0f} frames/s at {args.peak_tflops:g} TFLOP/s (dense half peak)")
    return results


def row(case: Case, result: Dict, baseline: Optional[Dict], flops_per_frame: float, peak_tflops: float) -> str:
    fps = statistics.median(result["fps"])
    ratio = fps / statistics.median(baseline["fps"]) if baseline else float("nan")
    tflops = fps * flops_per_frame / 1e12
    spread = f"{min(result['fps']):.2f}..{max(result['fps']):.2f}"
    # fp32 runs without TF32 (the reference), far from the tensor cores' half peak: no floor share
    floor = f"{100 * tflops / peak_tflops:6.1f}%" if case.dtype != "fp32" else f"{'-':>7s}"
    return (f"{case.label():38s} {fps:9.2f} {spread:>15s} {ratio:6.2f} {tflops:8.1f} {floor} "
            f"{result['peak_mib']:9.0f} {result['first_s']:10.2f} {result['pinned']:6d}")


def psnr(a: np.ndarray, b: np.ndarray, top: float = 255.0) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(top * top / mse)


def report_precision(args, models: Models, sources) -> None:
    halves = [d for d in args.dtype if d != "fp32"]
    print("\n== precision: PSNR against fp32 (dB; the issue asks >= 40) ==")
    size = args.sizes[0]
    frames = sources[size][0]
    reference = models.get("fp32", "off").upscale_samples(frames)
    for dtype in halves:
        out = models.get(dtype, "off").upscale_samples(frames)
        print(f"bench frames {size[0]}x{size[1]} x{models.get(dtype, 'off').scale} ({len(frames)} frames): "
              f"{dtype} {psnr(out, reference):.2f} dB", flush=True)
    report_golden(args, models, halves)


def report_golden(args, models: Models, halves: List[str]) -> None:
    import json

    import cv2

    from tmlsr_ray.pipeline.upscale import SizeRequest, upscale_image

    golden = args.shared / "golden" / "realesrgan"
    if not (golden / "cases.json").exists():
        print(f"golden images: none at {golden} (skipped)")
        return
    for case in json.loads((golden / "cases.json").read_text()):
        source = args.shared / "media" / case["input"]
        if case["model"] != args.model.name or not source.exists():
            continue
        image = cv2.imread(str(source), cv2.IMREAD_UNCHANGED)
        fp32 = models.get("fp32", "off")
        target = SizeRequest(outscale=case["outscale"]).output_size(image.shape[1], image.shape[0], fp32.scale)
        reference = upscale_image(fp32, image, target)
        line = f"golden {case['input']} x{case['outscale']:g}:"
        expected = golden / case["output"]
        if expected.exists():
            official = cv2.imread(str(expected), cv2.IMREAD_UNCHANGED)
            close = np.mean(np.abs(reference.astype(int) - official.astype(int)) <= 1)
            line += f" fp32 here vs the official fp32: {100 * close:.3f}% within 1 level, {psnr(reference, official):.2f} dB;"
        for dtype in halves:
            line += f" {dtype} {psnr(upscale_image(models.get(dtype, 'off'), image, target), reference):.2f} dB"
        print(line, flush=True)


def report_profile(args, models: Models, sources) -> None:
    model = models.get(args.baseline_dtype, BASELINE_COMPILE)
    size = args.sizes[0]
    batches = [sources[size][k % len(sources[size])] for k in range(args.profile)]
    frames = sum(len(b) for b in batches)
    cuda = model.device.startswith("cuda")
    print(f"\n== profile: {args.profile} batches of {len(batches[0])} at {size[0]}x{size[1]}, "
          f"{args.baseline_dtype} eager (device categories overlap each other and the host's) ==")
    tables = []
    for outscale in args.outscale:
        target = target_for(size, outscale, model.scale)
        for path in ("old", "new"):
            run_batches(model, batches[:1], target, path)  # warm: cuDNN's search, pinned buffers
            prof, wall = profile_run(lambda: run_batches(model, batches, target, path), lambda: sync(model), cuda)
            title = f"x{outscale:g} {path} path"
            try:
                print(format_split(title, time_split(prof), wall, frames), flush=True)
            except Exception as exc:  # the raw table below still tells
                print(f"{title}: could not group the trace ({type(exc).__name__}: {exc})")
            tables.append(f"==== {title} ====\n{kernel_table(prof)}")
    if args.profile_out:
        args.profile_out.write_text("\n\n".join(tables))
        print(f"profiler tables: {args.profile_out}")


def load_sources(args) -> Dict[Tuple[int, int], List[np.ndarray]]:
    """Batches of uint8 frames per size: the clip's, or synthetic ones at each --sizes."""
    if args.clip:
        from tmlsr_ray.pipeline.decode import iter_batches
        from tmlsr_ray.pipeline.probe import probe_video

        info = probe_video(args.clip)
        batches = [b.frames for b in iter_batches(args.clip, info, args.batch)][: max(1, args.frames // args.batch)]
        args.sizes = [(info.width, info.height)]
        return {args.sizes[0]: batches}
    return {size: [synthetic_frames(args.batch, *size, seed=k) for k in range(max(1, args.frames // args.batch))]
            for size in args.sizes}


def pipeline_fps(model, clip: Path, outscale: float, batch: int, options, pieces: int, segment_s: float,
                 max_frames: int) -> tuple:
    """(frames/s, encoder used, segments) of the service's segment code for the segments holding
    the first ``max_frames`` frames of the clip: P segments rendered at once (P = 1: one after
    another), sharing one model (one run at a time, as on a replica's model thread), each piece's
    encoder with cores/P threads."""
    from tmlsr_ray.pipeline.probe import probe_video
    from tmlsr_ray.pipeline.output_formats import output_container
    from tmlsr_ray.pipeline.encode import even_size
    from tmlsr_ray.pipeline.mux import assemble
    from tmlsr_ray.pipeline.render import SegmentJob, render_segment
    from tmlsr_ray.pipeline.segment_plan import Cutting
    from tmlsr_ray.pipeline.segments import extract_segments, plan_segments
    from tmlsr_ray.pipeline.upscale import Tiling, takes_planes, upscale_frames
    from tmlsr_ray.storage.pieces import PieceStore

    info = probe_video(clip)
    planes_in = takes_planes(model, info.height, info.width)  # as the Upscaler decides it
    target = even_size(round(info.width * outscale), round(info.height * outscale))
    cutting = Cutting(segment_s=segment_s, max_frames=10**9)
    model_lock = threading.Lock()
    options = replace(options, threads=max(1, (os.cpu_count() or 1) // pieces))

    def upscale(frames_batch, yuv):
        with model_lock:
            return upscale_frames(model, frames_batch.frames, target, Tiling(), yuv=yuv)  # as the Upscaler calls it

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        segments = _first_frames(plan_segments(clip, info, cutting).segments, max_frames)
        store = PieceStore(Path(tmp) / "pieces")

        def render(item):
            segment, data = item
            job = SegmentJob(segment, info, target, options, batch, planes_in=planes_in)
            *_, (encoded, piece) = render_segment(job, data, lambda frames_batch: upscale(frames_batch, job.yuv420))
            store.save(encoded, piece)
            return piece

        with ThreadPoolExecutor(pieces) as pool:
            done = {p.index: p for p in pool.map(render, extract_segments(clip, info, segments))}
        into = output_container(None, options.codec)  # QuickTime for ProRes, which MP4 cannot hold
        report = assemble(Path(tmp) / f"out.{into.name}", clip, info, list(store.in_order(done)), into=into)
        return report.frames / (time.perf_counter() - start), report.encoder, len(segments)


def _first_frames(segments, max_frames: int):
    kept, frames = [], 0
    for segment in segments:
        if frames >= max_frames:
            break
        kept.append(segment)
        frames += len(segment.pts) or max_frames
    return kept


def report_pipeline(args, models: Models, sources) -> None:
    from bench.encoder import encode_fps
    from tmlsr_ray.pipeline.colour import written_colour
    from tmlsr_ray.pipeline.decode import iter_batches, planar_layout
    from tmlsr_ray.pipeline.probe import probe_video
    from tmlsr_ray.pipeline.encode import EncodeOptions, gpu_planes
    from tmlsr_ray.pipeline.upscale import takes_planes

    model = models.get(args.dtype[0], args.compile[0])
    info, count = probe_video(args.clip), len(sources[args.sizes[0]])
    options = EncodeOptions(args.codec, 18, args.preset)
    # "Alone" measures what the pipeline's model and encoders get: on a GPU the decoder's planes
    # in and the encoder's planes out (no swscale on either side), RGB on a CPU.
    planes = planar_layout(info) if takes_planes(model, info.height, info.width) else None
    batches = [b.frames for b in iter_batches(args.clip, info, args.batch, planes=planes)][:count]
    layout = gpu_planes(written_colour(info), options)
    frames, cores = sum(len(b) for b in batches), os.cpu_count() or 1
    print(f"\n== pipeline: {args.clip.name}, {frames} frames, {args.dtype[0]} {args.compile[0]}, {args.codec} "
          f"{args.preset}, {cores} cores ==")
    for outscale in args.outscale:
        target = target_for(args.sizes[0], outscale, model.scale)
        alone = statistics.median(measure(model, batches, target, "service", args.repeats, layout)["fps"])
        upscaled = np.concatenate([service_upscale(model, b, target, layout) for b in batches])
        forms = f"{'4:2:0' if planes else 'RGB'} in, {'4:2:0' if upscaled.ndim == 3 else 'RGB'} out"
        pipeline_fps(model, args.clip, outscale, args.batch, options, 1, args.segment_s, args.batch)  # warm-up: one segment
        for pieces in args.pieces:
            encoder = encode_fps(upscaled, info, options, pieces, cores)
            fps, used, segments = pipeline_fps(model, args.clip, outscale, args.batch, options, pieces,
                                               args.segment_s, frames)
            print(f"x{outscale:g} ({used}), {pieces} piece(s) at once, {segments} segment(s): pipeline {fps:.2f} "
                  f"frames/s; model alone {alone:.2f} ({forms}), encoder alone {encoder:.2f}; ratio to the "
                  f"slower {fps / min(alone, encoder):.2f}", flush=True)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clip", type=Path, help="frames from this video (else synthetic at --sizes)")
    parser.add_argument("--sizes", type=parse_size, nargs="+", default=[(1280, 720)])
    parser.add_argument("--model", type=Path, default=REPO / "weights" / "realesr-animevideov3.pth")
    parser.add_argument("--outscale", type=float, nargs="+", default=[2.0, 4.0])
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--frames", type=int, default=32, help="frames per repeat (whole batches)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dtype", nargs="+", choices=("fp32", "fp16", "bf16"),
                        help="number types to measure (default: the baseline's)")
    parser.add_argument("--compile", nargs="+", choices=("off", "default", "reduce-overhead", "max-autotune"),
                        default=["off"])
    parser.add_argument("--pass-pixels", type=int, default=0, help="input pixels per GPU pass (0: the model's)")
    parser.add_argument("--old-path", action="store_true", help="also the path before buffer reuse and overlap")
    parser.add_argument("--planes", action="store_true", help="also the path with 4:2:0 planes in (a GPU replica's)")
    parser.add_argument("--precision", action="store_true", help="PSNR of fp16/bf16 against fp32")
    parser.add_argument("--shared", type=Path, default=next(
        (p for p in (REPO / ".carry" / "shared", REPO.parent / "shared") if p.is_dir()), REPO.parent / "shared"),
        help="folder with golden/realesrgan and media/ (for --precision)")
    parser.add_argument("--profile", type=int, default=0, help="profile this many batches")
    parser.add_argument("--profile-out", type=Path, help="write the profiler's kernel tables here")
    parser.add_argument("--pipeline", action="store_true", help="the segment pipeline too (needs --clip)")
    parser.add_argument("--pieces", type=int, nargs="+", default=[1, 4], help="segments rendered at once")
    parser.add_argument("--segment-s", type=float, default=2.0, help="segment length (for any --pieces)")
    parser.add_argument("--preset", default="veryfast")
    parser.add_argument("--codec", default="libx264", help="libx264, libx265, h264_nvenc, prores_ks or auto")
    parser.add_argument("--budget-s", type=float, default=1e9, help="skip model cases that would start after this")
    parser.add_argument("--peak-tflops", type=float,
                        help="the device's dense fp16/bf16 tensor peak (default: by the GPU's name, see HALF_PEAK_TFLOPS)")
    args = parser.parse_args(argv)
    # The baseline is what the service runs by default there: fp16 on a GPU, fp32 on a CPU (where
    # half types are emulated and a first fp16 pass of 720p took 77 s on the 2-core machine).
    args.baseline_dtype = "fp16" if select_device(args.device).type == "cuda" else "fp32"
    args.dtype = args.dtype or [args.baseline_dtype]
    if args.peak_tflops is None:
        args.peak_tflops = half_peak_tflops(torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
    return args


# Dense fp16/bf16 tensor-core peaks (NVIDIA's data sheets halve their "with sparsity" figures).
# The H100 and H200 SXM share one die and clock: what differs between them is memory.
HALF_PEAK_TFLOPS = (("H200 NVL", 835.0), ("H200", 989.0), ("H100 NVL", 835.0), ("H100 PCIe", 756.0),
                    ("H100", 989.0), ("A100", 312.0))
ASSUMED_PEAK_TFLOPS = 790.0  # issue 14's figure, for a device not in the table (and a CPU's dry run)


def half_peak_tflops(device_name: str) -> float:
    return next((peak for name, peak in HALF_PEAK_TFLOPS if name in device_name), ASSUMED_PEAK_TFLOPS)


def main(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # compile times are logged
    args = parse_args(argv)
    deadline = time.perf_counter() + args.budget_s
    sources = load_sources(args)
    models = Models(args)
    probe = models.get(args.baseline_dtype, BASELINE_COMPILE)
    gpu = torch.cuda.get_device_name(0) if probe.device.startswith("cuda") else "cpu"
    print(f"{args.model.name} ({probe.architecture} x{probe.scale}) on {probe.device} ({gpu}); torch {torch.__version__}; "
          f"{args.frames // args.batch} batches of {args.batch}; passes of ≤ {probe.pass_pixels:,} input pixels; "
          f"{torch.get_num_threads()} CPU threads", flush=True)
    if args.profile:  # first: what bounds the path matters most when the run is cut short
        try:
            report_profile(args, models, sources)
        except Exception as exc:  # the frames/s below must still come out
            print(f"profile FAILED: {type(exc).__name__}: {str(exc)[:300]}", flush=True)
    report_model_path(args, models, sources, deadline)
    if args.precision:
        report_precision(args, models, sources)
    if args.pipeline:
        report_pipeline(args, models, sources)


if __name__ == "__main__":
    main()
