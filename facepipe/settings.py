"""One typed source of truth for every setting.

Defaults live here, environment variables (``FACEPIPE_<NAME>``) override them, and
command-line flags override both. The CLI builds its flags from these fields, so a
setting's name, type, default and help text are written exactly once. Workers build
the same object from their environment, so a worker on another host is configured
the same way as the CLI.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from facepipe.errors import FacepipeError


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


class Settings(BaseSettings):
    """Every knob of a run. Field descriptions double as ``--help`` text."""

    model_config = SettingsConfigDict(env_prefix="FACEPIPE_", extra="ignore", env_ignore_empty=True)

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
    det_input: tuple[int, int] = Field(
        (640, 640), description="SCRFD input size WIDTHxHEIGHT (multiples of 32)"
    )
    det_thresh: float = Field(0.7, gt=0, lt=1, description="minimum detection score")
    nms_thresh: float = Field(0.4, gt=0, le=1, description="non-maximum suppression IoU")
    min_face: int = Field(60, ge=0, description="drop faces narrower than N px")
    det_model: Path | None = Field(None, description="SCRFD .onnx file (default: found automatically)")
    rec_model: Path | None = Field(None, description="ArcFace .onnx file (default: found automatically)")

    # Identity clustering.
    sim_thresh: float = Field(
        0.40,
        ge=-1,
        le=1,
        description="cosine at or above which a face joins an identity online (the seed used 0.27)",
    )
    merge_thresh: float = Field(
        0.25,
        ge=0,
        le=1,
        description="after the run, merge identities whose faces average this cosine and never "
        "share a frame (0 = off; 0 with --sim-thresh 0.27 is the seed's algorithm)",
    )
    refine_limit: int = Field(30, ge=1, description="faces after which an identity's centroid stops moving")

    # Workers and where they meet.
    num_det: int = Field(1, ge=1, description="detect worker processes (embedded mode)")
    num_emb: int = Field(1, ge=1, description="embed worker processes (embedded mode)")
    broker: str | None = Field(
        None, description="redis:// URL of running workers' broker (default: embedded server)"
    )
    redis_host: str | None = Field(
        None, description="broker/store host; shorthand for --broker redis://HOST:PORT/0"
    )
    redis_port: int = Field(6379, ge=1, le=65535, description="port for --redis-host")
    redis_prefix: str = Field(
        "facepipe", min_length=1, description="key prefix; each run lives under PREFIX:run:ID"
    )
    providers: str = Field(
        "auto",
        pattern="^(auto|cpu|cuda)$",
        description="ONNX Runtime: auto (CUDA where onnxruntime-gpu sees a GPU, else CPU), cpu, cuda",
    )
    ort_threads: int = Field(0, ge=0, description="ONNX Runtime threads per worker process (0 = its default)")
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

    # Outputs.
    out: Path | None = Field(None, description="output folder (default: facepipe-runs/<run id>)")
    save_images: bool = Field(False, description="save every face crop under --save-dir")
    save_dir: Path | None = Field(None, description="crop folder (default: OUT/faces)")
    debug: bool = Field(False, description="verbose logs, worker logs shown, tracebacks kept")
    progress: bool = Field(True, description="show progress bars")

    @field_validator("det_input", mode="before")
    @classmethod
    def _det_input(cls, value: Any) -> Any:
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
        return os.environ.get("FACEPIPE_BROKER_URL") or None

    def run_params(self) -> dict[str, Any]:
        """The settings a worker needs for one run, as plain JSON (they travel in each task)."""
        return {
            "frame_step": self.frame_step,
            "blur_enable": self.blur_enable,
            "blur_var_thresh": self.blur_var_thresh,
            "blur_grid": self.blur_grid,
            "blur_grid_min_keep": self.blur_grid_min_keep,
            "blur_resize": self.blur_resize,
            "det_input": list(self.det_input),
            "det_thresh": self.det_thresh,
            "nms_thresh": self.nms_thresh,
            "min_face": self.min_face,
            "det_model": str(self.det_model) if self.det_model else None,
            "rec_model": str(self.rec_model) if self.rec_model else None,
            "sim_thresh": self.sim_thresh,
            "merge_thresh": self.merge_thresh,
            "refine_limit": self.refine_limit,
            "save_images": self.save_images,
            "save_dir": str(self.save_dir) if self.save_dir else None,
            "task_retries": self.task_retries,
        }


def load_settings(**overrides: Any) -> Settings:
    """Build settings from env vars plus explicit overrides; bad values become one-line errors."""
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        err = exc.errors()[0]
        name = "--" + str(err["loc"][0]).replace("_", "-") if err["loc"] else "settings"
        raise FacepipeError(
            f"bad value for {name}: {err['msg'].removeprefix('Value error, ')} (see 'facepipe run --help')"
        ) from None
