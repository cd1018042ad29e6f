"""``TaskRunner``: one long-running Serve request per task, download → process → upload.

A task runs inside the ``run_task`` request itself (not a background asyncio task), so a redeploy
waits for it up to ``graceful_shutdown_timeout_s`` instead of dropping it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import logging
import shutil
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, Iterable, Iterator, Optional, Tuple

import ray
from ray import serve
from ray.exceptions import RayActorError, RayTaskError
from ray.serve.handle import DeploymentHandle

from tmlsr_ray.config import Settings
from tmlsr_ray.errors import DiskFull, TaskError
from tmlsr_ray.models.base import ModelError, ModelInfo
from tmlsr_ray.models.registry import ModelCatalog, ModelNameError
from tmlsr_ray.piece import Piece
from tmlsr_ray.pipeline import media
from tmlsr_ray.pipeline.colour import is_hdr
from tmlsr_ray.pipeline.damage import refuse_mostly_damaged
from tmlsr_ray.pipeline.encode import EncodeOptions, even_size
from tmlsr_ray.pipeline.fetch import fetch_input
from tmlsr_ray.pipeline.image import (
    CONTENT_TYPES, EXTENSIONS, check_format_holds, decode_image, effective_quality, encode_image, fitting_exif,
    fitting_icc_profile, output_format, probe_image, stored_layout,
)
from tmlsr_ray.pipeline.length import LengthLimits
from tmlsr_ray.pipeline.mux import assemble
from tmlsr_ray.pipeline.output_formats import TASK_CODECS, ContainerFormat, output_container
from tmlsr_ray.pipeline.photo_hdr import as_shown, gain_map_for, hdr_metadata, transfer_name
from tmlsr_ray.pipeline.probe import probe_video
from tmlsr_ray.pipeline.progress import SegmentProgress
from tmlsr_ray.pipeline.render import SegmentJob
from tmlsr_ray.pipeline.segment_plan import Segment, SegmentPlan
from tmlsr_ray.pipeline.segments import extract_segments, planned_info
from tmlsr_ray.pipeline.upscale import SizeRequest, check_output_size, processing_resolution, target_size
from tmlsr_ray.pipeline.video_info import VideoInfo
from tmlsr_ray.protocol import StageName, StageStatus, TaskOutput, TaskStatus, model_defaults
from tmlsr_ray.serve.fanout import SegmentFanout, call_with_retry, iterate_in_thread
from tmlsr_ray.serve.metrics import RunnerMetrics
from tmlsr_ray.serve.replicas import KIND_BY_NAME, ReplicaKind
from tmlsr_ray.serve.state import StateClient, get_state_actor
from tmlsr_ray.storage.base import output_key, store_output
from tmlsr_ray.storage.factory import make_piece_store, make_storage, remove_pieces

logger = logging.getLogger("ray.serve")
PROGRESS_INTERVAL_S = 0.5
METRICS_REPUBLISH_S = 5.0  # well inside the ~20 s after which Ray drops a gauge not set again
FINISHED = (TaskStatus.completed, TaskStatus.failed, TaskStatus.canceled)
Processed = Tuple[Path, str, Dict[str, Any]]  # output file, content type, metadata


@serve.deployment(max_ongoing_requests=10_000)
class TaskRunner:
    async def __init__(self, settings: Settings, replicas: Dict[str, DeploymentHandle]):
        self._settings = settings
        self._replicas = replicas  # by replica kind; a kind that is off is absent
        self._catalog = ModelCatalog(settings.weights_dir)
        self._state = await get_state_actor(settings)
        self._metrics = RunnerMetrics()
        self._oss = settings.oss_config()
        self._storage = make_storage(settings)
        self._fetch_policy = settings.fetch_policy()
        self._identity = ray.get_runtime_context().get_actor_name()
        self._republisher = asyncio.ensure_future(self._republish_metrics())

    async def _republish_metrics(self) -> None:
        while True:
            await asyncio.sleep(METRICS_REPUBLISH_S)
            try:
                self._metrics.republish()
            except Exception:  # metrics must never stop; the next round tries again
                logger.exception("could not set the metrics again")

    async def run_task(self, task_id: str) -> str | None:
        """Runs one task to its end; returns its final status (``None`` if it was not ours to run)."""
        app = serve.get_replica_context().app_name
        attempt = await self._state.acquire(task_id, app, self._identity)
        if not attempt:
            return None
        run = Run(self._state, task_id, attempt)
        params = await self._state.params(task_id)  # as sent: its view hides the credentials a URL carries
        # One folder per task, not per attempt: the pieces of a video outlive an attempt.
        workdir = self._settings.data_dir / "work" / task_id
        pipeline = asyncio.ensure_future(self._pipeline(run, params, workdir))
        watchers = [asyncio.ensure_future(self._watch_released(run)),
                    asyncio.ensure_future(self._heartbeat(run))]
        try:
            await asyncio.wait([pipeline, watchers[0]], return_when=asyncio.FIRST_COMPLETED)
            if not pipeline.done():  # canceled by the user, or given up on and re-queued
                pipeline.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await pipeline
            else:
                await pipeline
        except Exception as exc:  # an unexpected bug must still end the task, readably
            logger.exception("task %s crashed", task_id)
            await run.fail(f"internal error: {type(exc).__name__}: {exc}")
        finally:
            for watcher in watchers:
                watcher.cancel()
        final = await self._state.get(task_id)
        if final is None or final.status in FINISHED:  # else a later attempt reuses the pieces
            await asyncio.to_thread(shutil.rmtree, workdir, True)
            await asyncio.to_thread(self._remove_pieces, task_id)
        if run.noted and final is not None and final.status in (TaskStatus.failed, TaskStatus.canceled):
            # the upload may have landed after the state actor's delete (a cancel just after the put
            # returned skips the completion that would have said so); nothing is in flight now
            await self._state.output_left(task_id, run.noted)
        return final.status.value if final else None

    def _remove_pieces(self, task_id: str) -> None:
        try:
            remove_pieces(self._settings, task_id)
        except Exception:  # the task's outcome stands; retention is not needed for correctness
            logger.exception("could not remove the pieces of task %s", task_id)

    async def _watch_released(self, run: "Run") -> None:
        while True:
            try:
                await run.wait_released()
                return
            except RayActorError:  # the state actor restarts; ask the new one
                await asyncio.sleep(0.5)

    async def _heartbeat(self, run: "Run") -> None:
        while True:
            await asyncio.sleep(self._settings.heartbeat_interval_s)
            with contextlib.suppress(RayActorError):
                await run.heartbeat()

    async def _pipeline(self, run: "Run", params: Dict[str, Any], workdir: Path) -> None:
        try:
            fetched = await self._stage(run, StageName.download,
                                        fetch_input(params["url"], workdir / "input", self._fetch_policy, self._oss))
            process = self._process_image if params["type"] == "image" else self._process_video
            result, content_type, metadata = await self._stage(
                run, StageName.process, process(run, params, fetched.path, workdir))
            metadata["bytes"] = result.stat().st_size
            if metadata["bytes"] > self._settings.max_output_bytes:
                raise TaskError(f"output is {metadata['bytes']:,} bytes, over the limit of "
                                f"{self._settings.max_output_bytes:,}; ask for a smaller size")
            key = output_key(run.task_id, "output" + result.suffix, run.attempt)
            location = self._storage.location(key)
            if not await run.note_output(location):
                return  # canceled or given up on meanwhile: the watcher stops this run
            url = await self._stage(run, StageName.upload, store_output(
                self._storage, key, result, content_type, self._settings.storage_backoff()))
            await run.complete(TaskOutput(url=url, metadata=metadata), location)
        except TaskError as exc:
            if isinstance(exc, DiskFull):  # room for the database's write of the failure, and for other tasks
                await asyncio.to_thread(shutil.rmtree, workdir, True)
            await run.fail(str(exc))

    async def _stage(self, run: "Run", name: StageName, work: Awaitable):
        """Runs one stage, recording running → success/failed and its duration."""
        await run.set_stage(name, StageStatus.running)
        start = time.monotonic()
        try:
            result = await work
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await self._end_stage(run, name, StageStatus.failed, _elapsed(start))
            raise _as_task_error(name, exc) from exc
        await self._end_stage(run, name, StageStatus.success, _elapsed(start))
        return result

    async def _end_stage(self, run: "Run", name: StageName, status: StageStatus, duration: float) -> None:
        """The one duration goes to the task record and to the stage histogram."""
        await run.set_stage(name, status, duration)
        self._metrics.stage_seconds.observe(duration, tags={"stage": name.value, "status": status.value})

    async def _model_and_target(self, run: "Run", params: Dict[str, Any], width: int, height: int) -> "ModelPlan":
        name = params["model"]
        info = await asyncio.to_thread(self._catalog.info, name)
        replicas = self._replicas.get(info.replica_kind)
        if replicas is None:
            raise TaskError(f"{info.family} models are not served here (no {info.replica_kind} replicas)")
        variant = variant_args(params)
        model = await self._call(replicas, lambda h: h.describe_model.remote(name, **variant))
        filled = model_defaults(params, info.scale, info.seeded, self._settings.seedvr2_seed)
        if filled:  # set at submission; a task admitted by an older version gets them here
            await run.update_params(filled)
            params = {**params, **filled}
        sizing = SizeRequest(params.get("outscale"), params.get("output_magnification"), params.get("output_dims"))
        target = target_size(width, height, info.scale, sizing, params.get("resolution"))
        seed = params["seed"] if info.seeded else None
        if info.seeded and info.family in model:  # the replica's account of how it runs; the task's choices join it
            model[info.family].update(seed=seed, resolution=processing_resolution(target))
        return ModelPlan(replicas, KIND_BY_NAME[info.replica_kind], info, model, target, seed=seed, variant=variant)

    # -- images -----------------------------------------------------------------------------

    async def _process_image(self, run: "Run", params: Dict[str, Any], path: Path, workdir: Path) -> Processed:
        settings = self._settings
        info = await asyncio.to_thread(probe_image, path, settings.max_input_pixels)
        width, height = info.upright_size
        plan = await self._model_and_target(run, params, width, height)
        target = plan.target
        plan.check_output_size(width, height, settings.max_output_pixels)
        check_format_holds(params.get("output_format"), target)
        image = await asyncio.to_thread(decode_image, path, info)
        image, shown = await asyncio.to_thread(as_shown, image, info, params.get("hdr", "keep"),
                                               params.get("output_format"))
        upscaled = await self._call(plan.replicas,
                                    lambda h: h.upscale_image.remote(params["model"], image, target, *plan.seed_args(),
                                                                     **plan.variant))
        fmt = output_format(shown, upscaled, params.get("output_format"))
        quality = params.get("output_quality") or (settings.jpeg_quality if fmt == "jpeg" else None)
        result = workdir / ("output" + EXTENSIONS[fmt])
        gain_map = await asyncio.to_thread(gain_map_for, shown, fmt, target, quality)
        data = await asyncio.to_thread(encode_image, upscaled, fmt, quality, shown.icc_profile, shown.exif,
                                       shown.png_colour, shown.hdr_colour, gain_map)
        await asyncio.to_thread(result.write_bytes, data)
        channels, bit_depth = stored_layout(upscaled, fmt)
        metadata = {
            "width": target[0], "height": target[1], "format": fmt,
            "quality": effective_quality(fmt, upscaled, quality),
            "input": {"width": width, "height": height, "format": info.format, "hdr": transfer_name(info)},
            "channels": channels, "bit_depth": bit_depth,
            "icc_profile": fitting_icc_profile(shown.icc_profile, upscaled, fmt) is not None,
            "exif": fitting_exif(shown.exif, fmt) is not None,
            **hdr_metadata(info, shown, params.get("hdr", "keep"), fmt),
            **_model_metadata(plan.model),
        }
        return result, CONTENT_TYPES[fmt], metadata

    # -- videos -----------------------------------------------------------------------------

    async def _process_video(self, run: "Run", params: Dict[str, Any], path: Path, workdir: Path) -> Processed:
        work = await self._plan_video(run, params, path)
        path, info, segments, plan = work.source, work.info, work.segments, work.model
        plan_key = _work_fingerprint(segments, params, work.target, work.options, plan.seed)
        store = make_piece_store(self._settings, run.task_id, plan_key, workdir)
        done = await asyncio.to_thread(store.finished)
        progress = SegmentProgress(segments, done)
        report_progress = self._progress_reporter(run, progress)
        await report_progress()
        fanout = self._segment_fanout(plan, params["model"])

        async def on_frames(count: int) -> None:
            progress.advance(count)
            if count > 0:
                self._metrics.video_progress(params["model"], count, progress.fps)
            await report_progress()

        damaged = DamagedShare(done.values(), segments.frames)

        async def on_piece(data: bytes, piece: Piece) -> None:
            damaged.add(piece, done.get(piece.index))  # over the share: no later piece helps
            await finish_in_thread(store.save, data, piece)
            done[piece.index] = piece
            progress.finish_segment()
            await report_progress()

        missing = [s for s in segments.segments if s.index not in done]
        jobs = (self._segment_job(segment, work) for segment in missing)
        stop = threading.Event()
        max_preroll = self._settings.video_segment_max_preroll_frames
        extracted = iterate_in_thread(
            lambda: _with_jobs(extract_segments(path, info, missing, stop, work.repeat_damaged, max_preroll), jobs),
            maxsize=fanout.window, stop=stop)
        self._metrics.video_started(params["model"])
        try:
            await fanout.run(extracted, on_frames, on_piece)
        finally:
            stop.set()
            self._metrics.video_ended(params["model"])
        into = work.into
        result = workdir / f"output.{into.name}"
        # a cancel waits for the join (seconds an hour of video): it writes into the task's folder
        report = await finish_in_thread(assemble, result, path, info, list(store.in_order(done)),
                                        segments.last_frame_ticks, into, segments.first_pts)
        metadata = media.video_metadata(info, result, report, work.options, work.requested)
        metadata.update(_model_metadata(plan.model), segment_retries=fanout.retries,
                        segments={"total": len(segments.segments), "reused": progress.reused,
                                  "rekeyed": sum(s.rekeyed for s in segments.segments)},
                        transfer_bytes=fanout.transfer_bytes,
                        damaged_packets_dropped=damaged.total,
                        frames_repeated=sum(piece.repeated_frames for piece in done.values()))
        return result, into.content_type, metadata

    async def _plan_video(self, run: "Run", params: Dict[str, Any], path: Path) -> "VideoWork":
        """The source's facts, its segments, the model and the output, each checked against the
        limits before any segment is made."""
        settings = self._settings
        repeat_damaged = params.get("damaged_frames") == "repeat"
        info = await asyncio.to_thread(probe_video, path, repeat_damaged, settings.max_input_pixels)
        media.check_video_frames(info, settings)
        path, info, segments = await asyncio.to_thread(
            media.length_checked_plan, path, info, LengthLimits.of(settings), settings.video_cutting,
            repeat_damaged, settings.max_input_pixels)
        info = planned_info(info, segments)  # the rate the output states and encodes at, the size it takes
        media.check_video_frames(info, settings)  # at the largest size its keyframes showed
        # A flood is refused before any replica call (a first call loads the model: seconds).
        await asyncio.to_thread(media.check_frame_flood, path, info, segments.frames, settings,
                                media.indexed_span_s(info, segments))
        plan = await self._model_and_target(run, params, info.width, info.height)
        target = even_size(*plan.target)
        plan.check_output_size(info.width, info.height, settings.max_output_pixels, target)
        media.check_video_work(info, segments.frames, target, settings)
        tone_map = is_hdr(info.color) and params.get("hdr", "keep") == "sdr"
        options = self._encode_options(plan, params, ten_bit=is_hdr(info.color) and not tone_map)
        media.check_encodable(target, options, hdr=is_hdr(info.color) and not tone_map)
        into = output_container(params.get("output_format"), options.codec)
        media.check_container(into, options)
        return VideoWork(path, info, segments, plan, target, options, tone_map, into, repeat_damaged)

    def _segment_fanout(self, plan: "ModelPlan", model_name: str) -> SegmentFanout:
        """Segments to the model's replicas, a few in flight per replica, each retried elsewhere."""
        settings = self._settings
        return SegmentFanout(
            lambda job, data: plan.replicas.options(stream=True).render_segment.remote(model_name, job, data),
            window=settings.video_segments_per_replica * plan.kind.parallelism(settings),
            timeout_s=settings.upscaler_call_timeout_s, attempts=settings.upscaler_call_attempts,
            on_retry=self._metrics.retries.inc,
        )

    def _encode_options(self, plan: "ModelPlan", params: Dict[str, Any], ten_bit: bool) -> EncodeOptions:
        """The task's codec and crf, else the service's; ``ten_bit``: HDR kept HDR is always
        10-bit, other videos as ``video_ten_bit`` says."""
        settings = self._settings
        codec = TASK_CODECS[params["video_codec"]] if params.get("video_codec") else settings.video_codec
        crf = settings.video_crf if params.get("crf") is None else params["crf"]
        return EncodeOptions(codec, crf, settings.video_preset, settings.video_ten_bit or ten_bit,
                             threads=settings.encoder_threads(plan.kind.num_cpus(settings)))

    def _segment_job(self, segment: Segment, work: "VideoWork") -> SegmentJob:
        plan = work.model
        batch_frames, overlap = plan.kind.batch(self._settings)
        return SegmentJob(segment, work.info, work.target, work.options, batch_frames,
                          overlap=overlap if plan.info.temporal else 0, seed=plan.seed, tone_map=work.tone_map,
                          repeat_damaged=work.repeat_damaged, **plan.variant)

    def _progress_reporter(self, run: "Run", progress: "SegmentProgress") -> Callable[[], Awaitable[None]]:
        last = [0.0]

        async def report() -> None:
            now = time.monotonic()
            if now - last[0] >= PROGRESS_INTERVAL_S or progress.finished:
                last[0] = now
                await run.set_stage(StageName.process, StageStatus.running, None, progress.snapshot())
        return report

    async def _call(self, replicas: DeploymentHandle, call: Callable[[DeploymentHandle], Any]):
        settings = self._settings
        return await call_with_retry(lambda: call(replicas), settings.upscaler_call_attempts,
                                     settings.upscaler_call_timeout_s, on_retry=self._metrics.retries.inc)


