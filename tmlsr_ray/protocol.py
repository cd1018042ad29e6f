"""The API schema: every request and response body of the REST API, as pydantic models.

Routes (``tmlsr_ray.serve.ingress``) and Python handle callers share these models.
"""

from __future__ import annotations

import math
import re
from decimal import ROUND_HALF_UP, Decimal
from enum import Enum
from typing import Annotated, Any, Dict, List, Literal, Optional, Tuple

from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, field_validator, model_validator
from pydantic_core import PydanticCustomError


class TaskType(str, Enum):
    video = "video"
    image = "image"


class TaskStatus(str, Enum):
    pending = "pending"
    processing = "processing"
    completed = "completed"
    failed = "failed"
    canceled = "canceled"

    @property
    def finished(self) -> bool:
        return self in (TaskStatus.completed, TaskStatus.failed, TaskStatus.canceled)


class StageName(str, Enum):
    download = "download"
    process = "process"
    upload = "upload"


class StageStatus(str, Enum):
    pending = "pending"
    running = "running"
    success = "success"
    failed = "failed"
    canceled = "canceled"
    skipped = "skipped"


MAX_URL_LENGTH = 8192
IMAGE_FORMATS = ("png", "jpeg", "webp")
VIDEO_FORMATS = ("mp4", "mkv", "mov")  # MP4 by default, QuickTime for ProRes
MAX_SCALE = 65536.0  # per axis; the service's max_output_pixels bounds it further at submission
MAX_SIDE = 1 << 20


def _json_number(value: Any) -> Any:
    """A number field takes numbers: ``true`` was read as 1 (a ×1 job, a 1×1 output) and ``"2"`` as 2."""
    if isinstance(value, (bool, str)):
        raise PydanticCustomError("number_type", "must be a number, not {kind}",
                                  {"kind": "true or false" if isinstance(value, bool) else "a string"})
    return value


# The largest noise seed a task or the settings may give: a batch adds a few million to it, which
# torch still seeds (it takes up to 2**64 - 1).
MAX_SEED = 2**63 - 1

Number = BeforeValidator(_json_number)
# Finite numbers only: NaN and ±Infinity (which Python's JSON reader accepts) are refused.
Scale = Annotated[float, Number, Field(gt=0, le=MAX_SCALE, allow_inf_nan=False)]
Side = Annotated[int, Number, Field(ge=1, le=MAX_SIDE)]
MAX_DEADLINE_S = 30 * 86400.0  # a task is canceled at most this long after its submission
Deadline = Annotated[float, Number, Field(gt=0, le=MAX_DEADLINE_S, allow_inf_nan=False)]
MAX_PREFER_WAIT_S = 60  # ``Prefer: wait=N`` holds the request at most this long (larger N are clamped)
WebhookEvent = Literal["completed", "failed", "canceled", "progress"]
# A denoise strength is kept to this many decimals: each strength a replica runs is a mixed copy of
# the network in its cache, and strengths closer than a thousandth (0.3 and 0.30000001 sent by two
# clients' float formatting) mix weights no output can tell apart.
DENOISE_STRENGTH_STEP = Decimal("0.001")


def _rounded_strength(strength: float) -> float:
    """The strength as sent (the float's shortest decimal form, what JSON carried) rounded half up to
    a thousandth: binary rounding took 0.0015 up and 0.2995 down, and kept -0 apart from 0."""
    return float(Decimal(repr(strength)).quantize(DENOISE_STRENGTH_STEP, ROUND_HALF_UP)) + 0.0


DenoiseStrength = Annotated[float, Number, Field(ge=0, le=1, allow_inf_nan=False), AfterValidator(_rounded_strength)]


def model_defaults(params: Dict[str, Any], model_scale: Optional[int], seeded: bool,
                   default_seed: int) -> Dict[str, Any]:
    """What a task's params gain once its model is known (``params`` is the request with its
    defaults filled in): ``outscale`` the model's scale, a seeded model's ``seed`` the service's."""
    filled: Dict[str, Any] = {}
    if params.get("outscale") is None and model_scale is not None:
        filled["outscale"] = float(model_scale)
    if seeded and params.get("seed") is None:
        filled["seed"] = default_seed
    return filled


