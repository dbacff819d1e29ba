"""One typed source of truth for every setting: the run's knobs and every worker variable.

Defaults live here, environment variables (``FACEPIPE_<NAME>``) override them, and
command-line flags override both. Two models share this module:

* :class:`Settings`: everything ``facepipe run`` (and the other commands) can be told.
  The CLI builds its flags from these fields, so a setting's name, type, default and
  help text are written exactly once.
* :class:`WorkerSettings`: every variable a worker process reads (broker, model files,
  threads, redelivery, caches, test hooks). ``celeryconfig.py`` and the tasks read it;
  nothing in facepipe reads ``os.environ`` itself.

The model-loading fields (``ort_threads``, ``providers``, ``backend``, ``precision``,
``det_model``, ``rec_model``) belong to both, through :class:`ModelSettings`, so each has
one default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from facepipe.errors import FacepipeError

ENV_PREFIX = "FACEPIPE_"
#: the online match threshold of the seed system, and facepipe's (stricter: the final pass joins)
SEED_SIM_THRESH = 0.27
ONLINE_SIM_THRESH = 0.40


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


class ModelSettings(BaseSettings):
    """How a process loads and runs the two ONNX models (shared by the CLI and workers)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", env_ignore_empty=True)

    det_model: Path | None = Field(None, description="SCRFD .onnx file (default: found automatically)")
    rec_model: Path | None = Field(None, description="ArcFace .onnx file (default: found automatically)")
    providers: str = Field(
        "auto",
        pattern="^(auto|cpu|cuda)$",
        description="ONNX Runtime: auto (CUDA where onnxruntime-gpu sees a GPU, else CPU), cpu, cuda",
    )
    ort_threads: int = Field(
        0, ge=0, description="ONNX Runtime / OpenVINO threads per worker process (0 = the runtime's default)"
    )

    # Inference runtime (issue #11). make_session() in facepipe/models.py is where they act.
    backend: str = Field(
        "auto",
        pattern="^(auto|onnxruntime|openvino)$",
        description="inference runtime: auto (ONNX Runtime with CUDA where a GPU is usable; on an "
        "x86-64 CPU with OpenVINO, each model on the runtime measured faster for it; else ONNX "
        "Runtime), onnxruntime, openvino",
    )
    precision: str = Field(
        "fp32",
        pattern="^(fp32|bf16)$",
        description="model arithmetic: fp32, or bf16 (OpenVINO on a CPU with native bf16; faster, "
        "embeddings within ~0.003 cosine)",
    )