@dataclass(frozen=True)
class ModelPlan:
    """Which replicas run a task, what the model file is and what its replica said of it, the
    output size, and the noise seed of a seeded model."""

    replicas: DeploymentHandle
    kind: ReplicaKind
    info: ModelInfo
    model: Dict[str, Any]
    target: Tuple[int, int]
    seed: int | None = None
    variant: Dict[str, Any] = field(default_factory=dict)  # see variant_args

    def seed_args(self) -> Tuple[int, ...]:
        return () if self.seed is None else (self.seed,)

    def check_output_size(self, width: int, height: int, max_pixels: int,
                          target: Tuple[int, int] | None = None) -> None:
        check_output_size(width, height, self.info.scale, target or self.target, max_pixels)


@dataclass(frozen=True)
class VideoWork:
    """What a video task makes: from which source and segments, with which model, at what size
    (``target``: the requested size made even for the encoder), encoded how."""

    source: Path  # the input, or its copy with the jumps of its clock closed
    info: VideoInfo
    segments: SegmentPlan
    model: ModelPlan
    target: Tuple[int, int]
    options: EncodeOptions
    tone_map: bool
    into: ContainerFormat
    repeat_damaged: bool  # the task's damaged_frames: "repeat"

    @property
    def requested(self) -> Tuple[int, int]:
        return self.model.target