def check_url_syntax(url: str, schemes: Tuple[str, ...]) -> None:
    """A URL that can be fetched at all: one of ``schemes``, a host of valid syntax, a valid port,
    no spaces or control characters (the address rules come later, where it is resolved)."""
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise ValueError("must not contain spaces or control characters")
    parts = urlsplit(url)
    if parts.scheme not in schemes or not parts.hostname:
        raise ValueError(f"must be a {' or '.join(s + '://' for s in schemes)} URL with a host")
    try:
        parts.port
    except ValueError as exc:
        raise ValueError(f"has an invalid port ({exc})") from None
    host = parts.hostname
    try:
        ascii_host = host.encode("idna").decode("ascii")  # internationalised names as DNS sees them
    except UnicodeError:
        ascii_host = ""
    if not (_IP_LITERAL.fullmatch(host) or _HOSTNAME.fullmatch(ascii_host.rstrip("."))) or len(ascii_host) > 253:
        raise ValueError(f"has an invalid host name {host[:80]!r}")


_HOSTNAME = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)(\.(?!-)[a-z0-9_-]{1,63}(?<!-))*", re.IGNORECASE)
_IP_LITERAL = re.compile(r"[0-9.]+|[0-9a-f:.]+(%[\w.-]+)?", re.IGNORECASE)


