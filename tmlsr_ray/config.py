"""The one typed settings object of the service.

Values come from the Serve application args (``serve_config.yaml``) and are then overridden by
``TMLSR_<FIELD>`` environment variables, in :meth:`Settings.load` only: no other module reads the
environment.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, List, Literal, Mapping, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tmlsr_ray.models.base import compile_mode
from tmlsr_ray.pipeline.segment_plan import Cutting
from tmlsr_ray.protocol import MAX_SEED
from tmlsr_ray.retry import Backoff
from tmlsr_ray.urls import FetchPolicy

ENV_PREFIX = "TMLSR_"
INGRESS_MAX_ONGOING_REQUESTS = 200  # requests one ingress replica takes at once (Serve's max_ongoing_requests)


class Autoscaling(BaseModel):
    """Serve autoscaling of a model deployment on ongoing requests (batches) per replica."""

    model_config = ConfigDict(extra="forbid")

    min_replicas: int = Field(1, ge=0)
    max_replicas: int = Field(ge=1)
    target_ongoing_requests: float = Field(2.0, gt=0, description="Batches in flight per replica to aim at.")

    def serve_config(self) -> dict:
        return self.model_dump()


class Settings(BaseModel):
    """Everything the service can be told. The README's settings table mirrors these fields."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, validate_default=True)

    # HTTP
    host: str = Field("0.0.0.0", description="Address the HTTP proxy binds to.")
    port: int = Field(6008, ge=1, le=65535, description="HTTP port of the API.")
    public_base_url: Optional[str] = Field(
        None,
        description="Base URL put in front of local output links; by default the URL the client "
        "used to reach the service.",
    )

    # Files
    weights_dir: Path = Field(Path("weights"), description="Directory holding model files.")
    data_dir: Path = Field(
        Path("data"), description="Task database, downloads in progress and local outputs."
    )
    default_model: str = Field("realesr-animevideov3.pth", description="Model used when a task names none.")

    # Scheduling
    max_workers: int = Field(2, ge=1, description="Tasks processed at once; the rest wait as pending.")
    state_actor_name: str = Field(
        "tmlsr_task_state", min_length=1,
        description="Name of the detached state actor; give each service sharing a cluster its own.")
    control_on_head: bool = Field(
        True, description="Ingress, TaskRunner and TaskState run on the head node (off: anywhere).")
    ingress_replicas: int = Field(1, ge=1)
    runner_replicas: int = Field(1, ge=1)
    upscaler_replicas: int = Field(1, ge=1)
    upscaler_num_cpus: float = Field(1.0, ge=0, description="CPU share reserved per Upscaler replica.")
    upscaler_num_gpus: float = Field(0.0, ge=0, description="GPUs per Upscaler replica (1 on GPU clusters).")
    upscaler_autoscaling: Optional[Autoscaling] = Field(
        None, description="Scale Upscaler replicas between min and max on load (replaces upscaler_replicas).")
    upscaler_max_ongoing_requests: int = Field(4, ge=1, description="Batches one Upscaler replica accepts at once.")
    upscaler_replicas_per_host: int = Field(
        0, ge=0, description="Upscaler replicas sharing one machine's memory, each sizing its CPU passes to its "
        "share of it; 0 = every Upscaler replica there can be (upscaler_replicas, or upscaler_autoscaling's "
        "max_replicas), at most as many as the "
        "machine's Ray CPUs hold at upscaler_num_cpus each.")
    recent_tasks_limit: int = Field(50, ge=1, description="Tasks listed by /monitor/stats.")
    direct_reads: bool = Field(
        True, description="GET /tasks/{id} and /monitor/stats read the task database themselves where it is "
        "on the ingress's node (SQLite WAL: readers never wait for the state actor); elsewhere, or off, "
        "they ask the state actor.")
    max_pending_tasks: int = Field(
        10_000, ge=1, description="Pending tasks beyond which POST /tasks answers 429 with Retry-After.")
    retry_after_s: int = Field(5, ge=1, description="Retry-After (seconds) sent with a 429.")
    graceful_shutdown_timeout_s: float = Field(
        3600.0, gt=0, description="How long a redeploy waits for running tasks to finish."
    )
    heartbeat_interval_s: float = Field(2.0, gt=0)
    heartbeat_timeout_s: float = Field(
        30.0, gt=0, description="A processing task whose runner is silent this long is re-queued."
    )
    runner_check_interval_s: float = Field(
        2.0, gt=0, description="How often the state actor checks that the runner replicas of processing tasks "
        "are alive; a task whose runner is gone (a stopped app, a killed process) is re-queued at once.")
    max_attempts: int = Field(
        3, ge=1, description="Runs of a task whose runner vanished, before it fails with a reason.")
    deadline_check_interval_s: float = Field(
        1.0, gt=0, description="How often tasks past their deadline (deadline_s, Cancel-After) are canceled.")
    max_batch_tasks: int = Field(100, ge=1, description="Most task bodies one POST /tasks/batch takes.")
    max_held_requests: int = Field(
        150, ge=1, lt=INGRESS_MAX_ONGOING_REQUESTS, description="Requests one ingress replica holds open at "
        "once: event streams (GET /tasks/{id}/events) and POST /tasks with Prefer: wait. One stream more gets 429 "
        "with Retry-After, one wait more is answered at once. Under the replica's 200 requests in flight, so "
        "/health, submissions and reads always have room.")
    max_arriving_bodies: int = Field(
        32, ge=1, description="Requests one ingress replica takes whose body is still arriving after its first "
        "part (a slow uplink, or a client trickling one); one more gets 429 with Retry-After at once. A body "
        "arriving holds one of the replica's 200 requests in flight: with max_held_requests it stays under them, "
        "so /health and reads keep room whatever clients send.")
    events_heartbeat_s: float = Field(
        15.0, gt=0, description="A quiet GET /tasks/{id}/events stream sends a ': keep-alive' comment this often.")

    # Model execution
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto = CUDA when present.")
    model_dtype: Literal["auto", "fp32", "fp16", "bf16"] = Field(
        "auto", description="Number type of the single-image networks (Real-ESRGAN, spandrel); auto = fp16 "
        "on CUDA where the network holds it (bench/frames.py --dtype decides whether bf16 replaces it), "
        "fp32 on CPU.")
    half: Optional[bool] = Field(
        None, description="Deprecated: model_dtype fp16 (true) or fp32 (false); ignored when model_dtype is set.")
    torch_threads: int = Field(
        0, ge=0, description="CPU threads per model replica; 0 = every core but one (at least 1), so the "
        "API keeps a core while a CPU model works.")
    max_cached_models: int = Field(3, ge=1, description="Models kept loaded per Upscaler replica.")
    model_report_ttl_s: float = Field(
        60.0, gt=0, description="GET /models shows a model as loaded while a replica holding it reported "
        "within this time (replicas report on each health check, every 10 s by default).")
    torch_compile: Literal["off", "default", "reduce-overhead", "max-autotune"] = Field(
        "off", description="torch.compile Real-ESRGAN networks in this mode (true = default, false = off): "
        "faster on long videos; the first batch of each model and frame size pays the compilation "
        "(tens of seconds, minutes for max-autotune), logged with its time.")
    tile_size: int = Field(512, ge=32, description="Tile edge (input pixels) for large images.")
    tile_pad: int = Field(32, ge=0, description="Overlap added around each tile.")
    tile_min_pixels: int = Field(
        1_500_000, ge=0, description="Images with more input pixels than this are tiled."
    )

    # Video
    video_segment_s: float = Field(
        10.0, gt=0, description="Length of the segments a video is cut into (at keyframes); each is "
        "decoded, upscaled and encoded on one model replica, and kept for a resumed attempt.")
    video_segment_max_frames: int = Field(
        600, ge=1, description="Most frames in one segment (bounds a piece of a high-frame-rate or 4K video).")
    video_segment_max_mib: int = Field(
        256, ge=0, description="Most MiB of the input's video in one segment, its frames' packets "
        "counted from its start (bounds what the runner holds and the object store carries of a "
        "studio's ProRes or DNxHR master: 10 s of ProRes 422 HQ at 4K is about 1.1 GB). 0: no bound.")
    video_segment_max_preroll_frames: int = Field(
        300, ge=0, description="A GOP longer than a segment is cut inside when the frames decoded "
        "before the cut (and dropped) are at most this many; else the segment runs to the next keyframe.")
    video_rekey_segment_mib: int = Field(
        256, ge=0, description="A GOP too long to cut at keyframes (past the pre-roll above) is decoded "
        "once where the video is cut, and its segments' frames stored without loss, each starting on a "
        "keyframe; each such segment holds at most this many MiB of decoded frames (a 720p segment about "
        "190 frames, 4K 21). 0: never, such a segment runs on to the next keyframe.")
    video_segments_per_replica: int = Field(
        2, ge=1, description="Segments of one video in flight per model replica: each decodes, waits "
        "for the model and encodes its piece, so this many pieces encode at once on a replica (keep "
        "upscaler_max_ongoing_requests at least this).")
    video_encoder_threads: int = Field(
        0, ge=0, description="Encoder threads per piece; 0 = the replica's CPU share divided among its "
        "segments in flight (at least 1): several pieces with a few threads each encode faster than "
        "one piece with every thread (bench/encoder.py).")
    video_batch_frames: int = Field(4, ge=1, description="Frames the model takes at once inside a segment.")
    upscaler_call_timeout_s: float = Field(
        600.0, gt=0, description="A model replica call (an image; for a segment, the wait for its next batch) not back by then is retried.")
    upscaler_call_attempts: int = Field(
        4, ge=1, description="Tries per Upscaler call (replica death, timeout), with back-off.")
    video_codec: str = Field(
        "auto", description="auto (h264_nvenc when an NVIDIA encoder works here, else libx264), libx264, "
        "h264_nvenc, libx265, an AV1 encoder, or prores_ks / prores_aw (ProRes 422 HQ in QuickTime).")
    video_crf: int = Field(18, ge=0, le=51, description="x264 constant rate factor (lower = better).")
    video_preset: str = Field("medium", description="x264 preset (ultrafast … veryslow).")
    video_ten_bit: bool = Field(False, description="Encode 10-bit (yuv420p10le, High 10) output.")
    max_video_frames: int = Field(500_000, gt=0, description="Longest video, in frames.")
    max_video_duration_s: float = Field(4 * 3600.0, gt=0, description="Longest video, in seconds.")
    max_animation_frames: int = Field(
        10_000, gt=0, description="Most frames of an animated GIF or APNG submitted as a video.")
    max_frames_per_second: float = Field(
        1000.0, gt=0, description="Most frames per second of the duration an input states (under 1 s counts "
        "as 1 s): thousands of frames in no time are a flood, not a clip.")
    max_video_work_pixels: float = Field(
        2e13, gt=0, description="Most frames × output pixels of a video (a 2-hour 4K60 clip at ×1 is 3.6e12).")

    # SeedVR2 (models whose file name contains "seedvr2")
    seedvr2_replicas: int = Field(
        1, ge=0, description="SeedVR2 replicas (their own kind: a DiT, a VAE); 0 = SeedVR2 tasks fail.")
    seedvr2_num_cpus: float = Field(1.0, ge=0, description="CPU share reserved per SeedVR2 replica.")
    seedvr2_num_gpus: float = Field(0.0, ge=0, description="GPUs per SeedVR2 replica (1 on GPU clusters).")
    seedvr2_autoscaling: Optional[Autoscaling] = Field(
        None, description="Scale SeedVR2 replicas between min and max on load (replaces seedvr2_replicas).")
    seedvr2_dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="Compute precision; auto = bfloat16 on CUDA, float32 on CPU.")
    seedvr2_batch_frames: int = Field(
        5, ge=1, description="Frames restored together (4n+1: 1, 5, 9, …); more = steadier in time, more memory.")
    seedvr2_temporal_overlap: int = Field(
        0, ge=0, description="Frames shared by consecutive batches and cross-faded, to hide seams in time.")
    seedvr2_color_fix: Literal["wavelet", "none"] = Field(
        "wavelet", description="Keep the input's colours (wavelet low frequencies) under the restored detail.")
    seedvr2_seed: int = Field(42, ge=0, le=MAX_SEED, description="Noise seed of tasks that give none.")
    seedvr2_vae_tile_size: int = Field(
        1024, ge=0, description="VAE tile edge in pixels (multiple of 8); 0 = whole frames (memory grows "
        "with the frame: 1080p untiled needs ≈45 GiB for 5 frames).")
    seedvr2_vae_tile_overlap: int = Field(128, ge=0, description="Overlap of VAE tiles (multiple of 8), blended linearly.")

    # Storage
    storage: Literal["local", "oss"] = Field("local", description="Where outputs go.")
    storage_attempts: int = Field(
        4, ge=1, description="Tries of an output upload that OSS answers with 5xx/429 or not in time, "
        "before the task fails (and what the tries left in the bucket is removed).")
    storage_backoff_s: float = Field(
        1.0, ge=0, description="Pause after the first failed upload try; doubles each time (at most 60 s).")
    oss_endpoint: Optional[str] = Field(None, description="e.g. https://oss-cn-hangzhou.aliyuncs.com")
    oss_region: Optional[str] = Field(None, description="e.g. cn-hangzhou")
    oss_access_key_id: Optional[str] = None
    oss_access_key_secret: Optional[str] = None
    oss_security_token: Optional[str] = Field(None, description="STS token, with temporary keys.")
    oss_bucket: Optional[str] = Field(None, description="Output bucket (storage: oss).")
    oss_prefix: str = Field("tmlsr", description="Key prefix of outputs: PREFIX/YYYY/MM/DD/TASK_ID/NAME.")
    oss_url_expires_s: int = Field(86400, gt=0, description="Lifetime of signed output URLs.")
    oss_public_urls: bool = Field(False, description="Hand out plain URLs (public-read bucket).")
    oss_multipart_threshold_bytes: int = Field(100 * 1024**2, gt=0)
    oss_part_size_bytes: int = Field(16 * 1024**2, ge=100 * 1024)
    oss_timeout_s: float = Field(
        60.0, gt=0, description="An OSS request with no answer (connecting, or between bytes) for this long "
        "has failed.")

    # Retention
    output_retention_s: Optional[float] = Field(
        7 * 86400.0, gt=0, description="Outputs older than this are deleted and their task says "
        "output.expired; null keeps them forever.")
    record_retention_s: Optional[float] = Field(
        30 * 86400.0, gt=0, description="Finished task records older than this are removed; null keeps them.")
    retention_interval_s: float = Field(300.0, gt=0, description="How often retention runs.")

    # Access
    api_token: Optional[str] = Field(
        None, description="When set, every route but /health and the dashboard page needs "
        "'Authorization: Bearer <token>'.")

    # Webhooks
    webhook_secret: Optional[str] = Field(
        None, description="HMAC-SHA256 key signing webhook bodies (X-TMLSR-Signature: sha256=<hex>).")
    webhook_attempts: int = Field(
        8, ge=1, description="Tries per webhook (connection errors, 429, 5xx); with the back-off doubling "
        "from webhook_backoff_s up to 60 s, 8 tries span about two minutes of a receiver being down.")
    webhook_backoff_s: float = Field(1.0, gt=0, description="Pause after a webhook's first failed try; doubles after each.")
    webhook_timeout_s: float = Field(10.0, gt=0, description="Timeout of one webhook POST.")
    webhook_progress_interval_s: float = Field(
        5.0, gt=0, description="At most one progress webhook per task this often (callback_progress).")

    # Input and output
    allow_private_urls: bool = Field(
        False, description="Allow inputs on loopback/private/link-local addresses (trusted networks)."
    )
    url_allowlist: List[str] = Field(
        default_factory=list,
        description="Trusted input sources, admitted even on private networks: URL prefixes (with ://) "
        "or host names. Everything else must be on a public address (unless allow_private_urls).")
    download_max_bytes: int = Field(2 * 1024**3, gt=0)
    download_connect_timeout_s: float = Field(10.0, gt=0)
    download_read_timeout_s: float = Field(60.0, gt=0)
    download_total_timeout_s: float = Field(1800.0, gt=0)
    download_min_bytes_per_s: float = Field(
        8 * 1024, ge=0, description="Slowest an input's server may send, averaged over download_rate_window_s; "
        "a slower download fails (0: no floor), so a server trickling bytes cannot hold a worker for the "
        "whole download_total_timeout_s.")
    download_rate_window_s: float = Field(60.0, gt=0)
    max_input_pixels: int = Field(64_000_000, gt=0, description="Largest input image (width × height).")
    max_output_pixels: int = Field(
        256_000_000, gt=0, description="Largest output image (width × height) after resizing."
    )
    max_output_bytes: int = Field(20 * 1024**3, gt=0, description="Largest output file stored.")
    jpeg_quality: int = Field(95, ge=1, le=100)
    max_request_bytes: int = Field(64 * 1024, ge=1024, description="Largest request body; larger ones get 413.")
    request_body_min_bytes_per_s: float = Field(
        2048, ge=0, description="Slowest a request body may arrive, on average since the request's start "
        "with request_body_rate_window_s of it allowed behind; a slower one gets 408, so a client trickling "
        "its body cannot hold one of the ingress's requests in flight for long (0: no floor).")
    request_body_rate_window_s: float = Field(10.0, gt=0)
    request_body_timeout_s: float = Field(
        30.0, gt=0, description="Time a request body may take to arrive whole beyond what its length takes "
        "at request_body_min_bytes_per_s (with no floor, the time any body may take); a slower one gets 408.")

    @property
    def video_cutting(self) -> Cutting:
        return Cutting(self.video_segment_s, self.video_segment_max_frames, self.video_segment_max_preroll_frames,
                       self.video_rekey_segment_mib << 20, self.video_segment_max_mib << 20)

    def model_threads(self, cores: int) -> int:
        """The torch threads of a model replica on a machine with ``cores`` cores."""
        return self.torch_threads or max(1, cores - 1)

    def encoder_threads(self, replica_cpus: float) -> int:
        """Encoder threads of each piece a model replica reserving ``replica_cpus`` CPUs encodes:
        its segments in flight share that reservation, so replicas on one node do not oversubscribe it."""
        return self.video_encoder_threads or max(1, int(replica_cpus) // self.video_segments_per_replica)

    @property
    def upscaler_parallelism(self) -> int:
        """Upscaler replicas there can be at most (sizes the frame window of a video)."""
        return self.upscaler_autoscaling.max_replicas if self.upscaler_autoscaling else self.upscaler_replicas

    def upscaler_host_sharers(self, node_cpus: Optional[float] = None) -> int:
        """Upscaler replicas whose models share one machine's memory: the setting, else every
        replica there can be, but no more than the machine's ``node_cpus`` (Ray's, None: unknown)
        hold at ``upscaler_num_cpus`` each: on a cluster of several machines each divided its
        memory by every replica of the cluster."""
        if self.upscaler_replicas_per_host:
            return self.upscaler_replicas_per_host
        if node_cpus is None or self.upscaler_num_cpus <= 0:
            return self.upscaler_parallelism
        placeable = math.floor(round(node_cpus / self.upscaler_num_cpus, 6))
        return max(1, min(self.upscaler_parallelism, placeable))

    @property
    def upscaler_gpu_share(self) -> float:
        """The part of a GPU each Upscaler replica holds: under 1, Ray packs several on one card."""
        return min(1.0, self.upscaler_num_gpus) or 1.0

    @property
    def seedvr2_parallelism(self) -> int:
        return self.seedvr2_autoscaling.max_replicas if self.seedvr2_autoscaling else self.seedvr2_replicas

    @field_validator("seedvr2_batch_frames")
    @classmethod
    def _four_n_plus_one(cls, value: int) -> int:
        if (value - 1) % 4:
            raise ValueError("must be 4n+1 (1, 5, 9, 13, …): the VAE compresses time 4× after the first frame")
        return value

    @field_validator("seedvr2_vae_tile_size", "seedvr2_vae_tile_overlap")
    @classmethod
    def _latent_aligned(cls, value: int) -> int:
        if value % 8:
            raise ValueError("must be a multiple of 8 (the VAE's spatial factor)")
        return value

    @model_validator(mode="after")
    def _held_and_arriving_leave_room(self) -> "Settings":
        if self.max_held_requests + self.max_arriving_bodies >= INGRESS_MAX_ONGOING_REQUESTS:
            raise ValueError(f"max_held_requests + max_arriving_bodies must stay under the ingress's "
                             f"{INGRESS_MAX_ONGOING_REQUESTS} requests in flight, or /health has no room")
        return self

    @model_validator(mode="after")
    def _overlaps_below_their_sizes(self) -> "Settings":
        if self.seedvr2_temporal_overlap >= self.seedvr2_batch_frames:
            raise ValueError("seedvr2_temporal_overlap must be smaller than seedvr2_batch_frames")
        if self.seedvr2_vae_tile_size and self.seedvr2_vae_tile_overlap >= self.seedvr2_vae_tile_size:
            raise ValueError("seedvr2_vae_tile_overlap must be smaller than seedvr2_vae_tile_size")
        return self

    @field_validator("torch_compile", mode="before")
    @classmethod
    def _compile_mode(cls, value: Any) -> str:
        return compile_mode(value)

    @model_validator(mode="after")
    def _half_is_an_alias(self) -> "Settings":
        if self.half is not None and "model_dtype" not in self.model_fields_set:
            # Set through object.__setattr__: validate_assignment would run this validator again.
            object.__setattr__(self, "model_dtype", "fp16" if self.half else "fp32")
        return self

    @field_validator("weights_dir", "data_dir", mode="after")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        # Replicas may run with another working directory than the driver.
        return value.expanduser().resolve()

    def fetch_policy(self) -> FetchPolicy:
        """What inputs and webhooks may reach, and how much a download may take."""
        return FetchPolicy(
            allow_private=self.allow_private_urls, allowlist=tuple(self.url_allowlist),
            max_bytes=self.download_max_bytes, connect_timeout_s=self.download_connect_timeout_s,
            read_timeout_s=self.download_read_timeout_s, total_timeout_s=self.download_total_timeout_s,
            min_bytes_per_s=self.download_min_bytes_per_s, rate_window_s=self.download_rate_window_s)

    def oss_config(self):
        """The OSS client settings, or ``None`` when no credentials are configured."""
        if not (self.oss_access_key_id and self.oss_access_key_secret and self.oss_endpoint):
            return None
        from tmlsr_ray.storage.oss import OssConfig

        return OssConfig(
            endpoint=self.oss_endpoint, access_key_id=self.oss_access_key_id,
            access_key_secret=self.oss_access_key_secret, security_token=self.oss_security_token,
            region=self.oss_region, bucket=self.oss_bucket, prefix=self.oss_prefix,
            url_expires_s=self.oss_url_expires_s, public_urls=self.oss_public_urls,
            multipart_threshold_bytes=self.oss_multipart_threshold_bytes, part_size_bytes=self.oss_part_size_bytes,
            timeout_s=self.oss_timeout_s,
        )

    def storage_backoff(self) -> Backoff:
        """How an output upload is tried again (OSS answering 5xx or not at all)."""
        return Backoff(self.storage_attempts, self.storage_backoff_s)

    @classmethod
    def load(cls, args: Mapping[str, Any] | "Settings" | None = None,
             environ: Mapping[str, str] | None = None) -> "Settings":
        """Build settings from application args, then apply ``TMLSR_*`` overrides."""
        base = args.model_dump() if isinstance(args, Settings) else dict(args or {})
        env = os.environ if environ is None else environ
        for name in cls.model_fields:
            raw = env.get(ENV_PREFIX + name.upper())
            if raw is not None:
                # pydantic's lax mode parses "6008", "true", "1.5" into the field's type; lists
                # (url_allowlist), objects (upscaler_autoscaling) and null are given as JSON.
                base[name] = json.loads(raw) if _is_json_literal(raw) else raw
        return cls.model_validate(base)


def _is_json_literal(raw: str) -> bool:
    """An environment value meant as JSON rather than as the field's own spelling."""
    stripped = raw.strip()
    return stripped[:1] in ("[", "{") or stripped == "null"