@dataclass
class Run:
    """One attempt at a task. Every report carries the attempt, so a run that was given up on
    (its task re-queued and started again) can no longer change the task."""

    state: StateClient
    task_id: str
    attempt: int
    noted: Optional[str] = None  # where this run stores its output, once the state actor heard it

    def set_stage(self, name: StageName, status: StageStatus, duration=None, detail=None):
        return self.state.set_stage(self.task_id, name, status, duration, detail, attempt=self.attempt)

    def update_params(self, values: Dict[str, Any]):
        return self.state.update_params(self.task_id, values, attempt=self.attempt)

    async def note_output(self, location: str) -> bool:
        if await self.state.note_output(self.task_id, location, attempt=self.attempt):
            self.noted = location
            return True
        return False

    def complete(self, output: TaskOutput, key: str):
        return self.state.complete(self.task_id, output, key, attempt=self.attempt)

    def fail(self, error: str):
        return self.state.fail(self.task_id, error, attempt=self.attempt)

    def heartbeat(self):
        return self.state.heartbeat(self.task_id, attempt=self.attempt)

    def wait_released(self):
        return self.state.wait_released(self.task_id, self.attempt)


def variant_args(params: Dict[str, Any]) -> Dict[str, Any]:
    """The task's choice of the model's network, as the Upscaler's calls take it: a denoise
    strength (only where set, and not 1, the file as it is: the SeedVR2 replicas' calls take none)."""
    strength = params.get("denoise_strength")
    return {} if strength in (None, 1) else {"denoise": strength}