class TaskRequest(BaseModel):
    """Body of ``POST /tasks``."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(..., min_length=1, max_length=MAX_URL_LENGTH, description="HTTP(S) or OSS URL of the input file.")
    type: TaskType = Field(TaskType.video, description="`video` or `image`.")
    model: Optional[str] = Field(
        None, min_length=1, max_length=255,
        description="Model file name in the weights directory; default realesr-animevideov3.pth."
    )
    outscale: Optional[Scale] = Field(
        None, description="Scale after super-resolution; default the model's native scale."
    )
    output_magnification: Optional[Scale] = Field(
        None, description="Final size relative to the original; overrides outscale."
    )
    output_dims: Optional[Tuple[Side, Side]] = Field(
        None, description="Exact output [width, height]; overrides outscale and output_magnification."
    )
    resolution: Optional[Side] = Field(
        None, description="Target output height; only for SeedVR2 models, overrides outscale, "
        "output_magnification and output_dims (the width follows the input's aspect ratio)."
    )
    seed: Optional[Annotated[int, Number]] = Field(
        None, ge=0, le=MAX_SEED,
        description="SeedVR2 noise seed (same seed, same input → same output); default the service's.")
    hdr: Literal["keep", "sdr"] = Field(
        "keep", description="HDR video or photo (HLG or PQ): `keep` it HDR (video: 10-bit, same tags and "
        "mastering metadata; photo: PNG with a cICP chunk) or tone-map it to `sdr` (8-bit; BT.709 video, sRGB "
        "photo). SDR inputs are unaffected.")
    callback_url: Optional[str] = Field(
        None, max_length=MAX_URL_LENGTH, description="http(s) URL that receives a JSON POST when the task ends (the task as GET "
        "/tasks/{id} shows it, plus 'event'), signed in X-TMLSR-Signature when a webhook secret is set.")
    callback_progress: StrictBool = Field(
        False, description="Also POST progress events (task.progress) to callback_url while processing.")
    output_format: Optional[Literal[IMAGE_FORMATS + VIDEO_FORMATS]] = Field(
        None, description="Image tasks: png, jpeg or webp; default the input's where it can hold the "
        "result (JPEG, WebP), else PNG. JPEG and WebP are 8-bit; JPEG drops alpha. Video tasks: mp4 "
        "(the default; mov for prores), mkv (Matroska: keeps every audio codec, styled ASS and bitmap "
        "subtitles, and attachments such as fonts) or mov (QuickTime: ProRes, PCM sound kept as it is).")
    output_quality: Optional[Annotated[int, Number]] = Field(
        None, ge=1, le=100, description="Image tasks: JPEG or WebP quality; default 95 (WebP with alpha: lossless).")
    video_codec: Optional[Literal["h264", "hevc", "av1", "prores"]] = Field(
        None, description="Video tasks: the output's codec, where this build has an encoder for it "
        "(a 422 lists the codecs this build has); default the service's (H.264, "
        "HEVC for HDR kept HDR). prores: ProRes 422 HQ (10-bit 4:2:2, intra-frame) in mov or mkv, "
        "for editing and finishing; it takes no crf.")
    crf: Optional[Annotated[int, Number]] = Field(
        None, ge=0, le=63, description="Video tasks: constant rate factor (lower = better; 0–51 for "
        "h264 and hevc, 0–63 for av1); default the service's video_crf.")
    denoise_strength: Optional[DenoiseStrength] = Field(
        None, description="Real-ESRGAN's realesr-general-x4v3 with realesr-general-wdn-x4v3.pth beside it (its "
        "twin trained without denoising): how strongly to denoise, from 0 (the twin: noise and grain kept) to "
        "1 (the model as it is, the default), the two networks' weights mixed as Real-ESRGAN's "
        "--denoise_strength mixes them (its script's default is 0.5), rounded to a thousandth (0.9995 and up: 1). "
        "A 400 for any other model.")
    damaged_frames: Optional[Literal["fail", "repeat"]] = Field(
        None, description="Video tasks: what becomes of frames the decoder cannot read (a bit error in "
        "a broadcast recording, a broken frame of an old download): `fail` the task saying where (the "
        "default), or `repeat` the frame before in each one's place, as players show it, keeping the "
        "frame count and every frame's time; metadata.frames_repeated counts them. A video most of "
        "whose frames are damaged fails either way.")
    deadline_s: Optional[Deadline] = Field(
        None, description="Seconds after submission by which the task must have finished, else it is "
        "canceled with the reason in error (the Cancel-After header sets the same; the sooner wins).")
    callback_events: Optional[List[WebhookEvent]] = Field(
        None, min_length=1, description="Which webhooks callback_url gets: completed, failed, canceled, "
        "progress; default the three end events (callback_progress: true adds progress).")

    def with_deadline(self, seconds: Optional[float]) -> "TaskRequest":
        """This request with a deadline of at most ``seconds`` (a Cancel-After header's)."""
        if seconds is None or (self.deadline_s is not None and self.deadline_s <= seconds):
            return self
        return self.model_copy(update={"deadline_s": seconds})

    @field_validator("callback_url")
    @classmethod
    def _http_callback(cls, url: Optional[str]) -> Optional[str]:
        if url is not None:
            check_url_syntax(url, ("http", "https"))
        return url

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: str) -> str:
        check_url_syntax(url, ("http", "https", "oss"))
        return url

    @model_validator(mode="after")
    def _choices_fit_the_type(self) -> "TaskRequest":
        """Output choices of the other media type are refused, not ignored: the user meant something."""
        wrong = ("video_codec", "crf", "damaged_frames") if self.type == TaskType.image else ("output_quality",)
        for name in wrong:
            if getattr(self, name) is not None:
                raise ValueError(f"{name}: applies to {'video' if self.type == TaskType.image else 'image'} "
                                 f"tasks, and this task's type is {self.type.value}")
        formats = IMAGE_FORMATS if self.type == TaskType.image else VIDEO_FORMATS
        if self.output_format is not None and self.output_format not in formats:
            raise ValueError(f"output_format: {self.output_format} is not a format for {self.type.value} tasks, "
                             f"which take {', '.join(formats)}")
        if self.output_quality is not None and self.output_format == "png":
            raise ValueError("output_quality: applies to jpeg and webp; png is lossless")
        if self.video_codec == "prores" and self.crf is not None:
            raise ValueError("crf: prores has no rate factor, its quality is its profile (422 HQ)")
        if self.crf is not None and self.crf > 51 and self.video_codec != "av1":
            raise ValueError(f"crf: {self.crf} is over 51, the most {self.video_codec or 'h264'} takes (av1 takes 0–63)")
        return self

    def check_bounds(self, max_output_pixels: int) -> None:
        """Sizes that no input could be upscaled to within ``max_output_pixels`` (the smallest
        input is one pixel), refused at submission rather than failing later; ValueError names the field."""
        longest = math.isqrt(max_output_pixels)
        for name in ("outscale", "output_magnification"):
            value = getattr(self, name)
            if value is not None and value > longest:
                raise ValueError(f"{name}: {value:g} is more than any output within max_output_pixels "
                                 f"({max_output_pixels:,}) allows (at most {longest:,})")
        if self.output_dims is not None and self.output_dims[0] * self.output_dims[1] > max_output_pixels:
            width, height = self.output_dims
            raise ValueError(f"output_dims: {width}x{height} = {width * height:,} pixels is over "
                             f"max_output_pixels ({max_output_pixels:,})")
        if self.resolution is not None and self.resolution > longest:
            raise ValueError(f"resolution: {self.resolution:,} is over the largest height "
                             f"max_output_pixels allows ({longest:,})")


class TaskCreated(BaseModel):
    status: Literal["ok"] = "ok"
    task_id: str


class TaskBatch(BaseModel):
    """Body of ``POST /tasks/batch``."""

    model_config = ConfigDict(extra="forbid")

    tasks: List[Any] = Field(
        ..., min_length=1, description="POST /tasks bodies (TaskRequest), at most the service's "
        "max_batch_tasks; each is checked on its own.")


class BatchItemError(BaseModel):
    """A body of a batch that was refused: what a POST /tasks of it alone would have answered."""

    status: Literal["error"] = "error"
    error: str
    detail: Any = None


