"""Screen time: how long, how often and when each identity is on screen.

A sampled frame stands for ``frame_step`` frames of video, so an identity's **screen time** is
its faces x ``frame_step`` / fps (a person seen in every sampled frame of a 10-second clip has
10 seconds). Its **appearance segments** are the stretches where it is found in consecutive
sampled frames: each starts at its first face's time and ends ``frame_step`` frames after its
last (the time that face stands for), so the segments of a person with one face per frame add
up to its screen time. **Shots** counts the distinct shots its faces are in (``--clustering
tracks`` finds the cuts; None without them). **Share** divides by the video's duration
(``frame_count / fps``; None when unknown).

Pure functions of the faces' frames, identities and shots: the run's outputs
(:mod:`facepipe.app.outputs`), the season's (:mod:`facepipe.app.series_outputs`) and the edits
(:mod:`facepipe.app.curate`) all compute screen time here, so every file agrees.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, Field


class ScreenTime(BaseModel):
    """One identity's screen time in one video (the README's "What a run leaves")."""

    faces: int
    #: faces x frame_step / fps
    seconds: float
    #: of the video's duration (None: duration unknown)
    share: float | None = None
    #: time of its first and last face
    first_s: float
    last_s: float
    #: distinct shots its faces are in (None: the run did not find shots)
    shots: int | None = None
    #: ``[start_s, end_s]`` of every stretch of consecutive sampled frames it is in
    segments: list[tuple[float, float]] = Field(default_factory=list)


def segments(
    frames: Sequence[int], frame_step: int, fps: float, end_frame: int | None = None
) -> list[tuple[float, float]]:
    """The appearance segments of one identity, from the (sampled) frames it is in.

    Frames at most ``frame_step`` apart belong to one segment; a segment ends ``frame_step``
    frames after its last frame (clipped to ``end_frame``, the video's frame count).
    """
    step = max(1, int(frame_step))
    ordered = np.unique(np.asarray(frames, dtype=np.int64))
    if not len(ordered) or fps <= 0:
        return []
    breaks = np.flatnonzero(np.diff(ordered) > step)
    starts = np.concatenate([[0], breaks + 1])
    stops = np.concatenate([breaks, [len(ordered) - 1]])
    out = []
    for a, b in zip(ordered[starts].tolist(), ordered[stops].tolist(), strict=True):
        end = b + step if end_frame is None or end_frame <= 0 else min(b + step, max(end_frame, b + 1))
        out.append((round(a / fps, 3), round(end / fps, 3)))
    return out


def screen_times(
    identities: Sequence[int],
    frames: Sequence[int],
    shots: Sequence[int | None] | None,
    fps: float,
    frame_step: int,
    frame_count: int | None = None,
) -> dict[int, ScreenTime]:
    """Every identity's :class:`ScreenTime`, from its faces (``identities[k]`` and ``frames[k]``
    of face ``k``; ``shots[k]`` its shot, None or -1 where unknown)."""
    ids = np.asarray(identities, dtype=np.int64)
    frame_arr = np.asarray(frames, dtype=np.int64)
    shot_list = list(shots) if shots is not None else [None] * len(ids)
    shot_arr = np.array([-1 if s is None else int(s) for s in shot_list], dtype=np.int64)
    fps = float(fps) if fps and fps > 0 else 25.0
    step = max(1, int(frame_step))
    duration = frame_count / fps if frame_count and frame_count > 0 else None
    result: dict[int, ScreenTime] = {}
    for identity in np.unique(ids).tolist():
        mine = ids == identity
        own_frames = frame_arr[mine]
        own_shots = shot_arr[mine]
        seconds = round(int(mine.sum()) * step / fps, 3)
        result[int(identity)] = ScreenTime(
            faces=int(mine.sum()),
            seconds=seconds,
            share=round(min(1.0, seconds / duration), 4) if duration else None,
            first_s=round(int(own_frames.min()) / fps, 3),
            last_s=round(int(own_frames.max()) / fps, 3),
            shots=int(len(np.unique(own_shots))) if (own_shots >= 0).all() else None,
            segments=segments(own_frames, step, fps, frame_count),
        )
    return result
