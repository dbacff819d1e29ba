"""Several videos in one command: the episodes of a season, and where each one's outputs go.

One video keeps today's layout (its outputs straight in ``--out``). Several videos are
episodes: each one's usual outputs go to ``OUT/<video stem>/`` (a number is added when
two stems are equal), and the series outputs to ``OUT/series/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from facepipe.distributed.dispatch import new_run_id
from facepipe.records import VideoInfo

SERIES_DIR = "series"


@dataclass(frozen=True)
class Episode:
    """One video of the command, in the order given."""

    index: int
    info: VideoInfo
    #: the episode's name: its video's stem, unique within the command
    name: str
    #: its output folder
    out: Path
    #: how messages introduce it ("" for a single video)
    label: str
    #: the id of its run (its keys in Redis), known before anything starts
    run_id: str


def plan_episodes(infos: list[VideoInfo], out: Path, season: bool | None = None) -> list[Episode]:
    """Names and output folders, in the order the videos were given. ``season`` (default: more
    than one video) puts each in ``OUT/<stem>/`` with a series pass after them."""
    if not (len(infos) > 1 if season is None else season):
        info = infos[0]
        return [Episode(0, info, _stem(info.path), out, "", new_run_id())]
    names: list[str] = []
    for info in infos:
        stem, name, n = _stem(info.path), _stem(info.path), 2
        while name in names or name == SERIES_DIR:
            name, n = f"{stem}-{n}", n + 1
        names.append(name)
    return [
        Episode(
            i,
            info,
            name,
            out / name,
            f"episode {i + 1}/{len(infos)} ({name}), " if len(infos) > 1 else "",
            new_run_id(),
        )
        for i, (info, name) in enumerate(zip(infos, names, strict=True))
    ]


def _stem(path: str) -> str:
    stem = Path(path.split("?")[0]).stem or "video"
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)