class TaskBatchCreated(BaseModel):
    """Answer of ``POST /tasks/batch``: one item per body, in order."""

    tasks: List[TaskCreated | BatchItemError]


class Stage(BaseModel):
    name: StageName
    status: StageStatus = StageStatus.pending
    duration: Optional[float] = Field(None, description="Seconds spent in the stage.")
    detail: Optional[Dict[str, Any]] = Field(None, description="Progress of a running stage.")


class TaskOutput(BaseModel):
    url: Optional[str] = None
    metadata: Dict[str, Any] = Field(default_factory=dict)
    expired: bool = Field(False, description="The output was removed by retention; url is then null.")


class TaskView(BaseModel):
    """Body of ``GET /tasks/{task_id}``."""

    task_id: str
    status: TaskStatus
    created_at: str = Field(..., description="ISO-8601 UTC, e.g. 2023-10-27T10:00:00Z")
    updated_at: str
    params: Dict[str, Any]
    stages: List[Stage]
    output: Optional[TaskOutput] = None
    error: Optional[str] = None

    def with_output_base(self, base: Optional[str]) -> "TaskView":
        """This view with a service-relative output link (local storage) made absolute under
        ``base``; a copy when it changes, so the original (maybe a stored record's) stays as is."""
        if not (base and self.output and self.output.url and self.output.url.startswith("/")):
            return self
        view = self.model_copy(deep=True)
        view.output.url = base.rstrip("/") + view.output.url
        return view


class TaskEventKind(str, Enum):
    """The ``event:`` of ``GET /tasks/{id}/events``: what changed since the event before."""

    status = "status"  # the status, or a field no other kind names (also the first event: a snapshot)
    stage = "stage"  # a stage started or ended
    progress = "progress"  # a running stage's detail (frames, fps, ETA)
    output = "output"  # the output is there (the task completed)
    error = "error"  # the task failed, or was canceled with a reason
    end = "end"  # the last event: the final view; the stream closes after it


class CancelResult(BaseModel):
    status: Literal["canceled"] = "canceled"


class SystemStats(BaseModel):
    max_workers: int
    active_workers: int
    queue_size: int


class MonitorStats(BaseModel):
    system: SystemStats
    stats: Dict[TaskStatus, int]
    tasks: List[TaskView]


class ModelEntry(BaseModel):
    """A file of the weights directory, as ``GET /models`` lists it."""

    name: str
    family: Optional[str] = Field(None, description="Backend serving it: realesrgan, spandrel or seedvr2.")
    architecture: Optional[str] = None
    scale: Optional[int] = Field(None, description="Output / input size; null for a model of any scale (SeedVR2).")
    size_multiple: Optional[int] = Field(None, description="Input sides the network needs a multiple of (padded).")
    minimum: Optional[int] = Field(None, description="Shortest input side the network runs on, where it has one "
                                   "(a smaller input is padded to it); null: any.")
    dtypes: List[str] = Field(default_factory=list, description="Number types it may run in.")
    bytes: int
    loaded: bool = Field(False, description="A model replica holds it loaded now.")
    channels: Optional[List[int]] = Field(None, description="[in, out] channels of the network.")
    purpose: Optional[str] = Field(None, description="SR (scale > 1) or Restoration (scale 1).")
    temporal: bool = Field(False, description="Restores several frames together (video-native).")
    seeded: bool = Field(False, description="Its output depends on a noise seed (the task's `seed` applies).")
    error: Optional[str] = Field(None, description="Why the file cannot be served (the other fields are then null).")
    denoise_strength: bool = Field(False, description="A task may give it a denoise_strength (Real-ESRGAN's "
                                   "realesr-general-x4v3 with its weak-denoise twin of the same network beside it).")


class ModelList(BaseModel):
    """Body of ``GET /models``."""

    models: List[ModelEntry]


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    final_statuses: List[TaskStatus] = Field(
        default_factory=lambda: [status for status in TaskStatus if status.finished],
        description="Task statuses that never change again (clients stop following a task there).")


class ErrorBody(BaseModel):
    """Every 4xx answer: ``error`` is the readable reason (``detail`` repeats it, or lists the
    validation errors for a 422); some carry more fields (``task_id`` for a 409 key conflict,
    ``task_status`` for a 409 cancel)."""

    status: Literal["error"] = "error"
    error: str
    detail: Any = None
    task_id: Optional[str] = Field(None, description="409 for a reused Idempotency-Key: the task it created.")
    task_status: Optional[TaskStatus] = Field(None, description="409 for a cancel: how the task ended.")