class Settings(ModelSettings):
    """Every knob of a run. Field descriptions double as ``--help`` text."""

    # Sampling and the blur gate (run before detection, so blurry frames cost no inference).
    frame_step: int = Field(15, ge=1, description="process every Nth frame (1 = every frame)")
    chunk_size: int = Field(8, ge=1, description="sampled frames per detect task; smaller spreads work wider")
    blur_enable: bool = Field(False, description="skip blurry frames before detection")
    blur_var_thresh: float = Field(
        120.0, ge=0, description="variance of the Laplacian below which a frame/tile is blurry"
    )
    blur_grid: int = Field(0, ge=0, description="0 = one global score; N = judge an N x N grid of tiles")
    blur_grid_min_keep: float = Field(
        0.25, ge=0, le=1, description="with --blur-grid, keep a frame when this share of tiles is sharp"
    )
    blur_resize: int = Field(
        0, ge=0, description="downscale so the longer side is N px before the blur score (0 = off)"
    )

    # Detection and alignment.
    # NoDecode: FACEPIPE_DET_INPUT=640x384 is text for the validator below, not JSON.
    det_input: Annotated[tuple[int, int] | Literal["auto"], NoDecode] = Field(
        "auto",
        description="SCRFD input size WIDTHxHEIGHT (multiples of 32), or auto: 640 on the frame's long "
        "side, the short side rounded up to a multiple of 32 (640x384 for 16:9)",
    )
    det_thresh: float = Field(0.7, gt=0, lt=1, description="minimum detection score")
    nms_thresh: float = Field(0.4, gt=0, le=1, description="non-maximum suppression IoU")
    min_face: int = Field(60, ge=0, description="drop faces narrower than N px")

    # Identity clustering.
    clustering: Literal["tracks", "online", "seed"] = Field(
        "tracks",
        description="tracks: face tracks within shots, false faces gated, tracks clustered at "
        "--merge-thresh; online: the writer's identities merged at --merge-thresh (the previous "
        "default); seed: the seed's algorithm exactly (online centroids at --sim-thresh only)",
    )
    shot_cuts: bool = Field(True, description="with tracks: end every track at a detected shot cut")
    face_gate: bool = Field(
        True,
        description="with tracks: drop tracks of dark faces the recogniser is unsure of, unless they "
        "join a person",
    )
    sim_thresh: float | None = Field(
        None,
        ge=-1,
        le=1,
        description="cosine at or above which a face joins an identity online (default 0.40; 0.27 with "
        "--clustering seed, the seed's own)",
    )
    merge_thresh: float = Field(
        0.25,
        ge=0,
        le=1,
        description="after the run, join tracks (or identities) whose faces average this cosine and "
        "never share a frame (0 = off: every track its own identity, suspect tracks dropped; ignored "
        "with --clustering seed)",
    )
    refine_limit: int = Field(30, ge=1, description="faces after which an identity's centroid stops moving")
    min_faces: int = Field(
        1,
        ge=1,
        description="mark identities with fewer faces as extras (background people) in the summary and "
        "report; they stay in every output, flagged (1 = off)",
    )

    # Workers and where they meet.
    num_det: Count = Field(
        "auto", description="detect worker processes (embedded mode); auto: sized to the cores"
    )
    num_emb: Count = Field(
        "auto", description="embed worker processes (embedded mode); auto: sized to the cores"
    )
    broker: str | None = Field(
        None,
        description="redis:// URL of running workers' broker (default: FACEPIPE_BROKER_URL if set, "
        "else an embedded server)",
    )
    redis_host: str | None = Field(
        None, description="broker/store host; shorthand for --broker redis://HOST:PORT/0"
    )
    redis_port: int = Field(6379, ge=1, le=65535, description="port for --redis-host")
    redis_prefix: str = Field(
        "facepipe", min_length=1, description="key prefix; each run lives under PREFIX:run:ID"
    )
    ship_frames: bool = Field(
        False,
        description="send sampled frames inside the task messages (JPEG) for workers that "
        "cannot read the video; costs dispatcher decode time and broker memory",
    )
    ship_quality: int = Field(95, ge=50, le=100, description="JPEG quality of shipped frames")
    max_message_mb: float = Field(
        16.0, gt=0, description="largest task message allowed with --ship-frames (lower --chunk-size)"
    )
    stall_timeout: float = Field(
        300.0, gt=0, description="give up when no chunk completes for this many seconds"
    )
    task_retries: int = Field(2, ge=0, description="retries of a failing chunk before it is recorded as lost")

    # Several videos.
    bank: Path | None = Field(
        None,
        description="start from an earlier series bank (OUT/series/bank.npz): its people keep their ids, "
        "new people get new ones",
    )

    # Outputs.
    out: Path | None = Field(None, description="output folder (default: facepipe-runs/<run id>)")
    save_images: bool = Field(False, description="save every face crop under --save-dir")
    save_dir: Path | None = Field(None, description="crop folder (default: OUT/faces)")
    debug: bool = Field(False, description="verbose logs, worker logs shown, tracebacks kept")
    progress: bool = Field(True, description="show progress bars")

    # Decoding (issue #11).
    decoder: str = Field(
        "auto",
        pattern="^(auto|pyav|opencv)$",
        description="auto/pyav: chunks on keyframes, each frame decoded once, unsampled non-reference "
        "frames skipped (PyAV); opencv: the seed's fixed frame ranges, one OpenCV seek per chunk",
    )

    def online_sim_thresh(self) -> float:
        """``--sim-thresh``, else the mode's default: the seed's 0.27, or 0.40."""
        if self.sim_thresh is not None:
            return self.sim_thresh
        return SEED_SIM_THRESH if self.clustering == "seed" else ONLINE_SIM_THRESH

    @field_validator("det_input", mode="before")
    @classmethod
    def _det_input(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() == "auto":
            return "auto"
        return parse_size(value) if isinstance(value, str) else value

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


class WorkerSettings(ModelSettings):
    """Every environment variable a worker process reads, with its one default.

    Set them in the worker's environment (compose's ``.env``, a systemd unit, the shell);
    the embedded default passes them to the workers it starts.
    """

    broker_url: str | None = Field(
        None,
        description="broker and run store, redis://[:PASSWORD@]HOST:PORT/DB (default redis://localhost:6379/0)",
    )
    tls_ca_certs: Path | None = Field(
        None, description="CA bundle for a rediss:// broker (default: system CAs)"
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
    cv_threads: int = Field(
        1, ge=0, description="OpenCV threads per process (parallelism comes from processes)"
    )
    cache_dir: Path = Field(
        Path.home() / ".cache" / "facepipe" / "videos",
        description="where http(s) videos are downloaded, once per host",
    )
    fault_inject: str = Field(
        "",
        description="TEST HOOK: 'stage:seq,...' SIGKILLs the worker after that chunk's work, before its ack",
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