def _model_metadata(model: Dict[str, Any]) -> Dict[str, Any]:
    keys = ("model", "model_scale", "architecture", "device", "dtype", "denoise_strength", "seedvr2")
    return {key: model[key] for key in keys if key in model}


def _as_task_error(stage: StageName, exc: Exception) -> TaskError:
    """The message a user reads: the cause raised on a replica, without Ray's traceback."""
    cause = exc.cause if isinstance(exc, RayTaskError) and exc.cause is not None else exc
    if isinstance(cause, OSError) and cause.errno == errno.ENOSPC:
        return DiskFull(f"no space left on the data disk ({stage.value} stage); free space under data_dir "
                        "(or give it a larger disk) and submit the task again")
    if isinstance(cause, (TaskError, ModelError, ModelNameError)):
        return TaskError(str(cause))
    return TaskError(f"{stage.value} failed: {type(cause).__name__}: {cause}")


class DamagedShare:
    """The damaged packets of a video's pieces, a running total; fails the task where they are over
    the share of all its ``packets`` that FFmpeg's command line gives up at. Judged as each piece
    comes in: once over, no piece still to come can bring the share back under, and the model would
    work on for nothing. (Summing every piece again for each one was quadratic in the pieces.)"""

    def __init__(self, reused: Iterable[Piece], packets: int):
        self.packets = packets
        self.total = 0
        for piece in reused:
            self.add(piece)

    def add(self, piece: Piece, replaced: Optional[Piece] = None) -> None:
        total = self.total + piece.damaged_packets - (replaced.damaged_packets if replaced else 0)
        refuse_mostly_damaged(total, self.packets)
        self.total = total


