"""A season's outputs in ``OUT/series/``: the series bank, ``faces.jsonl``, ``summary.json``,
``identities.csv``, and the summary printed at the end (the report is
:mod:`facepipe.app.report.series`)."""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from facepipe.app.banks import recogniser_fingerprint, write_series_bank
from facepipe.app.files import write_atomically
from facepipe.clustering.screen import screen_times
from facepipe.clustering.series import EpisodeResult, SeriesBank, SeriesResult
from facepipe.distributed.dispatch import new_run_id


def write_series(
    out: Path, result: SeriesResult, episodes: list[EpisodeResult], params: dict[str, Any]
) -> dict[str, Any]:
    """``bank.npz``, ``faces.jsonl``, ``summary.json`` and ``identities.csv`` in ``out``; returns
    the summary (the report is built from these files)."""
    bank = result.bank
    bank.series_id = new_run_id()
    bank.model = recogniser_fingerprint(params.get("rec_model")) or bank.model
    names = {ep.name: ep.series_name or ep.name for ep in episodes}
    meta = {
        "episodes": [
            {
                "name": names[ep.name],
                "video": ep.video,
                "status": "failed" if ep.final is None else ("incomplete" if ep.problem else "done"),
                "problem": ep.problem,
                "faces": 0 if ep.final is None else len(ep.final.faces),
                "identities": 0 if ep.final is None else len(ep.final),
            }
            for ep in episodes
        ],
        "conflicts": [
            {
                "bank_ids": [c.a, c.b],
                "episode": c.episode,
                "episode_identity": c.identity,
                "linkages": [c.linkage_a, c.linkage_b],
                "note": c.note,
            }
            for c in result.conflicts
        ],
        "missing": [ep.name for ep in episodes if ep.final is None],
        "params": params,
        "removed": [
            {"episode": episode, "episode_identity": identity, "faces": faces, "not_a_face": key}
            for episode, identity, faces, key in result.removed
        ],
    }
    summary = series_summary(bank, meta, result.episode_index, sorted(result.known))
    warn_of_other_edits(out, bank.series_id)
    write_series_files(out, bank, summary, result.episode_index)
    return summary


def these_episodes(bank: SeriesBank, summary: dict[str, Any]) -> list[int]:
    """Indices in ``bank.episodes`` of the episodes a season's summary is about (its run's)."""
    wanted = {ep["name"] for ep in summary.get("episodes") or []}
    return [i for i, name in enumerate(bank.episodes.tolist()) if name in wanted]


def series_summary(
    bank: SeriesBank,
    meta: dict[str, Any],
    these: list[int],
    prior_ids: list[int],
    not_faces: dict[str, int] | None = None,
    faces_removed: int = 0,
    edits: list[str] | None = None,
) -> dict[str, Any]:
    """A season's ``summary.json`` from its bank and what the run knew (``meta``: its episodes,
    conflicts, missing episodes, removed identities and parameters; ``prior_ids``: the ids of
    the bank it started from)."""
    screen = _screen_seconds(bank)
    mine = np.isin(bank.face_episodes, these)
    seen_now = {int(i) for i in np.unique(bank.face_identities[mine])}
    known = seen_now & set(prior_ids)
    return {
        "episodes": meta["episodes"],
        "all_episodes": bank.episodes.tolist(),
        "identities": len(bank.identity_ids),
        "identities_in_these_episodes": len(seen_now),
        "known": sorted(known),
        "new": sorted(seen_now - known),
        "conflicts": meta["conflicts"],
        "counts": {str(int(i)): int(c) for i, c in zip(bank.identity_ids, bank.counts, strict=True)},
        "episode_counts": {
            str(int(i)): {str(name): int(c) for name, c in zip(bank.episodes, row, strict=True) if c}
            for i, row in zip(bank.identity_ids, bank.episode_counts, strict=True)
        },
        "screen_seconds": {
            str(int(i)): {str(name): s for name, s in zip(bank.episodes, row, strict=True) if s}
            for i, row in zip(bank.identity_ids, screen.tolist(), strict=True)
        },
        "missing": meta["missing"],
        "params": meta["params"],
        "series_id": bank.series_id,
        "prior_ids": sorted(int(i) for i in prior_ids),
        "names": {str(int(i)): str(n) for i, n in zip(bank.identity_ids, bank.names, strict=True) if n},
        "screen_time": series_screen_time(bank),
        "removed": meta.get("removed", []),
        "not_faces": not_faces or {},
        "faces_removed": faces_removed,
        "edits": edits or [],
    }


def series_screen_time(bank: SeriesBank) -> dict[str, dict[str, Any]]:
    """Per person: total seconds, and per episode its :class:`~facepipe.clustering.screen.ScreenTime`."""
    assert bank.face_shots is not None and bank.frame_counts is not None
    found: dict[str, dict[str, Any]] = {
        str(int(i)): {"seconds": 0.0, "episodes": {}} for i in bank.identity_ids
    }
    for e, name in enumerate(bank.episodes.tolist()):
        mine = bank.face_episodes == e
        times = screen_times(
            bank.face_identities[mine],
            bank.face_frames[mine],
            bank.face_shots[mine].tolist(),
            float(bank.fps[e]),
            int(bank.frame_steps[e]),
            int(bank.frame_counts[e]),
        )
        for identity, time in times.items():
            entry = found[str(identity)]
            entry["episodes"][str(name)] = time.model_dump(mode="json")
            entry["seconds"] = round(entry["seconds"] + time.seconds, 3)
    return found


