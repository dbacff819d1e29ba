"""One typed source of truth for every setting: the run's knobs and every worker variable.

Defaults live here, environment variables (``FACEPIPE_<NAME>``) override them, and
command-line flags override both. Each setting is declared once, with its type, default,
constraint, help text and ``--help`` group (:func:`setting`), in one of the blocks below;
the blocks are shared by whoever needs them:

* :class:`Settings`: everything ``facepipe run`` (and the other commands) can be told. The
  CLI builds its flags and their groups from these fields.
* :class:`WorkerSettings`: every variable a worker process reads (broker, model files,
  threads, redelivery, caches, test hooks). ``celeryconfig.py`` and the tasks read it;
  nothing in facepipe reads ``os.environ`` itself.
* :class:`facepipe.records.RunParams`: what a run records for its workers, built from the
  blocks a worker needs (:class:`FrameSettings`, :class:`ModelFileSettings`,
  :class:`ClusteringSettings`, :class:`HandlingSettings`, :class:`RuntimeSettings`,
  :class:`DecodingSettings`), with ``auto`` values resolved.

The choices a setting can take are enums (:class:`Backend`, :class:`Precision`,
:class:`Providers`, :class:`Decoder`, :class:`Clustering`), used everywhere the value is.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from facepipe.errors import FacepipeError

ENV_PREFIX = "FACEPIPE_"
#: the online match threshold of the seed system, and facepipe's (stricter: the final pass joins)
SEED_SIM_THRESH = 0.27
ONLINE_SIM_THRESH = 0.40


class Choice(str, Enum):
    """A setting's value among fixed choices: compares, prints and serialises as its text."""

    __str__ = str.__str__
    __format__ = str.__format__

    @classmethod
    def values(cls) -> tuple[str, ...]:
        return tuple(member.value for member in cls)


class Backend(Choice):
    """``--backend``: the inference runtime (:func:`facepipe.inference.runtimes.resolve_runtime`)."""

    auto = "auto"
    onnxruntime = "onnxruntime"
    openvino = "openvino"


class Precision(Choice):
    """``--precision``: the models' arithmetic (:func:`facepipe.inference.runtimes.model_precision`)."""

    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"
    int8 = "int8"


class Providers(Choice):
    """``--providers``: ONNX Runtime's execution providers."""

    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Decoder(Choice):
    """``--decoder``: how chunks are planned and their frames read (:mod:`facepipe.media.plan`)."""

    auto = "auto"
    pyav = "pyav"
    opencv = "opencv"


class Clustering(Choice):
    """``--clustering``: how faces become identities (:mod:`facepipe.clustering.final`)."""

    tracks = "tracks"
    online = "online"
    seed = "seed"


#: ``--help``'s groups, in the order it shows them
GROUPS = (
    "sampling and blur gate",
    "detection and alignment",
    "identities",
    "speed: inference runtime and decoding",
    "workers and broker",
    "several videos (a season)",
    "naming and search (facepipe name, find)",
    "outputs",
)
#: the ``--help`` groups that only ``facepipe name`` and ``facepipe find`` show
CURATION_GROUPS = ("naming and search (facepipe name, find)",)
#: defaults of --match-thresh and --match-margin (measured: :mod:`facepipe.clustering.matching`)
MATCH_THRESH = 0.25
MATCH_MARGIN = 0.05


def setting(default: Any, group: str, description: str, **constraints: Any) -> Any:
    """A settings field: its default, its ``--help`` group (one of :data:`GROUPS`) and text."""
    if group not in GROUPS:
        raise ValueError(f"unknown settings group {group!r}")
    return Field(default, description=description, json_schema_extra={"group": group}, **constraints)


def group_of(field: Any) -> str | None:
    """The ``--help`` group a field was declared with (None for one without)."""
    extra = field.json_schema_extra
    return extra.get("group") if isinstance(extra, dict) else None


#: ``--num-det``/``--num-emb``: a process count, or 'auto' (sized to the machine)
Count = Annotated[int, Field(ge=1)] | Literal["auto"]