def _with_jobs(extracted: Iterable[Tuple[Segment, bytes]],
               jobs: Iterable[SegmentJob]) -> Iterator[Tuple[SegmentJob, bytes]]:
    by_index = {job.segment.index: job for job in jobs}
    for segment, data in extracted:  # as cut: a re-keyed one counts the damaged packets its cut left out
        yield replace(by_index[segment.index], segment=segment), data


def _work_fingerprint(plan: SegmentPlan, params: Dict[str, Any], target, options: EncodeOptions, seed) -> str:
    """Pieces are reused only by an attempt that would make the very same pieces."""
    key = (plan.fingerprint, params["model"], tuple(target), options, seed, params.get("hdr", "keep"))
    key += tuple(variant_args(params).items())  # nothing where none is set: older attempts' pieces are kept
    digest = hashlib.sha256(repr(key).encode())
    return digest.hexdigest()[:16]


def _elapsed(start: float) -> float:
    return round(time.monotonic() - start, 3)


async def finish_in_thread(function: Callable[..., Any], *args: Any) -> Any:
    """Runs ``function`` in a thread and, if the caller is canceled meanwhile, still waits for it
    before the cancel goes on: a thread cannot be stopped, and one that writes into the task's
    folder after the cleanup removed it would leave the folder behind."""
    work = asyncio.ensure_future(asyncio.to_thread(function, *args))
    try:
        return await asyncio.shield(work)
    except asyncio.CancelledError:
        await asyncio.wait([work])
        raise