def write_series_files(out: Path, bank: SeriesBank, summary: dict[str, Any], these: list[int]) -> None:
    """The season's files from its bank and summary: ``faces.jsonl`` holds the faces of ``these``
    episodes (the run's), with their person's name where it has one."""
    out.mkdir(parents=True, exist_ok=True)
    write_series_bank(bank, out / "bank.npz")
    names = {int(i): str(n) for i, n in zip(bank.identity_ids, bank.names, strict=True) if n}
    lines = []
    for k in np.flatnonzero(np.isin(bank.face_episodes, these)):
        e = int(bank.face_episodes[k])
        frame = int(bank.face_frames[k])
        identity = int(bank.face_identities[k])
        line: dict[str, Any] = {
            "video": str(bank.videos[e]),
            "episode": str(bank.episodes[e]),
            "frame": frame,
            "time_s": round(frame / float(bank.fps[e]), 3),
            "bbox": [round(float(v), 2) for v in bank.face_bboxes[k]],
            "identity": identity,
            "episode_identity": int(bank.face_episode_identities[k]),
        }
        if identity in names:
            line["name"] = names[identity]
        lines.append(orjson.dumps(line) + b"\n")
    write_atomically(out / "faces.jsonl", b"".join(lines))
    write_atomically(out / "summary.json", orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    _write_csv(out / "identities.csv", bank, _screen_seconds(bank))


def warn_of_other_edits(out: Path, new_id: str) -> None:
    """New outputs over a folder whose ``edits.json`` belongs to earlier outputs: say so (the
    edits are in the bank those outputs passed on, if it was used as ``--bank``)."""
    from facepipe.app.curate import other_edits_warning

    note = other_edits_warning(out, new_id)
    if note:
        print(f"facepipe: {note}", file=sys.stderr)


def _screen_seconds(bank: SeriesBank) -> np.ndarray:
    """(N, E) screen time: faces x frame step / fps of each episode."""
    per_face = bank.frame_steps.astype(np.float64) / np.maximum(bank.fps, 1e-9)
    return np.round(bank.episode_counts * per_face[None, :], 1)


def _write_csv(path: Path, bank: SeriesBank, screen: np.ndarray) -> None:
    """One row per person, a screen-time column (seconds) per episode: for spreadsheets."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(
        ["identity", "name", "faces", "screen_s", "episodes", *(f"{name} (s)" for name in bank.episodes)]
    )
    order = np.lexsort((bank.identity_ids, -screen.sum(axis=1)))
    for r in order:
        writer.writerow(
            [
                int(bank.identity_ids[r]),
                str(bank.names[r]),
                int(bank.counts[r]),
                round(float(screen[r].sum()), 1),
                int((bank.episode_counts[r] > 0).sum()),
                *(f"{s:g}" for s in screen[r]),
            ]
        )
    write_atomically(path, text.getvalue().encode("utf-8"))


def format_series(summary: dict[str, Any], out: Path) -> str:
    """The human summary of the series pass."""
    n_eps = len(summary["episodes"])
    lines = [
        f"series: {n_eps} episode(s) now, {len(summary['all_episodes'])} in the bank; "
        f"{summary['identities']} people in the bank, {summary['identities_in_these_episodes']} in "
        f"these episodes ({len(summary['known'])} known, {len(summary['new'])} new)",
    ]
    for ep in summary["episodes"]:
        state = {
            "done": "",
            "incomplete": f"  INCOMPLETE: {ep['problem']}",
            "failed": f"  FAILED: {ep['problem']}",
        }
        lines.append(
            f"  {ep['name']}: {ep['faces']} faces, {ep['identities']} identities{state[ep['status']]}"
        )
    for conflict in summary["conflicts"]:
        lines.append(f"  NOTE: {conflict['note']}")  # names both ids, the linkages, and what to do
    for gone in summary.get("removed") or []:
        lines.append(
            f"  left out: {gone['episode']} identity {gone['episode_identity']} ({gone['faces']} faces) "
            f"matches {gone['not_a_face']}, which was marked not a face"
        )
    names = summary.get("names") or {}
    present = [i for i in [*summary["known"], *summary["new"]] if str(i) in names]
    if present:
        screen = summary.get("screen_time") or {}
        lines.append(
            "  named: "
            + ", ".join(
                f"{i} {names[str(i)]} ({screen.get(str(i), {}).get('seconds', 0):.1f} s)" for i in present
            )
        )
    lines.append(f"  series: {out}/report.html, identities.csv, bank.npz, faces.jsonl, summary.json")
    return "\n".join(lines)
