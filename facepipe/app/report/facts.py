"""The run's figures that several page sections need, derived once from ``summary.json``.

Every section must agree on the frame rate, the duration and the lost ranges (a card's
screen-time share, the axis and the subtitle all divide by the same duration), so they
are worked out here, with the same fallbacks, rather than in each section.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facepipe.app.summary import Summary


@dataclass(frozen=True)
class RunFacts:
    """What the page knows about the run and its video, fallbacks already applied."""

    params: dict[str, Any]
    fps: float
    frame_step: int
    frame_count: int
    duration: float  # seconds; 0.0 when unknown
    video: Any  # the recorded path, or "?"
    #: ``(start_s, end_s)`` of each lost chunk, drawn on every timeline
    lost: list[tuple[float, float]]

    @property
    def name(self) -> str:
        """The video's file name, for the headline."""
        return Path(str(self.video)).name

    @property
    def step_s(self) -> float:
        """Seconds between sampled frames: what one face stands for in screen time."""
        return self.frame_step / self.fps


def run_facts(summary: Summary, faces: list[dict[str, Any]]) -> RunFacts:
    """The figures from the summary, with defaults for older or partial summaries.

    Without a recorded ``frame_count`` the video is taken to end at the last face seen,
    and without an ``fps`` at 25, so the page still draws.
    """
    params = summary.params
    fps = float(params.get("fps") or 25.0)
    last_frame = max((int(f["frame"]) for f in faces), default=-1)
    frame_count = int(params.get("frame_count") or last_frame + 1 or 0)
    return RunFacts(
        params=params,
        fps=fps,
        frame_step=int(params.get("frame_step") or 1),
        frame_count=frame_count,
        duration=frame_count / fps if fps > 0 else 0.0,
        video=summary.video or params.get("video") or "?",
        lost=[(f.frames[0] / fps, f.frames[1] / fps) for f in summary.failed_chunks if f.frames],
    )