def parse_size(text: str) -> tuple[int, int]:
    """Parse ``WIDTHxHEIGHT`` (for ``--det-input``) into a tuple of positive ints."""
    parts = str(text).lower().split("x")
    try:
        width, height = (int(p) for p in parts)
    except ValueError:
        raise ValueError(f"expected WIDTHxHEIGHT such as 640x640, got {text!r}") from None
    if width < 32 or height < 32 or width % 32 or height % 32:
        raise ValueError(f"sides must be multiples of 32 and at least 32, got {text!r}")
    return width, height


def auto_det_input(width: int, height: int, long_side: int = 640) -> tuple[int, int]:
    """``--det-input auto``: ``long_side`` on the frame's long side, the short side scaled alike and
    rounded up to a multiple of 32 (what SCRFD's strides need). 1280x720 gives 640x384: the
    frame letterboxed to 640x360 fills it but for 24 rows, where 640x640 pads 280 rows of
    black that the detector would scan for nothing."""
    if width <= 0 or height <= 0:
        return long_side, long_side
    # ceil(short side * long_side / long side / 32) * 32, in integers (no float rounding)
    short = max(32, -(-(min(width, height) * long_side) // (max(width, height) * 32)) * 32)
    return (long_side, short) if width >= height else (short, long_side)


# -- the blocks a run records for its workers (RunParams), in the order it records them -----


class FrameSettings(BaseModel):
    """What a detect worker does to the frames: sampling, the blur gate, detection."""

    # Sampling and the blur gate (run before detection, so blurry frames cost no inference).
    frame_step: int = setting(15, "sampling and blur gate", "process every Nth frame (1 = every frame)", ge=1)
    blur_enable: bool = setting(False, "sampling and blur gate", "skip blurry frames before detection")
    blur_var_thresh: float = setting(
        120.0, "sampling and blur gate", "variance of the Laplacian below which a frame/tile is blurry", ge=0
    )
    blur_grid: int = setting(
        0, "sampling and blur gate", "0 = one global score; N = judge an N x N grid of tiles", ge=0
    )
    blur_grid_min_keep: float = setting(
        0.25,
        "sampling and blur gate",
        "with --blur-grid, keep a frame when this share of tiles is sharp",
        ge=0,
        le=1,
    )
    blur_resize: int = setting(
        0,
        "sampling and blur gate",
        "downscale so the longer side is N px before the blur score (0 = off)",
        ge=0,
    )

    # Detection. NoDecode: FACEPIPE_DET_INPUT=640x384 is text for the validator below, not JSON.
    det_input: Annotated[tuple[int, int] | Literal["auto"], NoDecode] = setting(
        "auto",
        "detection and alignment",
        "SCRFD input size WIDTHxHEIGHT (multiples of 32), or auto: 640 on the frame's long "
        "side, the short side rounded up to a multiple of 32 (640x384 for 16:9)",
    )
    det_thresh: float = setting(0.7, "detection and alignment", "minimum detection score", gt=0, lt=1)
    nms_thresh: float = setting(0.4, "detection and alignment", "non-maximum suppression IoU", gt=0, le=1)
    min_face: int = setting(60, "detection and alignment", "drop faces narrower than N px", ge=0)

    @field_validator("det_input", mode="before")
    @classmethod
    def _det_input(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() == "auto":
            return "auto"
        return parse_size(value) if isinstance(value, str) else value


class ModelFileSettings(BaseModel):
    """Which ONNX files the two models load (found automatically by default)."""

    det_model: Path | None = setting(
        None, "detection and alignment", "SCRFD .onnx file (default: found automatically)"
    )
    rec_model: Path | None = setting(
        None, "detection and alignment", "ArcFace .onnx file (default: found automatically)"
    )


class ClusteringSettings(BaseModel):
    """How faces become identities."""

    clustering: Clustering = setting(
        Clustering.tracks,
        "identities",
        "tracks: face tracks within shots, false faces gated, tracks clustered at "
        "--merge-thresh; online: the writer's identities merged at --merge-thresh (the previous "
        "default); seed: the seed's algorithm exactly (online centroids at --sim-thresh only)",
    )
    shot_cuts: bool = setting(True, "identities", "with tracks: end every track at a detected shot cut")
    face_gate: bool = setting(
        True,
        "identities",
        "with tracks: drop tracks of dark faces the recogniser is unsure of, unless they join a person",
    )
    sim_thresh: float | None = setting(
        None,
        "identities",
        "cosine at or above which a face joins an identity online (default 0.40; 0.27 with "
        "--clustering seed, the seed's own)",
        ge=-1,
        le=1,
    )
    merge_thresh: float = setting(
        0.25,
        "identities",
        "after the run, join tracks (or identities) whose faces average this cosine and "
        "never share a frame (0 = off: every track its own identity, suspect tracks dropped; ignored "
        "with --clustering seed)",
        ge=0,
        le=1,
    )
    refine_limit: int = setting(
        30, "identities", "faces after which an identity's centroid stops moving", ge=1
    )
    min_faces: int = setting(
        1,
        "identities",
        "mark identities with fewer faces as extras (background people) in the summary and "
        "report; they stay in every output, flagged (1 = off)",
        ge=1,
    )

    def online_sim_thresh(self) -> float:
        """``--sim-thresh``, else the mode's default: the seed's 0.27, or 0.40."""
        if self.sim_thresh is not None:
            return self.sim_thresh
        return SEED_SIM_THRESH if self.clustering == Clustering.seed else ONLINE_SIM_THRESH


class HandlingSettings(BaseModel):
    """What the writer does with faces besides clustering, and how failures are retried."""

    save_images: bool = setting(False, "outputs", "save every face crop under --save-dir")
    save_dir: Path | None = setting(None, "outputs", "crop folder (default: OUT/faces)")
    task_retries: int = setting(
        2, "workers and broker", "retries of a failing chunk before it is recorded as lost", ge=0
    )


class RuntimeSettings(BaseModel):
    """The inference runtime (:func:`facepipe.inference.runtimes.make_session` is where it acts)."""

    backend: Backend = setting(
        Backend.auto,
        "speed: inference runtime and decoding",
        "inference runtime: auto (ONNX Runtime with CUDA where a GPU is usable; on an "
        "x86-64 CPU with OpenVINO, each model on the runtime measured faster for it; else ONNX "
        "Runtime), onnxruntime, openvino",
    )
    precision: Precision = setting(
        Precision.auto,
        "speed: inference runtime and decoding",
        "model arithmetic: auto (ArcFace in bf16 where the CPU computes bf16 natively, SCRFD in "
        "fp32: measured to change no face or identity), fp32, bf16 (both models; SCRFD then moves "
        "a few faces), int8 (ArcFace quantized with NNCF at first use and cached; SCRFD in fp32; "
        "needs pip install 'facepipe[int8]')",
    )


class DecodingSettings(BaseModel):
    """How a run's video is cut into chunks and read."""

    decoder: Decoder = setting(
        Decoder.auto,
        "speed: inference runtime and decoding",
        "auto/pyav: chunks on keyframes, each frame decoded once, unsampled non-reference "
        "frames skipped (PyAV); opencv: the seed's fixed frame ranges, one OpenCV seek per chunk",
    )


# -- what a process is told ------------------------------------------------------------------


class ModelSettings(RuntimeSettings, ModelFileSettings, BaseSettings):
    """How a process loads and runs the two ONNX models (shared by the CLI and workers)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", env_ignore_empty=True)

    providers: Providers = setting(
        Providers.auto,
        "speed: inference runtime and decoding",
        "ONNX Runtime: auto (CUDA where onnxruntime-gpu sees a GPU, else CPU), cpu, cuda",
    )
    ort_threads: int = setting(
        0,
        "speed: inference runtime and decoding",
        "ONNX Runtime / OpenVINO threads per worker process (0 = the runtime's default)",
        ge=0,
    )


class BrokerTlsSettings(BaseModel):
    """How a ``rediss://`` broker's certificate is checked (the dispatcher's and the workers')."""

    tls_ca_certs: Path | None = setting(
        None,
        "workers and broker",
        "CA bundle (PEM) that signed a rediss:// broker's certificate (default: the system's CAs)",
    )


class Settings(
    DecodingSettings, HandlingSettings, ClusteringSettings, FrameSettings, BrokerTlsSettings, ModelSettings
):
    """Every knob of a run. Field descriptions double as ``--help`` text, groups as its sections."""

    chunk_size: int = setting(
        8, "sampling and blur gate", "sampled frames per detect task; smaller spreads work wider", ge=1
    )

    # Workers and where they meet.
    num_det: Count = setting(
        "auto", "workers and broker", "detect worker processes (embedded mode); auto: sized to the cores"
    )
    num_emb: Count = setting(
        "auto", "workers and broker", "embed worker processes (embedded mode); auto: sized to the cores"
    )
    broker: str | None = setting(
        None,
        "workers and broker",
        "redis:// URL of running workers' broker (default: FACEPIPE_BROKER_URL if set, "
        "else an embedded server)",
    )
    redis_host: str | None = setting(
        None, "workers and broker", "broker/store host; shorthand for --broker redis://HOST:PORT/0"
    )
    redis_port: int = setting(6379, "workers and broker", "port for --redis-host", ge=1, le=65535)
    redis_prefix: str = setting(
        "facepipe", "workers and broker", "key prefix; each run lives under PREFIX:run:ID", min_length=1
    )
    ship_frames: bool = setting(
        False,
        "workers and broker",
        "send sampled frames inside the task messages (JPEG) for workers that "
        "cannot read the video; costs dispatcher decode time and broker memory",
    )
    ship_quality: int = setting(95, "workers and broker", "JPEG quality of shipped frames", ge=50, le=100)
    max_message_mb: float = setting(
        16.0,
        "workers and broker",
        "largest task message allowed with --ship-frames (lower --chunk-size)",
        gt=0,
    )
    stall_timeout: float = setting(
        300.0,
        "workers and broker",
        "give up when no chunk completes for this many seconds (a broker outage included: the "
        "dispatcher waits for the broker that long)",
        gt=0,
    )
    resend_after: float = setting(
        60.0,
        "workers and broker",
        "with --broker: when no chunk completes for this many seconds, send again the chunk the "
        "writer waits for, in case its message was lost (Celery's Redis transport can lose one "
        "that a worker took just as it was killed); a second copy does nothing (0 = never)",
        ge=0,
    )
    keep_hours: float = setting(
        24.0,
        "workers and broker",
        "with --broker: hours a finished run's faces, embeddings and thumbnails stay in Redis after "
        "its outputs are written; then only a small record of the run is left (0 = keep them until "
        "'facepipe delete')",
        ge=0,
    )

    # Several videos.
    bank: Path | None = setting(
        None,
        "several videos (a season)",
        "start from an earlier series bank (OUT/series/bank.npz): its people keep their ids, "
        "new people get new ones",
    )

    # Naming and search (facepipe name, facepipe find).
    match_thresh: float = setting(
        MATCH_THRESH,
        "naming and search (facepipe name, find)",
        "cosine between an identity's centroid and a name's reference photos (name), or a photo's "
        "face (find), at or above which they match",
        ge=-1,
        le=1,
    )
    match_margin: float = setting(
        MATCH_MARGIN,
        "naming and search (facepipe name, find)",
        "name: how far the best name must lead the second-best; closer is ambiguous and stays unnamed",
        ge=0,
        le=2,
    )

    # Outputs.
    out: Path | None = setting(None, "outputs", "output folder (default: facepipe-runs/<run id>)")
    debug: bool = setting(False, "outputs", "verbose logs, worker logs shown, tracebacks kept")
    progress: bool = setting(True, "outputs", "show progress bars")

    def broker_url(self) -> str | None:
        """The broker to use, or None for the embedded default.

        ``--broker`` (``FACEPIPE_BROKER``), then ``--redis-host``/``--redis-port``, then
        ``FACEPIPE_BROKER_URL`` (the variable workers read, so a shell set up for
        workers submits to them too).
        """
        if self.broker:
            return self.broker
        if self.redis_host:
            return f"redis://{self.redis_host}:{self.redis_port}/0"
        return WorkerSettings().broker_url


class WorkerSettings(BrokerTlsSettings, ModelSettings):
    """Every environment variable a worker process reads, with its one default.

    Set them in the worker's environment (compose's ``.env``, a systemd unit, the shell);
    the embedded default passes them to the workers it starts.
    """

    broker_url: str | None = Field(
        None,
        description="broker and run store, redis://[:PASSWORD@]HOST:PORT/DB (default redis://localhost:6379/0)",
    )
    result_backend: str | None = Field(None, description="Celery result backend (unused by facepipe: off)")
    visibility_timeout: int = Field(
        900,
        ge=1,
        description="seconds before a message taken by a vanished worker is redelivered; keep it above "
        "the longest chunk's processing time",
    )
    restore_interval: int = Field(5, ge=1, description="how often (s) to look for such abandoned messages")
    task_events: bool = Field(
        True, description="send task events for Flower (the embedded default turns them off)"
    )
    preload: str = Field(
        "", description="models to load at worker start-up: 'detector', 'embedder' (comma-separated)"
    )
    decode_threads: int = Field(
        1, ge=0, description="FFmpeg decoder threads per process (0 = FFmpeg's choice)"
    )
    model_cache: Path = Field(
        Path.home() / ".cache" / "facepipe" / "models",
        description="where quantized models (--precision int8) are cached, built once per host",
    )
    hwaccel: str = Field(
        "",
        pattern="^(|cuda)$",
        description="decode on the GPU: 'cuda' (NVDEC through PyAV, where a device can be created; "
        "else the CPU, with one log line); empty: the CPU",
    )
    cv_threads: int = Field(
        1, ge=0, description="OpenCV threads per process (parallelism comes from processes)"
    )
    cache_dir: Path = Field(
        Path.home() / ".cache" / "facepipe" / "videos",
        description="where http(s) videos are downloaded, once per host",
    )
    fault_inject: str = Field(
        "",
        description="TEST HOOK: 'stage:seq,...' SIGKILLs the worker after that chunk's work, before its ack; "
        "'dispatch:N' SIGKILLs the dispatcher after it sent N chunks",
    )

    def preloaded(self) -> set[str]:
        return {name.strip() for name in self.preload.split(",") if name.strip()}

    def as_env(self) -> dict[str, str]:
        """The explicitly set fields as ``FACEPIPE_*`` variables, to hand to a child worker."""
        env = {}
        for name in self.model_fields_set:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool):
                value = int(value)
            env[ENV_PREFIX + name.upper()] = str(value)
        return env


def load_settings(**overrides: Any) -> Settings:
    """Build settings from env vars plus explicit overrides; bad values become one-line errors."""
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise FacepipeError(f"{describe_error(exc, flags=True)} (see 'facepipe run --help')") from None


def load_worker_settings() -> WorkerSettings:
    """The worker's settings from its environment; a bad variable becomes a one-line error."""
    try:
        return WorkerSettings()
    except ValidationError as exc:
        raise FacepipeError(describe_error(exc, flags=False)) from None


def describe_error(exc: ValidationError, flags: bool) -> str:
    """The first validation error as 'bad value for --flag: why' (or FACEPIPE_VAR for workers)."""
    err = exc.errors()[0]
    field = str(err["loc"][0]) if err["loc"] else ""
    if not field:
        name = "settings"
    elif flags:
        name = "--" + field.replace("_", "-")
    else:
        name = ENV_PREFIX + field.upper()
    return f"bad value for {name}: {err['msg'].removeprefix('Value error, ')}"
